"""Supervised fine-tuning (behaviour cloning) of the reference policy π_ref.

Transition batch layout (all leading [B]): ``obs`` [B, D] features, ``act`` [B, A] actions in
units of qd_max (padded to A = MAX_DOF), ``task``, ``embodiment`` [B] int32, ``act_mask`` [B, A],
optional ``weight`` [B] (0 = padding row).
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rlhf_jax.losses.bc import bc_loss
from rlhf_jax.models.policy import (GaussianPolicy, action_log_prob, embodiment_tables, normalize_actions,
                                    sample_action, set_obs_stats)
from rlhf_jax.train.state import TrainState, apply_gradients


def make_sft_update(config, model: GaussianPolicy, tx: optax.GradientTransformation) -> Callable:
    """Returns the pure ``update(state, batch) -> (state, metrics)`` minimising demo NLL.

    loss = −Σ_i w_i log π(a_i|s_i) / Σ_i w_i (log-probs over valid joints only).
    ``config.train.action_clip`` bounds |a| < 1 before atanh for squashed policies.
    Metrics: loss, bc/nll, bc/nll_per_dim, bc/mse (deterministic action vs demo, valid dims),
    policy/log_std, grad_norm, param_norm, update_norm. Jit it, or shard it with
    ``rlhf_jax.sharding.data_parallel``.
    """
    clip = float(config.train.get("action_clip", 0.999))

    def loss_fn(params, norm, batch):
        mean, log_std = model.apply({"params": params, "norm": norm}, batch["obs"], batch["task"], batch["embodiment"])
        mask = batch["act_mask"]
        logp = action_log_prob(mean, log_std, batch["act"], mask, squash=model.squash, action_clip=clip)
        loss, metrics = bc_loss(logp, batch.get("weight"), jnp.sum(mask, -1))
        mode = sample_action(None, mean, log_std, mask, squash=model.squash, deterministic=True)
        n_valid = jnp.maximum(jnp.sum(mask), 1.0)
        metrics["bc/mse"] = jnp.sum(mask * (mode - batch["act"]) ** 2) / n_valid
        metrics["policy/log_std"] = jnp.sum(mask * log_std) / n_valid
        return loss, metrics

    def update(state: TrainState, batch: dict):
        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, state.norm, batch)
        return apply_gradients(state, tx, grads, metrics)

    return update


def init_policy_variables(model: GaussianPolicy, key, obs_dim: int, obs_mean=None, obs_std=None) -> dict:
    """Initial {"params", "norm"} for obs [D]; the normaliser is set from data statistics."""
    # jit: one compile instead of op-by-op dispatch of every initialiser.
    variables = jax.jit(model.init)(key, jnp.zeros((1, obs_dim), jnp.float32), jnp.zeros((1,), jnp.int32),
                                    jnp.zeros((1,), jnp.int32))
    variables = dict(variables)
    if obs_mean is not None:
        variables = set_obs_stats(variables, obs_mean, obs_std)
    return variables


def sample_minibatch(data: dict, rng: np.random.Generator, batch_size: int) -> dict:
    """Uniformly sampled rows (with replacement) of every array in ``data`` (leading [N])."""
    n = len(next(iter(data.values())))
    idx = rng.integers(0, n, size=batch_size)
    return {k: v[idx] for k, v in data.items()}


# --- Demonstrations from RLDS episodes -------------------------------------------------------


def episode_succeeded(episode: dict) -> bool:
    """Success at the last step (the simulator's "success" component), as envs.policies counts it."""
    from rlhf_jax.envs.simulator import REWARD_COMPONENTS

    return bool(np.asarray(episode["steps"]["reward_components"])[-1, REWARD_COMPONENTS.index("success")] > 0)


def demonstration_arrays(episodes: Sequence[dict], policies: Sequence[str], only_successful: bool,
                         dt: float) -> tuple[dict, dict]:
    """Transitions of the demonstration episodes, as an SFT data dict (module docstring layout).

    Demonstrations are the episodes whose behaviour policy (``episode_metadata.policy``) is in
    ``policies`` and, with ``only_successful``, that end in success. Features are the dataset's
    "joint" features; actions are divided by each robot's qd_max. Returns (data [N, ...],
    info with counts per policy). Raises ValueError when nothing qualifies.
    """
    from rlhf_jax.preferences.segments import episode_features  # the features reward models see too

    keep, counts = [], {}
    for ep in episodes:
        meta = ep["episode_metadata"]
        policy = meta["policy"].decode() if isinstance(meta["policy"], bytes) else str(meta["policy"])
        if policy in policies and (not only_successful or episode_succeeded(ep)):
            keep.append(ep)
            counts[policy] = counts.get(policy, 0) + 1
    if not keep:
        raise ValueError(f"no demonstrations: no episode with policy in {tuple(policies)}"
                         + (" that succeeded" if only_successful else ""))
    obs, act, task, emb = [], [], [], []
    for ep in keep:
        o, a = episode_features(ep, "joint", dt)
        meta = ep["episode_metadata"]
        obs.append(o)
        act.append(a)
        task.append(np.full(len(o), int(meta["task_id"]), np.int32))
        emb.append(np.full(len(o), int(meta["embodiment_id"]), np.int32))
    emb = np.concatenate(emb)
    _, mask = embodiment_tables()
    data = {"obs": np.concatenate(obs), "act": normalize_actions(np.concatenate(act), emb),
            "task": np.concatenate(task), "embodiment": emb, "act_mask": mask[emb]}
    return data, {"episodes": len(keep), "transitions": len(emb), "episodes_per_policy": counts}
