"""PPO initialised from π_SFT: it starts as π_SFT (zero KL, the same actions) and the value warm-up
holds the policy still while the critic learns."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhf_jax import features as F
from rlhf_jax.envs.robots import EMBODIMENTS
from rlhf_jax.envs.tasks import TASKS
from rlhf_jax.models.policy import make_policy
from rlhf_jax.train import ppo
from rlhf_jax.models.reward_inference import gold_reward_fn
from rlhf_jax.train.sft import init_policy_variables
from tests.test_ppo_update import tiny_config

SFT_MODEL = {"hidden": (16, 16), "context_dim": 8, "squash": True, "state_dependent_std": True,
             "log_std_min": -5.0, "log_std_max": 1.0}


@pytest.fixture(scope="module")
def from_sft():
    config = tiny_config()
    config.ppo.value_warmup_updates = 1
    model = make_policy(SFT_MODEL, len(TASKS), len(EMBODIMENTS))
    rng = np.random.default_rng(0)
    d = F.feature_dim("joint")
    ref = init_policy_variables(model, jax.random.PRNGKey(5), d, rng.normal(size=d).astype(np.float32),
                                (1.0 + rng.random(d)).astype(np.float32))
    init, train_step = ppo.make_ppo(config, gold_reward_fn(), ref, model)
    state0 = jax.jit(init)(jax.random.key(0), ppo.default_hparams(config))
    step = jax.jit(train_step)
    state1, m1 = step(state0)
    state2, m2 = step(state1)
    return model, ref, jax.device_get((state0, state1, state2, m1, m2))


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_ppo_starts_as_the_sft_policy(from_sft):
    model, ref, (state0, _, _, m1, _) = from_sft
    assert _same(ppo.policy_variables(state0), ref)
    assert _same(state0.ref_params, ref["params"])
    assert float(m1["kl"]) == 0.0  # the first rollout is π_SFT's own: log π − log π_ref = 0 at every step
    obs = jnp.asarray(np.random.default_rng(1).normal(size=(8, F.feature_dim("joint"))), jnp.float32)
    ids = jnp.arange(8, dtype=jnp.int32) % len(TASKS)
    emb = jnp.zeros(8, jnp.int32)
    mean_ppo, _ = model.apply(ppo.policy_variables(state0), obs, ids, emb)
    mean_ref, _ = model.apply(ref, obs, ids, emb)
    np.testing.assert_array_equal(jnp.tanh(mean_ppo), jnp.tanh(mean_ref))  # deterministic actions


def test_value_warm_up_holds_the_policy_then_releases_it(from_sft):
    _, ref, (state0, state1, state2, _, m2) = from_sft
    assert _same(state1.params["policy"], ref["params"])          # update 1: warm-up, policy frozen
    assert not _same(state1.params["value"], state0.params["value"])  # ... while the critic learns
    assert not _same(state2.params["policy"], ref["params"])      # update 2: the policy moves
    assert _same(state2.norm, ref["norm"])                         # and keeps π_SFT's normaliser
    assert float(m2["kl"]) == 0.0  # the second rollout still ran the unchanged policy
