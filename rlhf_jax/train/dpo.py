"""DPO-family policy updates on segment preference pairs, and the vmapped hyper-parameter sweep.

Pair batch layout (all leading [B]): ``obs_a, obs_b`` [B, T, D], ``act_a, act_b`` [B, T, A]
(units of qd_max, padded to MAX_DOF), ``act_mask_a, act_mask_b`` [B, A], ``task_a, task_b,
embodiment_a, embodiment_b`` int32, ``label`` P(a ≻ b) in [0, 1], ``weight`` [B], ``ref_logp_a,
ref_logp_b`` [B] (log π_ref of each segment, computed once by ``segment_log_probs`` and
gathered beside the pairs), optional ``mask_a, mask_b`` [B, T] valid steps.

Swept hyper-parameters live in ``state.hparams`` as arrays — ``beta`` [], ``label_smoothing``
[], ``rpo_alpha`` [], ``loss_weights`` [K] over LOSS_TYPES — so stacking states along a leading
axis and ``jax.vmap``-ing the update trains every (β, loss type) point in one program.
"""
from __future__ import annotations

import functools
import itertools
from typing import Callable, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from rlhf_jax.losses.dpo import LOSS_TYPES, loss_weights, preference_dpo_loss, validate_loss_spec
from rlhf_jax.models.policy import GaussianPolicy, normalize_actions, segment_log_prob
from rlhf_jax.train.state import TrainState, apply_gradients


@flax.struct.dataclass
class DPOState(TrainState):
    """TrainState plus the swept DPO hyper-parameters (arrays, so they can be traced/vmapped)."""

    hparams: dict = flax.struct.field(default_factory=dict)


def dpo_hparams(beta: float, loss_type="sigmoid", label_smoothing: float = 0.0, rpo_alpha: float = 0.0) -> dict:
    """One sweep point's hparams; ``loss_type`` is a name, "a:0.8+b:0.2" or a dict of weights."""
    validate_loss_spec(loss_type, label_smoothing)
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    return {"beta": np.float32(beta), "label_smoothing": np.float32(label_smoothing),
            "rpo_alpha": np.float32(rpo_alpha), "loss_weights": loss_weights(loss_type)}


def sweep_hparams(betas: Sequence[float], loss_types: Sequence, label_smoothing: float = 0.0,
                  rpo_alpha: float = 0.0) -> tuple[dict, list[dict]]:
    """Grid betas × loss_types → (hparams stacked along [P], list of P point descriptions)."""
    points = [dict(beta=float(b), loss_type=lt, label_smoothing=float(label_smoothing),
                   rpo_alpha=float(rpo_alpha)) for lt, b in itertools.product(loss_types, betas)]
    stacked = jax.tree.map(lambda *x: np.stack(x), *[dpo_hparams(**p) for p in points])
    return stacked, points


def init_dpo_state(variables: dict, tx: optax.GradientTransformation, hparams: dict, rng) -> DPOState:
    """A DPO state starting at the reference policy. With stacked hparams (leading [P]) every
    sweep point gets its own copy of the parameters and optimiser state."""
    lead = np.shape(hparams["beta"])
    state = DPOState.create(variables, tx, rng).replace(hparams=jax.tree.map(jnp.asarray, hparams))
    if not lead:
        return state
    keys = jax.random.split(rng, lead[0])
    tile = lambda x: jnp.broadcast_to(x, lead + jnp.shape(x))  # noqa: E731
    return state.replace(step=tile(state.step), params=jax.tree.map(tile, state.params),
                         norm=jax.tree.map(tile, state.norm), opt_state=jax.tree.map(tile, state.opt_state),
                         rng=keys)


def make_dpo_update(config, model: GaussianPolicy, tx: optax.GradientTransformation) -> Callable:
    """Returns the pure ``update(state, batch) -> (state, metrics)`` for the DPO family.

    loss = preference_dpo_loss(log π(σ_a), log π(σ_b), ref_logp_a, ref_logp_b, label, weight)
    with β, ε, rpo_alpha and the loss-type weights read from ``state.hparams``. Metrics:
    rewards/{chosen,rejected,margins,accuracies}, logps/{chosen,rejected}, loss, ties/fraction,
    dpo/nll_chosen, grad_norm, param_norm, update_norm. Jit it (or shard it with
    ``rlhf_jax.sharding.data_parallel``); ``jax.vmap(update, in_axes=(0, None))`` sweeps.
    ``config.train.action_clip`` must match the value π_ref's log-probs were computed with.
    ``config.dpo.logp_reduction``: "sum" (log π(σ) = Σ_t, the DPO paper's) or "mean" (Σ_t / T
    for policy and reference alike, so β acts per step).
    """
    clip = float(config.train.get("action_clip", 0.999))
    per_step = (config.get("dpo") or {}).get("logp_reduction", "sum") == "mean"

    def loss_fn(params, norm, hp, batch):
        variables = {"params": params, "norm": norm}
        both = lambda k: jnp.concatenate([batch[f"{k}_a"], batch[f"{k}_b"]], 0)  # noqa: E731
        mask = both("mask") if "mask_a" in batch else None
        # One forward pass over both sides (a single batched matmul per layer).
        logp = segment_log_prob(model, variables, both("obs"), both("act"), both("task"), both("embodiment"),
                                both("act_mask"), mask, action_clip=clip)
        n = batch["label"].shape[0]
        steps_both = batch["obs_a"].shape[1] if mask is None else jnp.maximum(jnp.sum(mask, -1), 1.0)
        steps = steps_both if mask is None else steps_both[:n]
        ref_a, ref_b = batch["ref_logp_a"], batch["ref_logp_b"]
        if per_step:  # log-probs per step: the implicit reward no longer grows with segment length
            steps_b = steps_both if mask is None else steps_both[n:]
            logp, ref_a, ref_b = logp / steps_both, ref_a / steps, ref_b / steps_b
            steps = 1.0  # the RPO NLL term is then already per step
        return preference_dpo_loss(logp[:n], logp[n:], ref_a, ref_b,
                                   batch["label"], batch.get("weight"), beta=hp["beta"],
                                   weights=hp["loss_weights"], label_smoothing=hp["label_smoothing"],
                                   rpo_alpha=hp["rpo_alpha"], num_steps=steps)

    def update(state: DPOState, batch: dict):
        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state.norm, state.hparams, batch)
        return apply_gradients(state, tx, grads, metrics)

    return update


# --- Segments, reference log-probs and pair batches --------------------------------------------


def segment_arrays(table) -> dict:
    """Policy-side view of a SegmentTable (joint features): obs [S, T, D], act [S, T, A] in units
    of qd_max, act_mask [S, A], task, embodiment [S] int32."""
    emb = np.asarray(table.embodiment_id, np.int32)
    return {"obs": np.asarray(table.obs, np.float32), "act": normalize_actions(table.act, emb),
            "act_mask": np.asarray(table.act_mask, np.float32), "task": np.asarray(table.task_id, np.int32),
            "embodiment": emb}


@functools.partial(jax.jit, static_argnums=(0, 3))
def _chunk_log_prob(model, variables, chunk, action_clip):
    return segment_log_prob(model, variables, chunk["obs"], chunk["act"], chunk["task"], chunk["embodiment"],
                            chunk["act_mask"], chunk.get("mask"), action_clip=action_clip)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _chunk_log_prob_stacked(model, variables, chunk, action_clip):
    return jax.vmap(lambda v: _chunk_log_prob(model, v, chunk, action_clip))(variables)


def segment_log_probs(model: GaussianPolicy, variables: dict, segments: dict, *, chunk: int = 256,
                      action_clip: float = 0.999, stacked: bool = False) -> np.ndarray:
    """log π(σ) for every segment: segments as ``segment_arrays`` ([S, ...]) → [S] (or [P, S]
    for ``stacked`` variables with a leading sweep axis). Runs in fixed-size chunks (the last one
    padded) so the whole table compiles once; used once for π_ref, then for evaluation."""
    keys = [k for k in ("obs", "act", "act_mask", "task", "embodiment", "mask") if k in segments]
    n = len(segments["task"])
    fn = _chunk_log_prob_stacked if stacked else _chunk_log_prob
    out = []
    for start in range(0, n, chunk):
        part = {k: np.asarray(segments[k][start:start + chunk]) for k in keys}
        m = len(part["task"])
        if m < chunk:
            part = {k: np.concatenate([v, np.repeat(v[-1:], chunk - m, 0)], 0) for k, v in part.items()}
        out.append(np.asarray(fn(model, variables, part, action_clip))[..., :m])
    return np.concatenate(out, -1)


def dpo_batch(segments: dict, ref_logp: np.ndarray, idx_a, idx_b, label, weight=None) -> dict:
    """Gathers a pair batch (layout in the module docstring) from segment rows idx_a/idx_b [B]."""
    idx_a, idx_b = np.asarray(idx_a), np.asarray(idx_b)
    batch = {}
    for side, idx in (("a", idx_a), ("b", idx_b)):
        for k in ("obs", "act", "act_mask", "task", "embodiment", "mask"):
            if k in segments:
                batch[f"{k}_{side}"] = segments[k][idx]
        batch[f"ref_logp_{side}"] = np.asarray(ref_logp[idx], np.float32)
    batch["label"] = np.asarray(label, np.float32)
    batch["weight"] = np.ones_like(batch["label"]) if weight is None else np.asarray(weight, np.float32)
    return batch


__all__ = ["DPOState", "LOSS_TYPES", "dpo_hparams", "sweep_hparams", "init_dpo_state", "make_dpo_update",
           "segment_arrays", "segment_log_probs", "dpo_batch"]
