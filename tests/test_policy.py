"""Gaussian policy: squashed log-probabilities, padding of smaller arms, shapes and sampling."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhf_jax.models.policy import (MAX_DOF, GaussianPolicy, action_log_prob, embodiment_tables,
                                    log_one_minus_tanh_sq, normalize_actions, policy_log_prob,
                                    sample_action, segment_log_prob)
from rlhf_jax.train.sft import init_policy_variables

D = 5
# Jitted once per shape: eager Flax dispatch op by op is what makes small tests slow.
log_prob_fn = jax.jit(policy_log_prob, static_argnums=0)
segment_fn = jax.jit(segment_log_prob, static_argnums=0)
apply_fn = jax.jit(lambda model, *args: model.apply(*args), static_argnums=0)


@pytest.fixture(scope="module")
def policy():
    model = GaussianPolicy(num_tasks=4, num_embodiments=3, hidden=(16,), context_dim=4)
    variables = init_policy_variables(model, jax.random.PRNGKey(0), D, np.full(D, 0.5), np.full(D, 2.0))
    return model, variables


def test_stable_log_det_matches_naive_form_and_stays_finite():
    u = jnp.linspace(-4.0, 4.0, 41)
    np.testing.assert_allclose(log_one_minus_tanh_sq(u), jnp.log(1 - jnp.tanh(u) ** 2), rtol=1e-4, atol=1e-5)
    big = log_one_minus_tanh_sq(jnp.array([-40.0, 40.0]))
    assert np.all(np.isfinite(big))  # the naive form is log(0) = -inf here
    np.testing.assert_allclose(big, 2 * np.log(2) - 80.0, rtol=1e-6)


def test_squashed_log_prob_is_change_of_variables():
    mean, log_std = jnp.array([0.3]), jnp.array([-0.4])
    # p_a(a) = p_u(u) / |d tanh(u)/du| with the Jacobian by central finite differences.
    u = np.linspace(-2.5, 2.5, 11)
    h = 1e-4
    jac = (np.tanh(u + h) - np.tanh(u - h)) / (2 * h)
    sigma = np.exp(-0.4)
    p_u = np.exp(-0.5 * ((u - 0.3) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    expect = np.log(p_u / jac)
    lp = jax.jit(jax.vmap(lambda a: action_log_prob(mean, log_std, a[None], jnp.ones(1), squash=True)))
    got = lp(jnp.tanh(u))
    np.testing.assert_allclose(got, expect, rtol=1e-4, atol=1e-4)
    # ... and the density integrates to 1 over (-1, 1) (midpoint rule in u-space keeps it fine).
    a = jnp.tanh(jnp.linspace(-6, 6, 20001))
    dens = jnp.exp(lp(a))
    assert abs(float(jnp.trapezoid(dens, a)) - 1.0) < 1e-3


def test_padded_dims_do_not_change_log_prob(policy):
    model, variables = policy
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(3, D)).astype(np.float32)
    act = rng.uniform(-0.9, 0.9, size=(3, MAX_DOF)).astype(np.float32)
    task, emb = np.array([0, 1, 2]), np.array([1, 1, 1])
    mask = np.ones((3, MAX_DOF), np.float32)
    mask[:, 6] = 0.0  # a 6-joint arm
    base = log_prob_fn(model, variables, obs, act, task, emb, mask)
    junk = act.copy()
    junk[:, 6] = [0.999999, np.inf, np.nan]  # anything in the padded slot, even non-finite
    np.testing.assert_array_equal(log_prob_fn(model, variables, obs, junk, task, emb, mask), base)
    # Same as computing over the 6 real joints alone.
    mean, log_std = apply_fn(model, variables, obs, task, emb)
    six = action_log_prob(mean[:, :6], log_std[:, :6], act[:, :6], np.ones((3, 6)), squash=True)
    np.testing.assert_allclose(base, six, rtol=1e-6)


def test_segment_log_prob_sums_valid_steps_and_broadcasts_ids(policy):
    model, variables = policy
    rng = np.random.default_rng(2)
    obs = rng.normal(size=(2, 4, D)).astype(np.float32)
    act = rng.uniform(-0.9, 0.9, size=(2, 4, MAX_DOF)).astype(np.float32)
    task, emb, mask = np.array([3, 0]), np.array([0, 1]), np.ones((2, MAX_DOF), np.float32)
    steps = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], np.float32)
    seg = segment_fn(model, variables, obs, act, task, emb, mask, steps)
    per_step = log_prob_fn(model, variables, obs, act, np.repeat(task[:, None], 4, 1),
                               np.repeat(emb[:, None], 4, 1), mask[:, None, :])
    np.testing.assert_allclose(seg, [per_step[0].sum(), per_step[1, :2].sum()], rtol=1e-5)


def test_sampling_respects_bounds_and_mask(policy):
    model, variables = policy
    mean, log_std = apply_fn(model, variables, jnp.zeros((64, D)), jnp.zeros(64, jnp.int32), jnp.ones(64, jnp.int32))
    assert mean.shape == log_std.shape == (64, MAX_DOF)
    assert np.all(log_std >= model.log_std_min) and np.all(log_std <= model.log_std_max)
    mask = jnp.array([1.0] * 6 + [0.0])
    a = sample_action(jax.random.PRNGKey(0), mean, log_std + 2.0, mask, squash=True)
    # float32 tanh rounds to exactly ±1 far out; log-probs clip there (action_clip).
    assert np.all(np.abs(a) <= 1.0) and np.all(a[:, 6] == 0.0)


def test_actions_normalised_by_velocity_limits():
    qd_max, mask = embodiment_tables()
    from rlhf_jax.envs.robots import EMBODIMENTS, ROBOTS
    for i, name in enumerate(EMBODIMENTS):
        dof = ROBOTS[name].dof
        assert mask[i].sum() == dof
        act = np.zeros((2, 3, MAX_DOF), np.float32)
        act[..., :dof] = ROBOTS[name].qd_max  # at the velocity limit on every joint
        out = normalize_actions(act, np.array([i, i]))
        np.testing.assert_allclose(out[..., :dof], 1.0, rtol=1e-6)
        np.testing.assert_array_equal(out[..., dof:], 0.0)


def test_rollout_features_match_dataset_features():
    """The features a policy sees in the simulator are the ones it was trained on."""
    from rlhf_jax.preferences.segments import episode_features
    from rlhf_jax.features import joint_features

    rng = np.random.default_rng(3)
    dof, t = 6, 4
    obs = {"state": rng.normal(size=(t, 2 * dof)), "eef_pos": rng.normal(size=(t, 3)),
           "eef_vel": rng.normal(size=(t, 3)), "gripper": np.zeros((t, 1)), "goal": rng.normal(size=(t, 3)),
           "obstacle": rng.normal(size=(t, 4)), "box": rng.normal(size=(t, 6))}
    obs = {k: v.astype(np.float32) for k, v in obs.items()}
    episode = {"steps": {"observation": obs, "action": np.zeros((t, dof), np.float32)},
               "episode_metadata": {"dof": dof}}
    expect, _ = episode_features(episode, "joint", 0.05)
    np.testing.assert_array_equal(np.asarray(joint_features(obs, dof)), expect)


def test_episode_metrics_from_components():
    from rlhf_jax.envs.simulator import REWARD_COMPONENTS, rubric_vector
    from rlhf_jax.evaluation.policy_eval import episode_metrics

    c = {n: i for i, n in enumerate(REWARD_COMPONENTS)}
    rc = np.zeros((2, 5, len(REWARD_COMPONENTS)), np.float32)
    rc[0, 3:, c["success"]] = 1.0  # episode 0 succeeds and holds to the end
    rc[1, 2, c["success"]] = 1.0  # episode 1 touches the goal once, then leaves
    rc[1, 1, c["collision"]] = -1.0
    rc[:, :, c["progress"]] = 0.01
    m = episode_metrics(rc)
    assert m["success_rate"] == 0.5 and m["ever_success_rate"] == 1.0
    assert m["violations/collision_steps"] == 0.5 and m["violations/any_rate"] == 0.5
    np.testing.assert_allclose(m["gold/progress"], 0.05, rtol=1e-5)
    np.testing.assert_allclose(m["gold_return"], np.mean(rc.sum(1) @ rubric_vector()), rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_std_floor_bounds_sigma_and_leaves_the_mean(policy, seed):
    """The fine-tuning floor: log σ = max(log σ without it, floor), the mean untouched; None = no floor."""
    import dataclasses

    model, variables = policy
    obs = jax.random.normal(jax.random.PRNGKey(seed), (32, D)) * 3
    task, emb = jnp.zeros((32,), jnp.int32), jnp.ones((32,), jnp.int32)
    mean, log_std = apply_fn(model, variables, obs, task, emb)
    floor = float(np.median(np.asarray(log_std)))  # half the entries sit below it
    floored = dataclasses.replace(model, log_std_floor=floor)
    mean_f, log_std_f = apply_fn(floored, variables, obs, task, emb)
    np.testing.assert_array_equal(np.asarray(mean_f), np.asarray(mean))
    np.testing.assert_array_equal(np.asarray(log_std_f), np.maximum(np.asarray(log_std), np.float32(floor)))
    assert (np.asarray(log_std) < floor).any()
    unset = dataclasses.replace(model, log_std_floor=None)
    np.testing.assert_array_equal(np.asarray(apply_fn(unset, variables, obs, task, emb)[1]), np.asarray(log_std))
