"""The one rollout program: every rollout goes through it, and its batch and records are faithful."""
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.ppo import get_config
from rlhf_jax.data import policy_rollouts as PRo
from rlhf_jax.envs import policies as P
from rlhf_jax.envs import robots as R
from rlhf_jax.envs import simulator as S
from rlhf_jax.envs import unroll as U
from rlhf_jax.evaluation import policy_eval as PE
from rlhf_jax.evaluation import rollout_eval as RE
from rlhf_jax.features import feature_dim
from rlhf_jax.models.policy import GaussianPolicy
from rlhf_jax.envs.tasks import TASKS
from rlhf_jax.train import dagger, ppo
from rlhf_jax.train import ppo_rollout as PR

LIBRARY = pathlib.Path(U.__file__).resolve().parents[1]
ROBOT = R.ROBOTS["ur5"]
HORIZON, N_EP = 6, 3


class ReachedUnroll(Exception):
    """Raised by the instrumented unroll: the caller got there (no program is compiled)."""


@pytest.fixture
def unroll_calls(monkeypatch):
    """U.unroll replaced by a recorder that stops the caller there; the program cache emptied so
    every caller traces afresh."""
    calls = []

    def recorder(robot, policy_fn, state, xs, **kw):
        calls.append(robot.name)
        raise ReachedUnroll

    U.compiled.cache_clear()
    monkeypatch.setattr(U, "unroll", recorder)
    yield calls
    U.compiled.cache_clear()


@pytest.fixture(scope="module")
def policy():
    model = GaussianPolicy(num_tasks=len(TASKS), num_embodiments=len(R.EMBODIMENTS), hidden=(8,), context_dim=4)
    ids = jnp.zeros((1,), jnp.int32)
    return model, model.init(jax.random.key(0), jnp.zeros((1, feature_dim("joint"))), ids, ids)


def test_the_simulator_is_stepped_in_one_module_only():
    """Only the simulator (which defines it) and the unroll name step_state; the unroll has one scan."""
    stepping = sorted(str(p.relative_to(LIBRARY)) for p in LIBRARY.rglob("*.py")
                      if re.search(r"\bstep_state\b", p.read_text()))
    assert stepping == ["envs/simulator.py", "envs/unroll.py"]
    assert pathlib.Path(U.__file__).read_text().count("jax.lax.scan(") == 1


def test_every_rollout_in_the_library_goes_through_unroll(unroll_calls, policy):
    model, variables = policy
    key = jax.random.key(1)
    env = S.make_env("ur5", "reach", horizon=HORIZON)
    reached = {
        "dataset generation": lambda: P.rollout(env, P.make_policy("expert", env), key, N_EP),
        "policy evaluation": lambda: PE.evaluate_policy(model, variables, embodiments=("ur5",), tasks=("reach",),
                                                        n_episodes=N_EP, horizon=HORIZON),
        "expert evaluation": lambda: RE.episodes("panda", ("reach",), key, N_EP, horizon=HORIZON),
        "stage-2 rollouts": lambda: PRo.policy_episodes(model, variables, ("gen3",), ("reach",), (0.1,), N_EP, 0,
                                                        dt=0.05, horizon=HORIZON),
        "DAgger": lambda: dagger.relabelled_rollouts(model, variables, ("ur5",), ("reach",), N_EP, key, noise=0.1,
                                                     dt=0.05, horizon=HORIZON),
    }
    for name, call in reached.items():
        before = len(unroll_calls)
        with pytest.raises(ReachedUnroll):
            call()
        assert len(unroll_calls) == before + 1, name

    c = get_config("quick")
    c.ppo.num_envs, c.ppo.num_steps, c.model.hidden, c.ppo.value_hidden = 2, 3, (8,), (8,)
    ac = ppo.make_actor_critic(c)
    state = jax.eval_shape(ppo.make_init(c, ac, ppo.make_ppo_optimizer(c)), key, ppo.default_hparams(c))
    with pytest.raises(ReachedUnroll):
        jax.eval_shape(lambda s: ppo.collect_rollout(PR.make_ppo_env(c), ac, lambda *a: a[0][:, 0], s), state)
    assert unroll_calls[-1] == c.env.robot and len(unroll_calls) == len(reached) + 1


def scripted_unroll(robot, params, task, keys, uniforms, record=("obs", "action", "components", "state",
                                                                  "next_state")):
    """The scripted policy (params) unrolled on EnvState [B] from keys [B]; uniforms [T, B, 4, dof]."""
    policy = lambda u, s, obs: (jax.vmap(lambda ui, si: P.scripted_action_from_uniforms(robot, params, ui, si))(u, s),
                                {})
    return U.unroll(robot, policy, U.reset_batch(robot, jnp.int32(task), keys), uniforms, dt=0.05, horizon=HORIZON,
                    record=record)


@pytest.fixture(scope="module")
def noisy_batch():
    params = jnp.asarray([P.PRESETS["expert_noisy"][k] for k in P.PARAM_NAMES], jnp.float32)
    keys = jax.random.split(jax.random.key(2), N_EP)
    uniforms = jax.random.uniform(jax.random.key(3), (HORIZON, N_EP, P.N_UNIFORMS, ROBOT.dof), minval=1e-7)
    run = jax.jit(lambda k, u: scripted_unroll(ROBOT, params, 1, k, u))
    return run, keys, uniforms, jax.device_get(run(keys, uniforms))


def test_a_batch_of_episodes_equals_the_episodes_unrolled_one_by_one(noisy_batch):
    run, keys, uniforms, (final, traj) = noisy_batch
    assert traj["action"].shape == (HORIZON, N_EP, ROBOT.dof)
    for e in range(N_EP):
        one_final, one = jax.device_get(run(keys[e:e + 1], uniforms[:, e:e + 1]))
        for got, want in zip(jax.tree.leaves(one), jax.tree.leaves(jax.tree.map(lambda x: x[:, e:e + 1], traj))):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(one_final.q, final.q[e:e + 1], rtol=1e-5, atol=1e-5)
    # Different episodes really differ (the check above is not vacuous).
    assert not np.allclose(traj["action"][:, 0], traj["action"][:, 1])


def test_a_recorded_trajectory_replays_through_step_state(noisy_batch):
    _, _, _, (final, traj) = noisy_batch
    step = jax.jit(lambda s, a: S.step_state(ROBOT, 0.05, HORIZON, False, s, a))
    for e in range(N_EP):
        s = jax.tree.map(lambda x: x[0, e], traj["state"])
        for t in range(HORIZON):
            obs = S.observe_state(ROBOT, False, s)
            np.testing.assert_allclose(obs["state"], traj["obs"]["state"][t, e], rtol=1e-6, atol=1e-6)
            s, _, rc, done = step(s, traj["action"][t, e])
            np.testing.assert_allclose(rc, traj["components"][t, e], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(s.q, traj["next_state"].q[t, e], rtol=1e-6, atol=1e-6)
            assert bool(done) == (t == HORIZON - 1)
        np.testing.assert_allclose(s.q, final.q[e], rtol=1e-6, atol=1e-6)


def test_record_by_names_equals_record_by_function(noisy_batch):
    run, keys, uniforms, (_, traj) = noisy_batch
    params = jnp.asarray([P.PRESETS["expert_noisy"][k] for k in P.PARAM_NAMES], jnp.float32)
    by_fn = jax.jit(lambda k, u: scripted_unroll(ROBOT, params, 1, k, u, record=lambda tr: {
        "action": tr.action, "gold": S.gold_reward(tr.components)}))(keys, uniforms)[1]
    np.testing.assert_array_equal(by_fn["action"], traj["action"])
    # Summed inside vs outside the compiled scan: XLA may fuse the reduction differently (ulps).
    np.testing.assert_allclose(by_fn["gold"], S.gold_reward(traj["components"]), rtol=1e-6, atol=1e-7)
    with pytest.raises(KeyError, match="cannot record 'logp'"):
        jax.eval_shape(lambda k, u: scripted_unroll(ROBOT, params, 1, k, u, record=("logp",)), keys, uniforms)


def test_auto_reset_restarts_finished_episodes_from_the_reset_of_that_step():
    """Past the time limit each environment restarts from reset_fn(x_t); without it, t runs on."""
    keys = jax.random.split(jax.random.key(4), 2)
    steps = 2 * HORIZON + 1
    xs = jax.random.split(jax.random.key(5), steps)
    reset = lambda k: U.reset_batch(ROBOT, jnp.int32(0), jax.random.split(k, 2))
    zero = lambda x, s, obs: (jnp.zeros((2, ROBOT.dof)), {})
    _, with_reset = U.unroll(ROBOT, zero, U.reset_batch(ROBOT, jnp.int32(0), keys), xs, dt=0.05, horizon=HORIZON,
                             reset_fn=reset, record=("state", "done"))
    _, without = U.unroll(ROBOT, zero, U.reset_batch(ROBOT, jnp.int32(0), keys), xs, dt=0.05, horizon=HORIZON,
                          record=("state", "done"))
    t = np.arange(steps)
    np.testing.assert_array_equal(with_reset["state"].t, np.broadcast_to((t % HORIZON)[:, None], (steps, 2)))
    np.testing.assert_array_equal(without["state"].t, np.broadcast_to(t[:, None], (steps, 2)))
    np.testing.assert_array_equal(with_reset["done"], (t % HORIZON == HORIZON - 1)[:, None].repeat(2, 1))
    fresh = reset(xs[HORIZON - 1])  # the reset drawn at the step that hit the limit
    np.testing.assert_allclose(with_reset["state"].q[HORIZON], fresh.q, rtol=1e-6)  # compiled vs eager: ulps
    assert not np.allclose(with_reset["state"].q[HORIZON], without["state"].q[HORIZON], atol=1e-3)
