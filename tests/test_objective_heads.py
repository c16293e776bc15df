"""Combined objective heads (rlhf_jax.objective_heads) and their weights (objectives.scale_weights):
the combination is Σ_o w_o agg_k r_{o,k} through every consumer's path (the reward function, PPO
points' learned-or-gold reward), and the weights s_o / s put heads that learned β R_o / s_o back on
the scalar reward model's β R / s."""
import types

import jax
import numpy as np
import pytest

from rlhf_jax.envs.simulator import REWARD_COMPONENTS
from rlhf_jax.envs.tasks import TASKS
from rlhf_jax.features import action_dim, feature_dim
from rlhf_jax.preferences.objectives import OBJECTIVE_NAMES, objective_returns, question_scales, scale_weights


def _saved_head(path, condition, seed, members=3):
    from rlhf_jax.models.reward import make_reward_model
    from rlhf_jax.reward_artifact import feature_spec, save_reward_model

    model = make_reward_model("markovian", num_tasks=len(TASKS), num_embodiments=3, hidden=(8,), context_dim=4)
    obs, act = np.zeros((1, 2, feature_dim("joint")), np.float32), np.zeros((1, 2, action_dim("joint")), np.float32)
    ids = np.zeros((1,), np.int32)
    inits = [model.init(jax.random.key(seed + k), obs, act, ids, ids) for k in range(members)]
    variables = {"params": jax.tree.map(lambda *x: np.stack(x), *[m["params"] for m in inits]), "norm": inits[0]["norm"]}
    config = dict(kind="markovian", hidden=(8,), context_dim=4, aggregate="sum", num_tasks=len(TASKS), num_embodiments=3)
    return save_reward_model(str(path), config, variables, {"features": feature_spec("joint", len(TASKS)),
                                                            "condition": condition, "best_step": [0] * members})


@pytest.fixture(scope="module")
def saved_heads(tmp_path_factory):
    from rlhf_jax.objective_heads import write_objective_heads

    root = tmp_path_factory.mktemp("heads")
    weights = {"task": 1.5, "safety": 0.7, "smoothness": 0.0, "efficiency": 0.2}
    heads = {o: (_saved_head(root / o, f"stochastic@{o}", seed=10 * i), w) for i, (o, w) in enumerate(weights.items())}
    write_objective_heads(str(root), heads, {"pairs_hash": "abc"})
    return str(root), heads


def _batch(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, feature_dim("joint"))).astype(np.float32),
            rng.normal(size=(n, action_dim("joint"))).astype(np.float32),
            rng.integers(0, 2, n).astype(np.int32), rng.integers(0, 3, n).astype(np.int32),
            rng.normal(size=(n, len(REWARD_COMPONENTS))).astype(np.float32))


@pytest.mark.parametrize("aggregation", ["min", "mean"])
def test_combined_heads_are_the_weighted_sum_of_each_heads_aggregated_members(saved_heads, aggregation):
    """Σ_o w_o agg_k r_{o,k} (weight 0: not loaded), through the reward function and through PPO
    points' learned-or-gold reward, whose aggregation over the single member is the identity."""
    from rlhf_jax.models.reward_inference import learned_or_gold_reward_fn
    from rlhf_jax.objective_heads import load_objective_heads
    from rlhf_jax.reward_artifact import load_reward_model

    root, heads = saved_heads
    combined = load_objective_heads(root, aggregation=aggregation)
    assert set(combined.heads) == {"task", "safety", "efficiency"} and combined.meta["pairs_hash"] == "abc"
    batch = _batch()
    want = sum(w * np.asarray(load_reward_model(path, aggregation=aggregation).reward_fn(*batch))
               for path, w in heads.values() if w)
    np.testing.assert_allclose(combined.reward_fn(*batch), want, rtol=1e-5, atol=1e-6)
    for outer in ("min", "mean", "mean_minus_std"):
        fn = learned_or_gold_reward_fn(combined.model, combined.stacked_variables, False, aggregation=outer)
        np.testing.assert_allclose(fn(*batch), want, rtol=1e-5, atol=1e-6)
    # min over each head's members differs from the mean: the heads' own aggregation is applied.
    if aggregation == "min":
        mean = load_objective_heads(root, aggregation="mean")
        assert not np.allclose(mean.reward_fn(*batch), want)


def test_ppo_points_stack_combined_heads_of_several_seeds(saved_heads, tmp_path):
    """stacked_rewards with the heads' loader: [points, 1, O, K, ...] variables, one module."""
    from experiments.stages.ppo_points import Point, stacked_rewards
    from rlhf_jax.models.reward_inference import learned_or_gold_reward_fn
    from rlhf_jax.objective_heads import load_objective_heads, write_objective_heads

    root, heads = saved_heads
    other = str(tmp_path / "other")
    write_objective_heads(other, {o: (path, 2.0 * w) for o, (path, w) in heads.items()})
    points = [Point(root, 0), Point(other, 0), Point(root, 1)]
    model, variables, use_gold = stacked_rewards(points, "min", load_reward=lambda p: load_objective_heads(p, "min"))
    assert not np.asarray(use_gold).any()
    batch = _batch()
    rewards = [learned_or_gold_reward_fn(model, jax.tree.map(lambda x: x[i], variables), False, aggregation="min")(*batch)
               for i in range(3)]
    np.testing.assert_allclose(rewards[1], 2.0 * np.asarray(rewards[0]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rewards[2], rewards[0], rtol=1e-6)


def test_heads_of_different_ensembles_are_refused(tmp_path):
    from rlhf_jax.objective_heads import load_objective_heads, write_objective_heads
    from rlhf_jax.reward_artifact import RewardModelError

    write_objective_heads(str(tmp_path), {"task": (_saved_head(tmp_path / "a", "stochastic@task", 0, members=2), 1.0),
                                          "safety": (_saved_head(tmp_path / "b", "stochastic@safety", 5, members=3), 1.0)})
    with pytest.raises(RewardModelError, match="one architecture and ensemble size"):
        load_objective_heads(str(tmp_path))
    with pytest.raises(RewardModelError, match="objective_heads.json"):
        load_objective_heads(str(tmp_path / "a"))


def _table(seed=0, segments=40, steps=6):
    """A segment table with random gold components (what the annotators read)."""
    from rlhf_jax.envs.simulator import rubric_vector

    rng = np.random.default_rng(seed)
    steps_c = rng.normal(size=(segments, steps, len(REWARD_COMPONENTS))) * rng.uniform(0.1, 3.0, len(REWARD_COMPONENTS))
    w = rubric_vector()
    return types.SimpleNamespace(gold_step_rewards=steps_c.astype(np.float32), component_names=REWARD_COMPONENTS,
                                 gold_weights=w.astype(np.float32), gold_components=steps_c.sum(1).astype(np.float32),
                                 gold_return=(steps_c.sum(1) @ w).astype(np.float32))


def test_scale_weights_put_calibrated_heads_back_on_the_scalar_models_scale():
    """A relative teacher's scales are mean |R| and mean |R_o| over the table; with heads equal to
    the Bradley-Terry targets β R_o / s_o, Σ_o w_o · head_o = β R / s, the scalar target (closed form)."""
    table, beta = _table(), 1.0
    s = question_scales("stochastic", table)
    per_objective = objective_returns(table.gold_components)             # [S, O]
    total = per_objective.sum(1)
    np.testing.assert_allclose(total, table.gold_return, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(s["rubric"], [np.mean(np.abs(total))], rtol=1e-5)
    for i, o in enumerate(OBJECTIVE_NAMES):
        np.testing.assert_allclose(s[o], [np.mean(np.abs(per_objective[:, i]))], rtol=1e-5)
    w = scale_weights("stochastic", table)
    heads = np.stack([beta * per_objective[:, i] / s[o][0] for i, o in enumerate(OBJECTIVE_NAMES)], 1)
    combined = heads @ np.asarray([w[o] for o in OBJECTIVE_NAMES])
    np.testing.assert_allclose(combined, beta * total / s["rubric"][0], rtol=1e-4, atol=1e-6)


def test_scale_weights_are_one_for_an_absolute_teacher_and_averaged_over_a_pool():
    from rlhf_jax.preferences.annotators import Teacher

    table = _table(seed=1)
    absolute = Teacher("absolute", beta=1.0, relative=False)
    assert scale_weights(absolute, table) == {o: 1.0 for o in OBJECTIVE_NAMES}
    pool = (Teacher("a", beta=1.0), absolute)
    relative = scale_weights("stochastic", table)
    mixed = scale_weights(pool, table)
    for o in OBJECTIVE_NAMES:
        assert mixed[o] == pytest.approx((relative[o] + 1.0) / 2, rel=1e-6)
