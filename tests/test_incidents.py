"""The reward-hacking incident definition on hand-built episodes: each clause, its boundaries,
the invariances it must have, and the summary and reduction built on it."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rlhf_jax.evaluation.incidents import DEFINITION, GOLD_MARGIN, incident_mask, incident_summary, reduction

# Reference policy: median proxy 2.0, median gold 10.0 (odd count, so the medians are members).
REF_PROXY = np.array([1.0, 2.0, 3.0])
REF_GOLD = np.array([12.0, 10.0, 8.0])


def mask(proxy, gold, margin=GOLD_MARGIN):
    """``incident_mask`` of episodes [E] against the fixed reference above."""
    return incident_mask(np.asarray(proxy, float), np.asarray(gold, float), REF_PROXY, REF_GOLD, margin)


def test_each_clause_on_hand_built_episodes():
    proxy = [5.0, 5.0, 0.0, 0.0]
    gold = [10.0, 0.0, 0.0, 10.0]
    # approved and as good as the reference; approved and gold far below (the incident);
    # rejected by the proxy with bad gold (a plain failure); rejected and fine.
    np.testing.assert_array_equal(mask(proxy, gold), [False, True, False, False])


def test_penalised_violations_are_not_counted_by_themselves():
    """An approved episode whose gold return stays at the reference's is no incident, whatever
    violations it had: the definition reads gold returns, never the penalised violation counts.
    The signature has no violation argument to pass."""
    import inspect

    assert "violated" not in inspect.signature(incident_mask).parameters
    np.testing.assert_array_equal(mask([5.0, 5.0], [10.0, 9.5]), [False, False])


def test_proxy_boundary_equal_to_reference_median_is_approved():
    median = float(np.median(REF_PROXY))
    got = mask([median, np.nextafter(median, -np.inf)], [0.0, 0.0])
    np.testing.assert_array_equal(got, [True, False])


def test_gold_boundary_is_strictly_below_median_minus_margin():
    edge = float(np.median(REF_GOLD)) - GOLD_MARGIN
    got = mask([5.0, 5.0], [edge, np.nextafter(edge, -np.inf)])
    np.testing.assert_array_equal(got, [False, True])


@pytest.mark.parametrize("margin", [0.0, 0.5, 3.0])
def test_margin_moves_the_gold_threshold(margin):
    gold = np.array([10.0 - margin, 10.0 - margin - 1e-3, 10.0])
    got = mask([5.0] * 3, gold, margin=margin)
    np.testing.assert_array_equal(got, [False, True, False])


def test_even_reference_uses_the_mean_of_the_middle_pair():
    ref_proxy, ref_gold = np.array([0.0, 1.0, 3.0, 100.0]), np.array([0.0, 4.0, 6.0, 100.0])  # medians 2, 5
    got = incident_mask([2.0, 1.99, 2.0], [3.99, 0.0, 4.0], ref_proxy, ref_gold, margin=1.0)
    np.testing.assert_array_equal(got, [True, False, False])


def test_bad_returns_are_refused():
    with pytest.raises(ValueError, match="finite"):
        mask([5.0, np.nan], [0.0, 0.0])
    with pytest.raises(ValueError, match="one shape"):
        mask([5.0, 5.0], [0.0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_invariances(seed):
    """Shifting a reward and its reference together, reordering the reference, or reordering
    the episodes (which reorders the mask) leaves the incidents unchanged."""
    rng = np.random.default_rng(seed)
    proxy, gold = rng.normal(size=40), rng.normal(size=40)
    ref_proxy, ref_gold = rng.normal(size=9), rng.normal(size=9)
    base = incident_mask(proxy, gold, ref_proxy, ref_gold, margin=0.2)
    assert 0 < base.sum() < 40  # the draw exercises both outcomes
    up, down = rng.normal() * 10, rng.normal() * 10  # proxy and gold shifts
    shifted = incident_mask(proxy + up, gold + down, ref_proxy + up, ref_gold + down, margin=0.2)
    np.testing.assert_array_equal(shifted, base)
    ref_proxy, ref_gold = rng.permutation(ref_proxy), rng.permutation(ref_gold)
    np.testing.assert_array_equal(incident_mask(proxy, gold, ref_proxy, ref_gold, margin=0.2), base)
    order = rng.permutation(40)
    np.testing.assert_array_equal(incident_mask(proxy[order], gold[order], ref_proxy, ref_gold, margin=0.2),
                                  base[order])


@pytest.mark.parametrize("seed", [0, 1])
def test_lower_gold_only_adds_incidents(seed):
    """Lowering episodes' gold returns never removes an incident, and raising the proxy never does."""
    rng = np.random.default_rng(seed)
    proxy, gold = rng.normal(size=30), rng.normal(size=30)
    base = incident_mask(proxy, gold, REF_PROXY - 2, REF_GOLD - 10)
    assert np.all(incident_mask(proxy, gold - rng.random(30), REF_PROXY - 2, REF_GOLD - 10) >= base)
    assert np.all(incident_mask(proxy + rng.random(30), gold, REF_PROXY - 2, REF_GOLD - 10) >= base)


def test_summary_counts_and_rates():
    masks = {"ur5/reach": np.array([True, False, False, True]), "widowx/push": np.array([False, False])}
    summary = incident_summary(masks)
    assert summary["incidents"] == 2 and summary["episodes"] == 6
    assert summary["rate"] == pytest.approx(2 / 6)
    assert summary["per_arm_task"] == {"ur5/reach": 0.5, "widowx/push": 0.0}


def test_summary_of_nothing_is_a_zero_rate():
    assert incident_summary({}) == {"incidents": 0, "episodes": 0, "rate": 0.0, "per_arm_task": {}}


def test_reduction_closed_forms():
    assert reduction(0.4, 0.2) == pytest.approx(0.5)
    assert reduction(0.4, 0.4) == 0.0
    assert reduction(0.4, 0.0) == 1.0
    assert reduction(0.2, 0.4) == pytest.approx(-1.0)  # more incidents online: a negative cut
    assert math.isnan(reduction(0.0, 0.1)) and math.isnan(reduction(0.0, 0.0))


def test_definition_states_the_margin():
    assert str(GOLD_MARGIN) in DEFINITION and ">=" in DEFINITION and "violation counts are not read" in DEFINITION
