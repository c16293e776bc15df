"""PPO and KL losses against slow references and analytic values."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhf_jax.losses import kl as K
from rlhf_jax.losses import ppo as P


def gae_reference(r, v, nv, term, trunc, gamma, lam):
    """Slow NumPy reverse loop (one environment at a time)."""
    t_len, b = r.shape
    adv = np.zeros_like(r)
    for j in range(b):
        acc = 0.0
        for t in reversed(range(t_len)):
            delta = r[t, j] + gamma * (1.0 - term[t, j]) * nv[t, j] - v[t, j]
            done = term[t, j] or trunc[t, j]
            acc = delta + gamma * lam * (0.0 if done else acc)
            adv[t, j] = acc
    return adv


def test_gae_matches_reverse_loop_with_truncation():
    rng = np.random.default_rng(0)
    t_len, b = 23, 5
    r, v, nv = (rng.normal(size=(t_len, b)).astype(np.float32) for _ in range(3))
    term = rng.random((t_len, b)) < 0.08
    trunc = (rng.random((t_len, b)) < 0.08) & ~term
    trunc[10, 0], term[10, 0] = True, False  # at least one truncation and one termination
    term[5, 1], trunc[5, 1] = True, False
    adv, targets = P.gae(jnp.asarray(r), jnp.asarray(v), jnp.asarray(nv), jnp.asarray(term),
                         jnp.asarray(trunc), 0.97, 0.9)
    ref = gae_reference(r, v, nv, term.astype(np.float32), trunc, 0.97, 0.9)
    np.testing.assert_allclose(adv, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(targets, ref + v, rtol=1e-5, atol=1e-5)
    # A truncated step bootstraps (differs from treating it as terminal); a terminal one does not.
    assert abs(adv[10, 0] - (r[10, 0] + 0.97 * nv[10, 0] - v[10, 0])) < 1e-5
    assert abs(adv[5, 1] - (r[5, 1] - v[5, 1])) < 1e-5


def test_clipped_surrogate_at_ratio_one_is_minus_mean_advantage():
    adv = jnp.asarray(np.random.default_rng(1).normal(size=64), jnp.float32)
    logp = jnp.linspace(-3, 1, 64)
    loss, m = P.clipped_surrogate_loss(logp, logp, adv, 0.2)
    np.testing.assert_allclose(loss, -adv.mean(), rtol=1e-6)
    assert float(m["ppo/clip_fraction"]) == 0.0


def test_clipped_surrogate_clips():
    # Positive advantage, ratio 2: the objective is capped at (1 + ε)·A and has no gradient.
    adv = jnp.ones(4)
    old = jnp.zeros(4)
    loss, m = P.clipped_surrogate_loss(old + jnp.log(2.0), old, adv, 0.2)
    np.testing.assert_allclose(loss, -1.2, rtol=1e-6)
    g = jax.grad(lambda lp: P.clipped_surrogate_loss(lp, old, adv, 0.2)[0])(old + jnp.log(2.0))
    np.testing.assert_allclose(g, 0.0)
    assert float(m["ppo/clip_fraction"]) == 1.0


def test_value_loss_clipping():
    v, old, tgt = jnp.asarray([2.0]), jnp.asarray([0.0]), jnp.asarray([3.0])
    # Unclipped error 1, clipped value 0.5 has error 2.5: the max (pessimistic) is used.
    np.testing.assert_allclose(P.value_loss(v, old, tgt, 0.5)[0], 0.5 * 2.5**2)
    np.testing.assert_allclose(P.value_loss(v, old, tgt, None)[0], 0.5)


def test_gaussian_entropy_masks_padding():
    log_std = jnp.asarray([[0.0, 0.0, 100.0]])
    h = P.gaussian_entropy(log_std, jnp.asarray([1.0, 1.0, 0.0]))
    np.testing.assert_allclose(h, [1.0 + np.log(2 * np.pi)], rtol=1e-6)


def test_kl_estimators_match_analytic_gaussian_kl():
    # Samples from p = N(μ_p, σ_p) (3 dims); both estimators average to KL(p ‖ q).
    mp, sp = jnp.asarray([0.3, -0.2, 0.0]), jnp.log(jnp.asarray([0.5, 0.8, 1.0]))
    mq, sq = jnp.asarray([0.0, 0.1, 0.2]), jnp.log(jnp.asarray([0.6, 0.7, 1.2]))
    x = mp + jnp.exp(sp) * jax.random.normal(jax.random.key(0), (200_000, 3))
    lp = lambda m, s: jnp.sum(-0.5 * ((x - m) / jnp.exp(s)) ** 2 - s - 0.5 * np.log(2 * np.pi), -1)
    logp, ref_logp = lp(mp, sp), lp(mq, sq)
    exact = float(K.gaussian_kl(mp, sp, mq, sq))
    k1, k3 = K.kl_k1(logp, ref_logp), K.kl_k3(logp, ref_logp)
    assert exact > 0.1
    # Standard errors at 200k samples are ~0.002; tolerance 2 %.
    np.testing.assert_allclose(float(k1.mean()), exact, rtol=0.02)
    np.testing.assert_allclose(float(k3.mean()), exact, rtol=0.02)
    assert float(k3.min()) >= 0.0  # (k3's lower variance holds only for nearby p, q; not here)
    np.testing.assert_allclose(K.kl_estimate(logp, ref_logp, "k3"), k3)
    with pytest.raises(ValueError, match="k2"):
        K.kl_estimate(logp, ref_logp, "k2")


@pytest.mark.parametrize("kl,expected_e", [(0.5, -0.2), (6.0, 0.2), (3.3, 0.1), (3.0, 0.0)])
def test_adaptive_beta_follows_formula(kl, expected_e):
    beta = K.adaptive_beta(0.1, kl, target=3.0, n_steps=512, horizon=10_000)
    np.testing.assert_allclose(beta, 0.1 * (1.0 + expected_e * 512 / 10_000), rtol=1e-6)


def test_adaptive_beta_converges_toward_target():
    # A toy KL that falls as β rises (KL = 1/β): the controller drives KL to the target.
    beta = 0.05
    for _ in range(400):
        beta = float(K.adaptive_beta(beta, 1.0 / beta, target=4.0, n_steps=1000, horizon=10_000))
    np.testing.assert_allclose(1.0 / beta, 4.0, rtol=0.05)


def test_annealed_beta_endpoints_and_geometric_midpoint():
    b = lambda s: float(K.annealed_beta(s, 100, 0.02, 0.001))
    np.testing.assert_allclose([b(0), b(50), b(100), b(200)],
                               [0.02, np.sqrt(0.02 * 0.001), 0.001, 0.001], rtol=1e-5)
