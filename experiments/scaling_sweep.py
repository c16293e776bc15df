"""Reward-model scaling sweep: held-out accuracy vs number of preference pairs N.

  python -m experiments.scaling_sweep --config configs/scaling_sweep.py:quick --workdir runs/quick
  python -m experiments.scaling_sweep --config configs/scaling_sweep.py:quick --workdir runs/quick --resume

Reads top to bottom: multi-host set-up → the sweep stage
(``experiments.stages.sweep``: checks → data → per model size one compiled program over every
(condition, N, seed, member) in checkpointed chunks → test evaluation → saved reward models →
power-law fits, CSV, JSON, plot).
"""
from __future__ import annotations

import functools
import sys

from experiments import cli
from experiments.stages import sweep
from rlhf_jax import distributed


def validate(config, config_file: str) -> None:
    """Every field the sweep reads, checked without loading data."""
    sweep.validate(config, config_file)


def _body(inv: cli.Invocation) -> None:
    distributed.initialize(inv.config)  # multi-host from config or RLHF_JAX_* variables; else a no-op
    sweep.run_sweep(inv.config, inv.workdir, resume=inv.resume, config_file=inv.config_file)


main = functools.partial(cli.run_main, body=_body)

if __name__ == "__main__":
    sys.exit(main(sys.argv))
