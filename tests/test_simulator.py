"""Simulator: limits, vmap/loop equivalence, task geometry, reward-component signs, image."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhf_jax.envs import policies as P
from rlhf_jax.envs import robots as R
from rlhf_jax.envs import simulator as S
from rlhf_jax.envs import tasks as T

N_EP = 32  # same episode count as tests/test_policies.py, so the compiled rollouts are shared
STEPS = 12
B = 64  # one batch size everywhere, so each compiled function is compiled once


@functools.lru_cache(maxsize=None)
def _fns(name):
    """Compiled once per arm and shared: batched reset with the task id as data, single and
    batched step (the task id also lives in the state, so these serve every task)."""
    robot = R.ROBOTS[name]
    reset = jax.jit(jax.vmap(lambda task, key: S.reset_state(robot, task, key), (None, 0)))
    step = functools.partial(S.step_state, robot, 0.05, 50, False)
    return reset, jax.jit(step), jax.jit(jax.vmap(step))


def _first_state(name, task):
    keys = jax.random.split(jax.random.key(0), B)
    return jax.tree.map(lambda x: x[0], _fns(name)[0](jnp.int32(task), keys))


@pytest.mark.parametrize("name", R.EMBODIMENTS)
def test_joint_and_velocity_limits_hold_under_huge_actions(name):
    robot = R.ROBOTS[name]
    reset, _, batched_step = _fns(name)
    s = reset(jnp.int32(1), jax.random.split(jax.random.key(0), B))
    # per env: actions uniform in +-scale * qd_max; step 3 requests NaN and step 4 +inf
    scale = np.resize([0.5, 3.0, 1e6, 1e30], B)[:, None] * robot.qd_max
    rng = np.random.default_rng(0)
    qs, qds, rcs = [], [], []
    for t in range(STEPS):
        a = scale * rng.uniform(-1, 1, (B, robot.dof))
        a = np.full_like(a, np.nan) if t == 3 else np.full_like(a, np.inf) if t == 4 else a
        s, _, rc, _ = batched_step(s, jnp.asarray(a, jnp.float32))
        qs.append(s.q), qds.append(s.qd), rcs.append(rc)
    q, qd, rc = (np.stack([np.asarray(x) for x in v], 1) for v in (qs, qds, rcs))
    assert np.isfinite(q).all() and np.isfinite(qd).all() and np.isfinite(rc).all()
    assert (q >= robot.q_min - 1e-5).all() and (q <= robot.q_max + 1e-5).all()
    assert (np.abs(qd) <= robot.qd_max * (1 + 1e-4) + 1e-4).all()
    speed = rc[..., S.REWARD_COMPONENTS.index("speed_violation")]
    assert (speed <= 0).all()
    assert (speed[2::4] < 0).all() and (speed[3::4] < 0).all()  # huge requests are charged ...
    assert (speed[:, 3] < 0).all() and (speed[:, 4] < 0).all()  # ... and so are NaN / inf
    assert speed[0::4][:, [0, 1, 2, 5]].max() == 0.0  # requests within the limits are free


def test_vmapped_step_equals_loop():
    reset, step, batched_step = _fns("panda")
    states = reset(jnp.int32(1), jax.random.split(jax.random.key(1), B))
    # mix tasks inside one batch: the task id is data
    states = states._replace(task=jnp.arange(B, dtype=jnp.int32) % len(T.TASKS))
    actions = jax.random.normal(jax.random.key(2), (B, 7))
    batched = batched_step(states, actions)
    for i in range(4):
        single = step(jax.tree.map(lambda x: x[i], states), actions[i])
        for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(batched)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b)[i], rtol=1e-5, atol=1e-6)


def test_env_api_and_observation_shapes():
    env = S.make_env("panda", "reach")
    assert env.action_dim == env.robot.dof == 7 and env.horizon == 50 and env.dt == 0.05
    assert env.instruction == T.INSTRUCTIONS["reach"] and env.embodiment_id == 0
    step = _fns("panda")[1]
    s = _first_state("panda", env.task_id)
    s2, obs, rc, done = step(s, jnp.zeros(7))
    shapes = {k: v.shape for k, v in obs.items()}
    assert shapes == {"state": (14,), "eef_pos": (3,), "eef_vel": (3,), "gripper": (1,),
                      "goal": (3,), "obstacle": (4,), "box": (6,)}
    assert rc.shape == (len(S.REWARD_COMPONENTS),) and not bool(done) and int(s2.t) == 1
    with pytest.raises(ValueError):
        S.make_env("kuka", "reach")
    with pytest.raises(ValueError):
        S.make_env("panda", "fly")


@pytest.mark.parametrize("task", T.TASKS)
def test_task_geometry(task):
    reset = _fns("ur5")[0]
    s = [reset(jnp.int32(T.task_id(task)), k) for k in jax.random.split(jax.random.key(3), (4, B))]
    s = jax.tree.map(lambda *x: np.concatenate(x), *s)
    goal, start, obst, box = (np.asarray(x) for x in (s.goal, s.eef_pos, s.obstacle, s.box))
    assert (goal >= T.WORKSPACE[0] - 1e-6).all() and (goal <= T.WORKSPACE[1] + 1e-6).all()
    assert (np.linalg.norm(goal - start, axis=1) >= T.MIN_GOAL_DIST - 1e-6).mean() > 0.99
    if task == "reach_avoid":
        # the straight path passes through the sphere; start and goal are clear of it
        seg = goal - start
        t = np.clip(((obst[:, :3] - start) * seg).sum(1) / (seg * seg).sum(1), 0, 1)
        closest = start + t[:, None] * seg
        assert (np.linalg.norm(closest - obst[:, :3], axis=1) < obst[:, 3]).all()
        assert (np.linalg.norm(goal - obst[:, :3], axis=1) > obst[:, 3] + 0.05).all()
        assert (np.linalg.norm(start - obst[:, :3], axis=1) > obst[:, 3] + 0.05).all()
    else:
        np.testing.assert_array_equal(obst, np.broadcast_to(T.PARKED_OBSTACLE, obst.shape))
    if task == "reach_in_box":
        for p in (start, goal):
            assert (p > box[:, :3] + T.BOX_MARGIN[0] - 1e-6).all()
            assert (p < box[:, 3:] - T.BOX_MARGIN[0] + 1e-6).all()
    else:
        np.testing.assert_array_equal(box, np.broadcast_to(T.OPEN_BOX, box.shape))


def test_rubric_contract():
    assert S.REWARD_COMPONENTS == ("progress", "success", "collision", "clearance",
                                   "joint_limit", "speed_violation", "jerk", "time", "energy")
    assert set(S.DEFAULT_RUBRIC) == set(S.REWARD_COMPONENTS)
    assert all(w >= 0 for w in S.DEFAULT_RUBRIC.values())
    rc = jnp.ones((2, 3, len(S.REWARD_COMPONENTS)))
    np.testing.assert_allclose(np.asarray(S.gold_reward(rc)), sum(S.DEFAULT_RUBRIC.values()),
                               rtol=1e-6)


@pytest.mark.parametrize("task", T.TASKS)
def test_reward_components_finite_with_documented_signs(task):
    env = S.make_env("panda", task)
    idx = {c: i for i, c in enumerate(S.REWARD_COMPONENTS)}
    for name in ("expert", "random", "careless"):
        traj = P.rollout(env, P.make_policy(name, env), jax.random.key(0), N_EP)
        rc = np.asarray(traj["reward_components"])
        assert rc.shape == (N_EP, env.horizon, len(S.REWARD_COMPONENTS))
        assert np.isfinite(rc).all()
        for c in ("collision", "clearance", "joint_limit", "speed_violation", "jerk", "energy"):
            assert (rc[..., idx[c]] <= 0).all(), c
        assert np.isin(rc[..., idx["success"]], [0.0, 1.0]).all()
        assert np.isin(rc[..., idx["time"]], [0.0, -1.0]).all()
        assert np.isin(rc[..., idx["collision"]], [0.0, -1.0]).all()
        # time is -1 exactly until the first success
        first = np.where(rc[..., idx["success"]].any(1), rc[..., idx["success"]].argmax(1), 50)
        np.testing.assert_array_equal(-rc[..., idx["time"]].sum(1), first)
        # progress telescopes to the total decrease of the flange-goal distance
        # (obs holds the pre-action observation, so the last step's result is not in obs)
        obs = traj["obs"]
        d = np.linalg.norm(np.asarray(obs["eef_pos"]) - np.asarray(obs["goal"]), axis=-1)
        np.testing.assert_allclose(rc[:, :-1, idx["progress"]].sum(1), d[:, 0] - d[:, -1],
                                   atol=1e-4)
        np.testing.assert_allclose(np.asarray(traj["reward"]), rc @ S.rubric_vector(), rtol=1e-5,
                                   atol=1e-5)


def test_reward_components_react_to_behaviour():
    """Each safety/smoothness component is exactly 0 for a standing arm and negative for some
    behaviour policy on some task (so every axis of the rubric is exercised)."""
    idx = {c: i for i, c in enumerate(S.REWARD_COMPONENTS)}
    worst = {c: 0.0 for c in S.REWARD_COMPONENTS}
    for task in ("reach_avoid", "reach_in_box"):
        env = S.make_env("panda", task)
        for name in ("careless", "jerky", "random"):
            rc = np.asarray(P.rollout(env, P.make_policy(name, env), jax.random.key(0),
                                      N_EP)["reward_components"])
            for c, i in idx.items():
                worst[c] = min(worst[c], rc[..., i].sum(1).min())
    for c in ("collision", "clearance", "speed_violation", "jerk", "time", "energy"):
        assert worst[c] < 0, c
    step = _fns("panda")[1]
    s = _first_state("panda", 0)
    rc = np.asarray(step(s, jnp.zeros(7))[2])
    for c in ("collision", "clearance", "joint_limit", "speed_violation", "jerk", "energy"):
        assert rc[idx[c]] == 0.0, c
    assert rc[idx["time"]] == -1.0 and rc[idx["progress"]] == 0.0


def test_joint_limit_penalty_near_limits():
    step = _fns("panda")[1]
    s = _first_state("panda", 0)
    s = s._replace(q=jnp.asarray(R.ROBOTS["panda"].q_max, jnp.float32) - 0.01)
    _, _, rc, _ = step(s, jnp.zeros(7))
    assert float(rc[S.REWARD_COMPONENTS.index("joint_limit")]) < -1.0


def test_image_observation():
    env = S.make_env("gen3", "reach_avoid", image=True)
    img = np.asarray(jax.jit(lambda k: env.observe(env.reset(k)))(jax.random.key(4))["image"])
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    green = (img[..., 1] > 150) & (img[..., 0] < 100) & (img[..., 2] < 120)
    blue = (img[..., 2] > 150) & (img[..., 0] < 120)
    red = (img[..., 0] > 180) & (img[..., 1] < 80)
    assert green.sum() >= 3 and blue.sum() >= 5 and red.sum() >= 3
