"""Simulated teachers: each statistic matches its B-Pref definition."""
from __future__ import annotations

import math
import types

import numpy as np
import pytest

from rlhf_jax.preferences import annotators as A
from rlhf_jax.errors import ConfigError

NAMES = ("progress", "collision", "time")
P = 20_000


def binomial_tol(p: float, n: int, z: float = 4.5) -> float:
    """z standard errors of a binomial proportion (z = 4.5: a false failure ~ 1 in 10^5)."""
    return z * math.sqrt(p * (1 - p) / n)


@pytest.fixture(scope="module")
def table():
    """Synthetic table: S = 400 segments, T = 10 steps, C = 3 components."""
    rng = np.random.default_rng(0)
    steps = rng.normal(size=(400, 10, 3)).astype(np.float32)
    return types.SimpleNamespace(gold_step_rewards=steps, component_names=NAMES,
                                 gold_weights=np.array([1.0, 0.5, 0.2], np.float32))


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 400, P)
    b = (a + 1 + rng.integers(0, 399, P)) % 400
    return a, b


def gold(table, gamma=1.0, weights=None):
    w = table.gold_weights if weights is None else weights
    disc = gamma ** np.arange(table.gold_step_rewards.shape[1] - 1, -1, -1)
    return np.einsum("stc,c,t->s", table.gold_step_rewards.astype(np.float64), w, disc)


def test_oracle_is_rational(table, pairs):
    a, b = pairs
    lab = A.label_pairs("oracle", table, a, b, seed=0)
    r = gold(table)
    np.testing.assert_array_equal(lab.label, (r[a] > r[b]).astype(np.float32))
    assert lab.keep.all() and (lab.confidence == 1).all()
    assert lab.provenance[0]["annotator_id"] == "sim/oracle"
    assert {"annotator_id", "interface_version", "source", "teacher"} <= set(lab.provenance[0])


def test_mistake_flips_eps_of_rational_labels(table, pairs):
    a, b = pairs
    rational = A.label_pairs("oracle", table, a, b, seed=0).label
    lab = A.label_pairs("mistake", table, a, b, seed=3)
    flipped = np.mean(lab.label != rational)
    assert abs(flipped - 0.1) < binomial_tol(0.1, P), flipped
    # The oracle quantity knows the slips; what the annotator reports (β = ∞: certain) does not.
    np.testing.assert_allclose(lab.oracle_confidence[lab.label == rational], 0.9)
    np.testing.assert_allclose(lab.oracle_confidence[lab.label != rational], 0.1)
    np.testing.assert_array_equal(lab.confidence, 1.0)


def test_equal_threshold_gives_ties_exactly_below_it(table, pairs):
    a, b = pairs
    t = A.Teacher("eq", equal_threshold=0.1)
    lab = A.label_pairs(t, table, a, b, seed=0)
    r = gold(table)
    scale = np.mean(np.abs(r))  # relative thresholds are in units of mean |R|
    tie = np.abs(r[a] - r[b]) < 0.1 * scale
    assert 0.01 < tie.mean() < 0.5
    np.testing.assert_array_equal(lab.label == 0.5, tie)
    np.testing.assert_array_equal(lab.label[~tie], (r[a] > r[b])[~tie])
    assert lab.provenance[0]["teacher"]["equal_threshold_abs"] == pytest.approx(0.1 * scale)
    absolute = A.Teacher("eq_abs", equal_threshold=0.3, relative=False)
    lab = A.label_pairs(absolute, table, a, b, seed=0)
    np.testing.assert_array_equal(lab.label == 0.5, np.abs(r[a] - r[b]) < 0.3)


def test_skip_drops_pairs_with_both_returns_below_threshold(table, pairs):
    a, b = pairs
    lab = A.label_pairs(A.Teacher("s", skip_threshold=0.3), table, a, b, seed=0)
    r = gold(table)
    thr = np.quantile(r, 0.3)
    np.testing.assert_array_equal(lab.keep, np.maximum(r[a], r[b]) >= thr)
    assert abs((~lab.keep).mean() - 0.09) < 0.03  # ≈ 0.3² for independent segments
    lab = A.label_pairs(A.Teacher("s", skip_threshold=-1.0, relative=False), table, a, b, seed=0)
    np.testing.assert_array_equal(lab.keep, np.maximum(r[a], r[b]) >= -1.0)


def test_finite_beta_follows_sigmoid(table, pairs):
    a, b = pairs
    beta = 2.0
    lab = A.label_pairs(A.Teacher("st", beta=beta), table, a, b, seed=5)
    r = gold(table)
    d = (r[a] - r[b]) / np.mean(np.abs(r))
    edges = np.quantile(d, np.linspace(0, 1, 11))
    which = np.clip(np.searchsorted(edges, d, side="right") - 1, 0, 9)
    for k in range(10):
        m = which == k
        expected = np.mean(1 / (1 + np.exp(-beta * d[m])))
        assert abs(lab.label[m].mean() - expected) < binomial_tol(max(expected, .02), m.sum()), k
    # Not a step function: some labels go against the rational choice.
    assert 0.05 < np.mean(lab.label != (d > 0)) < 0.4
    p_y = np.where(lab.label == 1, 1 / (1 + np.exp(-beta * d)), 1 / (1 + np.exp(beta * d)))
    np.testing.assert_allclose(lab.oracle_confidence, p_y, rtol=1e-5)
    # Reported: the annotator's certainty about what it saw, whichever way its draw went.
    np.testing.assert_allclose(lab.confidence, 1 / (1 + np.exp(-beta * np.abs(d))), rtol=1e-5)


def test_myopia_weights_late_steps(table, pairs):
    a, b = pairs
    lab = A.label_pairs("myopic", table, a, b, seed=0)
    r9 = gold(table, gamma=0.9)
    np.testing.assert_array_equal(lab.label, (r9[a] > r9[b]).astype(np.float32))
    r1 = gold(table)
    assert np.mean((r9[a] > r9[b]) != (r1[a] > r1[b])) > 0.02  # myopia changes some labels
    # Constructed: equal totals, a's reward early, b's late -> a myopic teacher prefers b.
    steps = np.zeros((2, 10, 3), np.float32)
    steps[0, 0, 0] = steps[1, 9, 0] = 1.0
    t2 = types.SimpleNamespace(gold_step_rewards=steps, component_names=NAMES,
                               gold_weights=np.ones(3, np.float32))
    assert A.label_pairs("myopic", t2, [0], [1], seed=0).label[0] == 0.0
    assert A.label_pairs("oracle", t2, [0], [1], seed=0).label[0] == 0.5  # exact tie


def test_rubric_personas_weigh_components_their_way():
    steps = np.zeros((2, 4, 3), np.float32)
    steps[0, :, 0] = 1.0   # a: more progress ...
    steps[0, :, 1] = -0.5  # ... but collides
    steps[1, :, 0] = 0.5
    t = types.SimpleNamespace(gold_step_rewards=steps, component_names=NAMES,
                              gold_weights=np.array([1.0, 0.5, 0.1], np.float32))
    safety = A.Teacher("safe", rubric_scale={"collision": 4.0})
    assert A.label_pairs("oracle", t, [0], [1], seed=0).label[0] == 1.0
    assert A.label_pairs(safety, t, [0], [1], seed=0).label[0] == 0.0
    with pytest.raises(ConfigError, match=r"rubric_scale.*'jerk'"):
        A.label_pairs(A.Teacher("x", rubric_scale={"jerk": 2.0}), t, [0], [1], seed=0)


def test_pool_assigns_annotators_with_their_own_noise(table, pairs):
    a, b = pairs
    pool = (A.Teacher("clean"), A.Teacher("noisy", eps=0.3))
    lab = A.label_pairs(pool, table, a, b, seed=2)
    rational = A.label_pairs("oracle", table, a, b, seed=0).label
    assert [p["annotator_id"] for p in lab.provenance] == ["sim/clean", "sim/noisy"]
    for k, eps in enumerate((0.0, 0.3)):
        m = lab.annotator == k
        assert abs(m.mean() - 0.5) < binomial_tol(0.5, P)
        flips = np.mean(lab.label[m] != rational[m])
        assert abs(flips - eps) < binomial_tol(max(eps, .01), m.sum())
    assert len(A.resolve_teachers("noisy_pool")) == 5
    pool = A.make_pool(6, seed=0)
    assert len({t.annotator_id for t in pool}) == 6 and pool == A.make_pool(6, seed=0)


def test_labels_deterministic_in_seed(table, pairs):
    a, b = pairs
    l1 = A.label_pairs("stochastic", table, a, b, seed=7, timestamp=1.0)
    l2 = A.label_pairs("stochastic", table, a, b, seed=7, timestamp=1.0)
    l3 = A.label_pairs("stochastic", table, a, b, seed=8, timestamp=1.0)
    np.testing.assert_array_equal(l1.label, l2.label)
    assert (l1.label != l3.label).any()


@pytest.mark.parametrize("kw,field", [({"beta": 0.0}, "beta"), ({"gamma": 1.5}, "gamma"),
                                      ({"eps": 0.7}, "eps"), ({"skip_threshold": 2.0}, "skip"),
                                      ({"source": "robot"}, "source")])
def test_invalid_teacher_parameters(kw, field):
    with pytest.raises(ConfigError, match=field):
        A.Teacher("bad", **kw)


def test_unknown_preset():
    with pytest.raises(ConfigError, match=r"oracle.*'nope'"):
        A.resolve_teachers("nope")


def test_presets_params_are_json_safe():
    import json
    for name in A.TEACHER_PRESETS:
        for t in A.resolve_teachers(name):
            json.dumps(t.params(), allow_nan=False)
    assert A.TEACHER_PRESETS["oracle"].params()["beta"] == "inf"


def test_tables_without_step_rewards_fall_back_to_returns():
    t = types.SimpleNamespace(gold_return=np.array([1.0, 3.0, 2.0], np.float32),
                              gold_step_rewards=None, gold_weights=None)
    lab = A.label_pairs("oracle", t, [0, 1, 2], [1, 2, 0], seed=0)
    np.testing.assert_array_equal(lab.label, [0.0, 1.0, 1.0])
