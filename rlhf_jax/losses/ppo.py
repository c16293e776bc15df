"""PPO losses: generalised advantage estimation, clipped surrogate, clipped value loss, entropy.

All functions are pure; time-major arrays are [T, B] (T rollout steps, B environments).
Termination and truncation are kept apart (as in brax): a terminal state has value 0, while an
episode cut by the time limit still bootstraps from the value of its last observation.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

LOG_2PI = float(np.log(2.0 * np.pi))


def gae(rewards, values, next_values, terminated, truncated, gamma: float, lam: float):
    """Generalised advantage estimation with truncation handled apart from termination.

    rewards, values, terminated, truncated: [T, B]; values[t] = V(s_t); next_values [T, B] =
    V(s_{t+1}) of the observation the step *produced* (before any auto-reset), so a truncated
    step bootstraps from its real final state.

        δ_t = r_t + γ·(1 − term_t)·V(s_{t+1}) − V(s_t)
        A_t = δ_t + γλ·(1 − done_t)·A_{t+1},   done_t = term_t ∨ trunc_t,   A_T = 0

    The last rollout step needs no special case: its δ already bootstraps from next_values.
    Returns (advantages [T, B], value targets A + V [T, B]).
    """
    terminated = jnp.asarray(terminated, rewards.dtype)
    done = jnp.maximum(terminated, jnp.asarray(truncated, rewards.dtype))
    deltas = rewards + gamma * (1.0 - terminated) * next_values - values

    def body(acc, x):
        delta, d = x
        acc = delta + gamma * lam * (1.0 - d) * acc
        return acc, acc

    _, adv = jax.lax.scan(body, jnp.zeros_like(rewards[0]), (deltas, done), reverse=True)
    return adv, adv + values


def normalize_advantages(adv, eps: float = 1e-8):
    """(A − mean A) / (std A + eps) over all elements; shapes kept."""
    return (adv - adv.mean()) / (adv.std() + eps)


def clipped_surrogate_loss(logp, old_logp, advantages, clip_eps):
    """PPO clipped policy loss (Schulman et al., 2017).

    logp, old_logp, advantages: [N] (any equal shapes); clip_eps: scalar ε (may be traced).

        ρ = exp(logp − old_logp),  loss = −mean(min(ρ·A, clip(ρ, 1 − ε, 1 + ε)·A))

    At ρ = 1 the loss is −mean(A). Returns (loss, metrics) with the clip fraction and the
    k3 estimate of KL(π_old ‖ π) (approx_kl).
    """
    log_ratio = logp - old_logp
    ratio = jnp.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    loss = -jnp.mean(jnp.minimum(unclipped, clipped))
    metrics = {"ppo/clip_fraction": jnp.mean((jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32)),
               "ppo/approx_kl": jnp.mean((ratio - 1.0) - log_ratio),
               "ppo/ratio_mean": jnp.mean(ratio)}
    return loss, metrics


def value_loss(values, old_values, targets, clip_eps=None):
    """Value regression, optionally clipped around the rollout's values (as in PPO2).

    values, old_values, targets: [N]; clip_eps: scalar or None (no clipping).

        v_c  = old_v + clip(v − old_v, −ε, ε)
        loss = ½·mean(max((v − R)², (v_c − R)²))      (½·mean((v − R)²) without clipping)

    Returns (loss, metrics) with the explained variance of the targets.
    """
    err = jnp.square(values - targets)
    if clip_eps is not None:
        v_clipped = old_values + jnp.clip(values - old_values, -clip_eps, clip_eps)
        err = jnp.maximum(err, jnp.square(v_clipped - targets))
    loss = 0.5 * jnp.mean(err)
    explained = 1.0 - jnp.var(targets - values) / (jnp.var(targets) + 1e-8)
    return loss, {"ppo/value_loss": loss, "ppo/explained_variance": explained}


def gaussian_entropy(log_std, act_mask):
    """Entropy of the pre-squash diagonal Gaussian, summed over valid action dims.

    log_std: [..., A]; act_mask: [..., A] or broadcastable (1 = joint exists). Returns [...]:
        H = Σ_i m_i·(log σ_i + ½(1 + log 2π))
    A tanh-squashed policy has no closed-form entropy; the Gaussian's is the usual stand-in
    (it differs by E[log(1 − tanh²u)], which the bonus does not need to be exact about).
    """
    per_dim = log_std + 0.5 * (1.0 + LOG_2PI)
    return jnp.sum(jnp.where(jnp.asarray(act_mask) > 0, per_dim, 0.0), axis=-1)


def ppo_loss(logp, old_logp, advantages, values, old_values, targets, entropy, *, clip_eps,
             vf_clip=None, vf_coef: float = 0.5, ent_coef: float = 0.0):
    """Total PPO loss on a minibatch of N transitions (all inputs [N]).

        loss = L_clip(ε) + c_v·L_V − c_H·mean(H)

    Advantages are used as given (normalise them per minibatch before calling, if wanted).
    Returns (loss, metrics).
    """
    pg, m_pg = clipped_surrogate_loss(logp, old_logp, advantages, clip_eps)
    vl, m_v = value_loss(values, old_values, targets, vf_clip)
    ent = jnp.mean(entropy)
    loss = pg + vf_coef * vl - ent_coef * ent
    return loss, {**m_pg, **m_v, "ppo/policy_loss": pg, "ppo/entropy": ent, "ppo/loss": loss}
