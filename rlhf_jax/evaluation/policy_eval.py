"""Policy evaluation: simulator rollouts (gold return, components, success, violations) and
implicit-reward accuracy of DPO policies on held-out preference pairs.

Rollouts are the simulator's one unroll program (``rlhf_jax.envs.unroll``). Policy parameters are
traced arguments and the task id is data, so one program per (arm, batch shape) serves every
task and every policy (SFT, each DPO sweep point) without recompiling.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rlhf_jax import features as F
from rlhf_jax.envs import robots as R
from rlhf_jax.envs import simulator as S
from rlhf_jax.envs import tasks as T
from rlhf_jax.envs import unroll as U
from rlhf_jax.envs.simulator import VIOLATIONS
from rlhf_jax.models.policy import GaussianPolicy, MAX_DOF, sample_action


def build_rollout_components(model: GaussianPolicy, robot_name: str, dt: float, horizon: int, deterministic: bool):
    """(variables, keys [E], tasks [E]) -> reward components [E, T, C] for one arm (for
    `unroll.compiled`); each episode's key splits into its reset key and T per-step action keys."""
    robot = R.ROBOTS[robot_name]
    dof, emb = robot.dof, jnp.int32(R.EMBODIMENTS.index(robot_name))
    mask = jnp.arange(MAX_DOF) < dof
    qd_max = jnp.asarray(robot.qd_max, jnp.float32)

    def run(variables, keys, tasks):
        k_reset, k_pol = jax.vmap(jax.random.split, out_axes=1)(keys)
        step_keys = jax.vmap(lambda k: jax.random.split(k, horizon))(k_pol)  # [E, T]

        def act(k, obs, task):
            mean, log_std = model.apply(variables, F.joint_features(obs, dof), task, emb)
            a = sample_action(k, mean, log_std, mask, squash=model.squash, deterministic=deterministic)
            return a[:dof] * qd_max  # back to rad/s

        policy = lambda x, s, obs: (jax.vmap(act)(x, obs, tasks), {})
        _, traj = U.unroll(robot, policy, U.reset_batch(robot, tasks, k_reset), U.time_major(step_keys), dt=dt,
                           horizon=horizon, record=("components",))
        return U.batch_major(traj["components"])

    return run


def rollout_components(model: GaussianPolicy, variables: dict, robot_name: str, tasks: Sequence[str],
                       key, n_episodes: int, *, dt: float = 0.05, horizon: int = 50,
                       deterministic: bool = False) -> np.ndarray:
    """Gold reward components [len(tasks), n_episodes, horizon, C] of policy rollouts on one arm."""
    task_ids = np.repeat([T.task_id(t) for t in tasks], n_episodes).astype(np.int32)
    keys = jax.random.split(key, len(task_ids))
    run = U.compiled(build_rollout_components, model, robot_name, float(dt), int(horizon), bool(deterministic))
    rc = np.asarray(run(variables, keys, jnp.asarray(task_ids)))
    return rc.reshape(len(tasks), n_episodes, horizon, -1)


def episode_metrics(rc: np.ndarray, rubric: dict | None = None) -> dict:
    """Summary of components rc [E, T, C] (REWARD_COMPONENTS order), means over episodes.

    gold_return: Σ_t Σ_c w_c r_c; gold/<component>: Σ_t r_c (unweighted); success_rate: last
    step is a success (as ``envs.policies.success_rate``); ever_success_rate: success at any
    step; violations/<c>_steps: steps with component c < 0; violations/any_rate: episodes with
    at least one collision/joint-limit/speed violation.
    """
    names = S.REWARD_COMPONENTS
    col = {c: i for i, c in enumerate(names)}
    out = {"gold_return": float(np.mean(rc.sum(1) @ S.rubric_vector(rubric)))}
    for c in names:
        out[f"gold/{c}"] = float(np.mean(rc[:, :, col[c]].sum(1)))
    out["success_rate"] = float(np.mean(rc[:, -1, col["success"]] > 0))
    out["ever_success_rate"] = float(np.mean((rc[:, :, col["success"]] > 0).any(1)))
    viol = np.stack([rc[:, :, col[c]] < 0 for c in VIOLATIONS], -1)  # [E, T, V]
    for i, c in enumerate(VIOLATIONS):
        out[f"violations/{c}_steps"] = float(np.mean(viol[..., i].sum(1)))
    out["violations/any_rate"] = float(np.mean(viol.any((1, 2))))
    return out


def evaluate_policy(model: GaussianPolicy, variables: dict, *, embodiments: Sequence[str],
                    tasks: Sequence[str], n_episodes: int, seed: int = 0, dt: float = 0.05,
                    horizon: int = 50, deterministic: bool = False) -> dict:
    """Rolls the policy out on every (embodiment, task); returns {"<emb>/<task>": metrics,
    ..., "mean": metrics averaged over the combinations}. The same seed gives the same initial
    states to every policy evaluated, so SFT and DPO policies are compared on equal episodes."""
    key = jax.random.PRNGKey(seed)
    out = {}
    for emb in embodiments:
        rc = rollout_components(model, variables, emb, tasks, jax.random.fold_in(key, R.EMBODIMENTS.index(emb)),
                                n_episodes, dt=dt, horizon=horizon, deterministic=deterministic)
        for task, rc_task in zip(tasks, rc):
            out[f"{emb}/{task}"] = episode_metrics(rc_task)
    per = list(out.values())
    out["mean"] = {k: float(np.mean([m[k] for m in per])) for k in per[0]}
    return out


def implicit_reward_accuracy(logp: np.ndarray, ref_logp: np.ndarray, idx_a, idx_b, label,
                             beta=1.0) -> dict:
    """Held-out accuracy of the implicit reward β(log π(σ) − log π_ref(σ)) on labelled pairs.

    logp, ref_logp: [S] segment log-likelihoods (or logp [P, S] with beta [P] for a sweep);
    idx_a, idx_b, label: [N] pairs. Ties (label ½) are excluded; an exact reward tie counts as
    half right, so π = π_ref scores 0.5 (chance). Returns {"accuracy", "margin"} (mean signed
    reward difference, chosen − rejected), floats or [P] arrays.
    """
    beta = np.asarray(beta)
    reward = (beta[..., None] if beta.ndim else beta) * (np.asarray(logp) - np.asarray(ref_logp))
    label = np.asarray(label)
    decided = label != 0.5
    diff = reward[..., np.asarray(idx_a)[decided]] - reward[..., np.asarray(idx_b)[decided]]
    sign = np.where(label[decided] > 0.5, 1.0, -1.0)
    correct = np.where(diff * sign > 0, 1.0, np.where(diff == 0, 0.5, 0.0))
    return {"accuracy": correct.mean(-1), "margin": (diff * sign).mean(-1)}
