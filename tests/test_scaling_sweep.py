"""The scaling sweep end to end on the tiny dataset: outputs, learning, resume, bad input."""
import json
import os

import numpy as np
import pytest

from configs.scaling_sweep import get_config
from experiments import objectives_report, scaling_sweep
from experiments.stages.sweep import run_sweep, validate
from rlhf_jax import scaling
from rlhf_jax.errors import ConfigError
from rlhf_jax.labels import label_sets
from rlhf_jax.labels.label_set_io import write_label_set
from rlhf_jax.labels.label_sources import TeacherSource
from rlhf_jax.reward_artifact import RewardModelError, load_reward_model
from rlhf_jax.train.chunks import NonFiniteLossError
from tests.results_compare import read_rows

STEPS = 200


def _config(root, **overrides):
    c = get_config("tiny")
    c.data_dir = root
    c.total_steps = STEPS
    c.chunk_steps = 100
    c.eval_every = 10
    for k, v in overrides.items():
        c[k] = v
    return c


def _rows(workdir):
    return read_rows(os.path.join(workdir, "results.csv"))


@pytest.fixture(scope="module")
def finished_run(tiny_data_root, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("sweep") / "run")
    fits = run_sweep(_config(tiny_data_root), workdir, log=lambda *_: None)
    return workdir, fits


def test_outputs_and_fit_keys(finished_run):
    workdir, fits = finished_run
    for name in ("results.csv", "fit.json", "accuracy_vs_n.png", "config.json", "run_info.json"):
        assert os.path.getsize(os.path.join(workdir, name)) > 0, name
    with open(os.path.join(workdir, "fit.json")) as f:
        fit = json.load(f)
    assert fit["primary"] == "oracle/ensemble"
    assert {k: fit[k] for k in ("E", "A", "alpha")} == {k: fit["fits"]["oracle/ensemble"][k] for k in ("E", "A", "alpha")}
    c = get_config("tiny")
    rows = _rows(workdir)
    # The fitted curve passes near the measured mean ensemble error at every N.
    ens = [r for r in rows if r["member"] == "ensemble"]
    for n in c.n_values:
        measured = np.mean([float(r["test_error"]) for r in ens if int(r["n"]) == n])
        assert abs(float(scaling.predict(fit, n)) - measured) < 0.1, (n, measured)
    assert len(rows) == len(c.n_values) * len(c.seeds) * (c.members + 1)
    assert {r["member"] for r in rows} == {"0", "1", "ensemble"}
    assert not any(os.path.basename(p).startswith(".tmp") for p in os.listdir(workdir))
    # The default save_models selection: the first condition, seed 0, every N.
    with open(os.path.join(workdir, "run_info.json")) as f:
        saved = json.load(f)["reward_models"]
    assert saved == [f"reward_models/oracle_n{n}_seed0" for n in c.n_values]
    rm = load_reward_model(os.path.join(workdir, saved[-1]))
    assert (rm.meta["n"], rm.members) == (c.n_values[-1], c.members)


def test_reward_models_beat_chance_and_error_falls_with_n(finished_run):
    rows = _rows(finished_run[0])
    ens = [r for r in rows if r["member"] == "ensemble"]
    acc = lambda n: np.mean([float(r["test_accuracy"]) for r in ens if int(r["n"]) == n])
    c = get_config("tiny")
    # Measured 0.715 at N=400 on the tiny dataset's 100 test pairs (8-step segments of 20-step
    # episodes, so many pairs are close calls); chance is 0.5 and 0.65 is 3 binomial σ above it.
    assert acc(max(c.n_values)) >= 0.65
    assert acc(max(c.n_values)) > acc(min(c.n_values))


def test_resume_after_interruption_gives_identical_results(finished_run, tiny_data_root, tmp_path):
    workdir = str(tmp_path / "run")

    def stop_after_first_chunk(msg):
        if "step 100/" in msg:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(_config(tiny_data_root), workdir, log=stop_after_first_chunk)
    assert not os.path.exists(os.path.join(workdir, "results.csv"))
    with pytest.raises(ConfigError, match="--resume"):
        run_sweep(_config(tiny_data_root), workdir, log=lambda *_: None)
    messages = []
    run_sweep(_config(tiny_data_root), workdir, resume=True, log=messages.append)
    assert any("resumed from step 100" in m for m in messages)
    assert _rows(workdir) == _rows(finished_run[0])


@pytest.mark.slow
def test_log_schedule_selects_on_its_steps_and_resumes_to_identical_results(tiny_data_root, tmp_path):
    """The log schedule (step 0, dense early): every best step is one of its evaluation steps, the
    history records them, and a run interrupted after its first chunk resumes to the same rows."""
    from rlhf_jax.train.eval_schedule import eval_steps

    config = _config(tiny_data_root, eval_schedule="log")
    whole = str(tmp_path / "whole")
    run_sweep(config, whole, log=lambda *_: None)
    steps = eval_steps(STEPS, config.eval_every, "log")
    rows = _rows(whole)
    assert {int(r["best_step"]) for r in rows} <= set(steps.tolist())
    history = np.load(os.path.join(whole, "history_size_0.npz"))
    np.testing.assert_array_equal(history["eval_steps"], steps)
    assert np.isfinite(history["val_loss"]).all()

    def stop_after_first_chunk(msg):
        if "step 100/" in msg:
            raise KeyboardInterrupt

    part = str(tmp_path / "part")
    with pytest.raises(KeyboardInterrupt):
        run_sweep(config, part, log=stop_after_first_chunk)
    run_sweep(config, part, resume=True, log=lambda *_: None)
    assert _rows(part) == rows


def test_a_config_without_compute_dtype_gives_the_float32_results(finished_run, tiny_data_root, tmp_path):
    """Configs written before ``model.compute_dtype`` existed (and blocks that leave it out) train
    exactly as its "float32" default does."""
    config = _config(tiny_data_root)
    assert config.model.compute_dtype == "float32"
    del config.model["compute_dtype"]
    workdir = str(tmp_path / "no_field")
    run_sweep(config, workdir, log=lambda *_: None)
    assert _rows(workdir) == _rows(finished_run[0])


def test_config_errors_fail_before_anything_compiles(tiny_data_root, tmp_path):
    cases = [({"n_values": (25, 1000)}, "train pool"), ({"members": 0}, "members"),
             ({"n_values": (0, 10)}, "positive"), ({"batch_size": 0}, "batch_size"),
             ({"conditions": ("nonsense",)}, "teacher presets"), ({"seeds": (0, 0)}, "no repeats"),
             ({"dataset": "huge"}, "dataset"), ({"feature_kind": "voxels"}, "feature_kind"),
             ({"feature_kind": "pixels", "surf": {"enabled": True, "tau": 0.95, "lam": 1.0, "mu": 2, "crop": 5}},
              "field 'surf.enabled'"),
             ({"feature_kind": "pixels", "dataset": "lerobot:/nonexistent"}, "field 'dataset'"),
             ({"eval_schedule": "cubic"}, "field 'eval_schedule'"),
             ({"objectives": ("task", "comfort")}, "field 'objectives'"),
             ({"objectives": ("task",), "conditions": ("qc:crowd/raw",)}, "label files only when objectives"),
             ({"objectives": ("task",), "save_models": {"enabled": True, "condition": "oracle", "seeds": (0,),
                                                       "n_values": ()}}, "oracle@task")]
    for overrides, match in cases:
        with pytest.raises(ConfigError, match=match):
            run_sweep(_config(tiny_data_root, **overrides), str(tmp_path / "x"), log=lambda *_: None)
    assert not os.path.exists(tmp_path / "x")
    with pytest.raises(ValueError, match="variant"):
        get_config("huge")


def _sub_answer_file(path, pref, edit):
    """A label file of the oracle's answers and task sub-answers to 20 training pairs and 10
    validation pairs; ``edit(rows, meta)`` changes them (records() layout) before writing."""
    source = TeacherSource("oracle", ("task",))
    sets = [source.label(pref.segments, pool.idx_a[:n], pool.idx_b[:n], 0).label_set
            for pool, n in ((pref.train, 20), (pref.val, 10))]
    ls = label_sets.concat(sets)
    rows, meta = ls.records(), dict(ls.meta)
    edit(rows, meta)
    return write_label_set(str(path), label_sets.from_records(rows, ls.annotators, meta))


def test_objective_label_file_bad_input_is_one_line_before_anything_is_written(tiny_data_root, tiny_preference_data,
                                                                              tmp_path, capsys):
    """A 'file:' condition's rubric must answer every configured objective and name no unknown
    one; a free-text question the file's header names (as the labelling page writes it) is let be."""
    def unknown(rows, meta):
        rows[3]["rubric"] = {**rows[3]["rubric"], "comfort": 1.0}

    def free_text(rows, meta):
        meta["rubric"] = ["avoids the obstacle better"]
        rows[3]["rubric"] = {**rows[3]["rubric"], "avoids the obstacle better": 0.5}

    pref = tiny_preference_data
    cases = [(lambda rows, meta: None, ("task", "safety"), r"expected objectives that training rows of label file "
              r".* answer \(its rubric keys \['task'\]\), got no answers to \['safety'\]"),
             (unknown, ("task",), r"expected rubric answers of label file .* keyed by objectives from "
              r"\['task', 'safety', 'smoothness', 'efficiency'\] .*, got rubric keys \['comfort'\]"),
             (free_text, ("task", "smoothness"), r"expected objectives .*, got no answers to \['smoothness'\]")]
    for i, (edit, objectives, match) in enumerate(cases):
        condition = f"file:{_sub_answer_file(tmp_path / f'labels{i}.jsonl', pref, edit)}"
        with pytest.raises(ConfigError, match="field 'conditions': " + match):
            validate(_config(tiny_data_root, conditions=(condition,), objectives=objectives), "cfg.py")
        workdir = str(tmp_path / f"cli{i}")
        capsys.readouterr()
        argv = ["prog", "--config=configs/scaling_sweep.py:tiny", f"--config.data_dir={tiny_data_root}",
                f"--config.conditions=('{condition}',)", f"--config.objectives={objectives!r}", f"--workdir={workdir}"]
        assert scaling_sweep.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: configs/scaling_sweep.py: field 'conditions'"), err
        assert not os.path.exists(workdir)
    # The free-text question's answers are told from the objectives' (no unknown key), and a file
    # answering every configured objective passes the check.
    condition = f"file:{_sub_answer_file(tmp_path / 'free_text.jsonl', pref, free_text)}"
    validate(_config(tiny_data_root, conditions=(condition,), objectives=("task",)), "cfg.py")


def test_nan_loss_stops_naming_step_point_and_member(tiny_data_root, tmp_path, capsys):
    config = _config(tiny_data_root)
    config.optimizer.learning_rate = 1e35
    with pytest.raises(NonFiniteLossError, match=r"non-finite .*loss at step \d+, sweep point \d+ .*member \d"):
        run_sweep(config, str(tmp_path / "nan"), log=lambda *_: None)
    assert not os.path.exists(tmp_path / "nan" / "results.csv")
    # Through the command line: exit 1, one line, and a first chunk that failed leaves the name free
    # (its files moved aside), so the corrected command is not refused as "not empty".
    workdir = str(tmp_path / "cli")
    argv = ["prog", "--config=configs/scaling_sweep.py:tiny", f"--config.data_dir={tiny_data_root}",
            f"--config.total_steps={STEPS}", "--config.chunk_steps=100", "--config.eval_every=10",
            "--config.optimizer.learning_rate=1e35", f"--workdir={workdir}"]
    capsys.readouterr()
    assert scaling_sweep.main(argv) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "non-finite" in err[0] and f"{workdir}.failed-1" in err[0], err
    assert not os.path.exists(workdir) and os.path.isfile(os.path.join(workdir + ".failed-1", "config.json"))


def test_scaling_notebook_runs_on_the_sweep_results(finished_run):
    pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    from tests.subprocess_utils import execute_notebook

    outputs = execute_notebook("scaling_curves.ipynb", finished_run[0])
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)


def test_surf_sweep_trains_with_crops_and_pseudo_labels(tiny_data_root, tmp_path):
    """SURF as a sweep option: the table keeps a crop margin, every condition trains on crops and
    confident pseudo-labels of its unlabelled pool pairs, and the sweep still learns (that a
    condition with SURF off is the plain program is tested in test_train_sweep)."""
    config = _config(tiny_data_root)
    config.surf.enabled, config.surf.crop, config.surf.tau = True, 2, 0.9
    workdir = str(tmp_path / "surf")
    run_sweep(config, workdir, log=lambda *_: None)
    top = max(get_config("tiny").n_values)
    acc = [float(r["test_accuracy"]) for r in _rows(workdir) if r["member"] == "ensemble" and int(r["n"]) == top]
    assert np.mean(acc) > 0.6


def test_droid_pass_adds_pseudo_labels_and_without_them_is_the_plain_sweep(tiny_data_root, tmp_path, monkeypatch):
    from rlhf_jax.train import active

    config = _config(tiny_data_root, n_values=(25, 50, 100), seeds=(0,))
    config.pseudo.droid = True
    workdir = str(tmp_path / "droid")
    run_sweep(config, workdir, log=lambda *_: None)
    rows = _rows(workdir)
    droid = [r for r in rows if r["condition"] == "oracle+droid"]
    assert len(droid) == len(rows) // 2 and all(int(r["pseudo_labels"]) > 0 for r in droid)
    # With the pseudo-labels taken away, the second pass is the first pass again.
    empty = lambda *a, **k: (np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32))  # noqa: E731
    monkeypatch.setattr(active, "droid_pseudo_labels", empty)
    workdir2 = str(tmp_path / "droid_empty")
    run_sweep(config, workdir2, log=lambda *_: None)
    rows2 = _rows(workdir2)
    plain = [{k: v for k, v in r.items() if k not in ("condition", "pseudo_labels")} for r in rows2
             if r["condition"] == "oracle"]
    again = [{k: v for k, v in r.items() if k not in ("condition", "pseudo_labels")} for r in rows2
             if r["condition"] == "oracle+droid"]
    for a, b in zip(plain, again):
        for k in a:
            try:
                np.testing.assert_allclose(float(b[k]), float(a[k]), rtol=2e-4, atol=2e-5, err_msg=k)
            except ValueError:
                assert a[k] == b[k], k


def test_objective_sweep_scores_each_head_against_its_objective(tiny_data_root, tmp_path):
    """One head per objective: rows name it, each is scored against its objective's oracle, and the
    task head (progress, which per-step inputs determine) learns its objective."""
    objectives = ("task", "smoothness")
    config = _config(tiny_data_root, objectives=objectives, n_values=(50, 100, 400), seeds=(0,))
    config.model.kind = "previous_step"
    config.save_models.update({"condition": "*", "n_values": (400,)})  # every head, at N = 400
    workdir = str(tmp_path / "run")
    run_sweep(config, workdir, log=lambda *_: None)
    for o in objectives:  # saved, and refused as a per-step reward: it needs the step before
        head = load_reward_model(os.path.join(workdir, "reward_models", f"oracle_{o}_n400_seed0"),
                                 allow_segment_level=True)
        assert head.meta["condition"] == f"oracle@{o}" and head.meta["model"]["kind"] == "previous_step"
    with pytest.raises(RewardModelError, match="per-step"):
        load_reward_model(os.path.join(workdir, "reward_models", "oracle_task_n400_seed0"))
    rows = _rows(workdir)
    assert {(r["condition"], r["objective"]) for r in rows} == {(f"oracle@{o}", o) for o in objectives}
    assert len(rows) == len(objectives) * 3 * (config.members + 1)
    ens = {(r["objective"], int(r["n"])): float(r["test_accuracy"]) for r in rows if r["member"] == "ensemble"}
    assert ens[("task", 400)] > 0.75
    with open(os.path.join(workdir, "run_info.json")) as f:
        estimates = json.load(f)["markovian_estimate"]["objectives"]
    assert set(estimates) == set(objectives) and estimates["smoothness"]["per_step"] == 0.5
    with open(os.path.join(workdir, "fit.json")) as f:
        assert set(json.load(f)["fits"]) == {f"oracle@{o}/{k}" for o in objectives for k in ("ensemble", "single")}
    with open(os.path.join(workdir, "results.csv"), encoding="utf-8", newline="") as f:
        block = objectives_report.docs_block(objectives_report.read_rows(f), workdir)
    assert "Labels from `oracle`:" in block and "| task |" in block and "| 0.500 |" in block  # smoothness per step
