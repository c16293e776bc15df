"""A stage that runs once: ``run_stage`` reuses a finished stage on ``--resume`` and restarts an
interrupted one from scratch; ``open_run`` is the opening every job that starts from π_SFT's
dataset shares."""
from __future__ import annotations

import json
import os
import shutil
import time
from typing import Callable

from experiments import cli
from experiments.stages.sft import load_episodes
from rlhf_jax.checkpoint import atomic_write_json, prepare_run_dir, read_json


def run_stage(workdir: str, name: str, run: Callable[[str], dict], log: Callable[[str], None] = cli.log,
              resumable: bool = False) -> dict:
    """``run(stage_dir) -> info`` unless ``<workdir>/<name>/stage.json`` says it finished; returns
    the info (with ``wall_s``), written last and atomically so that its presence means "done".
    An interrupted stage starts again from scratch, unless ``resumable``: then its directory is
    kept and ``run`` continues from the checkpoints it left there."""
    stage_dir = os.path.join(workdir, name)
    done = os.path.join(stage_dir, "stage.json")
    if os.path.isfile(done):
        log(f"stage {name}: finished earlier, reused")
        return read_json(done)
    if os.path.isdir(stage_dir) and not resumable:  # an interrupted stage starts again from scratch
        shutil.rmtree(stage_dir)
    t0 = time.time()
    log(f"stage {name} ...")
    info = dict(run(stage_dir), wall_s=round(time.time() - t0, 1))
    os.makedirs(stage_dir, exist_ok=True)  # a stage whose result is its info alone writes no files
    atomic_write_json(done, info)
    log(f"stage {name} done in {info['wall_s']:.0f} s")
    return info


def open_run(config, workdir: str, resume: bool, dataset) -> tuple[list[dict], float]:
    """The opening of a run that starts from π_SFT's dataset: workdir checks (``--resume`` on a
    new workdir starts fresh, and says so), the episodes (``dataset`` block of an SFT config),
    then the workdir with its ``config.json``. Returns
    (episodes, dt). A resumed run whose SFT stage finished reads dt from it and loads no episodes
    (None): only the SFT stage reads them, so such a run needs no dataset (nor TensorFlow)."""
    if cli.check_workdir(workdir, resume, config) == "fresh":
        cli.log(f"--resume: no earlier run in {workdir}; starting fresh")
    sft_done = os.path.join(workdir, "sft", "stage.json")
    if resume and os.path.isfile(sft_done):
        with open(sft_done, encoding="utf-8") as f:
            dt = json.load(f).get("dt")
        if dt is not None:
            prepare_run_dir(workdir, config.to_json(indent=2, sort_keys=True), resume, error=cli.ConfigError)
            return None, float(dt)
    episodes, dt, _ = load_episodes(dataset)
    prepare_run_dir(workdir, config.to_json(indent=2, sort_keys=True), resume, error=cli.ConfigError)
    return episodes, dt
