"""Reward-model scaling sweep: python -m experiments.scaling_sweep --config configs/scaling_sweep.py:quick --workdir DIR"""
from __future__ import annotations

import argparse
import sys

from experiments.common import load_config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="configs/scaling_sweep.py:<variant>[,key=value...]")
    parser.add_argument("--workdir", required=True, help="output directory (must be new or empty)")
    parser.add_argument("--resume", action="store_true", help="continue a run from its last checkpoint")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    from rlhf_jax import distributed

    distributed.initialize(config)  # multi-host from config or RLHF_JAX_* variables; else a no-op
    from rlhf_jax.train.sweep_runner import SweepError, run_sweep

    try:
        run_sweep(config, args.workdir, resume=args.resume)
    except (SweepError, ValueError) as err:  # data errors are ValueErrors too
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
