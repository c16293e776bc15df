"""The README's measured figures outside its tables: how long the first command takes, rendered
from the committed files that measured it, so that a rerun which changes them changes the page.

  python -m experiments.readme_figures            # rewrites the block of README.md

The block ``first-run`` is made from ``results/quick/run_info.json`` (the main job's wall time,
as committed) and ``benchmarks/results/dataset_build.json`` (building the embedded dataset cold);
the closing block ``lerobot-io`` from ``benchmarks/results/lerobot_io.json`` (LeRobot write and read
speed on the default dataset). ``tests/test_readme_numbers.py`` checks the blocks and that no
other measured number is typed into the README by hand.
"""
from __future__ import annotations

import os
import sys

from experiments.doc_blocks import read_block, write_block
from rlhf_jax.checkpoint import read_json

BLOCK, SOURCE = "first-run", "results/quick"
DATASET_BUILD = "benchmarks/results/dataset_build.json"
LEROBOT_BLOCK, LEROBOT_IO = "lerobot-io", "benchmarks/results/lerobot_io.json"


def _load(root: str, rel: str) -> dict:
    return read_json(os.path.join(root, rel))


def first_run_line(root: str = ".") -> str:
    """One sentence: the main job's wall minutes and the dataset build's seconds, with their files."""
    run = _load(root, os.path.join(SOURCE, "run_info.json"))
    build = _load(root, DATASET_BUILD)
    cores = build["machine"]["cpu_count"]
    return (f"On {cores} CPU cores the committed run (`{SOURCE}/run_info.json`) took "
            f"{run['wall_s'] / 60:.0f} minutes of wall time; building the embedded dataset, which the "
            f"first run does once and caches, took {build['build_cold_s']:.0f} s cold (`{DATASET_BUILD}`).")


def lerobot_io_line(root: str = ".") -> str:
    """One sentence: LeRobot write and read speed (frames/s) on the default dataset, and frame error."""
    d = _load(root, LEROBOT_IO)
    wv, rv = d["write_video"], d["read_video"]
    return (f"LeRobot datasets ([docs/lerobot.md](docs/lerobot.md)) on the `{d['variant']}` dataset "
            f"({d['episodes']:,} episodes, {d['frames']:,} frames; `{LEROBOT_IO}`, {d['machine']['cpu_count']} CPU "
            f"cores at load average {d['machine']['load_average'][0]:.1f}): written at "
            f"{d['write']['frames_per_s']:,.0f} frames/s and read at "
            f"{d['read']['frames_per_s']:,.0f} frames/s without video; with the {', '.join(d['views'])} camera as "
            f"{'/'.join(wv['codecs'])} MP4 at {d['size']}×{d['size']}, written at {wv['frames_per_s']:,.0f} frames/s "
            f"(rendering apart) and read, every frame decoded, at {rv['frames_per_s']:,.0f} frames/s; frames come "
            f"back within a mean absolute error of {d['frame_mae']['mean']:.1f} levels (8-bit).")


def main(argv: list[str]) -> int:
    page = argv[1] if len(argv) > 1 else "README.md"
    for block, source, line in ((BLOCK, SOURCE, first_run_line), (LEROBOT_BLOCK, LEROBOT_IO, lerobot_io_line)):
        write_block(page, block, source, line())
        with open(page, encoding="utf-8") as f:
            print(f"wrote the {block} block of {page}: {read_block(f.read(), block, source)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
