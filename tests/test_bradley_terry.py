"""Bradley-Terry loss: closed forms, invariances and the gradient direction."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhf_jax.losses import bradley_terry_loss, preference_probability


def test_equal_rewards_cost_log2():
    r = jnp.array([0.3, -1.0, 2.0, 0.0])
    for label in (jnp.ones(4), jnp.zeros(4), jnp.full(4, 0.5)):
        loss, _ = bradley_terry_loss(r, r, label)
        np.testing.assert_allclose(loss, np.log(2.0), rtol=1e-6)


def test_swap_sides_with_flipped_label_is_invariant():
    rng = np.random.default_rng(0)
    r_a, r_b = rng.normal(size=16), rng.normal(size=16)
    label = rng.choice([0.0, 0.5, 1.0], size=16)
    weight = rng.uniform(0.2, 1.0, size=16)
    kw = dict(margin=0.3, label_smoothing=0.1, center_coef=0.01)
    l1, m1 = bradley_terry_loss(r_a, r_b, label, weight, **kw)
    l2, m2 = bradley_terry_loss(r_b, r_a, 1 - label, weight, **kw)
    np.testing.assert_allclose(l1, l2, rtol=1e-6)
    np.testing.assert_allclose(m1["accuracy"], m2["accuracy"])
    np.testing.assert_allclose(m1["rewards/margins"], m2["rewards/margins"], rtol=1e-6)


def test_matches_numpy_reference_with_all_options():
    rng = np.random.default_rng(1)
    r_a, r_b = rng.normal(size=32), rng.normal(size=32)
    label = rng.uniform(size=32)
    weight = rng.uniform(size=32)
    margin, eps, c = 0.2, 0.1, 0.05
    y = (1 - eps) * label + eps / 2
    log_sig = lambda x: -np.log1p(np.exp(-x))
    nll = -(y * log_sig(r_a - r_b - margin) + (1 - y) * log_sig(r_b - r_a - margin))
    expected = np.sum(weight * nll) / np.sum(weight) + c * np.mean((r_a + r_b) ** 2)
    loss, _ = bradley_terry_loss(r_a, r_b, label, weight, margin=margin, label_smoothing=eps, center_coef=c)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_accuracy_excludes_ties_and_zero_weight_pairs_do_not_count():
    r_a = jnp.array([1.0, 1.0, -1.0, 5.0])
    r_b = jnp.array([0.0, 2.0, 0.0, -5.0])
    label = jnp.array([1.0, 1.0, 0.0, 0.5])
    _, m = bradley_terry_loss(r_a, r_b, label)
    np.testing.assert_allclose(m["accuracy"], 2 / 3, rtol=1e-6)  # the tie is not scored
    np.testing.assert_allclose(m["rewards/margins"], (1.0 - 1.0 + 1.0) / 3, rtol=1e-6)
    loss_w, _ = bradley_terry_loss(r_a, r_b, label, jnp.array([1.0, 1.0, 1.0, 0.0]))
    loss_3, _ = bradley_terry_loss(r_a[:3], r_b[:3], label[:3])
    np.testing.assert_allclose(loss_w, loss_3, rtol=1e-6)


def test_gradient_pushes_winner_up_and_tie_together():
    g = jax.grad(lambda ra: bradley_terry_loss(ra, jnp.zeros(1), jnp.ones(1))[0])(jnp.zeros(1))
    assert g[0] < 0  # descending raises the preferred segment's return
    g_tie = jax.grad(lambda ra: bradley_terry_loss(ra, jnp.zeros(1), jnp.full(1, 0.5))[0])(jnp.array([2.0]))
    assert g_tie[0] > 0  # a tie pulls the larger return back down


@pytest.mark.parametrize("diff", [-3.0, 0.0, 1.5])
def test_preference_probability_is_sigmoid(diff):
    np.testing.assert_allclose(preference_probability(jnp.array(diff), jnp.array(0.0)), 1 / (1 + np.exp(-diff)),
                               rtol=1e-6)


def test_preference_probability_numpy_path_keeps_dtype_and_matches_jax():
    rng = np.random.default_rng(0)
    r_a, r_b = rng.normal(scale=20.0, size=(3, 50)), rng.normal(scale=20.0, size=(3, 50))
    r_a[0, :2] = (-800.0, 800.0)  # exp overflows to inf: exactly 0 and 1, without nan
    p64 = preference_probability(r_a, r_b, xp=np)
    assert isinstance(p64, np.ndarray) and p64.dtype == np.float64
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(p64, 1.0 / (1.0 + np.exp(-(r_a - r_b))))  # the host callers' formula
    assert p64[0, 0] == 0.0 and p64[0, 1] == 1.0
    np.testing.assert_allclose(p64 + preference_probability(r_b, r_a, xp=np), 1.0, rtol=1e-15)
    p32 = preference_probability(r_a.astype(np.float32), r_b.astype(np.float32), xp=np)
    assert p32.dtype == np.float32
    pj = preference_probability(jnp.asarray(r_a, jnp.float32), jnp.asarray(r_b, jnp.float32))
    assert isinstance(pj, jax.Array)
    np.testing.assert_allclose(np.asarray(pj), p32, rtol=1e-6, atol=1e-7)


def test_shape_mismatches_are_refused_instead_of_broadcast():
    from rlhf_jax.losses.bradley_terry import bradley_terry_loss

    r = jnp.zeros((4,))
    with pytest.raises(ValueError, match="'label'.*got \\(1,\\)"):
        bradley_terry_loss(r, r, jnp.ones((1,)))
    with pytest.raises(ValueError, match="'r_a'.*\\(4, 1\\)"):
        bradley_terry_loss(r[:, None], r[:, None], jnp.ones((4,)))
    with pytest.raises(ValueError, match="'weight'"):
        bradley_terry_loss(r, r, jnp.ones((4,)), weight=jnp.ones((3,)))
    with pytest.raises(ValueError, match="real dtype"):
        bradley_terry_loss(r, r, jnp.ones((4,), bool))
    # Under jit the check runs at trace time on static shapes and the loss is unchanged.
    loss, _ = jax.jit(bradley_terry_loss)(r, r, jnp.ones((4,)))
    np.testing.assert_allclose(loss, np.log(2.0), rtol=1e-6)


def test_labels_outside_unit_interval_are_refused_where_they_enter():
    from rlhf_jax.losses.bradley_terry import check_labels

    check_labels(np.array([0.0, 0.5, 1.0]))
    for bad in (1.5, -0.1, np.nan):
        with pytest.raises(ValueError, match="in \\[0, 1\\]"):
            check_labels(np.array([0.0, bad]), "teacher")


@pytest.mark.parametrize("kw, field", [
    (dict(label=jnp.array([2.0, 1.0])), "label"),
    (dict(label=jnp.array([-1.0, 1.0])), "label"),
    (dict(label=jnp.array([jnp.nan, 1.0])), "label"),
    (dict(weight=jnp.array([-5e8, 1.0])), "weight"),
    (dict(weight=jnp.array([jnp.inf, 1.0])), "weight"),
    (dict(label_smoothing=2.0), "label_smoothing"),
])
def test_eager_calls_refuse_values_outside_the_domain(kw, field):
    from rlhf_jax.losses.bradley_terry import bradley_terry_loss

    r = jnp.array([0.3, -0.2])
    args = dict(label=jnp.array([1.0, 0.0])) | kw
    with pytest.raises(ValueError, match=f"field '{field}'"):
        bradley_terry_loss(r, r, **args)
    # Under jit the values are unknown at trace time: only shapes are checked, so the loss runs
    # (the host-side checks where labels enter guard that path).
    if field != "label_smoothing":
        jax.jit(bradley_terry_loss)(r, r, args["label"], args.get("weight"))
