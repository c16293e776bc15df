"""A stage that runs once: ``run_stage`` reuses a finished stage on ``--resume`` and restarts an
interrupted one from scratch."""
from __future__ import annotations

import json
import os
import shutil
import time
from typing import Callable

from experiments import cli
from rlhf_jax.checkpoint import atomic_write_json


def run_stage(workdir: str, name: str, run: Callable[[str], dict], log: Callable[[str], None] = cli.log) -> dict:
    """``run(stage_dir) -> info`` unless ``<workdir>/<name>/stage.json`` says it finished; returns
    the info (with ``wall_s``), written last and atomically so that its presence means "done"."""
    stage_dir = os.path.join(workdir, name)
    done = os.path.join(stage_dir, "stage.json")
    if os.path.isfile(done):
        with open(done, encoding="utf-8") as f:
            log(f"stage {name}: finished earlier, reused")
            return json.load(f)
    if os.path.isdir(stage_dir):  # an interrupted stage starts again from scratch
        shutil.rmtree(stage_dir)
    t0 = time.time()
    log(f"stage {name} ...")
    info = dict(run(stage_dir), wall_s=round(time.time() - t0, 1))
    os.makedirs(stage_dir, exist_ok=True)  # a stage whose result is its info alone writes no files
    atomic_write_json(done, info)
    log(f"stage {name} done in {info['wall_s']:.0f} s")
    return info
