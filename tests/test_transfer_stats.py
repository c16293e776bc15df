"""Transfer statistics on hand-built numbers: verdicts, curve crossings, recovery, label savings
and the paired seeds × test-pairs bootstrap."""
from __future__ import annotations

import numpy as np
import pytest

from rlhf_jax.evaluation import transfer_stats as ts


@pytest.mark.parametrize("low,high,kw,expected", [
    (16.0, 24.0, dict(at_least=15, at_most=25), "holds"),
    (10.0, 20.0, dict(at_least=15, at_most=25), "inconclusive"),
    (20.0, 30.0, dict(at_least=15, at_most=25), "inconclusive"),
    (2.0, 12.0, dict(at_least=15, at_most=25), "fails"),
    (26.0, 40.0, dict(at_least=15, at_most=25), "fails"),
    (0.55, 0.9, dict(at_least=0.5), "holds"),
    (0.45, 0.9, dict(at_least=0.5), "inconclusive"),
    (0.1, 0.49, dict(at_least=0.5), "fails"),
    (float("nan"), 0.3, dict(at_least=0.5), "inconclusive"),
    (-0.02, -0.001, dict(at_least=1e-12), "fails"),
])
def test_verdict_follows_the_interval(low, high, kw, expected):
    assert ts.verdict(low, high, **kw) == expected


def test_first_crossing_interpolates_in_log_n_and_never_extrapolates():
    n = [100, 1000, 10000]
    acc = np.array([[0.6, 0.7, 0.8], [0.6, 0.7, 0.8], [0.6, 0.7, 0.8], [0.6, 0.7, 0.8]])
    out = ts.first_crossing(n, acc, np.array([0.65, 0.5, 0.9, 0.75]))
    np.testing.assert_allclose(out, [np.sqrt(100 * 1000), 100, np.inf, np.sqrt(1000 * 10000)])
    # the first crossing counts, not a later dip and recovery
    assert ts.first_crossing(n, np.array([0.6, 0.8, 0.7]), 0.7) == pytest.approx(np.exp(np.log(100) + 0.5 * np.log(10)))


def test_recovery_and_saving_on_a_hand_built_curve():
    n = [100, 1000, 10000]
    ft = np.array([0.70, 0.75, 0.78])
    # source 0.8, zero-shot 0.6 (drop 0.2): 50% = 0.70 reached at 100; 90% = 0.78 at 10,000
    assert ts.n_to_recover(n, ft, 0.6, 0.8, 0.5) == 100
    assert ts.n_to_recover(n, ft, 0.6, 0.8, 0.9) == pytest.approx(10000)
    assert ts.n_to_recover(n, ft, 0.8, 0.7, 0.5) == 0  # no drop: nothing to recover
    sc = np.array([0.65, 0.70, 0.75])
    eq = ts.scratch_equivalent(n, sc, ft)
    np.testing.assert_allclose(eq, [1000, 10000, np.inf])
    np.testing.assert_allclose(ts.label_saving(n, eq), [0.9, 0.9, 0.0])  # inf clipped to the grid: no credit


def test_bootstrap_is_paired_and_centred():
    rng = np.random.default_rng(0)
    correct = (rng.random((5, 3, 400)) < np.array([0.6, 0.7, 0.8])[None, :, None]).astype(np.float32)
    res = ts.Resampler(5, 2000, seed=1)
    est, reps = res.accuracy(correct, "target")
    np.testing.assert_allclose(est, correct.mean((0, 2)), rtol=1e-6)
    assert reps.shape == (2000, 3)
    np.testing.assert_allclose(reps.mean(0), est, atol=0.005)
    lo, hi = np.array(ts.interval(reps)).T.T
    assert np.all(lo < est) and np.all(est < hi) and np.all(hi - lo < 0.1)
    # the same pairs and seeds are resampled for a second curve on the same set: a curve minus
    # itself has a zero-width interval, and a shifted copy keeps its shift exactly
    _, reps2 = res.accuracy(correct, "target")
    np.testing.assert_array_equal(reps, reps2)
    _, other = res.accuracy(correct, "source")
    assert not np.array_equal(other, reps)
    with pytest.raises(ValueError, match="seeds"):
        res.accuracy(correct[:3], "target")


def test_decided_correct_excludes_ties_and_halves_predicted_ties():
    prob = np.array([[0.9, 0.2, 0.5, 0.7]])
    label = np.array([1.0, 1.0, 0.0, 0.5])
    np.testing.assert_array_equal(ts.decided_correct(prob, label), [[1.0, 0.0, 0.5]])


def test_interval_keeps_infinite_bounds():
    reps = np.concatenate([np.linspace(100, 200, 90), np.full(10, np.inf)])
    lo, hi = ts.interval(reps)
    assert lo == pytest.approx(np.percentile(reps, 2.5), rel=1e-12)  # finite side: the usual linear percentile
    assert hi == np.inf
    assert ts.interval(np.full(50, np.inf)) == [np.inf, np.inf]


def test_grid_edge_names_the_bounds_first_crossing_returns():
    n = [100, 1000, 10000]
    assert ts.grid_edge(100.0, n) == "below_grid"  # reached at the first point: at most 100
    assert ts.grid_edge(np.inf, n) == "above_grid"  # never reached: more than 10,000
    assert ts.grid_edge(316.2, n) is None and ts.grid_edge(10000.0, n) is None  # interpolated
    assert ts.grid_edge(0.0, n) is None and ts.grid_edge(np.nan, n) is None  # no drop; undefined
    assert [ts.grid_edge(v, n) for v in ts.first_crossing(n, np.array([[0.6, 0.7, 0.8]] * 3), np.array([0.5, 0.65, 0.9]))] \
        == ["below_grid", None, "above_grid"]


def test_saving_bound_follows_the_clipped_scratch_pairs():
    assert ts.saving_bound("above_grid") == "at_least"  # n_scratch clipped down: saving at least this
    assert ts.saving_bound("below_grid") == "at_most"
    assert ts.saving_bound(None) is None


def test_bounded_verdict_never_decides_on_an_open_end():
    # an upper end that is only "at least" 0.5 cannot refute "≥ 0.8"; on estimates it would
    assert ts.verdict(0.3, 0.5, at_least=0.8) == "fails"
    assert ts.bounded_verdict(0.3, 0.5, (None, "at_least"), at_least=0.8) == "inconclusive"
    assert ts.bounded_verdict(0.85, 0.95, (None, "at_least"), at_least=0.8) == "holds"  # a lower bound suffices
    # a lower end that is only "at most" 0.9 cannot establish "≥ 0.8"
    assert ts.bounded_verdict(0.9, 0.95, ("at_most", None), at_least=0.8) == "inconclusive"
    assert ts.bounded_verdict(0.9, 0.95, (None, None), at_least=0.8) == "holds"


@pytest.mark.parametrize("strict,lenient,expected", [
    ("holds", "holds", "holds at both ends"),
    ("inconclusive", "holds", "holds only at the lenient end (n=1,000)"),
    ("fails", "holds", "holds only at the lenient end (n=1,000)"),
    ("holds", "inconclusive", "holds only at the strict end (n=500)"),
    ("inconclusive", "inconclusive", "holds at neither end"),
    ("fails", "inconclusive", "holds at neither end"),
])
def test_verdict_at_both_ends(strict, lenient, expected):
    assert ts.verdict_at_both_ends(strict, lenient, 500, 1000) == expected
