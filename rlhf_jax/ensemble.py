"""Reward-model ensembles: K members as stacked parameters under ``jax.vmap``.

Members differ by init seed and by bootstrap weights on their training pairs (Poisson(1)
weights drawn per (member, pair), which in expectation equals training on a bootstrap
resample without materialising one). Aggregations act on member returns [K, ...].
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from rlhf_jax.losses.bradley_terry import preference_probability

AGGREGATIONS = ("mean", "std", "min", "mean_minus_std")


def init_ensemble(model: nn.Module, keys: jax.Array, *sample_inputs) -> dict:
    """Stacked variables for len(keys) members: every leaf gets a leading [K] axis."""
    return jax.vmap(lambda k: model.init(k, *sample_inputs))(keys)


def ensemble_apply(model: nn.Module, stacked_variables, segments: dict) -> jax.Array:
    """Member returns [K, B] for one batch of segments (shared by all members)."""

    def one(variables):
        ret, _ = model.apply(variables, segments["obs"], segments["act"], segments["task"],
                             segments["embodiment"], segments.get("image"), segments.get("mask"))
        return ret

    return jax.vmap(one)(stacked_variables)


def aggregate(member_returns: jax.Array, how: str = "mean", lam: float = 1.0) -> jax.Array:
    """Combines member returns [K, ...] into [...]: mean, std, min or mean − λ·std."""
    if how == "mean":
        return member_returns.mean(0)
    if how == "std":
        return member_returns.std(0)
    if how == "min":
        return member_returns.min(0)
    if how == "mean_minus_std":
        return member_returns.mean(0) - lam * member_returns.std(0)
    raise ValueError(f"unknown aggregation {how!r}; expected one of {AGGREGATIONS}")


def ensemble_preference_probability(r_a, r_b, xp=jnp):
    """P(a ≻ b) averaged over members: mean_k σ(r_a[k] − r_b[k]); inputs [K, B] -> [B].

    xp: jnp, or np for host arrays (kept in their dtype; see ``losses.preference_probability``).
    """
    return preference_probability(r_a, r_b, xp).mean(0)


def disagreement(r_a, r_b, xp=jnp):
    """Std over members of the member preference probabilities; [K, B] -> [B] (xp as in
    `ensemble_preference_probability`).

    This is the score active-learning schemes rank candidate queries by.
    """
    return preference_probability(r_a, r_b, xp).std(0)


# CDF of Poisson(1) at k = 0..9; the mass beyond 10 is < 1e-7 and is truncated.
_POISSON1_CDF = tuple(float(sum(math.exp(-1.0) / math.factorial(j) for j in range(k + 1))) for k in range(10))


def bootstrap_weights(member_key: jax.Array, pair_index: jax.Array) -> jax.Array:
    """Poisson(1) bootstrap weight of each pair for one member; pair_index [B] -> [B].

    Deterministic in (member_key, pair index), so a pair keeps its weight for the whole run
    and across resumes, exactly as if the member had drawn one bootstrap resample up front.
    Drawn by inverting the Poisson(1) CDF at one uniform per pair: ``jax.random.poisson``'s
    rejection loop, vmapped over a whole sweep, cost twice the training step itself.
    """
    u = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(member_key, i)))(pair_index)
    return jnp.sum(u[:, None] > jnp.asarray(_POISSON1_CDF)[None, :], axis=1).astype(jnp.float32)


def combine_objectives(component_returns: jax.Array, weights: Sequence[float] | jax.Array) -> jax.Array:
    """Multi-objective ensemble: one model per rubric component, combined by a weighted sum.

    component_returns [C, ...] (member c trained on preferences over component c alone),
    weights [C] -> [...] = Σ_c w_c · r_c.
    """
    w = jnp.asarray(weights, component_returns.dtype)
    if w.shape[0] != component_returns.shape[0]:
        raise ValueError(f"{w.shape[0]} weights for {component_returns.shape[0]} objective models")
    return jnp.tensordot(w, component_returns, axes=1)
