"""Behaviour cloning of the reference policy π_ref from RLDS demonstrations.

  python -m experiments.train_sft --config configs/sft.py:quick --workdir runs/sft_quick

Reads top to bottom: checks → dataset (built on first use) → the SFT stage
(``experiments.stages.sft``: demonstrations, DAgger rounds, checkpoint, simulator evaluation).
"""
from __future__ import annotations

import functools
import sys

from experiments import cli
from experiments.stages import sft


def validate(config, config_file: str) -> None:
    """Every field the job reads, checked before anything is loaded or written."""
    sft.validate(config, config_file)


def _body(inv: cli.Invocation) -> None:
    config = inv.config
    validate(config, inv.config_file)
    cli.check_workdir(inv.workdir, False, config)
    episodes, dt, _ = sft.load_episodes(config.dataset)
    sft.run_sft(config, inv.workdir, episodes, dt)


main = functools.partial(cli.run_main, body=_body, resumable=False)

if __name__ == "__main__":
    sys.exit(main(sys.argv))
