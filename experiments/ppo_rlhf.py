"""PPO-RLHF: optimise a policy against a learned reward with a KL penalty to π_ref.

  python -m experiments.ppo_rlhf --config configs/ppo.py:quick --workdir runs/ppo_quick

Reads top to bottom: checks → the PPO stage (``experiments.stages.ppo``: reward (learned ensemble
or gold) → π_ref → one jitted update with environments split over the devices of a ("data",)
mesh, run in chunks of `log_every` updates, each chunk checkpointed → metrics CSV, plots, final
checkpoint). After a crash, rerun the same command with ``--resume``: training continues from the
last readable chunk checkpoint and the final metrics equal those of an uninterrupted run.
"""
from __future__ import annotations

import functools
import sys

from experiments import cli
from experiments.stages import ppo


def validate(config, config_file: str) -> None:
    """Every field the job reads, checked before anything is loaded or written."""
    ppo.validate(config, config_file)


def _body(inv: cli.Invocation) -> None:
    ppo.run_ppo(inv.config, inv.workdir, resume=inv.resume, config_file=inv.config_file)


main = functools.partial(cli.run_main, body=_body)

if __name__ == "__main__":
    sys.exit(main(sys.argv))
