"""Scripted policies and rollouts: shapes, determinism, graded quality.

Thresholds come from 64-episode measurements (seed 0) of every arm x task: expert success
0.98-1.00 (reach, reach_hold, reach_in_box 1.00 on all arms; reach_avoid 0.98 Panda, 1.00 UR5,
0.98 Gen3), random success 0.00 everywhere; mean gold return (DEFAULT_RUBRIC) expert +3.7..+9.3
vs random -46..-15.6. The tests use 32 episodes and leave a wide margin.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhf_jax.envs import policies as P
from rlhf_jax.envs import robots as R
from rlhf_jax.envs import simulator as S
from rlhf_jax.envs import tasks as T

N_EP = 32  # same as tests/test_simulator.py: one compiled rollout program per arm
EXPERT_MIN_SUCCESS = 0.8
RANDOM_MAX_SUCCESS = 0.1


@functools.lru_cache(maxsize=None)
def _traj(robot, task, policy, seed=0):
    env = S.make_env(robot, task)
    out = P.rollout(env, P.make_policy(policy, env), jax.random.key(seed), N_EP)
    return jax.tree.map(np.asarray, out)


def test_rollout_shapes_and_flags():
    tr = _traj("ur5", "reach", "expert")
    e, t, c = N_EP, 50, len(S.REWARD_COMPONENTS)
    assert tr["action"].shape == (e, t, 6)
    assert tr["reward_components"].shape == (e, t, c) and tr["reward"].shape == (e, t)
    assert tr["obs"]["state"].shape == (e, t, 12) and tr["obs"]["goal"].shape == (e, t, 3)
    assert tr["is_first"][:, 0].all() and not tr["is_first"][:, 1:].any()
    assert tr["is_last"][:, -1].all() and not tr["is_last"][:, :-1].any()
    assert not tr["is_terminal"].any() and (tr["discount"] == 1).all()
    # the goal is fixed within an episode and differs between episodes
    assert (tr["obs"]["goal"] == tr["obs"]["goal"][:, :1]).all()
    assert len(np.unique(tr["obs"]["goal"][:, 0, 0])) == e


def test_same_seed_same_rollout_and_new_seed_differs():
    a = _traj("panda", "reach_avoid", "expert_noisy")
    env = S.make_env("panda", "reach_avoid")
    b = P.rollout(env, P.make_policy("expert_noisy", env), jax.random.key(0), N_EP)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, np.asarray(y))
    c = _traj("panda", "reach_avoid", "expert_noisy", seed=1)
    assert not np.allclose(a["action"], c["action"])


@pytest.mark.parametrize("name", R.EMBODIMENTS)
def test_expert_succeeds_random_does_not(name):
    for task in T.TASKS:
        expert, random = _traj(name, task, "expert"), _traj(name, task, "random")
        s_exp, s_rand = P.success_rate(expert), P.success_rate(random)
        assert s_exp >= EXPERT_MIN_SUCCESS, (name, task, s_exp)
        assert s_rand <= RANDOM_MAX_SUCCESS, (name, task, s_rand)
        # gold return ordering, on average and for most individual episodes
        g_exp, g_rand = expert["reward"].sum(1), random["reward"].sum(1)
        assert g_exp.mean() > g_rand.mean() + 10, (name, task, g_exp.mean(), g_rand.mean())
        assert (g_exp > np.median(g_rand)).mean() > 0.9


def _component_sums(robot, task, policy):
    rc = _traj(robot, task, policy)["reward_components"].sum(1)  # [E, C]
    return dict(zip(S.REWARD_COMPONENTS, rc.mean(0)))


def test_policies_span_every_axis_of_the_rubric():
    """The graded policies separate on each axis (measured on the Panda)."""
    exp = {t: _component_sums("panda", t, "expert") for t in T.TASKS}
    worse = {
        ("reach_avoid", "careless", "collision"),
        ("reach_avoid", "careless", "clearance"),
        ("reach_in_box", "expert_very_noisy", "collision"),
        ("reach", "jerky", "jerk"),
        ("reach", "expert_noisy", "jerk"),
        ("reach", "careless", "speed_violation"),
        ("reach", "random", "joint_limit"),
        ("reach", "timid", "time"),
        ("reach", "timid", "progress"),
        ("reach_hold", "careless", "success"),
        ("reach", "random", "energy"),
    }
    for task, policy, comp in worse:
        assert _component_sums("panda", task, policy)[comp] < exp[task][comp] - 1e-3, (
            task, policy, comp)
    # ... while the timid policy is the most economical one
    assert _component_sums("panda", "reach", "timid")["energy"] > exp["reach"]["energy"]
    # expert avoids what careless hits: far fewer collision steps
    assert exp["reach_avoid"]["collision"] > 0.3 * _component_sums(
        "panda", "reach_avoid", "careless")["collision"]


def test_expert_holds_still_in_reach_hold():
    tr = _traj("gen3", "reach_hold", "expert")
    speed = np.linalg.norm(tr["obs"]["eef_vel"][:, -10:], axis=-1)
    assert np.median(speed) < T.HOLD_SPEED


def test_custom_policy_callable():
    env = S.make_env("panda", "reach")

    def still(key, state):
        return jnp.zeros(env.action_dim)

    tr = P.rollout(env, still, jax.random.key(0), 2)
    q = np.asarray(tr["obs"]["state"])[..., :7]
    np.testing.assert_allclose(q, q[:, :1].repeat(50, 1), atol=1e-6)
    with pytest.raises(ValueError):
        P.make_policy("telepathic", env)
    with pytest.raises(ValueError):
        P.rollout(S.make_env("ur5", "reach"), P.make_policy("expert", env), jax.random.key(0), 2)
