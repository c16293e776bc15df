"""π_SFT rollouts for stage-2 data and DAgger: noise, expert labels, episodes, key derivation."""
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
from rlhf_jax.features import feature_dim
from rlhf_jax.models.policy import GaussianPolicy

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


def rollouts(policy, noise, seed=1):
    model, variables = policy
    return PRo.run_rollouts(model, variables, ARM, TASKS, N_EP, jax.random.key(seed), noise=noise, dt=DT,
                            horizon=HORIZON)


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


def test_policy_episodes_follow_the_dataset_schema(policy):
    model, variables = policy
    levels = (0.0, 0.5)
    eps = PRo.policy_episodes(model, variables, (ARM,), TASKS, levels, N_EP, 3, dt=DT, horizon=HORIZON)
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
