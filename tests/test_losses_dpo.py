"""DPO-family losses against slow NumPy references; ties, label flips, weights, validation."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhf_jax.losses.dpo import (LOSS_TYPES, dpo_loss, dpo_loss_mixture, loss_weights,
                                 preference_dpo_loss, validate_loss_spec)

BETA, EPS = 0.3, 0.1
# Compiled once for every loss type (type weights, β and ε are traced): keeps the module fast.
pref_loss = jax.jit(preference_dpo_loss)


def _logsig(x):
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def _sig(x):
    return math.exp(_logsig(x))


def reference_loss(kind, pw, pl, rw, rl, beta, eps):
    """One pair, scalar Python maths, straight from the published formulas."""
    a, b = pw - rw, pl - rl
    d = a - b
    x = beta * d
    if kind == "sigmoid":
        return -(1 - eps) * _logsig(x) - eps * _logsig(-x)
    if kind == "hinge":
        return max(0.0, 1 - x)
    if kind == "ipo":
        return (d - 1 / (2 * beta)) ** 2
    if kind == "robust":
        return (-(1 - eps) * _logsig(x) + eps * _logsig(-x)) / (1 - 2 * eps)
    if kind == "bco_pair":
        return -_logsig(beta * a) - _logsig(-beta * b)
    if kind == "sppo_hard":
        return (a - 1 / (2 * beta)) ** 2 + (b + 1 / (2 * beta)) ** 2
    if kind == "nca_pair":
        return -_logsig(beta * a) - 0.5 * _logsig(-beta * a) - 0.5 * _logsig(-beta * b)
    if kind == "apo_zero":
        return 1 - _sig(beta * a) + _sig(beta * b)
    if kind == "exo_pair":
        return _sig(x) * (_logsig(x) - math.log(1 - eps)) + _sig(-x) * (_logsig(-x) - math.log(eps))
    raise KeyError(kind)


@pytest.fixture(scope="module")
def logps():
    rng = np.random.default_rng(0)
    # Segment log-likelihoods are sums over steps: tens of nats, with ratios of a few nats.
    ref_w, ref_l = rng.normal(-40, 5, 16), rng.normal(-40, 5, 16)
    pol_w, pol_l = ref_w + rng.normal(0, 3, 16), ref_l + rng.normal(0, 3, 16)
    return [a.astype(np.float32) for a in (pol_w, pol_l, ref_w, ref_l)]


def test_sigmoid_at_reference_is_log2(logps):
    _, _, ref_w, ref_l = logps
    losses, cw, cr = dpo_loss(ref_w, ref_l, ref_w, ref_l, beta=BETA)
    np.testing.assert_allclose(losses, np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(cw, 0.0)
    np.testing.assert_allclose(cr, 0.0)


@pytest.mark.parametrize("kind", LOSS_TYPES)
def test_each_loss_matches_numpy_reference(kind, logps):
    losses, cw, cr = dpo_loss(*map(jnp.asarray, logps), beta=BETA, loss_type=kind, label_smoothing=EPS)
    expect = [reference_loss(kind, *(float(x[i]) for x in logps), BETA, EPS) for i in range(len(logps[0]))]
    np.testing.assert_allclose(losses, expect, rtol=2e-5, atol=2e-5)
    pw, pl, rw, rl = logps
    np.testing.assert_allclose(cw, BETA * (pw - rw), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cr, BETA * (pl - rl), rtol=1e-5, atol=1e-5)
    # The traced one-hot mixture is the same function.
    mixed = dpo_loss_mixture(pw - rw, pl - rl, beta=BETA, weights=loss_weights(kind), label_smoothing=EPS)
    np.testing.assert_allclose(mixed, losses, rtol=1e-5, atol=1e-5)


def test_mixture_is_weighted_sum_and_finite_without_smoothing(logps):
    pw, pl, rw, rl = logps
    w = loss_weights("sigmoid:0.7+bco_pair:0.3")
    mixed = dpo_loss_mixture(pw - rw, pl - rl, beta=BETA, weights=w)
    expect = 0.7 * dpo_loss(pw, pl, rw, rl, beta=BETA)[0] + 0.3 * dpo_loss(
        pw, pl, rw, rl, beta=BETA, loss_type="bco_pair")[0]
    np.testing.assert_allclose(mixed, expect, rtol=1e-5)
    # ε = 0 with exo/robust weighted 0 must not leak 0·inf = NaN into the gradient.
    g = jax.grad(lambda x: dpo_loss_mixture(x, pl - rl, beta=BETA, weights=w).sum())(pw - rw)
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize("kind", LOSS_TYPES)
def test_label_flip_invariance_and_ties(kind, logps):
    pw, pl, rw, rl = logps
    label = np.array([1.0, 0.0, 0.5, 0.5, 1.0, 0.0, 0.5, 1.0] * 2, np.float32)
    weight = np.linspace(0.2, 1.0, 16).astype(np.float32)
    kw = dict(beta=BETA, weights=loss_weights(kind), label_smoothing=EPS, rpo_alpha=0.1, num_steps=10.0)
    loss_ab, m_ab = pref_loss(pw, pl, rw, rl, label, weight, **kw)
    loss_ba, m_ba = pref_loss(pl, pw, rl, rw, 1.0 - label, weight, **kw)
    np.testing.assert_allclose(loss_ab, loss_ba, rtol=1e-5)
    for key in ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "logps/chosen"):
        np.testing.assert_allclose(m_ab[key], m_ba[key], rtol=1e-5, atol=1e-6)
    # A tie is the symmetric average of both orientations.
    tie, _ = pref_loss(pw[:1], pl[:1], rw[:1], rl[:1], np.array([0.5]), **kw)
    one, _ = pref_loss(pw[:1], pl[:1], rw[:1], rl[:1], np.array([1.0]), **kw)
    zero, _ = pref_loss(pw[:1], pl[:1], rw[:1], rl[:1], np.array([0.0]), **kw)
    np.testing.assert_allclose(tie, 0.5 * (one + zero), rtol=1e-5)


def test_weights_and_metrics(logps):
    pw, pl, rw, rl = logps
    label = np.ones(16, np.float32)
    kw = dict(beta=BETA, weights=loss_weights("sigmoid"))
    full, m = pref_loss(pw, pl, rw, rl, label, **kw)
    per = dpo_loss(pw, pl, rw, rl, beta=BETA)[0]
    np.testing.assert_allclose(full, per.mean(), rtol=1e-5)
    w = np.zeros(16, np.float32)
    w[:4] = 1.0  # weight 0 drops a pair entirely
    part, _ = pref_loss(pw, pl, rw, rl, label, w, **kw)
    np.testing.assert_allclose(part, per[:4].mean(), rtol=1e-5)
    rho_w, rho_l = BETA * (pw - rw), BETA * (pl - rl)
    np.testing.assert_allclose(m["rewards/margins"], np.mean(rho_w - rho_l), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m["rewards/accuracies"], np.mean(rho_w > rho_l), atol=1e-6)
    np.testing.assert_allclose(m["logps/chosen"], pw.mean(), rtol=1e-5)


def test_validation():
    with pytest.raises(ValueError, match="exo_pair"):
        dpo_loss(np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2), beta=0.1, loss_type="exo_pair")
    with pytest.raises(ValueError, match="robust"):
        validate_loss_spec("sigmoid+robust", 0.5)
    with pytest.raises(ValueError, match="unknown"):
        loss_weights("kto")
