"""Downstream scaling: the vmapped PPO program over reward-model points equals one PPO run per point,
and the per-doubling readings follow their definitions."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.downstream_report import fit_doublings, per_doubling
from experiments.downstream_scaling import make_downstream_train
from rlhf_jax import features as F
from rlhf_jax.envs.robots import EMBODIMENTS
from rlhf_jax.envs.tasks import TASKS
from rlhf_jax.models.reward import MarkovianReward
from rlhf_jax.train import ppo
from tests.test_ppo_from_sft import SFT_MODEL
from tests.test_ppo_update import tiny_config


@pytest.mark.slow
def test_vmapped_points_equal_a_loop_of_single_runs():
    from rlhf_jax.models.policy import make_policy
    from rlhf_jax.train.sft import init_policy_variables

    config = tiny_config()
    config.ppo.num_updates = 2
    policy = make_policy(SFT_MODEL, len(TASKS), len(EMBODIMENTS))
    ref = init_policy_variables(policy, jax.random.PRNGKey(1), F.feature_dim("joint"))
    rm = MarkovianReward(num_tasks=len(TASKS), num_embodiments=len(EMBODIMENTS), hidden=(8,))
    sample = (jnp.zeros((1, 1, F.feature_dim("joint"))), jnp.zeros((1, 1, F.action_dim("joint"))),
              jnp.zeros((1,), jnp.int32), jnp.zeros((1,), jnp.int32))
    # Points × members of reward-model variables: [P=3, K=2, ...], every member its own init.
    keys = jax.random.split(jax.random.PRNGKey(2), 6).reshape(3, 2, -1)
    stacked = jax.vmap(jax.vmap(lambda k: rm.init(k, *sample)))(keys)
    train = make_downstream_train(config, rm, ref, policy, "mean")
    hp = ppo.default_hparams(config)
    rngs = jnp.stack([jax.random.key(p) for p in (0, 1, 0)])  # points 0 and 2 share a PPO seed
    _, together = jax.jit(jax.vmap(train, in_axes=(0, None, 0)))(rngs, hp, stacked)
    one = jax.jit(train)
    for p in range(3):
        _, alone = one(rngs[p], hp, jax.tree.map(lambda x: x[p], stacked))
        for k in ("proxy_return", "gold_return", "kl", "ppo/loss"):
            np.testing.assert_allclose(together[k][p], alone[k], rtol=2e-4, atol=2e-5, err_msg=f"point {p} {k}")
    # Different reward models drive different runs from the same seed.
    assert not np.allclose(together["proxy_return"][0], together["proxy_return"][2])


def test_per_doubling_readings():
    n = np.array([100, 200, 400, 800] * 2)
    acc = 0.6 + 0.05 * np.log2(n / 100)
    assert per_doubling(n, acc) == pytest.approx(0.05)
    gold = 2.0 + 0.5 * np.log2(n / 100)
    rows = [{"n": a, "rm_test_accuracy": b, "gold_return": c, "success": 0.9} for a, b, c in zip(n, acc, gold)]
    fit = fit_doublings(rows, sft_gold=-4.0, n_bootstrap=20)["per_doubling"]
    assert fit["accuracy_points"]["value"] == pytest.approx(0.05)
    assert fit["gold_relative_to_sft"]["value"] == pytest.approx(0.5 / 4.0)
    assert fit["success_points"]["value"] == pytest.approx(0.0, abs=1e-12)
    err = 1 - acc
    want = 1 - np.exp(np.polyfit(np.log2(n), np.log(err), 1)[0])
    assert fit["error_reduction"]["value"] == pytest.approx(want)
    assert fit["accuracy_points"]["ci95"][0] == pytest.approx(0.05)  # noiseless: every resample agrees
