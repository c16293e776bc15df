"""Per-episode evaluation of policies and of the scripted expert: gold components, the learned
reward's proxy return and the KL to a reference policy along the evaluated policy's own path.

Initial states follow ``policy_eval.evaluate_policy`` (the per-arm key folded with the arm's
index, one key per (task, episode), its first split for the reset), so SFT, PPO, DPO and the
expert are all compared on the same episodes. Actions are deterministic (tanh of the mean).
"""
from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rlhf_jax import features as F
from rlhf_jax.envs import policies as P
from rlhf_jax.envs import robots as R
from rlhf_jax.envs import simulator as S
from rlhf_jax.envs import tasks as T
from rlhf_jax.models.policy import MAX_DOF, sample_action
from rlhf_jax.models.reward_inference import learned_reward_fn


def gaussian_kl(mean_p, log_std_p, mean_q, log_std_q, mask):
    """KL(N_p ‖ N_q) of diagonal Gaussians summed over valid dims: [..., A] → [...].

    KL = Σ_i m_i [log σ_q/σ_p + (σ_p² + (μ_p − μ_q)²) / (2σ_q²) − ½]; a tanh squash applied
    to both leaves it unchanged (KL is invariant under a shared bijection).
    """
    var_p, var_q = jnp.exp(2 * log_std_p), jnp.exp(2 * log_std_q)
    per_dim = log_std_q - log_std_p + (var_p + (mean_p - mean_q) ** 2) / (2 * var_q) - 0.5
    return jnp.sum(jnp.where(mask > 0, per_dim, 0.0), -1)


@functools.lru_cache(maxsize=32)
def _episode_program(robot_name: str, dt: float, horizon: int, model=None, ref_model=None,
                     reward_model=None, reward_kw: tuple = ()):
    """jit((variables, ref_variables, reward_variables, keys [E], tasks [E]) -> (components [E, T,
    C], proxy [E, T], kl [E, T])); model None = the scripted expert. Missing parts give zeros.
    All parameters are traced, so one program serves every policy and reward model of a shape."""
    robot = R.ROBOTS[robot_name]
    dof, emb = robot.dof, jnp.int32(R.EMBODIMENTS.index(robot_name))
    mask = (jnp.arange(MAX_DOF) < dof).astype(jnp.float32)
    qd_max = jnp.asarray(robot.qd_max, jnp.float32)
    expert = {k: jnp.float32(v) for k, v in P.PRESETS["expert"].items()}

    def episode(variables, ref_variables, reward_variables, key, task):
        state = S.reset_state(robot, task, jax.random.split(key)[0])
        reward_fn = None if reward_model is None else learned_reward_fn(
            reward_model, reward_variables, ensemble=True, **dict(reward_kw))

        def body(s, _):
            feats = F.features(S.observe_state(robot, False, s), dof, "joint", xp=jnp)
            kl = jnp.zeros(())
            if model is None:
                act = expert_velocity_norm(robot, expert, s, qd_max)
            else:
                mean, log_std = model.apply(variables, feats, task, emb)
                act = sample_action(None, mean, log_std, mask, squash=model.squash, deterministic=True)[:dof]
                if ref_model is not None:
                    ref_mean, ref_log_std = ref_model.apply(ref_variables, feats, task, emb)
                    kl = gaussian_kl(mean, log_std, ref_mean, ref_log_std, mask)
            rad = act * qd_max
            proxy = jnp.zeros(())
            if reward_fn is not None:  # a reward model reads no gold components
                proxy = reward_fn(feats[None], F.pad_joints(rad, jnp)[None], task[None], emb[None], None)[0]
            s, _, rc, _ = S.step_state(robot, dt, horizon, False, s, rad)
            return s, (rc, proxy, kl)

        _, out = jax.lax.scan(body, state, None, length=horizon)
        return out

    return jax.jit(jax.vmap(episode, in_axes=(None, None, None, 0, 0)))


def expert_velocity_norm(robot, expert_params: dict, state, qd_max):
    """The scripted expert's action in units of qd_max (its requests stay within ±0.95)."""
    return P.expert_velocity(robot, expert_params, state) / qd_max


def episodes(robot_name: str, tasks: Sequence[str], key, n_episodes: int, *, model=None, variables=None,
             ref_model=None, ref_variables=None, reward=None, dt: float = 0.05, horizon: int = 50) -> dict:
    """Per-episode arrays of one arm, [len(tasks), n_episodes, ...]: ``components`` [.., T, C],
    ``proxy`` (Σ_t learned reward; zeros without ``reward``), ``kl`` (Σ_t KL(π ‖ π_ref) on the
    visited states; zeros without a reference). model None evaluates the scripted expert.

    reward: a loaded ``rlhf_jax.reward_artifact.RewardModel`` (its aggregation, λ and scale apply).
    """
    task_ids = np.repeat([T.task_id(t) for t in tasks], n_episodes).astype(np.int32)
    keys = jax.random.split(key, len(task_ids))
    reward_kw = () if reward is None else (("aggregation", reward.aggregation), ("lam", float(reward.lam)),
                                           ("scale", float(reward.scale)))
    run = _episode_program(robot_name, float(dt), int(horizon), model, ref_model if model is not None else None,
                           None if reward is None else reward.model, reward_kw)
    reward_vars = None if reward is None else reward.stacked_variables
    rc, proxy, kl = jax.device_get(run(variables, ref_variables, reward_vars, keys, jnp.asarray(task_ids)))
    shape = (len(tasks), n_episodes)
    return {"components": rc.reshape(shape + rc.shape[1:]), "proxy": proxy.sum(-1).reshape(shape),
            "kl": kl.sum(-1).reshape(shape)}


def arm_key(seed: int, robot_name: str):
    """The evaluation key of one arm, as ``policy_eval.evaluate_policy`` derives it."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), R.EMBODIMENTS.index(robot_name))
