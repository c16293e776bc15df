"""Downstream scaling: the per-doubling readings follow their definitions (the vmapped PPO program over
reward-model points is tested in tests/test_ppo_points.py)."""
import numpy as np
import pytest

from experiments.downstream_report import fit_doublings, per_doubling


def test_per_doubling_readings():
    n = np.array([100, 200, 400, 800] * 2)
    acc = 0.6 + 0.05 * np.log2(n / 100)
    assert per_doubling(n, acc) == pytest.approx(0.05)
    gold = 2.0 + 0.5 * np.log2(n / 100)
    rows = [{"n": a, "rm_test_accuracy": b, "gold_return": c, "success": 0.9} for a, b, c in zip(n, acc, gold)]
    fit = fit_doublings(rows, sft_gold=-4.0, n_bootstrap=20)["per_doubling"]
    assert fit["accuracy_points"]["value"] == pytest.approx(0.05)
    assert fit["gold_relative_to_sft"]["value"] == pytest.approx(0.5 / 4.0)
    assert fit["success_points"]["value"] == pytest.approx(0.0, abs=1e-12)
    err = 1 - acc
    want = 1 - np.exp(np.polyfit(np.log2(n), np.log(err), 1)[0])
    assert fit["error_reduction"]["value"] == pytest.approx(want)
    assert fit["accuracy_points"]["ci95"][0] == pytest.approx(0.05)  # noiseless: every resample agrees
