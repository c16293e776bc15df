"""Per-episode evaluation of policies and of the scripted expert: gold components, the learned
reward's proxy return and the KL to a reference policy along the evaluated policy's own path.

Initial states follow ``policy_eval.evaluate_policy`` (the per-arm key folded with the arm's
index, one key per (task, episode), its first split for the reset), so SFT, PPO, DPO and the
expert are all compared on the same episodes. Actions are deterministic (tanh of the mean).
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rlhf_jax import features as F
from rlhf_jax.envs import policies as P
from rlhf_jax.envs import robots as R
from rlhf_jax.envs import tasks as T
from rlhf_jax.envs import unroll as U
from rlhf_jax.losses import kl as K
from rlhf_jax.models.policy import MAX_DOF, sample_action
from rlhf_jax.models.reward_inference import learned_reward_fn


def build_episodes(robot_name: str, dt: float, horizon: int, model=None, ref_model=None, reward_model=None,
                   reward_kw: tuple = ()):
    """(variables, ref_variables, reward_variables, keys [E], tasks [E]) -> (components [E, T, C],
    proxy [E, T], kl [E, T]) for one arm (for `unroll.compiled`); model None = the scripted expert.
    Missing parts give zeros. All parameters are traced, so one program serves every policy and
    reward model of a shape."""
    robot = R.ROBOTS[robot_name]
    dof, emb = robot.dof, jnp.int32(R.EMBODIMENTS.index(robot_name))
    mask = (jnp.arange(MAX_DOF) < dof).astype(jnp.float32)
    qd_max = jnp.asarray(robot.qd_max, jnp.float32)
    expert = {k: jnp.float32(v) for k, v in P.PRESETS["expert"].items()}

    def run(variables, ref_variables, reward_variables, keys, tasks):
        def act(s, obs, task):
            """One environment: (action rad/s [dof], {"feats", "kl"}); deterministic actions."""
            feats = F.features(obs, dof, "joint", xp=jnp)
            kl = jnp.zeros(())
            if model is None:
                a = expert_velocity_norm(robot, expert, s, qd_max)
            else:
                mean, log_std = model.apply(variables, feats, task, emb)
                a = sample_action(None, mean, log_std, mask, squash=model.squash, deterministic=True)[:dof]
                if ref_model is not None:
                    ref_mean, ref_log_std = ref_model.apply(ref_variables, feats, task, emb)
                    kl = K.gaussian_kl(mean, log_std, ref_mean, ref_log_std, mask)
            return a * qd_max, {"feats": feats, "kl": kl}

        reward_fn = None
        if reward_model is not None:  # a reward model reads no gold components
            learned = learned_reward_fn(reward_model, reward_variables, ensemble=True, **dict(reward_kw))
            one = lambda feats, rad, task: learned(feats[None], F.pad_joints(rad, jnp)[None], task[None],
                                                   emb[None], None)[0]
            reward_fn = lambda tr: jax.vmap(one)(tr.extras["feats"], tr.action, tasks)

        state = U.reset_batch(robot, tasks, jax.vmap(lambda k: jax.random.split(k)[0])(keys))
        _, traj = U.unroll(robot, lambda _, s, obs: jax.vmap(act)(s, obs, tasks), state, None, dt=dt,
                           horizon=horizon, length=horizon, reward_fn=reward_fn,
                           record=("components", "kl") + (() if reward_fn is None else ("reward",)))
        traj = U.batch_major(traj)
        proxy = traj["reward"] if reward_fn is not None else jnp.zeros(traj["kl"].shape)
        return traj["components"], proxy, traj["kl"]

    return run


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
    run = U.compiled(build_episodes, robot_name, float(dt), int(horizon), model,
                     ref_model if model is not None else None, None if reward is None else reward.model, reward_kw)
    reward_vars = None if reward is None else reward.stacked_variables
    rc, proxy, kl = jax.device_get(run(variables, ref_variables, reward_vars, keys, jnp.asarray(task_ids)))
    shape = (len(tasks), n_episodes)
    return {"components": rc.reshape(shape + rc.shape[1:]), "proxy": proxy.sum(-1).reshape(shape),
            "kl": kl.sum(-1).reshape(shape)}


def arm_key(seed: int, robot_name: str):
    """The evaluation key of one arm, as ``policy_eval.evaluate_policy`` derives it."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), R.EMBODIMENTS.index(robot_name))
