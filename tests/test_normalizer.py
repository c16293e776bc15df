"""The one normaliser: closed-form statistics, running merges, the norm collection layout, and
bit-identity with the hand-built versions it replaced (copied below as references)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhf_jax import normalizer as N


# --- references: the previous implementations -----------------------------------------------

def ref_feature_stats(x, min_std=1e-3):
    flat = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
    std = flat.std(0)
    return flat.mean(0).astype(np.float32), np.where(std < min_std, 1.0, std).astype(np.float32)


def ref_merge_stats(count, mean, var, x):
    n = x.shape[0]
    b_mean, b_var = x.mean(0), x.var(0)
    tot = count + n
    delta = b_mean - mean
    new_mean = mean + delta * n / tot
    m2 = var * count + b_var * n + delta**2 * count * n / tot
    return tot, new_mean, m2 / tot


def ref_normalize(runner_mean, runner_var, x):
    return jnp.clip((x - runner_mean) / jnp.sqrt(runner_var + 1e-6), -10.0, 10.0)


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# --- statistics from data ---------------------------------------------------------------------

def test_stats_closed_forms():
    x = np.array([[0.0, 5.0, 1.0], [2.0, 5.0, 3.0], [4.0, 5.0, 8.0]], np.float32)
    mean, std = N.stats(x)
    assert mean.dtype == std.dtype == np.float32
    np.testing.assert_allclose(mean, [2.0, 5.0, 4.0])
    np.testing.assert_allclose(std, [np.sqrt(8 / 3), 1.0, np.sqrt(26 / 3)], rtol=1e-6)  # constant -> 1
    m64, s64 = N.moments(x)
    assert m64.dtype == s64.dtype == np.float64
    # leading axes are all reduced; a tiny spread below min_std counts as constant
    np.testing.assert_array_equal(N.stats(x.reshape(1, 3, 3))[0], mean)
    assert N.stats(np.array([[0.0], [1e-4]]), min_std=1e-3)[1] == 1.0
    assert N.stats(np.array([[0.0], [1e-4]]), min_std=1e-5)[1] == pytest.approx(5e-5)
    # jnp input gives the same (host, float64) result
    for a, b in zip(N.stats(jnp.asarray(x)), (mean, std)):
        np.testing.assert_array_equal(a, b)


def test_stats_match_previous_implementations(tiny_preference_data):
    seg = tiny_preference_data.segments
    for x in (seg.obs, seg.act, seg.obs[::3], seg.obs * 1e4 + 7):
        for a, b in zip(N.stats(x), ref_feature_stats(x)):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)


def test_sweep_and_reward_model_norm_match_previous_dicts(tiny_preference_data):
    from rlhf_jax.models.encoders import feature_stats
    seg, pref = tiny_preference_data.segments, tiny_preference_data
    rows = np.unique(np.concatenate([pref.train.idx_a, pref.train.idx_b]))
    old = {"obs_norm": dict(zip(("obs_mean", "obs_std"), map(jnp.asarray, feature_stats(seg.obs[rows])))),
           "act_norm": dict(zip(("act_mean", "act_std"), map(jnp.asarray, feature_stats(seg.act[rows]))))}
    _assert_trees_equal(N.collection(N.stats(seg.obs[rows]), N.stats(seg.act[rows])), old)


# --- the norm collection ----------------------------------------------------------------------

def test_collection_keys_are_the_checkpointed_ones():
    obs, act = N.identity(5), N.identity(3)
    norm = N.collection(obs, act)
    assert {k: sorted(v) for k, v in norm.items()} == {"obs_norm": ["obs_mean", "obs_std"],
                                                      "act_norm": ["act_mean", "act_std"]}
    assert list(N.collection(obs=obs)) == ["obs_norm"]
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(N.collection(
        (np.zeros(2, np.float64), np.ones(2, np.float64)))))


def test_models_read_and_write_the_same_layout():
    from rlhf_jax.models.encoders import set_norm_stats
    from rlhf_jax.models.policy import GaussianPolicy, set_obs_stats
    from rlhf_jax.models.reward import make_reward_model

    d, a = 6, 7
    rm = make_reward_model("markovian", num_tasks=2, num_embodiments=3, hidden=(4,))
    obs, act = jnp.ones((1, 2, d)), jnp.ones((1, 2, a))
    ids = jnp.zeros((1,), jnp.int32)
    v = rm.init(jax.random.key(0), obs, act, ids, ids)
    assert jax.tree.structure(v["norm"]) == jax.tree.structure(N.collection(N.identity(d), N.identity(a)))
    o_stats = (np.arange(d, dtype=np.float64), np.full(d, 2.0))
    a_stats = (np.zeros(a), np.full(a, 3.0, np.float32))
    old = {"obs_norm": {"obs_mean": jnp.asarray(o_stats[0]), "obs_std": jnp.asarray(o_stats[1])},
           "act_norm": {"act_mean": jnp.asarray(a_stats[0]), "act_std": jnp.asarray(a_stats[1])}}
    old = jax.tree.map(lambda n, o: jnp.broadcast_to(n, o.shape).astype(o.dtype), old, v["norm"])
    _assert_trees_equal(set_norm_stats(v, o_stats, a_stats)["norm"], old)

    pol = GaussianPolicy(num_tasks=2, num_embodiments=3, hidden=(4,))
    pv = pol.init(jax.random.key(1), jnp.ones((1, d)), ids, ids)
    assert jax.tree.structure(pv["norm"]) == jax.tree.structure(N.collection(obs=N.identity(d)))
    old = {"obs_norm": {"obs_mean": jnp.asarray(o_stats[0], jnp.float32),
                        "obs_std": jnp.asarray(o_stats[1], jnp.float32)}}
    _assert_trees_equal(set_obs_stats(pv, *o_stats)["norm"], old)


# --- applying ---------------------------------------------------------------------------------

def test_normalize_round_trip_numpy_and_jnp():
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 5.0, size=(4, 6, 5)).astype(np.float32)
    mean, std = N.stats(x)
    z = N.normalize(x, mean, std)
    assert isinstance(z, np.ndarray)
    np.testing.assert_allclose(z.reshape(-1, 5).mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.reshape(-1, 5).std(0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(N.denormalize(z, mean, std), x, rtol=1e-5, atol=1e-5)
    zj = N.normalize(jnp.asarray(x), jnp.asarray(mean), jnp.asarray(std))
    assert isinstance(zj, jax.Array)
    # XLA's float32 division may differ from IEEE division in the last bit
    np.testing.assert_allclose(np.asarray(zj), z, rtol=1e-6, atol=1e-7)
    zc = N.normalize(x, mean, std, clip=0.5)
    assert zc.max() == 0.5 and zc.min() == -0.5
    np.testing.assert_allclose(np.asarray(N.normalize(jnp.asarray(x), mean, std, clip=0.5)), zc,
                               rtol=1e-6, atol=1e-7)


# --- running statistics -----------------------------------------------------------------------

def test_running_merge_equals_stats_of_concatenated_data():
    rng = np.random.default_rng(2)
    chunks = [rng.normal(i, 1 + i, size=(n, 4)) for i, n in enumerate((7, 1, 30, 12))]
    run = N.Running(0.0, np.zeros(4), np.zeros(4))
    for c in chunks:
        run = N.running_update(*run, c)
    full = np.concatenate(chunks)
    assert run.count == len(full)
    np.testing.assert_allclose(run.mean, full.mean(0), rtol=1e-12)
    np.testing.assert_allclose(run.var, full.var(0), rtol=1e-12)
    # merging two summaries is the same as feeding the second's data
    a = N.running_update(0.0, np.zeros(4), np.zeros(4), full[:20])
    b = N.running_update(0.0, np.zeros(4), np.zeros(4), full[20:])
    ab = N.running_merge(*a, *b)
    np.testing.assert_allclose(ab.mean, full.mean(0), rtol=1e-12)
    np.testing.assert_allclose(ab.var, full.var(0), rtol=1e-12)
    np.testing.assert_allclose(N.running_std(ab.var, 0.0), full.std(0), rtol=1e-12)


def test_running_statistics_match_previous_ppo_code_bitwise():
    init = N.running_init(5)
    assert init.count.dtype == jnp.float32 and float(init.count) == np.float32(N.RUNNING_COUNT0)
    _assert_trees_equal(tuple(init), (jnp.asarray(1e-4, jnp.float32), jnp.zeros((5,)), jnp.ones((5,))))
    xs = jax.random.normal(jax.random.key(3), (4, 64, 5)) * 3.0 + 1.0

    def run(merge, norm):
        def body(carry, x):
            c, m, v = merge(*carry, x)
            return (c, m, v), norm(m, v, x)
        return jax.lax.scan(body, tuple(init), xs)

    new = jax.jit(lambda: run(N.running_update, N.running_normalize))()
    old = jax.jit(lambda: run(ref_merge_stats, ref_normalize))()
    _assert_trees_equal(new, old)
    c, m, v = tuple(init)
    for x in xs:  # eager, op by op
        _assert_trees_equal(tuple(N.running_update(c, m, v, x)), ref_merge_stats(c, m, v, x))
        _assert_trees_equal(N.running_normalize(m, v, x), ref_normalize(m, v, x))
        c, m, v = ref_merge_stats(c, m, v, x)
    norm = N.collection(obs=(m, N.running_std(v)))
    _assert_trees_equal(norm, {"obs_norm": {"obs_mean": m, "obs_std": jnp.sqrt(v + 1e-6)}})
