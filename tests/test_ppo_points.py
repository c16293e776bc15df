"""PPO over points: one vmapped program over (reward model, PPO seed) points equals a loop of single
runs; a gold point is PPO on the gold reward; a points stage resumed after its first chunk ends
where an uninterrupted one does."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.stages import ppo_points as PP
from rlhf_jax import features as F
from rlhf_jax.checkpoint import save_policy
from rlhf_jax.envs.robots import EMBODIMENTS
from rlhf_jax.envs.tasks import TASKS
from rlhf_jax.models.policy import make_policy
from rlhf_jax.models.reward import make_reward_model
from rlhf_jax.models.reward_inference import gold_reward_fn
from rlhf_jax.reward_artifact import feature_spec, save_reward_model
from rlhf_jax.train import ppo
from rlhf_jax.train.sft import init_policy_variables
from tests.test_ppo_from_sft import SFT_MODEL
from tests.test_ppo_update import tiny_config

RM_CONFIG = dict(kind="markovian", hidden=(8,), context_dim=4, aggregate="sum", num_tasks=len(TASKS),
                 num_embodiments=len(EMBODIMENTS))


def _reward_variables(model, key, members: int = 2):
    sample = (jnp.zeros((1, 1, F.feature_dim("joint"))), jnp.zeros((1, 1, F.action_dim("joint"))),
              jnp.zeros((1,), jnp.int32), jnp.zeros((1,), jnp.int32))
    inits = [model.init(k, *sample) for k in jax.random.split(key, members)]
    return {"params": jax.tree.map(lambda *x: jnp.stack(x), *[v["params"] for v in inits]), "norm": inits[0]["norm"]}


@pytest.fixture(scope="module")
def setup():
    config = tiny_config()
    config.ppo.num_updates = config.kl.total_updates = 2
    policy = make_policy(SFT_MODEL, len(TASKS), len(EMBODIMENTS))
    ref = init_policy_variables(policy, jax.random.PRNGKey(1), F.feature_dim("joint"))
    rm = make_reward_model("markovian", num_tasks=len(TASKS), num_embodiments=len(EMBODIMENTS), hidden=(8,),
                           context_dim=4)
    return config, policy, ref, rm


@pytest.mark.slow
def test_vmapped_points_equal_single_runs_and_a_gold_point_is_ppo_on_gold(setup):
    config, policy, ref, rm = setup
    def stacked_norm(v):   # as RewardModel.stacked_variables gives them: norm broadcast over members
        return {"params": v["params"], "norm": jax.tree.map(lambda x: jnp.broadcast_to(x, (2,) + x.shape), v["norm"])}

    members = [stacked_norm(_reward_variables(rm, jax.random.PRNGKey(k))) for k in (2, 3)]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), members[0], members[1], members[0])
    use_gold = jnp.asarray([False, False, True])
    rngs = jnp.stack([jax.random.key(p) for p in (0, 0, 0)])   # one PPO seed: the rewards differ
    train = PP.make_points_train(config, rm, ref, policy, "mean")
    hp = ppo.default_hparams(config)
    _, together = jax.jit(jax.vmap(train, in_axes=(0, None, 0, 0)))(rngs, hp, stacked, use_gold)
    for p in range(3):
        _, alone = jax.jit(train)(rngs[p], hp, jax.tree.map(lambda x: x[p], stacked), use_gold[p])
        for k in ("proxy_return", "gold_return", "kl", "ppo/loss"):
            np.testing.assert_allclose(together[k][p], alone[k], rtol=2e-4, atol=2e-5, err_msg=f"point {p} {k}")
    _, gold = jax.jit(ppo.make_train(config, gold_reward_fn(), ref, policy))(rngs[2], hp)
    np.testing.assert_allclose(together["proxy_return"][2], gold["proxy_return"], rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(together["proxy_return"][2], together["gold_return"][2], rtol=1e-5, atol=1e-5)
    assert not np.allclose(together["proxy_return"][0], together["proxy_return"][1])


@pytest.mark.slow
def test_points_stage_resumes_to_the_uninterrupted_result(setup, tmp_path):
    config, policy, ref, rm = setup
    sft_ckpt = save_policy(str(tmp_path / "sft"), ref, {"model": SFT_MODEL})
    meta = {"features": feature_spec("joint", len(TASKS))}
    paths = [save_reward_model(str(tmp_path / f"rm{k}"), RM_CONFIG, _reward_variables(rm, jax.random.PRNGKey(k)), meta)
             for k in (2, 3)]
    config.ref_checkpoint, config.log_every = sft_ckpt, 1
    points = [PP.Point(paths[0], 0), PP.Point(paths[1], 1), PP.Point("gold", 0)]
    whole, history, _ = PP.train_points(config, points, "mean", 0, str(tmp_path / "whole"), log=lambda m: None)
    assert len(history) == 2 and len(history[-1]["gold_return"]) == 3
    short = config.copy_and_resolve_references()
    short.ppo.num_updates = 1                      # "interrupted" after the first of two chunks
    PP.train_points(short, points, "mean", 0, str(tmp_path / "resumed"), log=lambda m: None)
    resumed, history2, _ = PP.train_points(config, points, "mean", 0, str(tmp_path / "resumed"), log=lambda m: None)
    assert history2 == history
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow
def test_a_run_with_a_non_finite_loss_is_frozen_and_the_others_go_on(setup, tmp_path):
    """A reward model with NaN parameters makes its run's loss NaN from the first chunk: that run keeps
    pi_SFT's parameters and is flagged, while the other run of the program trains as it does alone."""
    config, policy, ref, rm = setup
    sft_ckpt = save_policy(str(tmp_path / "sft"), ref, {"model": SFT_MODEL})
    meta = {"features": feature_spec("joint", len(TASKS))}
    good = _reward_variables(rm, jax.random.PRNGKey(2))
    bad = {"params": jax.tree.map(lambda x: jnp.full_like(x, jnp.nan), good["params"]), "norm": good["norm"]}
    paths = [save_reward_model(str(tmp_path / name), RM_CONFIG, v, meta) for name, v in (("bad", bad), ("good", good))]
    config.ref_checkpoint, config.log_every = sft_ckpt, 1
    quiet = dict(log=lambda m: None)
    both, history, _ = PP.train_points(config, [PP.Point(paths[0], 0), PP.Point(paths[1], 0)], "mean", 0,
                                       str(tmp_path / "both"), **quiet)
    alone, _, _ = PP.train_points(config, [PP.Point(paths[1], 0)], "mean", 0, str(tmp_path / "alone"), **quiet)
    assert [h["diverged"] for h in history] == [[1.0, 0.0], [1.0, 0.0]]
    for a, b in zip(jax.tree.leaves(jax.tree.map(lambda x: x[0], both["params"])), jax.tree.leaves(ref["params"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for a, b in zip(jax.tree.leaves(jax.tree.map(lambda x: x[1], both)), jax.tree.leaves(jax.tree.map(lambda x: x[0], alone))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-5)
