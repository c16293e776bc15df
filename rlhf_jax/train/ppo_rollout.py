"""PPO's environment side: the vectorised environments, the rollout that collects one update's
batch, the value net's inputs, running feature statistics and the rollout metrics.

Everything here is a module-level pure function of a static ``PPOEnv`` (closed over, never
traced) and arrays, so each piece is testable on its own; ``rlhf_jax.train.ppo`` composes them.
Shapes: T = ppo.num_steps, B = ppo.num_envs, D = OBS_DIM, A = MAX_DOF, C = len(REWARD_COMPONENTS).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rlhf_jax.envs import robots as R
from rlhf_jax.envs import simulator as S
from rlhf_jax.envs import tasks as T
from rlhf_jax.envs import unroll as U
from rlhf_jax.envs.constraints import (CONSTRAINTS, SafetySpec, constraint_violations, project_action,
                                       safety_spec_from_config)
from rlhf_jax import normalizer
from rlhf_jax.features import feature_dim
from rlhf_jax.features import joint_features
from rlhf_jax.losses import kl as K
from rlhf_jax.models.policy import MAX_DOF, action_log_prob, sample_action

OBS_DIM = feature_dim("joint")
VALUE_IN_DIM = OBS_DIM + 1 + len(T.TASKS)  # features, time fraction, one-hot task


class PPOEnv(NamedTuple):
    """The B vectorised environments of a PPO run (static: built once from the config)."""

    robot: R.Robot
    emb_id: int
    dt: float
    horizon: int
    num_envs: int
    num_steps: int
    task_ids: jax.Array  # [B] int32: config.env.tasks cycled over the environments
    act_mask: jax.Array  # [B, A] 1 on the robot's joints
    qd_max: jax.Array  # [A] rad/s, 0 past the robot's joints
    rubric_w: jax.Array  # [C] gold rubric weights
    safety: SafetySpec | None


def make_ppo_env(config) -> PPOEnv:
    """PPOEnv from config.env {robot, tasks, dt, horizon}, config.ppo, config.safety, config.rubric."""
    e, p = config.env, config.ppo
    robot = R.ROBOTS[e.robot]
    n = int(p.num_envs)
    return PPOEnv(
        robot=robot, emb_id=R.EMBODIMENTS.index(e.robot), dt=float(e.dt), horizon=int(e.horizon),
        num_envs=n, num_steps=int(p.num_steps),
        task_ids=jnp.asarray(np.resize([T.task_id(t) for t in e.tasks], n), jnp.int32),
        act_mask=jnp.broadcast_to((jnp.arange(MAX_DOF) < robot.dof).astype(jnp.float32), (n, MAX_DOF)),
        qd_max=jnp.pad(jnp.asarray(robot.qd_max, jnp.float32), (0, MAX_DOF - robot.dof)),
        rubric_w=jnp.asarray(S.rubric_vector(config.get("rubric"))),
        safety=safety_spec_from_config(config.get("safety")))


def reset_envs(env: PPOEnv, key) -> S.EnvState:
    """Fresh EnvState [B], one key per environment."""
    return jax.vmap(lambda k, t: S.reset_state(env.robot, t, k))(jax.random.split(key, env.num_envs), env.task_ids)


def rollout(env: PPOEnv, policy, reward_fn: Callable, policy_vars: dict, ref_vars: dict, state: S.EnvState,
            key) -> tuple[S.EnvState, dict]:
    """``env.num_steps`` steps of all B environments (one `unroll`), auto-reset at the time limit.

    policy: the GaussianPolicy module; policy_vars / ref_vars: π's and π_ref's {"params",
    "norm"}; reward_fn as ``rlhf_jax.models.reward_inference``. Returns (EnvState [B] after the last
    step, traj) with traj, each [T, B, ...]: feats [D] and next_feats [D] (features before and
    after the step, next_feats of the real final observation even where the episode is cut),
    t (step index within the episode), action [A] (normalised, as sampled), logp and ref_logp
    (of the action under π and π_ref), proxy (reward_fn), gold (rubric total), rc [C] (gold
    components), done (time limit reached), viol [4] (CONSTRAINTS order; 0 without safety).
    """
    squash, dof, n = policy.squash, env.robot.dof, env.num_envs
    project = env.safety is not None and env.safety.mode == "projection"
    emb = jnp.full((n,), env.emb_id, jnp.int32)

    def act(key, state, obs):
        """Sampled action of π on the B environments, its log-probabilities under π and π_ref."""
        k_act, _ = jax.random.split(key)  # each step key: (action key, reset key), see reset_fn below
        feats = joint_features(obs, dof)
        mean, log_std = policy.apply(policy_vars, feats, env.task_ids, emb)
        a = sample_action(k_act, mean, log_std, env.act_mask, squash=squash)
        logp = action_log_prob(mean, log_std, a, env.act_mask, squash=squash)
        ref_mean, ref_log_std = policy.apply(ref_vars, feats, env.task_ids, emb)
        ref_logp = action_log_prob(ref_mean, ref_log_std, a, env.act_mask, squash=squash)
        act_rad = (project_action(env.safety, a) if project else a) * env.qd_max
        return act_rad[:, :dof], {"feats": feats, "action": a, "act_rad": act_rad, "logp": logp, "ref_logp": ref_logp}

    def record(tr: U.Transition) -> dict:
        """PPO's batch entries of one step (computed inside the scan, as PPO has always kept them)."""
        viol = (constraint_violations(env.safety, env.robot, tr.next_state, tr.components, tr.extras["action"])
                if env.safety is not None else jnp.zeros((n, len(CONSTRAINTS))))
        ex = tr.extras
        return {"feats": ex["feats"], "next_feats": joint_features(tr.next_obs, dof), "t": tr.state.t,
                "action": ex["action"], "logp": ex["logp"], "ref_logp": ex["ref_logp"], "proxy": tr.reward,
                "gold": (tr.components * env.rubric_w).sum(-1), "rc": tr.components, "done": tr.done, "viol": viol}

    return U.unroll(env.robot, act, state, jax.random.split(key, env.num_steps), dt=env.dt, horizon=env.horizon,
                    reward_fn=lambda tr: reward_fn(tr.extras["feats"], tr.extras["act_rad"], env.task_ids, emb,
                                                   tr.components),
                    reset_fn=lambda key: reset_envs(env, jax.random.split(key)[1]), record=record)


def normalize(mean, var, x):
    """Features x [..., D] standardised by running (mean, var) [D] and clipped to ±10."""
    return normalizer.running_normalize(mean, var, x)


def running_norm(mean, var) -> dict:
    """The policy's "norm" collection reading the running statistics (a policy from scratch)."""
    return normalizer.collection(obs=(mean, normalizer.running_std(var)))


def merge_stats(count, mean, var, x):
    """Running (count, mean [D], var [D]) merged with a batch x [N, D] (Chan et al. parallel variance)."""
    return tuple(normalizer.running_update(count, mean, var, x))


def value_inputs(env: PPOEnv, mean, var, feats, t) -> jax.Array:
    """Value-net input [..., VALUE_IN_DIM]: normalised feats [..., B, D], time fraction t/horizon
    (the return-to-go under a time limit depends on the steps left) and the one-hot task."""
    x = normalize(mean, var, feats)
    task = jnp.broadcast_to(jax.nn.one_hot(env.task_ids, len(T.TASKS)), x.shape[:-1] + (len(T.TASKS),))
    return jnp.concatenate([x, (t / env.horizon)[..., None].astype(jnp.float32), task], -1)


def rollout_metrics(env: PPOEnv, traj: dict, kl_step, penalty, beta) -> dict:
    """Per-episode returns and rates of one rollout; traj as ``rollout``, kl_step and penalty [T, B].

    Per-step means × horizon are per-episode sums (episodes are fixed-length): gold_return and
    gold/<component>, proxy_return, kl (the estimator PPO uses), kl_k1, kl_k3, penalty_return;
    success_rate over finished episodes; violations/<constraint> and gold_violations/<component>
    per step.
    """
    h = env.horizon
    m = {"gold_return": traj["gold"].mean() * h, "proxy_return": traj["proxy"].mean() * h,
         "kl": kl_step.mean() * h, "kl_k1": K.kl_k1(traj["logp"], traj["ref_logp"]).mean() * h,
         "kl_k3": K.kl_k3(traj["logp"], traj["ref_logp"]).mean() * h, "beta": beta,
         "penalty_return": jnp.mean(penalty) * h,
         "success_rate": jnp.sum(traj["rc"][..., 1] * traj["done"]) / jnp.maximum(traj["done"].sum(), 1)}
    for i, c in enumerate(S.REWARD_COMPONENTS):
        m[f"gold/{c}"] = traj["rc"][..., i].mean() * h
    for i, c in enumerate(CONSTRAINTS):
        m[f"violations/{c}"] = traj["viol"][..., i].mean()
    for c in S.VIOLATIONS:  # the gold components' own violation rates, always reported
        m[f"gold_violations/{c}"] = (traj["rc"][..., S.REWARD_COMPONENTS.index(c)] < 0).mean()
    return m
