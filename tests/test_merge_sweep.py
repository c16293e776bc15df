"""Sweep shards: a point's result does not depend on the other N of its run, and shards of the N
grid merged by experiments.merge_sweep equal one run of the whole grid."""
import json
import os
import shutil

import numpy as np
import pytest

from configs.scaling_sweep import get_config
from experiments import merge_sweep, scaling_report, scaling_sweep
from experiments.stages.sweep import run_sweep
from experiments.stages.sweep_outputs import typed_rows
from rlhf_jax.strict_json import read_json
from rlhf_jax.train.sweep_data import make_sweep_data
from tests.bad_input_utils import fails_cleanly
from tests.results_compare import assert_same_results, read_rows

WHOLE_N = (25, 50, 100, 200)
SHARD_A, SHARD_B = (25, 100), (50, 200)   # interleaved: the merge must restore the whole run's order


def _config(root, n_values=WHOLE_N):
    c = get_config("tiny")
    c.data_dir = root
    c.n_values = n_values
    c.total_steps, c.chunk_steps, c.eval_every = 40, 20, 10
    c.eval_schedule = "log"        # the medium grid's schedule
    c.save_models.enabled = False
    return c


@pytest.fixture(scope="module")
def runs(tiny_data_root, tmp_path_factory):
    """One whole run, shard A through the job's CLI (``--config.n_values``), shard B in-process."""
    root = tmp_path_factory.mktemp("shards")
    dirs = {name: str(root / name) for name in ("whole", "a", "b")}
    run_sweep(_config(tiny_data_root), dirs["whole"], log=lambda *_: None)
    flags = ["--config=configs/scaling_sweep.py:tiny", f"--config.n_values={SHARD_A}", "--config.total_steps=40",
             "--config.chunk_steps=20", "--config.eval_every=10", "--config.eval_schedule=log",
             "--config.save_models.enabled=False", f"--config.data_dir={tiny_data_root}"]
    assert scaling_sweep.main(["prog", *flags, "--workdir", dirs["a"]]) == 0
    run_sweep(_config(tiny_data_root, SHARD_B), dirs["b"], log=lambda *_: None)
    return dirs


def test_a_points_pairs_do_not_depend_on_the_other_n_values(tiny_preference_data):
    """Every seed's nested order (the pairs a point trains on: its first N) is the same whatever
    the grid, so a shard's point trains on the whole run's pairs."""
    whole = make_sweep_data(tiny_preference_data, ("oracle", "mistake"), WHOLE_N, (0, 1, 2), 2)
    shard = make_sweep_data(tiny_preference_data, ("oracle", "mistake"), SHARD_B, (0, 1, 2), 2)
    np.testing.assert_array_equal(np.asarray(shard.data.order), np.asarray(whole.data.order))
    np.testing.assert_array_equal(np.asarray(shard.data.train_label), np.asarray(whole.data.train_label))
    # Different seeds draw different subsets (the equality above is not a constant order).
    order = np.asarray(whole.data.order)
    assert not np.array_equal(order[0, 0, :25], order[0, 1, :25])


def test_merged_shards_equal_the_whole_run(runs, tmp_path, capsys):
    out = str(tmp_path / "merged")
    assert merge_sweep.main(["prog", runs["b"], runs["a"], "--out", out]) == 0  # any shard order
    assert "merged 2 shard(s), N = 25, 50, 100, 200," in capsys.readouterr().out
    whole_rows, merged_rows = read_rows(os.path.join(runs["whole"], "results.csv")), read_rows(
        os.path.join(out, "results.csv"))
    assert [(r["n"], r["seed"], r["member"]) for r in merged_rows] == [
        (r["n"], r["seed"], r["member"]) for r in whole_rows]
    assert_same_results(whole_rows, merged_rows)
    with open(os.path.join(out, "config.json")) as f, open(os.path.join(runs["whole"], "config.json")) as g:
        assert f.read() == g.read()   # the whole grid's config, as the sweep writes it
    whole_fit, merged_fit = (read_json(os.path.join(d, "fit.json")) for d in (runs["whole"], out))
    assert whole_fit["primary"] == merged_fit["primary"] == "oracle/ensemble"
    for name, fit in whole_fit["fits"].items():
        for key in ("E", "A", "alpha", "E_ci", "A_ci", "alpha_ci"):
            np.testing.assert_allclose(merged_fit["fits"][name][key], fit[key], rtol=1e-4, atol=1e-6,
                                       err_msg=f"{name} {key}")
    assert os.path.getsize(os.path.join(out, "accuracy_vs_n.png")) > 0
    info = read_json(os.path.join(out, "run_info.json"))
    shard_infos = [read_json(os.path.join(runs[s], "run_info.json")) for s in ("a", "b")]
    assert [s["n_values"] for s in info["shards"]] == [list(SHARD_A), list(SHARD_B)]
    assert info["wall_s"] == pytest.approx(sum(i["wall_s"] for i in shard_infos))
    assert info["label_sources"] == shard_infos[0]["label_sources"]
    # The report (per-point best steps, fits, verdicts) reads the merge as it reads the whole run.
    whole_report, merged_report = (scaling_report.build_report(d) for d in (runs["whole"], out))
    assert merged_report["convergence"] == whole_report["convergence"]
    for name, curve in whole_report["curves"].items():
        np.testing.assert_allclose(merged_report["curves"][name]["free"]["alpha"], curve["free"]["alpha"], rtol=1e-4)
    assert merged_report["claims"] == whole_report["claims"]


def test_typed_rows_write_back_the_same_text(runs, tmp_path):
    from rlhf_jax.checkpoint import atomic_write_csv

    path = os.path.join(runs["whole"], "results.csv")
    atomic_write_csv(str(tmp_path / "again.csv"), typed_rows(read_rows(path)))
    with open(path) as f, open(tmp_path / "again.csv") as g:
        assert f.read() == g.read()


def _edited_copy(src: str, dst: str, **fields) -> str:
    shutil.copytree(src, dst)
    config = read_json(os.path.join(dst, "config.json"))
    config.update(fields)
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    return dst


@pytest.mark.parametrize("fields,needle", [
    ({"seeds": [0]}, "field 'seeds'"),
    ({"total_steps": 80}, "field 'total_steps'"),
    ({"fit": {"fix_e": True, "n_bootstrap": 50, "target_error": 0.1}}, "field 'fit.fix_e'"),
])
def test_shards_of_different_runs_are_refused(runs, tmp_path, capsys, fields, needle):
    other = _edited_copy(runs["b"], str(tmp_path / "other"), **fields)
    out = str(tmp_path / "merged")
    fails_cleanly(capsys, merge_sweep.main, [runs["a"], other, "--out", out], None,
                  f"error: {other}/config.json: {needle}: expected", "shards differ only in n_values")
    assert not os.path.exists(out)


def test_overlapping_missing_or_relabelled_shards_are_refused(runs, tmp_path, capsys):
    out = str(tmp_path / "merged")
    fails_cleanly(capsys, merge_sweep.main, [runs["a"], runs["whole"], "--out", out], None,
                  f"{runs['whole']}/config.json: field 'n_values'", "N values no other shard ran")
    unfinished = str(tmp_path / "unfinished")
    shutil.copytree(runs["b"], unfinished)
    os.remove(os.path.join(unfinished, "results.csv"))
    fails_cleanly(capsys, merge_sweep.main, [runs["a"], unfinished, "--out", out], None,
                  f"{unfinished}: field 'results.csv'")
    relabelled = str(tmp_path / "relabelled")
    shutil.copytree(runs["b"], relabelled)
    info = read_json(os.path.join(relabelled, "run_info.json"))
    info["label_sources"]["oracle"]["label_set_hash"] = "sha256:0"
    with open(os.path.join(relabelled, "run_info.json"), "w") as f:
        json.dump(info, f)
    fails_cleanly(capsys, merge_sweep.main, [runs["a"], relabelled, "--out", out], None,
                  f"{relabelled}/run_info.json: field 'label_sources'")
    assert not os.path.exists(out)
    os.makedirs(out)
    with open(os.path.join(out, "keep.txt"), "w") as f:
        f.write("x")
    fails_cleanly(capsys, merge_sweep.main, [runs["a"], runs["b"], "--out", out], out, "--out")
