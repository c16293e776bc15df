"""Cross-embodiment transfer: python -m experiments.cross_embodiment --config configs/cross_embodiment.py:quick --workdir DIR"""
from __future__ import annotations

import argparse
import sys

from experiments.common import load_config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True,
                        help="configs/cross_embodiment.py:<variant>[,key=value...]")
    parser.add_argument("--workdir", required=True, help="output directory (must be new or empty)")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    from rlhf_jax.data.dataset import enable_compilation_cache
    from rlhf_jax.train.transfer import run_transfer

    enable_compilation_cache(config.data_dir or None)
    try:
        run_transfer(config, args.workdir)
    except (FileExistsError, ValueError) as err:  # data errors are ValueErrors too
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
