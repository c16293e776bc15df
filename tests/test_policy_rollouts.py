"""π_SFT rollouts for stage-2 data and DAgger: noise, speed and goal-shift behaviours, expert labels,
episodes, key derivation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhf_jax.data import policy_rollouts as PRo
from rlhf_jax.envs import policies as P
from rlhf_jax.envs import robots as R
from rlhf_jax.envs import simulator as S
from rlhf_jax.envs import tasks as T
from rlhf_jax.evaluation.policy_eval import rollout_components
from rlhf_jax.features import feature_dim, joint_features
from rlhf_jax.models.policy import MAX_DOF, GaussianPolicy, sample_action

ARM, TASKS, N_EP, HORIZON, DT = "ur5", ("reach", "reach_avoid"), 2, 6, 0.05


@pytest.fixture(scope="module")
def policy():
    model = GaussianPolicy(num_tasks=len(T.TASKS), num_embodiments=len(R.EMBODIMENTS), hidden=(8,), context_dim=4)
    ids = jnp.zeros((1,), jnp.int32)
    variables = model.init(jax.random.key(0), jnp.zeros((1, feature_dim("joint"))), ids, ids)
    # A larger output layer so the policy moves visibly (the default init keeps the mean near 0).
    variables = jax.tree_util.tree_map_with_path(
        lambda path, x: x * 30.0 if "mean" in jax.tree_util.keystr(path) else x, variables)
    return model, variables


def rollouts(policy, noise, seed=1, **behaviour):
    model, variables = policy
    return PRo.run_rollouts(model, variables, ARM, TASKS, N_EP, jax.random.key(seed), noise=noise, dt=DT,
                            horizon=HORIZON, **behaviour)


@pytest.fixture(scope="module")
def clean(policy):
    return rollouts(policy, 0.0)


@pytest.fixture(scope="module")
def noisy(policy):
    return rollouts(policy, 0.5)


def test_shapes_and_task_major_order(clean):
    n, dof = len(TASKS) * N_EP, R.ROBOTS[ARM].dof
    assert clean["action"].shape == clean["expert"].shape == (n, HORIZON, dof)
    assert clean["components"].shape == (n, HORIZON, len(S.REWARD_COMPONENTS))
    assert clean["obs"]["state"].shape == (n, HORIZON, 2 * dof)
    np.testing.assert_array_equal(clean["task_id"], np.repeat([T.task_id(t) for t in TASKS], N_EP))


def test_zero_noise_follows_the_deterministic_policy_evaluated_on_the_same_episodes(policy, clean):
    """Same key, same per-episode reset keys: the noiseless rollout is rollout_components' deterministic one."""
    model, variables = policy
    rc = rollout_components(model, variables, ARM, TASKS, jax.random.key(1), N_EP, dt=DT, horizon=HORIZON,
                            deterministic=True)
    np.testing.assert_allclose(clean["components"].reshape(rc.shape), rc, rtol=1e-5, atol=1e-6)


def test_noise_moves_the_path_but_not_the_initial_states(clean, noisy):
    np.testing.assert_array_equal(noisy["obs"]["state"][:, 0], clean["obs"]["state"][:, 0])
    assert not np.allclose(noisy["action"], clean["action"])
    qd_max = np.asarray(R.ROBOTS[ARM].qd_max, np.float32)
    assert np.all(np.abs(noisy["action"]) <= qd_max * (1 + 1e-6))  # clipped to the velocity box


def test_expert_labels_are_the_expert_at_the_visited_states(noisy):
    robot = R.ROBOTS[ARM]
    expert = {k: jnp.float32(v) for k, v in P.PRESETS["expert"].items()}
    qd_max = np.asarray(robot.qd_max, np.float32)
    label = jax.jit(lambda s: P.expert_velocity(robot, expert, s) / qd_max)
    for i in (0, len(TASKS) * N_EP - 1):
        for t in (0, HORIZON - 1):
            dof = robot.dof
            q, qd = noisy["obs"]["state"][i, t, :dof], noisy["obs"]["state"][i, t, dof:]
            reset = S.reset_state(robot, int(noisy["task_id"][i]), jax.random.key(0))
            state = reset._replace(q=jnp.asarray(q), qd=jnp.asarray(qd), eef_pos=jnp.asarray(noisy["obs"]["eef_pos"][i, t]),
                                   goal=jnp.asarray(noisy["obs"]["goal"][i, t]),
                                   obstacle=jnp.asarray(noisy["obs"]["obstacle"][i, t]),
                                   box=jnp.asarray(noisy["obs"]["box"][i, t]), t=jnp.int32(t))
            np.testing.assert_allclose(label(state), noisy["expert"][i, t], rtol=1e-4, atol=1e-5)
    assert np.abs(noisy["expert"]).max() <= P.PRESETS["expert"]["request_limit"] + 1e-5


def test_rollouts_are_deterministic_at_a_fixed_key(policy, noisy):
    again = rollouts(policy, 0.5)
    for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(noisy)):
        np.testing.assert_array_equal(a, b)
    other = rollouts(policy, 0.5, seed=2)
    assert not np.array_equal(other["obs"]["state"][:, 0], noisy["obs"]["state"][:, 0])


LEVELS, SEED = (0.0, 0.5), 3


def episodes(policy, behaviours):
    model, variables = policy
    return PRo.policy_episodes(model, variables, (ARM,), TASKS, behaviours, N_EP, SEED, dt=DT, horizon=HORIZON)


@pytest.fixture(scope="module")
def level_episodes(policy):
    return episodes(policy, LEVELS)


def test_policy_episodes_follow_the_dataset_schema(level_episodes):
    levels, eps = LEVELS, level_episodes
    assert len(eps) == len(levels) * len(TASKS) * N_EP
    assert [e["episode_metadata"]["policy"] for e in eps[::len(TASKS) * N_EP]] == ["sft@0", "sft@0.5"]
    rubric = S.rubric_vector()
    for e in eps:
        steps, meta = e["steps"], e["episode_metadata"]
        assert meta["source"] == "sim" and meta["embodiment"] == ARM and meta["task"] in TASKS
        np.testing.assert_allclose(steps["reward"], (steps["reward_components"] * rubric).sum(-1), rtol=1e-6)
        assert steps["is_first"][0] and steps["is_last"][-1] and steps["is_first"].sum() == steps["is_last"].sum() == 1
        assert steps["language_instruction"][0] == T.INSTRUCTIONS[meta["task"]]
    # Levels of one arm share the seed but not the keys: their initial states differ.
    first = [e["steps"]["observation"]["state"][0] for e in eps[::len(TASKS) * N_EP]]
    assert not np.array_equal(first[0], first[1])


# --- Behaviours: speed factor and goal shift -------------------------------------------------------


def assert_same_episodes(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a["episode_metadata"] == b["episode_metadata"]
        for x, y in zip(jax.tree.leaves(a["steps"]), jax.tree.leaves(b["steps"])):
            np.testing.assert_array_equal(x, y)


def test_noise_levels_and_noise_only_behaviours_give_identical_episodes(policy, level_episodes):
    as_behaviours = episodes(policy, [PRo.Behaviour(n) for n in LEVELS])
    assert_same_episodes(as_behaviours, level_episodes)
    assert [PRo.Behaviour(n, speed=1.0, goal_shift=0.0).name for n in LEVELS] == ["sft@0", "sft@0.5"]
    assert [PRo.policy_name(n) for n in LEVELS] == ["sft@0", "sft@0.5"]


def test_behaviour_names_and_checks():
    B = PRo.Behaviour
    assert B(0.05).name == PRo.policy_name(0.05) == "sft@0.05"
    assert B(0.05, speed=0.5).name == "sft@0.05,speed=0.5"
    assert B(0.05, goal_shift=0.1).name == "sft@0.05,goal=0.1"
    assert B(0.05, speed=2, goal_shift=0.1).name == "sft@0.05,speed=2,goal=0.1"
    assert PRo.as_behaviour(0.2) == B(0.2) and PRo.as_behaviour(B(0.2, 0.5)) == B(0.2, 0.5)
    for bad in ({"speed": 0.0}, {"speed": -1.0}, {"goal_shift": -0.1}, {"speed": float("nan")}):
        with pytest.raises(ValueError):
            B(0.1, **bad)
    with pytest.raises(ValueError, match="distinct"):  # their episode ids would collide
        PRo.policy_episodes(None, None, (ARM,), TASKS, (0.5, B(0.5)), N_EP, 0, dt=DT, horizon=HORIZON)


def test_combined_behaviours_are_named_and_keyed_by_their_position(policy):
    model, variables = policy
    both = PRo.Behaviour(0.5, speed=0.5, goal_shift=0.2)
    eps = episodes(policy, (0.0, both))
    n = len(TASKS) * N_EP
    assert [e["episode_metadata"]["policy"] for e in eps[::n]] == ["sft@0", "sft@0.5,speed=0.5,goal=0.2"]
    assert eps[n]["episode_metadata"]["episode_id"] == f"{ARM}-{TASKS[0]}-sft@0.5,speed=0.5,goal=0.2-00000"
    key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(SEED), R.EMBODIMENTS.index(ARM)), 1)
    out = PRo.run_rollouts(model, variables, ARM, TASKS, N_EP, key, noise=0.5, speed=0.5, goal_shift=0.2, dt=DT,
                           horizon=HORIZON)
    np.testing.assert_array_equal(np.stack([e["steps"]["action"] for e in eps[n:]]), out["action"])


def test_speed_scales_the_executed_action_and_slows_the_flange(policy, clean):
    qd_max = np.asarray(R.ROBOTS[ARM].qd_max, np.float32)
    path = lambda out: np.linalg.norm(np.diff(out["obs"]["eef_pos"], axis=1), axis=-1).sum(1)  # [E] metres
    for speed in (0.5, 2.0):
        out = rollouts(policy, 0.0, speed=speed)
        np.testing.assert_array_equal(out["obs"]["state"][:, 0], clean["obs"]["state"][:, 0])
        want = np.clip(speed * clean["action"][:, 0] / qd_max, -1.0, 1.0) * qd_max
        np.testing.assert_allclose(out["action"][:, 0], want, rtol=1e-5, atol=1e-6)
        assert np.all(np.abs(out["action"]) <= qd_max * (1 + 1e-6))
        if speed < 1:
            assert np.all(path(out) < path(clean)), (path(out), path(clean))


def policy_actions(policy, out, shifts):
    """The deterministic policy's action / qd_max at every recorded step [E, T, dof], seeing each
    episode's goal moved by shifts [E, 3]."""
    model, variables = policy
    dof, emb = R.ROBOTS[ARM].dof, jnp.int32(R.EMBODIMENTS.index(ARM))
    mask = jnp.arange(MAX_DOF) < dof

    def one(obs, task, shift):
        obs = {**obs, "goal": obs["goal"] + shift}
        mean, log_std = model.apply(variables, joint_features(obs, dof), task, emb)
        return sample_action(None, mean, log_std, mask, squash=model.squash, deterministic=True)[:dof]

    per_step = jax.vmap(one, in_axes=(0, None, None))  # over T
    return np.asarray(jax.jit(jax.vmap(per_step))(out["obs"], jnp.asarray(out["task_id"]), jnp.asarray(shifts)))


def test_goal_shift_moves_the_goal_the_policy_sees_not_the_environment(policy, clean):
    qd_max = np.asarray(R.ROBOTS[ARM].qd_max, np.float32)
    g = 0.3
    shifted = rollouts(policy, 0.0, goal_shift=g)
    # The environment is unchanged: same initial states, and the recorded goal is the true one.
    np.testing.assert_array_equal(shifted["obs"]["state"][:, 0], clean["obs"]["state"][:, 0])
    np.testing.assert_array_equal(shifted["obs"]["goal"], clean["obs"]["goal"])
    assert not np.allclose(shifted["action"], clean["action"], atol=1e-3)
    # The policy acted on goal + g·d, d a unit direction per episode from the episode's key.
    dirs = np.asarray(PRo.goal_directions(jax.random.split(jax.random.key(1), len(clean["task_id"]))))
    np.testing.assert_allclose(np.linalg.norm(dirs, axis=-1), 1.0, rtol=1e-6)
    assert not np.allclose(dirs[0], dirs[1])
    np.testing.assert_allclose(shifted["action"], policy_actions(policy, shifted, g * dirs) * qd_max,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(clean["action"], policy_actions(policy, clean, 0 * dirs) * qd_max,
                               rtol=1e-5, atol=1e-5)


def test_zero_goal_shift_and_unit_speed_are_the_plain_run_exactly(policy, noisy):
    """Given explicitly, speed 1 and goal shift 0 are the noise-only run bit for bit (the noiseless
    one is checked against an independent program above); any goal shift moves the actions."""
    same = rollouts(policy, 0.5, speed=1.0, goal_shift=0.0)
    for a, b in zip(jax.tree.leaves(same), jax.tree.leaves(noisy)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(rollouts(policy, 0.5, goal_shift=0.05)["action"], noisy["action"])
