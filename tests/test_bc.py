"""Behaviour-cloning loss: weighted mean NLL, padding rows, per-dim normalisation, gradient."""
import jax
import jax.numpy as jnp
import numpy as np

from rlhf_jax.losses.bc import bc_loss


def test_unweighted_loss_is_mean_nll():
    lp = jnp.array([-1.0, -2.0, -0.5, -4.5])
    loss, m = bc_loss(lp)
    assert loss.shape == ()
    np.testing.assert_allclose(loss, 2.0, rtol=1e-6)
    np.testing.assert_allclose(m["loss"], loss)
    np.testing.assert_allclose(m["bc/nll"], loss)
    assert "bc/nll_per_dim" not in m


def test_weighted_closed_form_and_weight_scale_invariance():
    rng = np.random.default_rng(0)
    lp = -rng.exponential(size=16).astype(np.float32)
    w = rng.uniform(0.1, 2.0, size=16).astype(np.float32)
    expected = -np.sum(w * lp) / np.sum(w)
    loss, _ = bc_loss(jnp.asarray(lp), jnp.asarray(w))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    loss_scaled, _ = bc_loss(jnp.asarray(lp), jnp.asarray(7.0 * w))
    np.testing.assert_allclose(loss_scaled, loss, rtol=1e-5)


def test_padding_rows_with_weight_zero_are_ignored():
    lp = jnp.array([-1.0, -3.0, -2.0])
    padded = jnp.concatenate([lp, jnp.array([-1e6, 123.0])])  # arbitrary values in padding rows
    w = jnp.array([1.0, 1.0, 1.0, 0.0, 0.0])
    loss_p, m_p = bc_loss(padded, w, num_dims=jnp.array([7.0, 6.0, 7.0, 0.0, 0.0]))
    loss, m = bc_loss(lp, num_dims=jnp.array([7.0, 6.0, 7.0]))
    np.testing.assert_allclose(loss_p, loss, rtol=1e-6)
    np.testing.assert_allclose(loss, 2.0, rtol=1e-6)
    np.testing.assert_allclose(m_p["bc/nll_per_dim"], m["bc/nll_per_dim"], rtol=1e-6)


def test_per_dim_metric_normalises_each_row_by_its_dims():
    lp = jnp.array([-7.0, -12.0])  # a 7-joint row and a 6-joint row
    w = jnp.array([1.0, 3.0])
    loss, m = bc_loss(lp, w, num_dims=jnp.array([7.0, 6.0]))
    np.testing.assert_allclose(loss, (7.0 + 3 * 12.0) / 4, rtol=1e-6)
    np.testing.assert_allclose(m["bc/nll_per_dim"], (1.0 + 3 * 2.0) / 4, rtol=1e-6)
    # the per-dim metric does not change the loss itself
    np.testing.assert_allclose(bc_loss(lp, w)[0], loss)


def test_all_zero_weights_give_zero_not_nan():
    loss, _ = bc_loss(jnp.array([-1.0, -2.0]), jnp.zeros(2))
    assert np.isfinite(loss) and float(loss) == 0.0


def test_gradient_is_minus_normalised_weight():
    lp = jnp.array([-1.0, -2.0, -3.0])
    w = jnp.array([1.0, 0.0, 3.0])
    g = jax.grad(lambda x: bc_loss(x, w)[0])(lp)
    np.testing.assert_allclose(g, -w / w.sum(), rtol=1e-6)  # raising log π of weighted rows lowers the loss


def test_jit_matches_eager():
    lp, w, d = jnp.array([-1.5, -0.5]), jnp.array([0.5, 1.0]), jnp.array([6.0, 7.0])
    eager = bc_loss(lp, w, d)
    jitted = jax.jit(bc_loss)(lp, w, d)
    np.testing.assert_allclose(jitted[0], eager[0], rtol=1e-6)
    np.testing.assert_allclose(jitted[1]["bc/nll_per_dim"], eager[1]["bc/nll_per_dim"], rtol=1e-6)
