"""Build (or reuse) an embedded RLDS dataset variant.

  python -m experiments.make_dataset --config configs/dataset.py:default --data_dir DIR

--config takes `<file>:<arg>`: the file's get_config(arg) is called (the big_vision / ml_collections
convention). Prints the builder directory and per-(embodiment, task) episode counts; add --force
to rebuild a cached variant.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

from experiments.common import load_config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/dataset.py:default",
                        help="<config file>:<variant>, e.g. configs/dataset.py:tiny")
    parser.add_argument("--data_dir", default=None,
                        help="cache root (default $RLHF_JAX_DATA_DIR or ~/.cache/rlhf_jax)")
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = parser.parse_args(argv)

    from rlhf_jax.data import dataset  # pylint: disable=g-import-not-at-top
    from rlhf_jax.data.errors import DataError  # pylint: disable=g-import-not-at-top
    try:
        config = load_config(args.config)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    data_dir = os.path.expanduser(args.data_dir or dataset.default_data_dir())
    dataset.enable_compilation_cache(data_dir)
    if args.force:
        out = os.path.join(data_dir, f"{config.variant}-{dataset.config_hash(config)}")
        shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    path = dataset.ensure_dataset(config.variant, data_dir, config=config)
    with open(os.path.join(os.path.dirname(os.path.dirname(path)), dataset.MARKER)) as f:
        info = json.load(f)
    print(json.dumps({"builder_dir": path, "seconds": round(time.perf_counter() - t0, 2),
                      "episodes": info["episodes"], "steps": info["steps"],
                      "episodes_per_embodiment_task": info["episodes_per_embodiment_task"]},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
