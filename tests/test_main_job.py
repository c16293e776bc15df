"""The README's first job end to end: the quick scaling sweep on the default dataset (slow)."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.subprocess_utils import ROOT


@pytest.mark.slow
def test_quick_scaling_sweep_produces_a_falling_curve(tmp_path):
    workdir = str(tmp_path / "quick")
    cmd = [sys.executable, "-m", "experiments.scaling_sweep", "--config", "configs/scaling_sweep.py:quick",
           "--workdir", workdir]
    subprocess.run(cmd, cwd=ROOT, check=True, timeout=1800)
    with open(os.path.join(workdir, "fit.json")) as f:
        fit = json.load(f)
    assert fit["alpha"] > 0 and fit["alpha_ci"][0] > 0  # error falls with N
    with open(os.path.join(workdir, "results.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r["member"] == "ensemble" and r["condition"] == "oracle"]
    acc = {n: np.mean([float(r["test_accuracy"]) for r in rows if int(r["n"]) == n]) for n in (50, 1600)}
    # Measured 0.69 → 0.85 (oracle ensemble, 1,000 gold-labelled test pairs).
    assert acc[1600] >= 0.80
    assert acc[1600] - acc[50] >= 0.08
    assert os.path.getsize(os.path.join(workdir, "accuracy_vs_n.png")) > 10_000
