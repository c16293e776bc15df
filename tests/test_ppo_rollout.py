"""PPO's environment side on its own: rollout shapes and auto-reset, statistics, value inputs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.ppo import get_config
from rlhf_jax.envs import simulator as S
from rlhf_jax.envs.constraints import CONSTRAINTS
from rlhf_jax.models.policy import MAX_DOF
from rlhf_jax.train import ppo
from rlhf_jax.train import ppo_rollout as PR
from rlhf_jax.models.reward_inference import gold_reward_fn

T_STEPS, N_ENVS, HORIZON = 12, 4, 5


def tiny_config():
    c = get_config("quick")
    c.env.horizon, c.env.tasks = HORIZON, ("reach", "reach_avoid")
    c.ppo.num_envs, c.ppo.num_steps, c.ppo.num_minibatches = N_ENVS, T_STEPS, 2
    c.model.hidden = c.ppo.value_hidden = (16, 16)
    return c


@pytest.fixture(scope="module")
def rolled():
    c = tiny_config()
    model = ppo.make_actor_critic(c)
    state = jax.jit(ppo.make_init(c, model, ppo.make_ppo_optimizer(c)))(jax.random.key(0), ppo.default_hparams(c))
    env = PR.make_ppo_env(c)
    proxy = lambda obs, act, task, emb, rc: obs[:, 0] + 10.0 * act[:, 1] + task + 100.0 * emb
    ref = {"params": state.ref_params, "norm": state.norm}

    @jax.jit
    def run(state):
        return PR.rollout(env, model.policy, proxy, ppo.policy_variables(state), ref, state.env, jax.random.key(3))

    final, traj = jax.device_get(run(state))
    return env, jax.device_get(state), final, traj


def test_rollout_shapes(rolled):
    env, _, final, traj = rolled
    want = {"feats": (PR.OBS_DIM,), "next_feats": (PR.OBS_DIM,), "t": (), "action": (MAX_DOF,), "logp": (),
            "ref_logp": (), "proxy": (), "gold": (), "rc": (len(S.REWARD_COMPONENTS),), "done": (),
            "viol": (len(CONSTRAINTS),)}
    assert {k: v.shape for k, v in traj.items()} == {k: (T_STEPS, N_ENVS) + s for k, s in want.items()}
    assert final.q.shape == (N_ENVS, env.robot.dof)
    # Actions past the robot's joints are masked; the rest lie in the squashed box.
    assert np.all(traj["action"][..., env.robot.dof:] == 0) and np.all(np.abs(traj["action"]) < 1)


def test_rollout_auto_resets_at_the_time_limit(rolled):
    _, _, final, traj = rolled
    t = np.arange(T_STEPS) % HORIZON
    np.testing.assert_array_equal(traj["t"], np.broadcast_to(t[:, None], (T_STEPS, N_ENVS)))
    np.testing.assert_array_equal(traj["done"], traj["t"] == HORIZON - 1)
    np.testing.assert_array_equal(final.t, T_STEPS % HORIZON)
    # Inside an episode the next step starts where this one ended; after the cut it starts from
    # a fresh reset, while next_feats keeps the real final observation (for the bootstrap).
    same = np.all(traj["next_feats"][:-1] == traj["feats"][1:], axis=-1)
    np.testing.assert_array_equal(same, ~traj["done"][:-1])


def test_rollout_rewards_and_reference(rolled):
    env, _, _, traj = rolled
    act_rad = traj["action"] * np.asarray(env.qd_max)
    task = np.asarray(env.task_ids)[None]
    np.testing.assert_allclose(traj["proxy"], traj["feats"][..., 0] + 10.0 * act_rad[..., 1] + task
                               + 100.0 * env.emb_id, rtol=1e-5)
    np.testing.assert_allclose(traj["gold"], traj["rc"] @ np.asarray(env.rubric_w), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(env.task_ids), [0, 1, 0, 1])  # tasks cycle over the envs
    # π starts as π_ref (from scratch, π_ref is the initial policy): equal log-probs.
    np.testing.assert_allclose(traj["logp"], traj["ref_logp"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(traj["viol"][..., CONSTRAINTS.index("speed")],
                                  np.any(np.abs(traj["action"]) > 0.8 + 1e-6, axis=-1))


def test_gold_reward_fn_is_the_rubric_total(rolled):
    env, _, _, traj = rolled
    out = gold_reward_fn()(None, None, None, None, jnp.asarray(traj["rc"][0]))
    np.testing.assert_allclose(out, traj["gold"][0], rtol=1e-6)


def test_merge_stats_equals_statistics_of_all_rows():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 2.0, (40, 3)), rng.normal(-1.0, 0.5, (25, 3))
    count, mean, var = PR.merge_stats(*PR.merge_stats(0.0, np.zeros(3), np.ones(3), a), b)
    both = np.concatenate([a, b])
    assert count == 65
    np.testing.assert_allclose(mean, both.mean(0), rtol=1e-6)
    np.testing.assert_allclose(var, both.var(0), rtol=1e-6)


def test_value_inputs_layout():
    env = PR.make_ppo_env(tiny_config())
    feats = jnp.full((T_STEPS, N_ENVS, PR.OBS_DIM), 3.0)
    t = jnp.broadcast_to(jnp.arange(T_STEPS)[:, None] % HORIZON, (T_STEPS, N_ENVS))
    x = np.asarray(PR.value_inputs(env, jnp.ones(PR.OBS_DIM), jnp.full(PR.OBS_DIM, 4.0), feats, t))
    assert x.shape == (T_STEPS, N_ENVS, PR.VALUE_IN_DIM)
    np.testing.assert_allclose(x[..., :PR.OBS_DIM], (3.0 - 1.0) / np.sqrt(4.0 + 1e-6), rtol=1e-6)
    np.testing.assert_allclose(x[..., PR.OBS_DIM], np.asarray(t) / HORIZON)
    np.testing.assert_array_equal(x[0, :, PR.OBS_DIM + 1:].argmax(-1), [0, 1, 0, 1])
