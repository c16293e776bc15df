"""Per-step reward functions: the gold rubric, or a learned reward model's inference (what PPO,
evaluation and the reward-model artefact score steps with).

A reward function has the signature

    reward_fn(obs [B, D], act [B, A], task [B], emb [B], components [B, C]) -> [B]

with obs the "joint" features of the state *before* the action (the layout reward models are
trained on, ``rlhf_jax.preferences.segments``), act the requested joint velocity in rad/s padded to
MAX_DOF (as the dataset stores actions), and components the simulator's gold components. The
KL penalty to π_ref and the safety penalties are applied by ``rlhf_jax.train.ppo`` (they need
the policies' log-probs and the simulator state).
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from rlhf_jax.ensemble import aggregate, combine_objectives
from rlhf_jax.envs import simulator as S


def gold_reward_fn(rubric: dict | None = None) -> Callable:
    """The gold rubric total Σ_c w_c r_c as a reward function (the oracle, for baselines)."""
    w = jnp.asarray(S.rubric_vector(rubric))

    def reward_fn(obs, act, task, emb, components):
        return (components * w).sum(-1)

    return reward_fn


def learned_reward_fn(model, variables, *, ensemble: bool = False, aggregation: str = "mean",
                      lam: float = 1.0, scale: float = 1.0) -> Callable:
    """A Markovian reward model's per-step reward r(s_t, a_t) as a reward function.

    ensemble: variables stacked over K members (``rlhf_jax.ensemble``); the member rewards
    [K, B] are combined per step by ``aggregation`` (mean, min, mean_minus_std with λ = lam).
    Each step is scored as a length-1 segment, so only per-step (Markovian) models qualify.
    scale multiplies the reward (reward models are only defined up to scale and offset).
    """

    def one(v, obs, act, task, emb):
        _, step_rewards = model.apply(v, obs[:, None], act[:, None], task, emb)
        return step_rewards[:, 0]

    def reward_fn(obs, act, task, emb, components):
        if ensemble:
            members = jax.vmap(one, in_axes=(0, None, None, None, None))(variables, obs, act, task, emb)
            return scale * aggregate(members, aggregation, lam)
        return scale * one(variables, obs, act, task, emb)

    return reward_fn


def combined_reward_fn(reward_fns: Sequence[Callable], weights: Sequence[float]) -> Callable:
    """One reward per objective, combined: Σ_o w_o r_o(obs, act, ...) of reward functions [O] (each
    a per-objective head, e.g. a saved ensemble trained on one objective's sub-answers) with
    weights [O] (``ensemble.combine_objectives`` over their rewards [O, B])."""
    reward_fns = tuple(reward_fns)
    if len(reward_fns) != len(weights):
        raise ValueError(f"{len(weights)} weights for {len(reward_fns)} objective reward functions")

    def reward_fn(obs, act, task, emb, components):
        per_objective = jnp.stack([f(obs, act, task, emb, components) for f in reward_fns])
        return combine_objectives(per_objective, jnp.asarray(weights, per_objective.dtype))

    return reward_fn


def learned_or_gold_reward_fn(model, variables, use_gold, *, aggregation: str = "mean", lam: float = 1.0,
                              rubric: dict | None = None) -> Callable:
    """Per run, the gold rubric (``use_gold`` true) or the ensemble ``variables`` [K, ...].

    ``use_gold`` and ``variables`` may be traced, so one vmapped PPO program holds runs on learned
    reward models and their PPO-on-gold references side by side. Both rewards are computed and one
    is selected (``jnp.where``, so a non-finite unused reward does not leak into the used one).
    """
    gold = gold_reward_fn(rubric)
    learned = learned_reward_fn(model, variables, ensemble=True, aggregation=aggregation, lam=lam)

    def reward_fn(obs, act, task, emb, components):
        return jnp.where(use_gold, gold(obs, act, task, emb, components),
                         learned(obs, act, task, emb, components))

    return reward_fn
