"""Reward models, ensembles and the reward update on small synthetic segments."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from rlhf_jax import ensemble
from rlhf_jax.models.encoders import feature_stats, set_norm_stats
from rlhf_jax.models.reward import make_reward_model
from rlhf_jax.train.reward import make_reward_update, pair_returns
from rlhf_jax.train.state import TrainState

B, T, D, A = 8, 6, 5, 7
LOSS = ml_collections.ConfigDict(dict(margin=0.0, label_smoothing=0.0, center_coef=0.0))


def _segments(key, b=B, image=False):
    k1, k2, k3 = jax.random.split(key, 3)
    seg = {"obs": jax.random.normal(k1, (b, T, D)), "act": jax.random.normal(k2, (b, T, A)),
           "task": jax.random.randint(k3, (b,), 0, 4), "embodiment": jnp.arange(b) % 3}
    if image:
        seg["image"] = jax.random.randint(k3, (b, T, 16, 16, 3), 0, 255).astype(jnp.uint8)
    return seg


def _pair_batch(key, b=B):
    ka, kb, kl = jax.random.split(key, 3)
    a, bb = _segments(ka, b), _segments(kb, b)
    return {"obs_a": a["obs"], "act_a": a["act"], "task_a": a["task"], "embodiment_a": a["embodiment"],
            "obs_b": bb["obs"], "act_b": bb["act"], "task_b": bb["task"], "embodiment_b": bb["embodiment"],
            "label": jax.random.bernoulli(kl, 0.5, (b,)).astype(jnp.float32), "weight": jnp.ones((b,))}


@pytest.mark.parametrize("kind", ["markovian", "transformer"])
def test_vmapped_ensemble_equals_loop_of_members(kind):
    model = make_reward_model(kind, num_tasks=4, num_embodiments=3, **({"hidden": (16,)} if kind == "markovian" else {"width": 16, "depth": 1}))
    seg = _segments(jax.random.key(0))
    keys = jax.random.split(jax.random.key(1), 4)
    stacked = ensemble.init_ensemble(model, keys, seg["obs"], seg["act"], seg["task"], seg["embodiment"])
    together = jax.jit(lambda v, s: ensemble.ensemble_apply(model, v, s))(stacked, seg)
    apply = jax.jit(model.apply)
    for k in range(4):
        member = jax.tree.map(lambda x: x[k], stacked)
        alone, _ = apply(member, seg["obs"], seg["act"], seg["task"], seg["embodiment"])
        np.testing.assert_allclose(together[k], alone, rtol=1e-5, atol=1e-5)
    assert not np.allclose(together[0], together[1])  # members differ by init seed


def test_previous_step_model_reads_steps_t_and_t_minus_1_only():
    """Step t's reward moves with obs[t - 1] and obs[t], never with obs[t - 2] or actions before t;
    the first step sees only itself. The segment return is still the sum of the step rewards."""
    model = make_reward_model("previous_step", num_tasks=4, num_embodiments=3, hidden=(8,))
    seg = _segments(jax.random.key(4))
    v = model.init(jax.random.key(5), seg["obs"], seg["act"], seg["task"], seg["embodiment"])
    v = dict(v, norm=jax.tree.map(lambda x: x + 0.5, v["norm"]))  # non-trivial normalisation
    apply = lambda s: model.apply(v, s["obs"], s["act"], s["task"], s["embodiment"])  # noqa: E731
    ret, steps = apply(seg)
    np.testing.assert_allclose(ret, steps.sum(-1), rtol=1e-5)
    t = 3
    moved = lambda key, step: dict(seg, **{key: seg[key].at[:, step].add(1.0)})  # noqa: E731
    changed = lambda s: np.abs(np.asarray(apply(s)[1] - steps)).max(0) > 1e-6  # noqa: E731
    np.testing.assert_array_equal(changed(moved("obs", t)), np.isin(np.arange(T), (t, t + 1)))
    np.testing.assert_array_equal(changed(moved("act", t)), np.arange(T) == t)
    np.testing.assert_array_equal(changed(moved("obs", 0)), np.arange(T) < 2)


def test_markovian_sum_is_sum_of_step_rewards_and_mask_drops_steps():
    model = make_reward_model("markovian", num_tasks=4, num_embodiments=3, hidden=(8,))
    seg = _segments(jax.random.key(2))
    v = model.init(jax.random.key(3), seg["obs"], seg["act"], seg["task"], seg["embodiment"])
    ret, steps = model.apply(v, seg["obs"], seg["act"], seg["task"], seg["embodiment"])
    np.testing.assert_allclose(ret, steps.sum(-1), rtol=1e-5)
    mask = jnp.ones((B, T)).at[:, -2:].set(0)
    ret_m, _ = model.apply(v, seg["obs"], seg["act"], seg["task"], seg["embodiment"], None, mask)
    np.testing.assert_allclose(ret_m, steps[:, :-2].sum(-1), rtol=1e-5)


def test_transformer_is_causal_per_step_and_padding_is_ignored():
    model = make_reward_model("transformer", num_tasks=4, num_embodiments=3, width=16, depth=1, heads=2)
    seg = _segments(jax.random.key(4))
    v = model.init(jax.random.key(5), seg["obs"], seg["act"], seg["task"], seg["embodiment"])
    _, steps = model.apply(v, seg["obs"], seg["act"], seg["task"], seg["embodiment"])
    changed = seg["obs"].at[:, -1].add(3.0)
    _, steps2 = model.apply(v, changed, seg["act"], seg["task"], seg["embodiment"])
    np.testing.assert_allclose(steps[:, :-1], steps2[:, :-1], rtol=1e-5, atol=1e-5)
    mask = jnp.ones((B, T)).at[:, -1].set(0)
    r1, _ = model.apply(v, seg["obs"], seg["act"], seg["task"], seg["embodiment"], None, mask)
    r2, _ = model.apply(v, changed, seg["act"], seg["task"], seg["embodiment"], None, mask)
    np.testing.assert_allclose(r1, r2, rtol=1e-5, atol=1e-5)


def test_image_input_and_embodiment_agnostic_model():
    seg = _segments(jax.random.key(6), image=True)
    model = make_reward_model("markovian", num_tasks=4, num_embodiments=0, hidden=(8,))
    v = model.init(jax.random.key(7), seg["obs"], seg["act"], seg["task"], seg["embodiment"], seg["image"])
    assert "embodiment_embed" not in v["params"]["context"]
    r1, _ = model.apply(v, seg["obs"], seg["act"], seg["task"], seg["embodiment"], seg["image"])
    r2, _ = model.apply(v, seg["obs"], seg["act"], seg["task"], (seg["embodiment"] + 1) % 3, seg["image"])
    np.testing.assert_allclose(r1, r2)  # no embodiment input at all
    r3, _ = model.apply(v, seg["obs"], seg["act"], seg["task"], seg["embodiment"], 255 - seg["image"])
    assert not np.allclose(r1, r3)


def test_normalisation_statistics_are_applied():
    model = make_reward_model("markovian", num_tasks=4, num_embodiments=3, hidden=(8,))
    seg = _segments(jax.random.key(8))
    v = model.init(jax.random.key(9), seg["obs"], seg["act"], seg["task"], seg["embodiment"])
    v2 = set_norm_stats(v, (np.full(D, 3.0), np.full(D, 10.0)), (np.zeros(A), np.ones(A)))
    r_raw, _ = model.apply(v, seg["obs"], seg["act"], seg["task"], seg["embodiment"])
    r_scaled, _ = model.apply(v2, seg["obs"] * 10 + 3, seg["act"], seg["task"], seg["embodiment"])
    np.testing.assert_allclose(r_raw, r_scaled, rtol=1e-5, atol=1e-5)
    mean, std = feature_stats(np.asarray(seg["obs"]) * 10 + 3)
    np.testing.assert_allclose(mean, np.asarray(seg["obs"]).reshape(-1, D).mean(0) * 10 + 3, rtol=1e-4)
    np.testing.assert_allclose(std, np.asarray(seg["obs"]).reshape(-1, D).std(0) * 10, rtol=1e-4)


def test_update_reduces_loss_and_reports_norms():
    model = make_reward_model("markovian", num_tasks=4, num_embodiments=3, hidden=(16,))
    batch = _pair_batch(jax.random.key(10), b=32)
    v = model.init(jax.random.key(11), batch["obs_a"], batch["act_a"], batch["task_a"], batch["embodiment_a"])
    tx = optax.adam(1e-2)
    update = jax.jit(make_reward_update(LOSS, model, tx))
    state = TrainState.create(v, tx, jax.random.PRNGKey(0))
    state, first = update(state, batch)
    for _ in range(60):
        state, m = update(state, batch)
    assert m["loss"] < 0.5 * first["loss"]
    for key in ("grad_norm", "param_norm", "update_norm", "rewards/chosen", "rewards/margins"):
        assert np.isfinite(m[key])
    r_a, r_b = pair_returns(model, state.variables, batch)
    assert np.mean((np.asarray(r_a) > np.asarray(r_b)) == (np.asarray(batch["label"]) > 0.5)) > 0.9


def test_aggregations_and_multi_objective_combination():
    r = jnp.array([[1.0, 2.0], [3.0, 0.0], [2.0, 1.0]])
    np.testing.assert_allclose(ensemble.aggregate(r, "mean"), [2.0, 1.0])
    np.testing.assert_allclose(ensemble.aggregate(r, "min"), [1.0, 0.0])
    np.testing.assert_allclose(ensemble.aggregate(r, "mean_minus_std", lam=2.0), r.mean(0) - 2 * r.std(0), rtol=1e-6)
    np.testing.assert_allclose(ensemble.combine_objectives(r, [1.0, 0.5, -1.0]), [1 + 1.5 - 2, 2 + 0 - 1])
    p = ensemble.ensemble_preference_probability(r, jnp.zeros_like(r))
    np.testing.assert_allclose(p, jax.nn.sigmoid(r).mean(0), rtol=1e-6)
    # Member probabilities: σ(1), σ(3), σ(2) for the first pair; the host path agrees.
    sig = lambda x: 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))  # noqa: E731
    np.testing.assert_allclose(ensemble.disagreement(r, jnp.zeros_like(r)), sig(r).std(0), rtol=1e-5)
    r64 = np.asarray(r, np.float64)
    np.testing.assert_array_equal(ensemble.ensemble_preference_probability(r64, 0.0, xp=np), sig(r64).mean(0))
    np.testing.assert_array_equal(ensemble.disagreement(r64, 0.0, xp=np), sig(r64).std(0))
    # Swapping the segments mirrors the probability and keeps the disagreement.
    np.testing.assert_allclose(ensemble.ensemble_preference_probability(0.0, r64, xp=np), 1 - sig(r64).mean(0))
    np.testing.assert_allclose(ensemble.disagreement(0.0, r64, xp=np), sig(r64).std(0), rtol=1e-12)
    with pytest.raises(ValueError, match="aggregation"):
        ensemble.aggregate(r, "median")


def test_bootstrap_weights_are_poisson_and_stable_per_pair():
    key = jax.random.PRNGKey(3)
    idx = jnp.arange(20000)
    w = np.asarray(ensemble.bootstrap_weights(key, idx))
    assert abs(w.mean() - 1.0) < 0.03 and abs(w.var() - 1.0) < 0.05
    np.testing.assert_array_equal(ensemble.bootstrap_weights(key, idx[:5]), w[:5])
    assert not np.array_equal(ensemble.bootstrap_weights(jax.random.PRNGKey(4), idx[:50]), w[:50])
