"""Running programs and scripts of this repository in child processes, as the tests do.

Children run on the CPU from the repository root (so ``python -c`` scripts import ``rlhf_jax``,
``configs`` and ``tests``), with the persistent JAX compilation cache of the data dir, so a
program that several tests run compiles once per machine.
"""
from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def subprocess_env(devices: int | None = None, **extra: str) -> dict:
    """Environment for a child JAX process: ``devices`` forced CPU devices (None: the one real
    device, whatever the parent forced), no inherited multi-host ``RLHF_JAX_*`` settings (the
    data dir excepted), then ``extra``."""
    from rlhf_jax.data.dataset import default_data_dir

    env = {k: v for k, v in os.environ.items() if not k.startswith("RLHF_JAX_") or k == "RLHF_JAX_DATA_DIR"}
    env["JAX_PLATFORMS"] = "cpu"
    env.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(default_data_dir(), "jax_cache"))
    if devices is None:
        env.pop("XLA_FLAGS", None)
    else:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env.update(extra)
    return env


def run_checked(cmd: list[str], env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Runs ``cmd`` from the repository root; fails the test with the end of its stderr unless it
    exits 0."""
    proc = subprocess.run(cmd, cwd=ROOT, env=subprocess_env() if env is None else env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd[:4])} … exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc


def python_script(script: str, *args: str) -> list[str]:
    """The command that runs ``script`` (a ``python -c`` program) with ``args``."""
    return [sys.executable, "-c", script, *args]


def tiny_sweep_cmd(data_root: str, workdir: str) -> list[str]:
    """The scaling-sweep CLI on the tiny dataset, small enough (8 points × 3 members, 40 steps)
    to run several times per session: the run that 8-device and 2-process sweeps must equal."""
    flags = ["--config=configs/scaling_sweep.py:tiny", "--config.n_values=(25,50,100,200)", "--config.total_steps=40",
             "--config.chunk_steps=20", "--config.eval_every=10", f"--config.data_dir={data_root}"]
    return [sys.executable, "-m", "experiments.scaling_sweep", *flags, "--workdir", workdir]


def execute_notebook(name: str, results_dir: str, timeout: int = 300) -> list:
    """Runs notebooks/<name> with RESULTS_DIR=results_dir in a fresh kernel; returns every code
    cell's outputs (callers assert there is no error and that a figure was drawn)."""
    import nbclient  # pylint: disable=g-import-not-at-top
    import nbformat  # pylint: disable=g-import-not-at-top

    nb = nbformat.read(os.path.join(ROOT, "notebooks", name), as_version=4)
    old = os.environ.get("RESULTS_DIR")
    os.environ["RESULTS_DIR"] = results_dir
    try:
        nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": ROOT}}).execute()
    finally:
        if old is None:
            del os.environ["RESULTS_DIR"]
        else:
            os.environ["RESULTS_DIR"] = old
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
