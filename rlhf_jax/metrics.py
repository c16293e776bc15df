"""Held-out evaluation of preference models: accuracy, log-loss, calibration, rank correlation.

These run once per evaluation on host arrays (NumPy/SciPy), not inside the training step.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

TIE = 1e-6


def expected_calibration_error(prob: np.ndarray, outcome: np.ndarray, n_bins: int = 10) -> float:
    """ECE of P(a ≻ b) against binary outcomes, equal-width bins over [0, 1]."""
    prob, outcome = np.asarray(prob, np.float64), np.asarray(outcome, np.float64)
    bins = np.clip((prob * n_bins).astype(int), 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    conf = np.bincount(bins, prob, minlength=n_bins)
    acc = np.bincount(bins, outcome, minlength=n_bins)
    nonzero = count > 0
    return float(np.sum(np.abs(acc[nonzero] - conf[nonzero])) / max(len(prob), 1))


def preference_metrics(prob_a: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """Metrics of predicted P(a ≻ b) [P] against labels [P] in {0, 0.5, 1}; ties are excluded
    from accuracy, ECE and Brier, and enter log-loss as soft targets."""
    prob_a = np.clip(np.asarray(prob_a, np.float64), 1e-7, 1 - 1e-7)
    label = np.asarray(label, np.float64)
    decided = np.abs(label - 0.5) > TIE
    y = (label[decided] > 0.5).astype(np.float64)
    p = prob_a[decided]
    log_loss = -np.mean(label * np.log(prob_a) + (1 - label) * np.log(1 - prob_a))
    return {
        "accuracy": float(np.mean((p > 0.5) == (y > 0.5))) if decided.any() else float("nan"),
        "log_loss": float(log_loss),
        "brier": float(np.mean((p - y) ** 2)) if decided.any() else float("nan"),
        "ece": expected_calibration_error(p, y) if decided.any() else float("nan"),
    }


def return_correlation(predicted: np.ndarray, gold: np.ndarray) -> float:
    """Spearman rank correlation between predicted and gold segment returns; NaN with fewer than 3
    segments or constant gold returns (a dataset without gold)."""
    if len(predicted) < 3 or np.ptp(np.asarray(gold)) == 0:
        return float("nan")
    rho = stats.spearmanr(predicted, gold).statistic
    return float(rho)
