"""Fault tolerance of the long-running entry points, exercised as a user would hit it.

Each run is a real `python -m experiments.<name>` subprocess:

* kill-and-resume: SIGKILL a run as soon as its first chunk checkpoint exists, rerun the same
  command with ``--resume``, and require the result files to be byte-identical to an
  uninterrupted run's (the resumed run restores params, optimiser, rng and history exactly);
* a corrupted newest checkpoint (array files deleted) makes ``--resume`` fall back to the one
  before it with a warning and still finish with identical results;
* an unusable ``--workdir`` is reported before any data is loaded or anything compiles.

Subprocesses share the persistent JAX compilation cache under the default data dir (as the test
session's dataset build does), so only the first run of each program pays its compile. The
scaling-sweep runs need the tiny dataset and take ~100 s together, so they are marked slow.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.subprocess_utils import ROOT, run_checked, subprocess_env

TIMEOUT = 300

PPO_FLAGS = ["--config=configs/ppo.py:quick", "--config.reward.kind=gold", "--config.ppo.num_envs=8",
             "--config.ppo.num_steps=10", "--config.ppo.num_updates=12", "--config.ppo.num_minibatches=2",
             "--config.ppo.update_epochs=1", "--config.log_every=2", "--config.model.hidden=16,16",
             "--config.ppo.value_hidden=16,16"]


def _sweep_cmd(data_root: str, workdir: str, resume: bool = False) -> list[str]:
    # 10 chunks of 20 steps: the kill lands long before the run could finish.
    flags = ["--config=configs/scaling_sweep.py:tiny", f"--config.data_dir={data_root}",
             "--config.total_steps=200", "--config.chunk_steps=20"]
    return [sys.executable, "-m", "experiments.scaling_sweep", *flags, "--workdir", workdir] + (
        ["--resume"] if resume else [])


def _ppo_cmd(workdir: str, resume: bool = False) -> list[str]:
    return [sys.executable, "-m", "experiments.ppo_rlhf", *PPO_FLAGS, f"--workdir={workdir}"] + (
        ["--resume"] if resume else [])


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return run_checked(cmd, timeout=TIMEOUT)


def _steps(ckpt_dir: str) -> list[int]:
    # Orbax writes into "<step>.orbax-checkpoint-tmp-*" and renames to "<step>" when complete.
    if not os.path.isdir(ckpt_dir):
        return []
    return sorted(int(n) for n in os.listdir(ckpt_dir) if n.isdigit())


def _kill_after_first_checkpoint(cmd: list[str], ckpt_dir: str) -> int:
    """Starts ``cmd``, SIGKILLs it once ``ckpt_dir`` holds a finished step; returns that step."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not _steps(ckpt_dir):
            assert proc.poll() is None, f"{' '.join(cmd)} exited ({proc.returncode}) before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within the timeout"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return _steps(ckpt_dir)[0]


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _corrupt_newest(ckpt_dir: str) -> int:
    """Deletes the array data of the newest step (as a crash mid-write or a bad disk would)."""
    newest = _steps(ckpt_dir)[-1]
    state = os.path.join(ckpt_dir, str(newest), "state")
    for name in os.listdir(state):
        if name == "d" or name.startswith("manifest") or name.startswith("ocdbt"):
            path = os.path.join(state, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    return newest


# --- PPO-RLHF -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ppo_reference(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("ppo") / "reference")
    _run(_ppo_cmd(workdir))
    return workdir


def test_ppo_killed_then_resumed_equals_uninterrupted(ppo_reference, tmp_path):
    workdir = str(tmp_path / "killed")
    first = _kill_after_first_checkpoint(_ppo_cmd(workdir), os.path.join(workdir, "checkpoints", "ppo_train"))
    assert not os.path.exists(os.path.join(workdir, "ppo_metrics.csv")), "the kill came after the run finished"
    proc = _run(_ppo_cmd(workdir, resume=True))
    assert "resumed from update" in proc.stdout
    assert first < 12
    assert _read(os.path.join(workdir, "ppo_metrics.csv")) == _read(os.path.join(ppo_reference, "ppo_metrics.csv"))


def test_ppo_resume_falls_back_past_a_corrupted_checkpoint(ppo_reference, tmp_path):
    workdir = str(tmp_path / "corrupt")
    shutil.copytree(ppo_reference, workdir)
    for stale in ("ppo_metrics.csv", "ppo_summary.json"):
        os.remove(os.path.join(workdir, stale))
    shutil.rmtree(os.path.join(workdir, "checkpoints", "ppo"))  # the final policy is rewritten
    ckpt_dir = os.path.join(workdir, "checkpoints", "ppo_train")
    newest = _corrupt_newest(ckpt_dir)
    proc = _run(_ppo_cmd(workdir, resume=True))
    assert f"checkpoint step {newest}" in proc.stderr and "falling back" in proc.stderr
    # One warning, not tensorstore's tracebacks from the corrupted step's orphaned reads.
    assert "Event loop is closed" not in proc.stderr and "tensorstore_spec" not in proc.stderr
    assert "resumed from update" in proc.stdout and f"resumed from update {newest}" not in proc.stdout
    assert _read(os.path.join(workdir, "ppo_metrics.csv")) == _read(os.path.join(ppo_reference, "ppo_metrics.csv"))


def test_ppo_refuses_a_changed_config_on_resume(ppo_reference, tmp_path):
    workdir = str(tmp_path / "changed")
    shutil.copytree(ppo_reference, workdir)
    cmd = _ppo_cmd(workdir, resume=True) + ["--config.ppo.learning_rate=0.5"]
    proc = subprocess.run(cmd, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode != 0 and "ppo.learning_rate" in proc.stderr


def _files(root: str) -> dict:
    out = {}
    for d, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(d, name), "rb") as f:
                out[os.path.relpath(os.path.join(d, name), root)] = f.read()
    return out


def test_ppo_resume_refuses_checkpoints_of_other_shapes_and_restores_nothing(ppo_reference, tmp_path):
    """Another run's directory whose config.json was made to match: the chunk states hold 8
    environments, the run asks for 16. Refused in one line naming what differs; nothing written."""
    workdir = str(tmp_path / "other")
    shutil.copytree(ppo_reference, workdir)
    saved = os.path.join(workdir, "config.json")
    config = json.loads(_read(saved))
    config["ppo"]["num_envs"] = 16
    with open(saved, "w", encoding="utf-8") as f:
        json.dump(config, f)
    before = _files(workdir)
    cmd = _ppo_cmd(workdir, resume=True) + ["--config.ppo.num_envs=16"]
    proc = subprocess.run(cmd, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=TIMEOUT)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert os.path.join("checkpoints", "ppo_train") in errors[0] and "other shapes" in errors[0], errors[0]
    assert "(8," in errors[0] and "(16," in errors[0], errors[0]
    assert "resumed from update" not in proc.stdout
    assert _files(workdir) == before


# --- Scaling sweep --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sweep_reference(tiny_dataset_dir, tiny_data_root, tmp_path_factory):
    del tiny_dataset_dir  # built (once per session) into tiny_data_root
    workdir = str(tmp_path_factory.mktemp("sweep") / "reference")
    _run(_sweep_cmd(tiny_data_root, workdir))
    return workdir


@pytest.mark.slow
def test_sweep_killed_then_resumed_equals_uninterrupted(sweep_reference, tiny_data_root, tmp_path):
    workdir = str(tmp_path / "killed")
    _kill_after_first_checkpoint(_sweep_cmd(tiny_data_root, workdir),
                                 os.path.join(workdir, "checkpoints", "size_0"))
    assert not os.path.exists(os.path.join(workdir, "results.csv")), "the kill came after the run finished"
    proc = _run(_sweep_cmd(tiny_data_root, workdir, resume=True))
    assert "resumed from step" in proc.stdout
    assert _read(os.path.join(workdir, "results.csv")) == _read(os.path.join(sweep_reference, "results.csv"))


@pytest.mark.slow
def test_sweep_resume_falls_back_past_a_corrupted_checkpoint(sweep_reference, tiny_data_root, tmp_path):
    workdir = str(tmp_path / "corrupt")
    shutil.copytree(sweep_reference, workdir)
    os.remove(os.path.join(workdir, "results.csv"))
    newest = _corrupt_newest(os.path.join(workdir, "checkpoints", "size_0"))
    proc = _run(_sweep_cmd(tiny_data_root, workdir, resume=True))
    assert f"checkpoint step {newest}" in proc.stderr and "falling back" in proc.stderr
    assert "Event loop is closed" not in proc.stderr and "tensorstore_spec" not in proc.stderr
    assert "resumed from step" in proc.stdout and f"resumed from step {newest}" not in proc.stdout
    assert _read(os.path.join(workdir, "results.csv")) == _read(os.path.join(sweep_reference, "results.csv"))


# --- Unusable workdir -----------------------------------------------------------------------

def _assert_reported_before_training(proc: subprocess.CompletedProcess, workdir: str, why: str) -> None:
    assert proc.returncode != 0
    assert workdir in proc.stderr and why in proc.stderr, proc.stderr[-2000:]
    assert "data ready" not in proc.stdout and "step" not in proc.stdout  # nothing loaded or trained


def test_sweep_workdir_under_a_file_is_reported_before_training(tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where a directory is expected")
    workdir = str(blocker / "run")
    cmd = _sweep_cmd(str(tmp_path / "no_data_needed"), workdir)
    proc = subprocess.run(cmd, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=TIMEOUT)
    _assert_reported_before_training(proc, workdir, "Not a directory")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes through chmod 0o500, so a read-only dir is not unwritable")
def test_sweep_read_only_workdir_is_reported_before_training(tmp_path):
    parent = tmp_path / "read_only"
    (parent / "run").mkdir(parents=True)
    parent.joinpath("run").chmod(0o500)
    workdir = str(parent / "run")
    try:
        cmd = _sweep_cmd(str(tmp_path / "no_data_needed"), workdir)
        proc = subprocess.run(cmd, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=TIMEOUT)
    finally:
        parent.joinpath("run").chmod(0o700)
    _assert_reported_before_training(proc, workdir, "not usable")
