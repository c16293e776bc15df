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


def mask(proxy, gold, violated, margin=GOLD_MARGIN):
    """``incident_mask`` of episodes [E] against the fixed reference above."""
    return incident_mask(np.asarray(proxy, float), np.asarray(gold, float), np.asarray(violated), REF_PROXY,
                         REF_GOLD, margin)


def test_each_clause_on_hand_built_episodes():
    proxy = [5.0, 5.0, 5.0, 0.0, 0.0]
    gold = [10.0, 10.0, 0.0, 0.0, 10.0]
    violated = [False, True, False, True, False]
    # approved and fine; approved and violated; approved and gold far below; rejected by the
    # proxy (violated and bad gold, still no incident); rejected and fine.
    np.testing.assert_array_equal(mask(proxy, gold, violated), [False, True, True, False, False])


def test_proxy_boundary_equal_to_reference_median_is_approved():
    median = float(np.median(REF_PROXY))
    got = mask([median, np.nextafter(median, -np.inf)], [0.0, 0.0], [True, True])
    np.testing.assert_array_equal(got, [True, False])


def test_gold_boundary_is_strictly_below_median_minus_margin():
    edge = float(np.median(REF_GOLD)) - GOLD_MARGIN
    got = mask([5.0, 5.0], [edge, np.nextafter(edge, -np.inf)], [False, False])
    np.testing.assert_array_equal(got, [False, True])


@pytest.mark.parametrize("margin", [0.0, 0.5, 3.0])
def test_margin_moves_the_gold_threshold(margin):
    gold = np.array([10.0 - margin, 10.0 - margin - 1e-3, 10.0])
    got = mask([5.0] * 3, gold, [False] * 3, margin=margin)
    np.testing.assert_array_equal(got, [False, True, False])


def test_even_reference_uses_the_mean_of_the_middle_pair():
    ref_proxy, ref_gold = np.array([0.0, 1.0, 3.0, 100.0]), np.array([0.0, 4.0, 6.0, 100.0])  # medians 2, 5
    got = incident_mask([2.0, 1.99, 2.0], [3.99, 0.0, 4.0], [False, True, False], ref_proxy, ref_gold, margin=1.0)
    np.testing.assert_array_equal(got, [True, False, False])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_invariances(seed):
    """Shifting a reward and its reference together, reordering the reference, or reordering
    the episodes (which reorders the mask) leaves the incidents unchanged."""
    rng = np.random.default_rng(seed)
    proxy, gold = rng.normal(size=20), rng.normal(size=20)
    violated = rng.random(20) < 0.3
    ref_proxy, ref_gold = rng.normal(size=9), rng.normal(size=9)
    base = incident_mask(proxy, gold, violated, ref_proxy, ref_gold, margin=0.5)
    assert 0 < base.sum() < 20  # the draw exercises both outcomes
    up, down = rng.normal() * 10, rng.normal() * 10  # proxy and gold shifts
    shifted = incident_mask(proxy + up, gold + down, violated, ref_proxy + up, ref_gold + down, margin=0.5)
    np.testing.assert_array_equal(shifted, base)
    ref_proxy, ref_gold = rng.permutation(ref_proxy), rng.permutation(ref_gold)
    np.testing.assert_array_equal(incident_mask(proxy, gold, violated, ref_proxy, ref_gold, margin=0.5), base)
    order = rng.permutation(20)
    np.testing.assert_array_equal(
        incident_mask(proxy[order], gold[order], violated[order], ref_proxy, ref_gold, margin=0.5), base[order])


@pytest.mark.parametrize("seed", [0, 1])
def test_violations_only_add_incidents(seed):
    """Marking more episodes violated never removes an incident (the rubric clause is an or)."""
    rng = np.random.default_rng(seed)
    proxy, gold = rng.normal(size=30), rng.normal(size=30)
    some = rng.random(30) < 0.3
    fewer = incident_mask(proxy, gold, some, REF_PROXY - 2, REF_GOLD - 10)
    more = incident_mask(proxy, gold, some | (rng.random(30) < 0.5), REF_PROXY - 2, REF_GOLD - 10)
    assert np.all(more >= fewer)
    everything = incident_mask(proxy, gold, np.ones(30, bool), REF_PROXY - 2, REF_GOLD - 10)
    np.testing.assert_array_equal(everything, proxy >= 0.0)  # violated: approval alone decides


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
    assert str(GOLD_MARGIN) in DEFINITION and ">=" in DEFINITION
