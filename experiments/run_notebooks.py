"""Re-execute the notebooks in place on the committed results they read, storing their outputs:

  python -m experiments.run_notebooks                                   # every notebook
  python -m experiments.run_notebooks notebooks/scaling_curves.ipynb    # the ones named

Each notebook runs top to bottom in a fresh kernel from the repository root, on the CPU, with
``RESULTS_DIR`` unset, so it reads its default directory under ``results/``. Cell timings are not
recorded, so re-executing on unchanged results changes nothing but what the results change.
tests/test_notebook_outputs.py checks the numbers the stored outputs print against the results
files; rerun this after refreshing a results directory a notebook reads.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK_DIR = os.path.join(ROOT, "notebooks")


def all_notebooks() -> list[str]:
    """Every notebook under notebooks/, as paths relative to the repository root."""
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(NOTEBOOK_DIR, "*.ipynb")))


def execute_in_place(path: str, timeout: int = 600) -> None:
    """Runs the notebook at ``path`` (relative to the repository root) and writes it back with its
    outputs. Raises nbclient's CellExecutionError, leaving the file as it was, if a cell fails."""
    import nbclient  # pylint: disable=g-import-not-at-top
    import nbformat  # pylint: disable=g-import-not-at-top

    full = os.path.join(ROOT, path)
    nb = nbformat.read(full, as_version=4)
    # Per-cell timestamps would differ on every run and bury the real changes: none are recorded,
    # and those an earlier execution stored are dropped.
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": ROOT}}).execute()
    nbformat.write(nb, full)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.run_notebooks", description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebook paths (default: every notebook under notebooks/)")
    args = parser.parse_args(argv[1:])
    paths = args.notebooks or all_notebooks()
    missing = [p for p in paths if not os.path.isfile(os.path.join(ROOT, p))]
    if missing:
        print(f"no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    # The kernel inherits this environment: a RESULTS_DIR left set would point a notebook away
    # from its committed results; the CPU keeps the numbers those results were checked on.
    os.environ.pop("RESULTS_DIR", None)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    for path in paths:
        print(f"executing {path}", flush=True)
        execute_in_place(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
