"""DPO-family optimisation of the SFT policy on segment preferences, as one vmapped sweep.

  python -m experiments.train_dpo --config configs/dpo.py:quick --workdir runs/dpo_quick

Reads top to bottom: checks → the DPO stage (``experiments.stages.dpo``: episodes → π_ref
(restored or trained) → preference pairs → reference log-probs → the vmapped (loss type, β)
sweep → held-out implicit-reward accuracy → rollouts of π_ref and every point → files).
"""
from __future__ import annotations

import functools
import sys

from experiments import cli
from experiments.stages import dpo


def validate(config, config_file: str) -> None:
    """Every field the job reads (π_ref's too, when it is trained here), before anything is written."""
    dpo.validate(config, config_file)


def _body(inv: cli.Invocation) -> None:
    validate(inv.config, inv.config_file)
    cli.check_workdir(inv.workdir, False, inv.config)
    dpo.run_dpo(inv.config, inv.workdir)


main = functools.partial(cli.run_main, body=_body, resumable=False)

if __name__ == "__main__":
    sys.exit(main(sys.argv))
