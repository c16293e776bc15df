"""One teacher: the numpy labeller (`preferences.annotators.label_pairs`) and the JAX annotator
(`train.online.boltzmann_label`) share `preferences.teacher_model`, so on the same segments they
give the same probabilities, the same label frequencies and, for β = inf, the same labels."""
from __future__ import annotations

import math
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhf_jax.preferences import annotators as A
from rlhf_jax.preferences import teacher_model as M
from rlhf_jax.train import online as O

NAMES = ("progress", "collision", "time")
GOLD_WEIGHTS = np.array([1.0, -0.5, -0.25], np.float32)


def binomial_tol(p: float, n: int, z: float = 4.5) -> float:
    """z standard errors of a binomial proportion (z = 4.5: a false failure ~ 1 in 10^5)."""
    return z * math.sqrt(max(p * (1 - p), 1e-12) / n)


@pytest.fixture(scope="module")
def hand_table():
    """Six segments of three steps over three components, written out by hand; segments 4 and 5
    are identical (an exact tie), 0 and 1 have equal plain returns but differ under myopia."""
    steps = np.array([
        [[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]],
        [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 1.0]],
        [[2.0, 1.0, 1.0], [1.0, 0.0, 1.0], [0.5, 0.0, 1.0]],
        [[0.0, 2.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0]],
        [[0.5, 0.0, 0.0], [0.5, 0.0, 0.0], [0.5, 0.0, 0.0]],
        [[0.5, 0.0, 0.0], [0.5, 0.0, 0.0], [0.5, 0.0, 0.0]],
    ], np.float32)
    return types.SimpleNamespace(gold_step_rewards=steps, component_names=NAMES, gold_weights=GOLD_WEIGHTS)


PAIRS_A = np.array([0, 2, 3, 4, 1, 2, 0])
PAIRS_B = np.array([1, 3, 2, 5, 4, 5, 3])


def closed_form_returns(table, gamma: float) -> np.ndarray:
    """R^γ per segment with Python floats: Σ_t γ^(T−1−t) Σ_c w_c r[t, c]."""
    out = []
    for seg in table.gold_step_rewards.tolist():
        t_len = len(seg)
        out.append(sum(gamma ** (t_len - 1 - t) * sum(float(w) * r for w, r in zip(GOLD_WEIGHTS, step))
                       for t, step in enumerate(seg)))
    return np.array(out)


def jax_side(teacher: A.Teacher, table):
    """(annotator, scale, rc [S, T, C]) of the JAX annotator for teacher on table."""
    ann = O.annotator_of(teacher, table.component_names, table.gold_weights)
    rc = jnp.asarray(table.gold_step_rewards)
    return ann, O.reference_scale(ann, rc), rc


def numpy_p_a(labels: A.Labels) -> np.ndarray:
    """P(label = 1) per pair from label_pairs' output: oracle_confidence is the probability of the
    label it emitted (valid on pairs that are neither tied nor skipped)."""
    conf = labels.oracle_confidence.astype(np.float64)
    return np.where(labels.label == 1.0, conf, 1.0 - conf)


@pytest.mark.parametrize("beta,gamma,eps", [(1.0, 1.0, 0.0), (3.0, 0.7, 0.0), (0.5, 0.9, 0.2)])
def test_probabilities_agree_with_each_other_and_the_closed_form(hand_table, beta, gamma, eps):
    teacher = A.Teacher("t", beta=beta, gamma=gamma, eps=eps)
    plain, myopic = closed_form_returns(hand_table, 1.0), closed_form_returns(hand_table, gamma)
    scale = np.mean(np.abs(plain))
    delta = (myopic[PAIRS_A] - myopic[PAIRS_B]) / scale
    p_rational = np.array([0.5 if d == 0 else 1 / (1 + math.exp(-beta * d)) for d in delta])
    expected = (1 - eps) * p_rational + eps * (1 - p_rational)

    labels = A.label_pairs(teacher, hand_table, PAIRS_A, PAIRS_B, seed=0, timestamp=0.0)
    assert labels.provenance[0]["teacher"]["return_scale"] == pytest.approx(scale, rel=1e-12)
    decided = labels.label != 0.5
    # oracle_confidence is float32: 1 − conf keeps an absolute, not a relative, float32 error.
    np.testing.assert_allclose(numpy_p_a(labels)[decided], expected[decided], rtol=1e-6, atol=1e-7)

    ann, jax_scale, rc = jax_side(teacher, hand_table)
    assert float(jax_scale) == pytest.approx(scale, rel=1e-6)
    jax_delta = O.annotator_delta(ann, rc[PAIRS_A], rc[PAIRS_B], jax_scale)
    np.testing.assert_allclose(np.asarray(jax_delta), delta, rtol=1e-5, atol=1e-6)
    p_jax = np.asarray(M.label_probability(jax_delta, ann.beta, xp=jnp), np.float64)
    np.testing.assert_allclose((1 - eps) * p_jax + eps * (1 - p_jax), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("beta,gamma,eps", [(1.0, 1.0, 0.0), (2.0, 0.8, 0.15)])
def test_label_frequencies_agree_over_many_draws(hand_table, beta, gamma, eps):
    teacher = A.Teacher("t", beta=beta, gamma=gamma, eps=eps)
    n, seeds = 3000, (0, 1, 2)
    rep_a, rep_b = np.repeat(PAIRS_A, n), np.repeat(PAIRS_B, n)
    np_freq = np.mean([A.label_pairs(teacher, hand_table, rep_a, rep_b, seed=s, timestamp=0.0).label
                       .reshape(len(PAIRS_A), n).mean(1) for s in seeds], axis=0)

    ann, scale, rc = jax_side(teacher, hand_table)
    label = jax.jit(lambda key: O.boltzmann_label(key, ann, rc[rep_a], rc[rep_b], scale))
    jax_freq = np.mean([np.asarray(label(jax.random.key(s))).reshape(len(PAIRS_A), n).mean(1)
                        for s in seeds], axis=0)

    myopic = closed_form_returns(hand_table, gamma)
    delta = (myopic[PAIRS_A] - myopic[PAIRS_B]) / np.mean(np.abs(closed_form_returns(hand_table, 1.0)))
    p_rational = M.label_probability(delta, beta)
    p = (1 - eps) * p_rational + eps * (1 - p_rational)
    draws = n * len(seeds)
    for i in range(len(PAIRS_A)):
        tol = binomial_tol(p[i], draws)
        assert abs(np_freq[i] - p[i]) < tol, (i, np_freq[i], p[i])
        assert abs(jax_freq[i] - p[i]) < tol, (i, jax_freq[i], p[i])
        # Two independent estimates: their difference has √2 times one's standard error.
        assert abs(np_freq[i] - jax_freq[i]) < math.sqrt(2) * tol, (i, np_freq[i], jax_freq[i])


@pytest.mark.parametrize("gamma", [1.0, 0.8, 0.3])
def test_perfect_comparers_give_identical_labels(gamma):
    rng = np.random.default_rng(int(gamma * 10))
    steps = rng.normal(size=(40, 6, 3)).astype(np.float32)
    steps[7] = steps[8]  # exact ties are ½ in both
    table = types.SimpleNamespace(gold_step_rewards=steps, component_names=NAMES, gold_weights=GOLD_WEIGHTS)
    a, b = rng.integers(0, 40, 300), rng.integers(0, 40, 300)
    a[:2], b[:2] = (7, 8), (8, 7)
    teacher = A.Teacher("perfect", gamma=gamma)
    np_label = A.label_pairs(teacher, table, a, b, seed=5, timestamp=0.0).label
    ann, scale, rc = jax_side(teacher, table)
    for key in (0, 1):
        jax_label = np.asarray(O.boltzmann_label(jax.random.key(key), ann, rc[a], rc[b], scale))
        np.testing.assert_array_equal(jax_label, np_label)
    assert (np_label[:2] == 0.5).all() and set(np.unique(np_label)) == {0.0, 0.5, 1.0}


def test_shared_functions_agree_on_numpy_and_jax():
    rng = np.random.default_rng(3)
    steps = rng.normal(size=(5, 4, 7, 3))
    w = rng.normal(size=3)
    for gamma in (1.0, 0.6):
        r64 = M.discounted_returns(steps, w, gamma)
        r32 = M.discounted_returns(jnp.asarray(steps, jnp.float32), w, gamma, xp=jnp)
        assert r64.dtype == np.float64 and r32.dtype == jnp.float32 and r64.shape == (5, 4)
        expected = sum(gamma ** (6 - t) * steps[:, :, t] @ w for t in range(7))
        np.testing.assert_allclose(r64, expected, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(r32), r64, rtol=1e-5, atol=1e-5)
    assert float(M.return_scale(np.zeros(4))) == 1.0 == float(M.return_scale(jnp.zeros(4), xp=jnp))
    assert float(M.return_scale(np.array([-2.0, 1.0]))) == 1.5
    # Conventions: Δ = 0 is ½ for every β; β = inf is the step function; no nan anywhere.
    delta = np.array([-3.0, -1e-9, 0.0, 1e-9, 3.0, 800.0, -800.0])
    for beta in (math.inf, 2.0):
        p_np = M.label_probability(delta, beta)
        p_jx = np.asarray(M.label_probability(jnp.asarray(delta, jnp.float32), beta, xp=jnp))
        assert not np.isnan(p_np).any() and not np.isnan(p_jx).any() and p_np[2] == p_jx[2] == 0.5
        np.testing.assert_allclose(p_jx, p_np, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(p_np + M.label_probability(-delta, beta), 1.0, rtol=1e-15)
    np.testing.assert_array_equal(M.label_probability(delta, math.inf), [0, 0, 0.5, 1, 1, 1, 0])
    # A perfect comparer's tie is ½ whatever the draw; a finite β's Δ = 0 is a coin flip.
    u = np.array([0.0, 0.3, 0.7, 0.99])
    zero = np.zeros(4)
    np.testing.assert_array_equal(M.rational_label(u, M.label_probability(zero, math.inf), zero, math.inf), 0.5)
    np.testing.assert_array_equal(M.rational_label(u, M.label_probability(zero, 1.0), zero, 1.0), [1, 1, 0, 0])
    label = np.array([0.0, 1.0, 0.5, 1.0])
    flip = np.array([True, True, True, False])
    np.testing.assert_array_equal(M.mistake_flip(label, flip), [1.0, 0.0, 0.5, 1.0])
    np.testing.assert_array_equal(np.asarray(M.mistake_flip(jnp.asarray(label), jnp.asarray(flip), xp=jnp)),
                                  [1.0, 0.0, 0.5, 1.0])
