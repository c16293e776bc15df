"""Gaussian policies over joint-velocity actions for several embodiments at once.

Actions are joint velocities divided by the robot's velocity limit ``qd_max``, so every
embodiment acts in [-1, 1]^dof. Arms with fewer joints (UR5: 6) are padded to ``MAX_DOF`` = 7
and carry an action mask [A]; every log-probability sums over the valid dims only, so padding
never changes it (truncating to the smallest arm instead would drop Panda/Gen3's seventh joint).

The policy is a state-dependent diagonal Gaussian over the pre-squash action u,
optionally squashed a = tanh(u). Change of variables gives

    log π(a|s) = Σ_i m_i [log N(u_i; μ_i(s), σ_i(s)) − log(1 − tanh²(u_i))],   u = atanh(a)

with log(1 − tanh²u) = 2(log 2 − u − softplus(−2u)), which stays finite for large |u|
where the naive form underflows to log 0.
"""
from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rlhf_jax import normalizer
from rlhf_jax.envs.robots import MAX_DOF
from rlhf_jax.losses.ppo import LOG_2PI
from rlhf_jax.models.encoders import ContextEmbedding, Normalizer


class GaussianPolicy(nn.Module):
    """π(a | s, task, embodiment): MLP trunk → (mean [..., A], log_std [..., A]) of u.

    obs: [..., D] features (normalised inside by the ``norm`` collection, see
    ``set_obs_stats``); task_id, embodiment_id: int32 with obs's leading shape, or with fewer
    trailing axes (e.g. [B] for obs [B, T, D]) in which case they are broadcast over time.
    The task instruction enters as a learned token embedding of the task id.
    """

    num_tasks: int
    num_embodiments: int
    action_dim: int = MAX_DOF
    hidden: Sequence[int] = (128, 128)
    context_dim: int = 16
    squash: bool = True
    state_dependent_std: bool = True
    log_std_min: float = -5.0
    log_std_max: float = 1.0
    # Fine-tuning: a hard lower bound on log σ (None = none), so a policy cloned to a near-
    # deterministic σ keeps room to explore; applied to π and π_ref alike (one module).
    log_std_floor: float | None = None

    @nn.compact
    def __call__(self, obs, task_id, embodiment_id):
        x = Normalizer("obs", name="obs_norm")(obs)
        ctx = ContextEmbedding(self.num_tasks, self.num_embodiments, self.context_dim, name="context")(
            task_id, embodiment_id)
        while ctx.ndim < x.ndim:  # ids given per segment: broadcast over the time axes
            ctx = ctx[..., None, :]
        x = jnp.concatenate([x, jnp.broadcast_to(ctx, x.shape[:-1] + ctx.shape[-1:])], axis=-1)
        for width in self.hidden:
            x = nn.gelu(nn.Dense(width)(x))
        # Small final init keeps the initial mean near 0 (the centre of the velocity box).
        mean = nn.Dense(self.action_dim, kernel_init=nn.initializers.variance_scaling(
            0.01, "fan_in", "truncated_normal"), name="mean")(x)
        if self.state_dependent_std:
            raw = nn.Dense(self.action_dim, name="log_std")(x)
        else:
            raw = jnp.broadcast_to(self.param("log_std", nn.initializers.zeros, (self.action_dim,)), mean.shape)
        # Smooth bound instead of a hard clip, so the gradient never vanishes at the edges.
        lo, hi = self.log_std_min, self.log_std_max
        log_std = lo + 0.5 * (hi - lo) * (jnp.tanh(raw) + 1.0)
        if self.log_std_floor is not None:
            log_std = jnp.maximum(log_std, self.log_std_floor)
        return mean, log_std


def make_policy(model_config, num_tasks: int, num_embodiments: int) -> GaussianPolicy:
    """GaussianPolicy from a model config (``config.model`` ConfigDict, or the plain dict a
    checkpoint's metadata stores): hidden, context_dim, squash, and optional std settings
    (log_std_min, log_std_max, log_std_floor)."""
    m = dict(model_config)
    return GaussianPolicy(num_tasks=num_tasks, num_embodiments=num_embodiments,
                          action_dim=m.get("action_dim", MAX_DOF), hidden=tuple(m["hidden"]),
                          context_dim=m["context_dim"], squash=m["squash"],
                          state_dependent_std=m.get("state_dependent_std", True),
                          log_std_min=m.get("log_std_min", -5.0), log_std_max=m.get("log_std_max", 1.0),
                          log_std_floor=m.get("log_std_floor"))


def set_obs_stats(variables: dict, mean, std) -> dict:
    """Returns variables with the observation normaliser set to (mean [D], std [D])."""
    out = dict(variables)
    out["norm"] = normalizer.collection(obs=(mean, std))
    return out


def log_one_minus_tanh_sq(u):
    """log(1 − tanh²(u)) = 2(log 2 − u − softplus(−2u)), stable for any |u|."""
    return 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))


def gaussian_log_prob(x, mean, log_std):
    """Elementwise log N(x; mean, exp(log_std)²), shapes broadcast."""
    z = (x - mean) * jnp.exp(-log_std)
    return -0.5 * (z * z + LOG_2PI) - log_std


def action_log_prob(mean, log_std, action, act_mask, *, squash: bool, action_clip: float = 0.999):
    """log π(a|s) summed over valid action dims.

    mean, log_std, action: [..., A] (action normalised to [-1, 1] when ``squash``);
    act_mask: [..., A] or broadcastable (1 = joint exists). Returns [...].
    Squashed actions are clipped to ±action_clip first: demonstrations that sit exactly on
    the velocity limit would otherwise have atanh = ±inf.
    """
    act_mask = jnp.asarray(act_mask, mean.dtype)
    if squash:
        a = jnp.clip(action, -action_clip, action_clip)
        u = jnp.arctanh(a)
        per_dim = gaussian_log_prob(u, mean, log_std) - log_one_minus_tanh_sq(u)
    else:
        per_dim = gaussian_log_prob(action, mean, log_std)
    # where() rather than multiply: padded dims may hold anything, even inf.
    return jnp.sum(jnp.where(act_mask > 0, per_dim, 0.0), axis=-1)


def sample_action(key, mean, log_std, act_mask, *, squash: bool, deterministic: bool = False):
    """Draws a ~ π(·|s) ([..., A], zero on padded dims); deterministic gives the mode-ish tanh(μ)."""
    u = mean if deterministic else mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)
    a = jnp.tanh(u) if squash else u
    return a * jnp.asarray(act_mask, a.dtype)


def policy_log_prob(model: GaussianPolicy, variables, obs, action, task_id, embodiment_id, act_mask,
                    *, action_clip: float = 0.999):
    """log π(a_t|s_t) per step: obs [..., D], action [..., A] → [...]."""
    mean, log_std = model.apply(variables, obs, task_id, embodiment_id)
    if act_mask.ndim < action.ndim:  # per-segment mask [B, A] for actions [B, T, A]
        act_mask = jnp.expand_dims(act_mask, tuple(range(act_mask.ndim - 1, action.ndim - 1)))
    return action_log_prob(mean, log_std, action, act_mask, squash=model.squash, action_clip=action_clip)


def segment_log_prob(model: GaussianPolicy, variables, obs, action, task_id, embodiment_id, act_mask,
                     step_mask=None, *, action_clip: float = 0.999):
    """log π(σ) = Σ_t log π(a_t|s_t) over valid steps.

    obs [B, T, D], action [B, T, A], task_id/embodiment_id [B], act_mask [B, A],
    step_mask [B, T] or None (all valid). Returns [B].
    """
    per_step = policy_log_prob(model, variables, obs, action, task_id, embodiment_id, act_mask,
                               action_clip=action_clip)
    if step_mask is not None:
        per_step = jnp.where(step_mask > 0, per_step, 0.0)
    return jnp.sum(per_step, axis=-1)


@functools.lru_cache(maxsize=None)
def embodiment_tables() -> tuple[np.ndarray, np.ndarray]:
    """(qd_max [E, MAX_DOF] padded with 1, act_mask [E, MAX_DOF]) for envs.robots.EMBODIMENTS."""
    from rlhf_jax.envs.robots import EMBODIMENTS, ROBOTS  # lazy: the policy itself needs no robots

    qd_max = np.ones((len(EMBODIMENTS), MAX_DOF), np.float32)
    mask = np.zeros((len(EMBODIMENTS), MAX_DOF), np.float32)
    for i, name in enumerate(EMBODIMENTS):
        robot = ROBOTS[name]
        qd_max[i, :robot.dof] = np.asarray(robot.qd_max, np.float32)
        mask[i, :robot.dof] = 1.0
    return qd_max, mask


def normalize_actions(act, embodiment_id):
    """Joint velocities [..., A] (padded) → units of each robot's qd_max; padded dims stay 0."""
    qd_max, mask = embodiment_tables()
    act = np.asarray(act, np.float32)
    scale, valid = qd_max[embodiment_id], mask[embodiment_id]
    while scale.ndim < act.ndim:  # per-segment ids [S] for actions [S, T, A]
        scale, valid = scale[..., None, :], valid[..., None, :]
    return act / scale * valid
