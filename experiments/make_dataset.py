"""Build (or reuse) an embedded RLDS dataset variant.

  python -m experiments.make_dataset --config configs/dataset.py:default --data_dir DIR
  python -m experiments.make_dataset --config configs/dataset.py:tiny --config.force=True

Prints the builder directory and per-(embodiment, task) episode counts; ``force=True`` rebuilds
a cached variant. --data_dir defaults to $RLHF_JAX_DATA_DIR, else ~/.cache/rlhf_jax.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import time

from experiments import cli
from rlhf_jax.data import dataset
from rlhf_jax.data.variants import dataset_config


def build(config, data_dir: str | None, config_file: str = "configs/dataset.py") -> dict:
    """Builds the variant ``config.variant`` (checked first) and returns its build summary."""
    generation = dataset_config(config.variant, config_file, "variant")
    data_dir = os.path.expanduser(data_dir or dataset.default_data_dir())
    cli.check_data_dir("--data_dir", "data_dir", data_dir)
    if config.force:
        shutil.rmtree(os.path.join(data_dir, f"{generation.variant}-{dataset.config_hash(generation)}"),
                      ignore_errors=True)
    t0 = time.perf_counter()
    path = dataset.ensure_dataset(generation.variant, data_dir, config=generation)
    with open(os.path.join(os.path.dirname(os.path.dirname(path)), dataset.MARKER)) as f:
        info = json.load(f)
    return {"builder_dir": path, "seconds": round(time.perf_counter() - t0, 2), "episodes": info["episodes"],
            "steps": info["steps"], "episodes_per_embodiment_task": info["episodes_per_embodiment_task"]}


def _body(inv: cli.Invocation) -> None:
    print(json.dumps(build(inv.config, inv.extra["data_dir"], inv.config_file), indent=1))


main = functools.partial(cli.run_main, body=_body, workdir=False, resumable=False,
                         extra={"data_dir": (None, "cache root (default $RLHF_JAX_DATA_DIR or ~/.cache/rlhf_jax)")})

if __name__ == "__main__":
    sys.exit(main(sys.argv))
