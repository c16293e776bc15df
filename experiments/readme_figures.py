"""The README's measured figures outside its tables: how long the first command takes, rendered
from the committed files that measured it, so that a rerun which changes them changes the page.

  python -m experiments.readme_figures            # rewrites the block of README.md

The block ``first-run`` is made from ``results/quick/run_info.json`` (the main job's wall time,
as committed) and ``benchmarks/results/dataset_build.json`` (building the embedded dataset cold).
``tests/test_readme_numbers.py`` checks the block and that no other measured number is typed
into the README by hand.
"""
from __future__ import annotations

import json
import os
import sys

from experiments.doc_blocks import read_block, write_block

BLOCK, SOURCE = "first-run", "results/quick"
DATASET_BUILD = "benchmarks/results/dataset_build.json"


def _load(root: str, rel: str) -> dict:
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        return json.load(f)


def first_run_line(root: str = ".") -> str:
    """One sentence: the main job's wall minutes and the dataset build's seconds, with their files."""
    run = _load(root, os.path.join(SOURCE, "run_info.json"))
    build = _load(root, DATASET_BUILD)
    cores = build["machine"]["cpu_count"]
    return (f"On {cores} CPU cores the committed run (`{SOURCE}/run_info.json`) took "
            f"{run['wall_s'] / 60:.0f} minutes of wall time; building the embedded dataset, which the "
            f"first run does once and caches, took {build['build_cold_s']:.0f} s cold (`{DATASET_BUILD}`).")


def main(argv: list[str]) -> int:
    page = argv[1] if len(argv) > 1 else "README.md"
    write_block(page, BLOCK, SOURCE, first_run_line())
    with open(page, encoding="utf-8") as f:
        print(f"wrote the {BLOCK} block of {page}: {read_block(f.read(), BLOCK, SOURCE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
