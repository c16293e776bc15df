"""The one feature layout: derived dimensions, numpy == jnp, and bit-identity with the two
implementations it replaced (kept below as slow references)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhf_jax import features as F
from rlhf_jax.envs import robots as R
from rlhf_jax.envs import simulator as S
from rlhf_jax.envs import tasks as T

MAX_DOF = R.MAX_DOF


# --- references: the previous numpy (data layer) and jnp (evaluation) implementations --------

def _ref_pad(x, width):
    return np.pad(x, ((0, 0), (0, width - x.shape[1])))


def ref_episode_features(ep, kind, dt):
    o, dof = ep["steps"]["observation"], int(ep["episode_metadata"]["dof"])
    ctx = [np.asarray(o[k], np.float32) for k in ("eef_pos", "eef_vel", "gripper", "goal", "obstacle", "box")]
    if kind == "joint":
        state = np.asarray(o["state"], np.float32)
        q, qd = _ref_pad(state[:, :dof], MAX_DOF), _ref_pad(state[:, dof:], MAX_DOF)
        return np.concatenate([q, qd] + ctx, 1), _ref_pad(np.asarray(ep["steps"]["action"], np.float32), MAX_DOF)
    pos = ctx[0]
    vel = np.diff(pos, axis=0) / dt
    act = np.concatenate([vel, vel[-1:]], 0) if len(vel) else np.zeros_like(pos)
    return np.concatenate(ctx, 1), act.astype(np.float32)


def ref_joint_features(obs, dof):
    state = obs["state"]
    pad = [(0, 0)] * (state.ndim - 1) + [(0, MAX_DOF - dof)]
    parts = [jnp.pad(state[..., :dof], pad), jnp.pad(state[..., dof:], pad)]
    parts += [obs[k] for k in ("eef_pos", "eef_vel", "gripper", "goal", "obstacle", "box")]
    return jnp.concatenate([jnp.asarray(p, jnp.float32) for p in parts], axis=-1)


def _random_obs(rng, lead, dof, dtype=np.float32):
    obs = {"state": rng.normal(size=lead + (2 * dof,))}
    obs.update({k: rng.normal(size=lead + (w,)) for k, w in F.CONTEXT})
    return {k: v.astype(dtype) for k, v in obs.items()}


def _sim_obs(robot_name, n=3, steps=4):
    """Batched simulator observations [n] after a few random steps (jnp)."""
    robot = R.ROBOTS[robot_name]
    keys = jax.random.split(jax.random.key(0), n)
    state = jax.jit(jax.vmap(lambda k: S.reset_state(robot, T.task_id("reach"), k)))(keys)
    step = jax.jit(jax.vmap(lambda s, a: S.step_state(robot, 0.05, 50, False, s, a)))  # eager FK is slow
    for i in range(steps):
        a = jax.random.uniform(jax.random.key(i + 1), (n, robot.dof), minval=-0.5, maxval=0.5)
        state, obs, _, _ = step(state, a)
    return obs, robot.dof


# --- layout ----------------------------------------------------------------------------------

def test_layout_dims_are_derived():
    ctx = sum(w for _, w in F.CONTEXT)
    assert F.feature_dim("eef") == ctx == 20
    assert F.feature_dim("joint") == 2 * MAX_DOF + ctx == 34
    assert F.action_dim("joint") == MAX_DOF and F.action_dim("eef") == 3
    assert F.CONTEXT_KEYS == ("eef_pos", "eef_vel", "gripper", "goal", "obstacle", "box")
    for kind in F.FEATURE_KINDS:
        sl = F.part_slices(kind)
        assert [n for n, _ in F.layout(kind)] == list(sl)
        assert sl[F.layout(kind)[-1][0]].stop == F.feature_dim(kind)
        assert all(sl[n].stop - sl[n].start == w for n, w in F.layout(kind))
    assert F.part_slices("joint")["goal"] == slice(2 * MAX_DOF + 7, 2 * MAX_DOF + 10)
    with pytest.raises(ValueError, match="feature kind"):
        F.feature_dim("pixels")


def test_slices_pick_the_named_parts():
    rng = np.random.default_rng(0)
    obs, dof = _random_obs(rng, (5,), 6), 6
    x = F.features(obs, dof, "joint")
    sl = F.part_slices("joint")
    np.testing.assert_array_equal(x[:, sl["q"]][:, :dof], obs["state"][:, :dof])
    np.testing.assert_array_equal(x[:, sl["qd"]][:, :dof], obs["state"][:, dof:])
    np.testing.assert_array_equal(x[:, sl["q"]][:, dof:], 0.0)
    for k in F.CONTEXT_KEYS:
        np.testing.assert_array_equal(x[:, sl[k]], obs[k])
        np.testing.assert_array_equal(F.features(obs, dof, "eef")[:, F.part_slices("eef")[k]], obs[k])


def test_wrong_part_width_is_reported():
    obs = _random_obs(np.random.default_rng(1), (2,), 7)
    obs["box"] = obs["box"][:, :5]
    with pytest.raises(ValueError, match="box"):
        F.features(obs, 7, "joint")


def test_action_mask():
    np.testing.assert_array_equal(F.action_mask(np.array([6, 7]), xp=np),
                                  [[1, 1, 1, 1, 1, 1, 0], [1] * 7])
    assert F.action_mask(np.array([6, 7]), "eef", xp=np).shape == (2, 3)
    np.testing.assert_array_equal(F.action_mask(jnp.array([6]), "joint"), F.action_mask(np.array([6])))


# --- numpy == jnp, and == the previous implementations --------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", F.FEATURE_KINDS)
def test_numpy_and_jnp_agree_bitwise(kind, dtype):
    rng = np.random.default_rng(2)
    for dof in (6, 7):
        obs = _random_obs(rng, (3, 4), dof, dtype)
        x_np = F.features(obs, dof, kind)
        x_j = F.features({k: jnp.asarray(v) for k, v in obs.items()}, dof, kind)
        assert isinstance(x_np, np.ndarray) and isinstance(x_j, jax.Array)
        assert x_np.dtype == np.float32 and x_np.shape == (3, 4, F.feature_dim(kind))
        np.testing.assert_array_equal(np.asarray(x_j), x_np)
        jitted = jax.jit(lambda o, d=dof: F.features(o, d, kind))(obs)
        np.testing.assert_array_equal(np.asarray(jitted), x_np)


def test_simulator_observation_matches_previous_implementation():
    for name in R.EMBODIMENTS:
        obs, dof = _sim_obs(name)
        new = jax.jit(lambda o, d=dof: F.features(o, d, "joint"))(obs)
        old = jax.jit(lambda o, d=dof: ref_joint_features(o, d))(obs)
        assert new.shape == (3, F.feature_dim("joint"))
        np.testing.assert_array_equal(np.asarray(new), np.asarray(old))
        from rlhf_jax.features import joint_features
        np.testing.assert_array_equal(np.asarray(joint_features(obs, dof)), np.asarray(old))
        # numpy input (a host copy of the same observation) gives the same bits
        np.testing.assert_array_equal(F.features(jax.tree.map(np.asarray, obs), dof), np.asarray(old))


def test_tiny_dataset_episodes_match_previous_implementation(tiny_episodes):
    from rlhf_jax.preferences.segments import episode_features
    dofs = set()
    for ep in tiny_episodes:
        dofs.add(int(ep["episode_metadata"]["dof"]))
        for kind in F.FEATURE_KINDS:
            obs, act = episode_features(ep, kind, 0.05)
            ref_obs, ref_act = ref_episode_features(ep, kind, 0.05)
            assert obs.dtype == ref_obs.dtype and act.dtype == ref_act.dtype
            assert obs.shape[-1] == F.feature_dim(kind) and act.shape[-1] == F.action_dim(kind)
            np.testing.assert_array_equal(obs, ref_obs)
            np.testing.assert_array_equal(act, ref_act)
    assert len(dofs) > 1  # both padded (6-DoF) and unpadded arms are covered


def test_eef_actions_of_short_episodes():
    pos = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(F.actions({"eef_pos": pos}, None, "eef", 0.5), [[6, 6, 6]] * 2)
    np.testing.assert_array_equal(F.actions({"eef_pos": pos[:1]}, None, "eef", 0.5), np.zeros((1, 3)))
    np.testing.assert_array_equal(F.actions({"eef_pos": jnp.asarray(pos)}, None, "eef", 0.5), [[6, 6, 6]] * 2)


def test_context_widths_match_the_rlds_schema():
    """The stored observation schema and the feature layout name the same widths."""
    from rlhf_jax.data import rlds
    assert {k: (w,) for k, w in F.CONTEXT} == {k: s for k, s in rlds.OBS_SHAPES.items() if k != "state"}


def test_state_width_must_match_the_arm():
    obs = _random_obs(np.random.default_rng(4), (2,), 6)
    with pytest.raises(ValueError, match="state"):
        F.features(obs, 7, "joint")  # 12 state columns are not q, qd of a 7-joint arm
    F.features(obs, 7, "eef")  # the eef kind never reads the joint state
