"""Every class of bad input, through the real entry points (``main(argv)`` in-process, so no
case pays a JAX import): exit code 2, one error line naming the config file and field, no
traceback, and a workdir that is absent or untouched."""
from __future__ import annotations

import glob
import json
import os
import shutil

import pytest

from configs.scaling_sweep import get_config as sweep_config
from experiments import (cli, cross_embodiment, make_dataset, overoptimization, ppo_rlhf, rlhf_pipeline,
                         scaling_sweep, train_dpo, train_sft)

from tests.bad_input_utils import fails_cleanly

SWEEP = "configs/scaling_sweep.py"


def _sweep(root, workdir, *overrides):
    return [f"--config={SWEEP}:tiny", f"--config.data_dir={root}", *overrides, f"--workdir={workdir}"]


# --- Validation runs before anything is written (these used to leave a blocking workdir) -------

@pytest.mark.parametrize("overrides, needles", [
    (("--config.conditions=('skip',)", "--config.n_values=(100,600)"), ("n_values", "'skip'", "600")),
    (("--config.segment_length=100",), ("segment_length",)),
    (("--config.dataset=huge",), ("field 'dataset'", "'huge'")),
    (("--config.feature_kind=voxels",), ("field 'feature_kind'", "'voxels'")),
    (("--config.feature_kinds=('eef','pixels')",), ("field 'feature_kinds'", "'joint' beside pixel kinds")),
    (("--config.feature_kind=pixels", "--config.pixels.every=0"), ("field 'pixels.every'",)),
    (("--config.num_tasks=0",), ("field 'num_tasks'",)),
    (("--config.num_tasks=1",), ("field 'num_tasks'", "task id")),
    (("--config.total_steps=30",), ("field 'total_steps'", "chunk_steps")),
])
def test_sweep_data_and_config_errors_leave_no_workdir(capsys, tiny_data_root, tiny_dataset_dir, tmp_path,
                                                       overrides, needles):
    del tiny_dataset_dir
    workdir = str(tmp_path / "run")
    fails_cleanly(capsys, scaling_sweep.main, _sweep(tiny_data_root, workdir, *overrides), workdir,
                   SWEEP, *needles)
    assert not os.path.exists(workdir)


@pytest.mark.parametrize("override, needles", [
    ("--config.save_models.condition=mistake", ("field 'save_models.condition'", "'mistake'", "oracle")),
    ("--config.save_models.seeds=(0,7)", ("field 'save_models.seeds'", "7")),
    ("--config.save_models.seeds=()", ("field 'save_models.seeds'", "at least one")),
    ("--config.save_models.n_values=(25,30)", ("field 'save_models.n_values'", "30")),
    ("--config.save_models.enabled=sometimes", ("save_models.enabled", "sometimes")),
    ("--config.point_groups=3", ("field 'point_groups'", "divisor of the 10 sweep points", "3")),
    ("--config.model.compute_dtype=float16", ("field 'model.compute_dtype'", "'bfloat16'", "'float16'")),
    ("--config.eval_schedule=cubic", ("field 'eval_schedule'", "one of 'linear', 'log'", "cubic")),
])
def test_saved_model_selection_is_checked_before_anything_is_written(capsys, tmp_path, override, needles):
    workdir = str(tmp_path / "run")
    fails_cleanly(capsys, scaling_sweep.main, _sweep(str(tmp_path / "unused"), workdir, override), workdir,
                   SWEEP, *needles)
    assert not os.path.exists(workdir)


def test_truncated_tfrecord_is_one_line_naming_the_shard(capsys, tiny_data_root, tiny_dataset_dir, tmp_path):
    root = str(tmp_path / "data")
    shutil.copytree(tiny_data_root, root, ignore=shutil.ignore_patterns("jax_cache"))
    shard = sorted(glob.glob(os.path.join(root, "**", "*.tfrecord*"), recursive=True))[0]
    with open(shard, "r+b") as f:
        f.truncate(os.path.getsize(shard) // 2)
    workdir = str(tmp_path / "run")
    fails_cleanly(capsys, scaling_sweep.main, _sweep(root, workdir), workdir, SWEEP, "tfrecord", "readable")
    assert not os.path.exists(workdir)


# --- Values the old override parser misread silently -------------------------------------------

@pytest.mark.parametrize("override, needles", [
    ("--config.model_sizes=32", ("field 'model_sizes'", "tuple of tuples")),
    ("--config.bootstrap=maybe", ("bootstrap", "maybe")),
    ("--config.seeds=(0,0)", ("field 'seeds'", "no repeats")),
    ("--config.members=0", ("field 'members'",)),
    ("--config.n_values=(50,25)", ("field 'n_values'", "increasing")),
    ("--config.nope=1", ("nope", "no such field")),
    ("--config.fit.n_bootstrap=-1", ("field 'fit.n_bootstrap'",)),
    # Nested blocks are checked before config.json is written (they used to fail after it, or
    # after training, or never): each must leave no workdir behind.
    ("--config.fit.n_bootstrap=0", ("field 'fit.n_bootstrap'",)),
    ("--config.optimizer.schedule=bogus", ("field 'optimizer.schedule'", "bogus")),
    ("--config.model.aggregate=bogus", ("field 'model.aggregate'", "bogus")),
    ("--config.model.context_dim=0", ("field 'model.context_dim'",)),
    ("--config.optimizer.learning_rate=-0.001", ("field 'optimizer.learning_rate'",)),
    ("--config.optimizer.learning_rate=nan", ("field 'optimizer.learning_rate'",)),
    ("--config.optimizer.grad_clip=-1.0", ("field 'optimizer.grad_clip'",)),
    ("--config.loss.label_smoothing=2.0", ("field 'loss.label_smoothing'",)),
    ("--config.fit.target_error=2.0", ("field 'fit.target_error'",)),
    ("--config.label_seed=-1", ("field 'label_seed'",)),
    ("--config.pool_seed=-3", ("field 'pool_seed'",)),
])
def test_misread_overrides_are_refused(capsys, tmp_path, override, needles):
    workdir = str(tmp_path / "run")
    fails_cleanly(capsys, scaling_sweep.main, _sweep(str(tmp_path / "unused"), workdir, override), workdir,
                   SWEEP, *needles)
    assert not os.path.exists(workdir)


def test_nested_overrides_parse_to_the_fields_type():
    inv = cli.parse(["prog", f"--config={SWEEP}:quick", "--config.fit.fix_e=True", "--config.model_sizes=((16,16),)",
                     "--config.conditions=('oracle','noisy_pool')", "--workdir=w"])
    assert inv.config.fit.fix_e is True and inv.config.model_sizes == ((16, 16),)
    assert inv.config.conditions == ("oracle", "noisy_pool") and inv.workdir == "w" and not inv.resume


def test_a_repeated_tuple_override_joins_its_items_and_a_scalar_keeps_the_last():
    """As docs/cli.md says: a tuple field is an absl multi-flag, a scalar field an ordinary flag."""
    inv = cli.parse(["prog", f"--config={SWEEP}:quick", "--config.n_values=100", "--config.n_values=(200,400)",
                     "--config.seed=3", "--config.seed=4", "--workdir=w"])
    assert inv.config.n_values == (100, 200, 400) and inv.config.seed == 4


@pytest.mark.parametrize("argv, needles", [
    ([f"--config={SWEEP}:huge", "--workdir=w"], (SWEEP, "field 'variant'", "'huge'")),
    (["--config=configs/nothing.py:quick", "--workdir=w"], ("configs/nothing.py", "not found")),
    ([f"--config={SWEEP}:tiny"], ("--workdir", "required")),
    (["--workdir=w"], ("--config", "required")),
])
def test_variant_file_and_flag_errors_are_one_line(capsys, argv, needles):
    fails_cleanly(capsys, scaling_sweep.main, argv, None, *needles)


# --- Workdir and resume ---------------------------------------------------------------------------

def test_resume_with_a_changed_config_names_the_fields(capsys, tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    saved = sweep_config("tiny")
    (workdir / "config.json").write_text(saved.to_json(indent=2, sort_keys=True))
    argv = [f"--config={SWEEP}:tiny", "--config.members=3", "--config.fit.fix_e=True", f"--workdir={workdir}",
            "--resume"]
    line = fails_cleanly(capsys, scaling_sweep.main, argv, str(workdir), "--resume")
    assert "fit.fix_e" in line and "members" in line and "seeds" not in line


def test_resume_on_an_empty_workdir_says_it_starts_fresh(capsys, tiny_data_root, tiny_dataset_dir, tmp_path):
    del tiny_dataset_dir
    workdir = str(tmp_path / "run")
    # A data error stops the run right after the workdir check, so nothing trains.
    argv = _sweep(tiny_data_root, workdir, "--config.segment_length=100") + ["--resume"]
    code = scaling_sweep.main(["prog", *argv])
    out = capsys.readouterr()
    assert code == 2 and "no earlier run" in out.out and "starting fresh" in out.out
    assert not os.path.exists(workdir)


@pytest.mark.parametrize("saved", [None, '{"seeds": [0, 1', "[1, 2]"])
def test_resume_without_a_readable_config_json_overwrites_nothing(capsys, tmp_path, saved):
    # A finished run whose config.json was lost (or truncated) is not "no earlier run": starting
    # fresh there would overwrite results.csv, fit.json and reward_models/ this run did not write.
    workdir = tmp_path / "run"
    (workdir / "reward_models").mkdir(parents=True)
    (workdir / "results.csv").write_text("n,acc\n100,0.8\n")
    if saved is not None:
        (workdir / "config.json").write_text(saved)
    needle = "no config.json" if saved is None else "config.json"
    fails_cleanly(capsys, scaling_sweep.main, [f"--config={SWEEP}:tiny", f"--workdir={workdir}", "--resume"],
                   str(workdir), "--resume", needle, "nothing was overwritten")


def test_non_empty_workdir_without_resume_is_refused_untouched(capsys, tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "notes.txt").write_text("mine")
    fails_cleanly(capsys, scaling_sweep.main, _sweep(str(tmp_path), str(workdir)), str(workdir), "not empty")


def test_data_dir_that_is_a_file_is_one_line(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    fails_cleanly(capsys, make_dataset.main, ["--config=configs/dataset.py:tiny", f"--data_dir={blocker}"], None,
                   "--data_dir", "directory")
    fails_cleanly(capsys, scaling_sweep.main, _sweep(str(blocker), str(tmp_path / "run")), str(tmp_path / "run"),
                   SWEEP, "field 'data_dir'", "in the way")
    fails_cleanly(capsys, train_sft.main, ["--config=configs/sft.py:quick", f"--config.dataset.data_dir={blocker}/x",
                                            f"--workdir={tmp_path / 'sft'}"], None, "field 'dataset.data_dir'")
    fails_cleanly(capsys, make_dataset.main, ["--config=configs/dataset.py:huge"], None,
                   "configs/dataset.py", "field 'variant'", "'huge'")
    # make_dataset writes into the data cache, not a workdir: the flag is refused, not ignored.
    fails_cleanly(capsys, make_dataset.main, ["--config=configs/dataset.py:tiny", f"--workdir={tmp_path / 'w'}"],
                   None, "workdir")
    assert not (tmp_path / "w").exists()


# --- The other experiments ---------------------------------------------------------------------

@pytest.mark.parametrize("main, argv, needles", [
    (train_sft.main, ["--config=configs/sft.py:quick", "--config.train.steps=0"], ("field 'train.steps'",)),
    (train_sft.main, ["--config=configs/sft.py:quick", "--config.demos.policies=('oracle',)"],
     ("field 'demos.policies'",)),
    (train_sft.main, ["--config=configs/sft.py:quick", "--config.dataset.variant=huge"],
     ("field 'dataset.variant'",)),
    (train_sft.main, ["--config=configs/sft.py:quick", "--config.dagger.noise=2.0"], ("field 'dagger.noise'", "2.0")),
    (rlhf_pipeline.main, ["--config=configs/rlhf_pipeline.py:quick", "--config.arms=('kuka',)"], ("field 'arms'", "kuka")),
    (rlhf_pipeline.main, ["--config=configs/rlhf_pipeline.py:quick", "--config.rollouts.noise_levels=(2.0,)"],
     ("field 'rollouts.noise_levels'",)),
    (rlhf_pipeline.main, ["--config=configs/rlhf_pipeline.py:quick", "--config.ppo.ppo.num_envs=0"],
     ("field 'ppo.ppo.num_envs'",)),
    (rlhf_pipeline.main, ["--config=configs/rlhf_pipeline.py:quick", "--config.reward_model.total_steps=7"],
     ("field 'reward_model.total_steps'",)),
    (rlhf_pipeline.main, ["--config=configs/rlhf_pipeline.py:quick", "--config.annotator=nobody"],
     ("field 'annotator'", "nobody")),
    (rlhf_pipeline.main, ["--config=configs/rlhf_pipeline.py:quick", "--config.eval.aggregation=median"],
     ("field 'eval.aggregation'", "median")),
    (rlhf_pipeline.main, ["--config=configs/rlhf_pipeline.py:default", "--config.kl_beta_by_arm.panda=-1.0"],
     ("field 'kl_beta_by_arm.panda'", "a finite number >= 0.0")),
    (rlhf_pipeline.main, ["--config=configs/rlhf_pipeline.py:default", "--config.ppo.ppo.num_envs=129",
                          "--config.ppo.ppo.num_minibatches=3"],
     ("field 'ppo.ppo.num_envs'", "a multiple of the number of tasks (2) with ppo_program_per_task", "129")),
    (train_sft.main, ["--config=configs/sft.py:quick", "--config.dagger.rounds=-1"], ("field 'dagger.rounds'",)),
    (train_sft.main, ["--config=configs/sft.py:quick", "--config.optimizer.learning_rate=nan"],
     ("field 'optimizer.learning_rate'", "nan")),
    (train_sft.main, ["--config=configs/sft.py:quick", "--config.eval.tasks=()"], ("field 'eval.tasks'",)),
    (train_dpo.main, ["--config=configs/dpo.py:quick", "--config.sft.optimizer.learning_rate=-1.0"],
     ("field 'sft.optimizer.learning_rate'",)),
    (train_dpo.main, ["--config=configs/dpo.py:quick", "--config.sft.dagger.steps_per_round=0"],
     ("field 'sft.dagger.steps_per_round'",)),
    (train_dpo.main, ["--config=configs/dpo.py:quick", "--config.mesh.ensemble=3"], ("field 'mesh.ensemble'",)),
    (train_dpo.main, ["--config=configs/dpo.py:quick", "--config.dpo.loss_types=('sigmoid','nope')"],
     ("field 'dpo.loss_types'", "nope")),
    (overoptimization.main, ["--config=configs/overoptimization.py:quick_from_sft",
                             "--config.pipeline_workdir=/nonexistent"], ("field 'pipeline_workdir'",)),
    (train_dpo.main, ["--config=configs/dpo.py:quick", "--config.dpo.logp_reduction=max"],
     ("field 'dpo.logp_reduction'", "max")),
    (train_dpo.main, ["--config=configs/dpo.py:quick", "--config.sft_workdir=/nonexistent"],
     ("field 'sft_workdir'",)),
    (ppo_rlhf.main, ["--config=configs/ppo.py:quick", "--config.ppo.num_envs=0"], ("field 'ppo.num_envs'",)),
    (ppo_rlhf.main, ["--config=configs/ppo.py:quick", "--config.kl.schedule=cosine"], ("field 'kl.schedule'",)),
    (ppo_rlhf.main, ["--config=configs/ppo.py:quick", "--config.ref_checkpoint=/nonexistent"],
     ("field 'ref_checkpoint'",)),
    (overoptimization.main, ["--config=configs/overoptimization.py:quick", "--config.ppo.num_minibatches=7"],
     ("field 'ppo.num_minibatches'",)),
    (cross_embodiment.main, ["--config=configs/cross_embodiment.py:tiny", "--config.transfers=('panda->panda',)"],
     ("field 'transfers'",)),
    (cross_embodiment.main, ["--config=configs/cross_embodiment.py:tiny", "--config.feature_kinds=('pixels',)"],
     ("field 'feature_kinds'",)),
    (cross_embodiment.main, ["--config=configs/cross_embodiment.py:tiny", "--config.num_embodiments=1"],
     ("field 'num_embodiments'",)),
])
def test_other_experiments_validate_before_writing(capsys, tmp_path, main, argv, needles):
    workdir = str(tmp_path / "run")
    config_file = argv[0].split("=", 1)[1].split(":")[0]
    fails_cleanly(capsys, main, [*argv, f"--workdir={workdir}"], workdir, config_file, *needles)
    assert not os.path.exists(workdir)


def test_resume_is_refused_by_experiments_that_cannot_resume(capsys, tmp_path):
    fails_cleanly(capsys, train_sft.main, ["--config=configs/sft.py:quick", f"--workdir={tmp_path / 'w'}", "--resume"],
                   None, "resume")
    assert not os.path.exists(tmp_path / "w")


def test_config_json_of_a_refused_run_is_never_written(capsys, tmp_path):
    """A refused resume leaves the saved config.json byte-identical (it is what a fix resumes)."""
    workdir = tmp_path / "run"
    workdir.mkdir()
    text = json.dumps({"variant": "tiny"})
    (workdir / "config.json").write_text(text)
    scaling_sweep.main(["prog", f"--config={SWEEP}:tiny", f"--workdir={workdir}", "--resume"])
    assert capsys.readouterr().err.count("error:") == 1
    assert (workdir / "config.json").read_text() == text


def test_a_data_path_error_is_the_only_line_on_stderr(tiny_data_root, tiny_dataset_dir, tmp_path):
    # A whole process, so that TensorFlow's C++ notices and absl's Python warnings would show.
    import subprocess
    import sys

    from tests.subprocess_utils import ROOT, subprocess_env

    del tiny_dataset_dir
    workdir = tmp_path / "run"
    env = {k: v for k, v in subprocess_env().items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
    proc = subprocess.run([sys.executable, "-m", "experiments.scaling_sweep", f"--config={SWEEP}:tiny",
                           f"--config.data_dir={tiny_data_root}", "--config.segment_length=100",
                           f"--workdir={workdir}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith(f"error: {SWEEP}: field 'segment_length'"), lines[0]  # no inner function name
    assert not workdir.exists()
