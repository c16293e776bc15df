"""Per-episode evaluation: the expert, a policy against a reference, a learned reward's proxy."""
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhf_jax.ensemble import init_ensemble
from rlhf_jax.envs import policies as P
from rlhf_jax.envs import robots as R
from rlhf_jax.envs import simulator as S
from rlhf_jax.envs import tasks as T
from rlhf_jax.evaluation import rollout_eval as RE
from rlhf_jax.evaluation.policy_eval import episode_metrics, evaluate_policy, rollout_components
from rlhf_jax.features import feature_dim
from rlhf_jax.losses import kl as K
from rlhf_jax.models.policy import MAX_DOF, GaussianPolicy
from rlhf_jax.models.reward import MarkovianReward

ARM, N_EP, HORIZON = "panda", 3, 6
D = feature_dim("joint")


def make_policy(seed):
    model = GaussianPolicy(num_tasks=len(T.TASKS), num_embodiments=len(R.EMBODIMENTS), hidden=(8,), context_dim=4)
    ids = jnp.zeros((1,), jnp.int32)
    return model, model.init(jax.random.key(seed), jnp.zeros((1, D)), ids, ids)


def reward_model(scale):
    """A duck-typed loaded reward model: what ``episodes`` reads of a RewardModel."""
    model = MarkovianReward(num_tasks=len(T.TASKS), num_embodiments=len(R.EMBODIMENTS), hidden=(8,))
    ids = jnp.zeros((1,), jnp.int32)
    variables = init_ensemble(model, jax.random.split(jax.random.key(7), 2), jnp.zeros((1, 1, D)),
                              jnp.zeros((1, 1, MAX_DOF)), ids, ids)
    return types.SimpleNamespace(model=model, stacked_variables=variables, aggregation="mean", lam=1.0,
                                 scale=float(scale))


def test_gaussian_kl_closed_form_mask_and_self():
    k = jax.random.split(jax.random.key(0), 4)
    mp, mq = jax.random.normal(k[0], (5, 4)), jax.random.normal(k[1], (5, 4))
    sp, sq = 0.3 * jax.random.normal(k[2], (5, 4)), 0.3 * jax.random.normal(k[3], (5, 4))
    vp, vq = np.exp(2 * np.asarray(sp, np.float64)), np.exp(2 * np.asarray(sq, np.float64))
    want = (np.asarray(sq) - np.asarray(sp) + (vp + (np.asarray(mp) - np.asarray(mq)) ** 2) / (2 * vq) - 0.5)
    np.testing.assert_allclose(K.gaussian_kl(mp, sp, mq, sq), want.sum(-1), rtol=1e-5)
    mask = jnp.asarray([1.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(K.gaussian_kl(mp, sp, mq, sq, mask), want[:, :2].sum(-1), rtol=1e-5)
    np.testing.assert_array_equal(K.gaussian_kl(mp, sp, mp, sp, mask), np.zeros(5))


@pytest.fixture(scope="module")
def expert_eval():
    return RE.episodes(ARM, ("reach",), jax.random.key(1), N_EP, horizon=HORIZON)


def test_expert_evaluation_is_the_scripted_expert_rollout(expert_eval):
    """One task, same key: the same initial states as ``policies.rollout``, and the same actions."""
    env = S.make_env(ARM, "reach", horizon=HORIZON)
    traj = P.rollout(env, P.make_policy("expert", env), jax.random.key(1), N_EP)
    assert expert_eval["components"].shape == (1, N_EP, HORIZON, len(S.REWARD_COMPONENTS))
    np.testing.assert_allclose(expert_eval["components"][0], traj["reward_components"], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(expert_eval["proxy"], np.zeros((1, N_EP)))  # no reward model
    np.testing.assert_array_equal(expert_eval["kl"], np.zeros((1, N_EP)))


def test_policy_evaluation_matches_rollout_components_and_kl_to_itself_is_zero():
    model, variables = make_policy(0)
    tasks, key = ("reach", "reach_avoid"), RE.arm_key(2, ARM)
    out = RE.episodes(ARM, tasks, key, N_EP, model=model, variables=variables, ref_model=model,
                      ref_variables=variables, horizon=HORIZON)
    np.testing.assert_array_equal(out["kl"], np.zeros((len(tasks), N_EP)))
    rc = rollout_components(model, variables, ARM, tasks, key, N_EP, horizon=HORIZON, deterministic=True)
    np.testing.assert_allclose(out["components"], rc, rtol=1e-5, atol=1e-6)

    _, other = make_policy(1)
    against = RE.episodes(ARM, tasks, key, N_EP, model=model, variables=variables, ref_model=model,
                          ref_variables=other, horizon=HORIZON)
    assert np.all(against["kl"] > 0)
    np.testing.assert_array_equal(against["components"], out["components"])  # the reference never acts


def test_proxy_return_scales_with_the_reward_model_and_ignores_nothing_else():
    model, variables = make_policy(0)
    key = RE.arm_key(0, ARM)
    one = RE.episodes(ARM, ("reach",), key, N_EP, model=model, variables=variables, reward=reward_model(1.0),
                      horizon=HORIZON)
    two = RE.episodes(ARM, ("reach",), key, N_EP, model=model, variables=variables, reward=reward_model(2.0),
                      horizon=HORIZON)
    assert np.all(one["proxy"] != 0)
    np.testing.assert_allclose(two["proxy"], 2.0 * one["proxy"], rtol=1e-6)
    np.testing.assert_array_equal(two["components"], one["components"])  # the reward model never acts
    again = RE.episodes(ARM, ("reach",), key, N_EP, model=model, variables=variables, reward=reward_model(1.0),
                        horizon=HORIZON)
    for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(one)):
        np.testing.assert_array_equal(a, b)


def test_arm_key_gives_evaluate_policy_its_episodes():
    """episodes at arm_key(seed, arm) and evaluate_policy(seed) evaluate the same episodes."""
    model, variables = make_policy(0)
    tasks = ("reach", "reach_avoid")
    out = RE.episodes(ARM, tasks, RE.arm_key(3, ARM), N_EP, model=model, variables=variables, horizon=HORIZON)
    metrics = evaluate_policy(model, variables, embodiments=(ARM,), tasks=tasks, n_episodes=N_EP, seed=3,
                              horizon=HORIZON, deterministic=True)
    for task, rc in zip(tasks, out["components"]):
        for name, value in episode_metrics(rc).items():
            np.testing.assert_allclose(value, metrics[f"{ARM}/{task}"][name], rtol=1e-5, atol=1e-6)
    other = RE.episodes(ARM, tasks, RE.arm_key(3, "ur5"), N_EP, model=model, variables=variables, horizon=HORIZON)
    assert not np.array_equal(other["components"], out["components"])
