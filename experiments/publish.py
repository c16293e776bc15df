"""Copy a finished run's result files into a committed results folder, so that regenerating a
committed result is one command:

  python -m experiments.scaling_sweep --config configs/scaling_sweep.py:quick --workdir runs/quick \\
      && python -m experiments.publish runs/quick results/quick

The files copied are the ones the results folder already holds (by relative path; its README.md
is its own, and ``--keep`` names files a report script makes from the folder itself): a committed
result keeps its chosen files (no checkpoints, no large label files), and a file the run did not
write is refused before anything is copied. A new results folder names its files with
``--files a.csv,b.json``. Each file is replaced atomically.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile


def committed_files(results_dir: str) -> list[str]:
    """Relative paths of every file under ``results_dir`` but its README.md, sorted."""
    out = []
    for root, _, files in os.walk(results_dir):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), results_dir)
            if rel != "README.md":
                out.append(rel)
    return sorted(out)


def publish(run_dir: str, results_dir: str, files: list[str] | None = None, keep: tuple[str, ...] = ()) -> list[str]:
    """Copies ``files`` (default: the ones ``results_dir`` holds but ``keep``) from ``run_dir``;
    returns them. Raises FileNotFoundError naming every missing file before copying any."""
    files = list(files) if files else [f for f in committed_files(results_dir) if f not in keep]
    if not files:
        raise FileNotFoundError(f"{results_dir} holds no result files yet: name them with --files")
    missing = [f for f in files if not os.path.isfile(os.path.join(run_dir, f))]
    if missing:
        raise FileNotFoundError(f"{run_dir}: expected the run's {', '.join(missing)}; nothing was copied")
    for rel in files:
        target = os.path.join(results_dir, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".publish-")
        os.close(fd)
        shutil.copyfile(os.path.join(run_dir, rel), tmp)
        os.replace(tmp, target)
    return files


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.publish", description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="the finished run's workdir (under runs/)")
    parser.add_argument("results_dir", help="the committed results folder to update")
    parser.add_argument("--files", default="", help="comma-separated relative paths (default: the folder's own)")
    parser.add_argument("--keep", default="", help="comma-separated files the folder makes itself (not copied)")
    args = parser.parse_args(argv[1:])
    try:
        copied = publish(args.run_dir, args.results_dir, [f for f in args.files.split(",") if f],
                         tuple(f for f in args.keep.split(",") if f))
    except FileNotFoundError as e:
        print(f"publish: {e}", file=sys.stderr)
        return 2
    print(f"copied {len(copied)} file(s) from {args.run_dir} into {args.results_dir}: {', '.join(copied)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
