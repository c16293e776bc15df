"""Held-out preference metrics: hand-worked values, tie handling, calibration bins, rank correlation."""
import numpy as np
import pytest
from scipy import stats

from rlhf_jax.metrics import expected_calibration_error, preference_metrics, return_correlation


def test_hand_worked_metrics_with_a_tie():
    prob = np.array([0.9, 0.2, 0.6, 0.4])
    label = np.array([1.0, 0.0, 0.0, 0.5])  # the last pair is a tie
    m = preference_metrics(prob, label)
    # decided pairs: (0.9, 1) right, (0.2, 0) right, (0.6, 0) wrong
    np.testing.assert_allclose(m["accuracy"], 2 / 3)
    np.testing.assert_allclose(m["brier"], (0.1**2 + 0.2**2 + 0.6**2) / 3)
    # one decided pair per bin (9, 2, 6): |1 - .9| + |0 - .2| + |0 - .6| over 3 pairs
    np.testing.assert_allclose(m["ece"], (0.1 + 0.2 + 0.6) / 3)
    # log-loss keeps the tie as a soft target 0.5
    expected = -(np.log(0.9) + np.log(0.8) + np.log(0.4) + 0.5 * np.log(0.4) + 0.5 * np.log(0.6)) / 4
    np.testing.assert_allclose(m["log_loss"], expected, rtol=1e-12)


def test_ties_do_not_enter_accuracy_brier_or_ece():
    prob = np.array([0.8, 0.3, 0.01, 0.99])
    label = np.array([1.0, 0.0, 0.5, 0.5])
    with_ties = preference_metrics(prob, label)
    without = preference_metrics(prob[:2], label[:2])
    for k in ("accuracy", "brier", "ece"):
        np.testing.assert_allclose(with_ties[k], without[k])
    assert with_ties["log_loss"] > without["log_loss"]  # confident predictions on ties are penalised


def test_all_ties_give_nan_scores_and_log2_at_one_half():
    m = preference_metrics(np.full(5, 0.5), np.full(5, 0.5))
    assert np.isnan(m["accuracy"]) and np.isnan(m["brier"]) and np.isnan(m["ece"])
    np.testing.assert_allclose(m["log_loss"], np.log(2.0), rtol=1e-12)


def test_perfect_and_anti_perfect_predictors():
    label = np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    perfect = preference_metrics(label, label)
    assert perfect["accuracy"] == 1.0
    np.testing.assert_allclose(perfect["brier"], 0.0, atol=1e-12)
    np.testing.assert_allclose(perfect["ece"], 0.0, atol=1e-6)
    np.testing.assert_allclose(perfect["log_loss"], 1e-7, rtol=1e-3)  # probabilities clipped to 1 - 1e-7
    anti = preference_metrics(1 - label, label)
    assert anti["accuracy"] == 0.0
    np.testing.assert_allclose(anti["brier"], 1.0, atol=1e-6)
    np.testing.assert_allclose(anti["ece"], 1.0, atol=1e-6)
    np.testing.assert_allclose(anti["log_loss"], -np.log(1e-7), rtol=1e-6)  # finite thanks to clipping


def test_ece_pools_confidence_and_outcomes_within_a_bin():
    # All three fall in bin [0.7, 0.8): |(1 + 0 + 1) - (0.71 + 0.79 + 0.75)| / 3, not the per-pair sum.
    prob, outcome = np.array([0.71, 0.79, 0.75]), np.array([1.0, 0.0, 1.0])
    np.testing.assert_allclose(expected_calibration_error(prob, outcome), 0.25 / 3, rtol=1e-12)
    # Two bins over [0, 1]: {0.1, 0.4} -> |1 - 0.5|, {0.6, 1.0} -> |1 - 1.6|; p = 1.0 lands in the last bin.
    prob, outcome = np.array([0.1, 0.4, 0.6, 1.0]), np.array([0.0, 1.0, 0.0, 1.0])
    np.testing.assert_allclose(expected_calibration_error(prob, outcome, n_bins=2), (0.5 + 0.6) / 4,
                               rtol=1e-12)


def test_ece_of_a_calibrated_bin_is_zero():
    # 20 predictions of 0.65 with 13 hits: mean confidence equals the hit rate in that bin.
    prob = np.full(20, 0.65)
    outcome = np.array([1.0] * 13 + [0.0] * 7)
    np.testing.assert_allclose(expected_calibration_error(prob, outcome), 0.0, atol=1e-12)


def _spearman_reference(x, y):
    rx, ry = stats.rankdata(x), stats.rankdata(y)  # average ranks for ties
    return np.corrcoef(rx, ry)[0, 1]


def test_return_correlation_matches_spearman_with_ties():
    rng = np.random.default_rng(0)
    pred = rng.normal(size=40)
    gold = 0.5 * pred + rng.normal(size=40)
    gold[:10] = np.round(gold[:10])  # ties in gold
    pred[5:15] = 0.0  # ties in predictions
    rho = return_correlation(pred, gold)
    np.testing.assert_allclose(rho, stats.spearmanr(pred, gold).statistic, rtol=1e-12)
    np.testing.assert_allclose(rho, _spearman_reference(pred, gold), rtol=1e-12)


def test_return_correlation_is_rank_based():
    gold = np.array([0.3, -1.0, 2.0, 0.5, 7.0])
    np.testing.assert_allclose(return_correlation(np.exp(3 * gold), gold), 1.0)  # monotone map
    np.testing.assert_allclose(return_correlation(-gold**3, gold), -1.0)
    pred = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(return_correlation(pred, gold), return_correlation(pred**5 - 10, gold))


@pytest.mark.parametrize("n", [0, 1, 2])
def test_return_correlation_needs_three_points(n):
    assert np.isnan(return_correlation(np.arange(n, dtype=float), np.arange(n, dtype=float)))


def test_return_correlation_is_nan_without_gold_variation():
    """A dataset without gold has constant (zero) gold returns: no correlation, and no warning."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(return_correlation(np.arange(5.0), np.zeros(5)))
