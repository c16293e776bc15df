"""Behaviour-cloning loss: negative log-likelihood of demonstration actions."""
from __future__ import annotations

import jax.numpy as jnp


def bc_loss(log_probs, weight=None, num_dims=None):
    """Weighted mean NLL of demonstration actions.

    log_probs: [B] log π(a_i|s_i) of demonstrated actions (already summed over valid action
    dims); weight: [B] (0 drops padding rows; None = all 1); num_dims: [B] valid action dims
    per row, only for the per-dim metric (6- and 7-joint arms are then comparable).
    loss = −Σ_i w_i log π(a_i|s_i) / Σ_i w_i. Returns (loss, metrics).
    """
    weight = jnp.ones_like(log_probs) if weight is None else weight
    total = jnp.maximum(jnp.sum(weight), 1e-8)
    loss = -jnp.sum(weight * log_probs) / total
    metrics = {"loss": loss, "bc/nll": loss}
    if num_dims is not None:
        metrics["bc/nll_per_dim"] = -jnp.sum(weight * log_probs / jnp.maximum(num_dims, 1.0)) / total
    return loss, metrics
