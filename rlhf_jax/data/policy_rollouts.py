"""Rollouts of a learned Gaussian policy (π_SFT) as RLDS episodes, and the expert's labels.

A rollout executes the policy's deterministic action tanh(μ) plus ``noise`` × qd_max Gaussian
noise (clipped to the velocity box), records the observation before each step, the executed
joint velocity, the gold reward components and, at every visited state, the scripted expert's
action (for DAgger, ``rlhf_jax.train.dagger``). ``policy_episodes`` turns rollouts at several
noise levels into episodes of the embedded dataset's schema with ``policy = "sft@<noise>"`` and
``source = "sim"``, so preference pairs on π_SFT's own behaviour come from the same loaders
(segments, pairs, annotators) as the scripted-policy data.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rlhf_jax.envs import policies as P
from rlhf_jax.envs import robots as R
from rlhf_jax.envs import simulator as S
from rlhf_jax.envs import tasks as T
from rlhf_jax.envs import unroll as U
from rlhf_jax import features as F
from rlhf_jax.models.policy import MAX_DOF, sample_action


def build_rollouts(model, robot_name: str, dt: float, horizon: int):
    """(variables, keys [E], tasks [E], noise []) -> {obs: dict [E, T, ...], action [E, T, dof] rad/s
    executed, expert [E, T, dof] expert action / qd_max, components [E, T, C]} (for
    `unroll.compiled`); each episode's key splits into its reset key and its noise [T, dof]."""
    robot = R.ROBOTS[robot_name]
    dof, emb = robot.dof, jnp.int32(R.EMBODIMENTS.index(robot_name))
    mask = jnp.arange(MAX_DOF) < dof
    qd_max = jnp.asarray(robot.qd_max, jnp.float32)
    expert = {k: jnp.float32(v) for k, v in P.PRESETS["expert"].items()}

    def run(variables, keys, tasks, noise):
        k_reset, k_noise = jax.vmap(jax.random.split, out_axes=1)(keys)
        # drawn up front: cheaper to compile than a random kernel inside the scanned step
        eps = jax.vmap(lambda k: jax.random.normal(k, (horizon, dof), jnp.float32))(k_noise)  # [E, T, dof]

        def act(e, s, obs, task):
            """One environment: (executed action rad/s [dof], {"expert": label [dof]})."""
            label = P.expert_velocity(robot, expert, s) / qd_max
            mean, log_std = model.apply(variables, F.features(obs, dof, "joint", xp=jnp), task, emb)
            a = sample_action(None, mean, log_std, mask, squash=model.squash, deterministic=True)[:dof]
            return jnp.clip(a + noise * e, -1.0, 1.0) * qd_max, {"expert": label}

        policy = lambda e, s, obs: jax.vmap(act)(e, s, obs, tasks)
        _, traj = U.unroll(robot, policy, U.reset_batch(robot, tasks, k_reset), U.time_major(eps), dt=dt,
                           horizon=horizon, record=("obs", "action", "expert", "components"))
        return U.batch_major(traj)

    return run


def run_rollouts(model, variables, robot_name: str, tasks: Sequence[str], n_episodes: int, key, *,
                 noise: float, dt: float, horizon: int = 50) -> dict:
    """Host arrays of the compiled ``build_rollouts`` program for n_episodes per task ([len(tasks)·n, T, ...],
    task-major), plus ``task_id`` [len(tasks)·n]."""
    task_ids = np.repeat([T.task_id(t) for t in tasks], n_episodes).astype(np.int32)
    keys = jax.random.split(key, len(task_ids))
    run = U.compiled(build_rollouts, model, robot_name, float(dt), int(horizon))
    out = jax.device_get(run(variables, keys, jnp.asarray(task_ids), jnp.float32(noise)))
    out["task_id"] = task_ids
    return out


def policy_name(noise: float) -> str:
    """The behaviour-policy name stored in episode metadata: ``sft@<noise>``."""
    return f"sft@{noise:g}"


def policy_episodes(model, variables, embodiments: Sequence[str], tasks: Sequence[str],
                    noise_levels: Sequence[float], n_episodes: int, seed: int, *, dt: float,
                    horizon: int = 50) -> list[dict]:
    """RLDS episodes (the ``rlhf_jax.data.rlds`` in-memory layout) of π at every noise level:
    n_episodes per (arm, task, level), keys from ``seed`` folded with the arm and level index."""
    episodes = []
    for emb in embodiments:
        robot = R.ROBOTS[emb]
        for li, noise in enumerate(noise_levels):
            key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), R.EMBODIMENTS.index(emb)), li)
            out = run_rollouts(model, variables, emb, tasks, n_episodes, key, noise=float(noise), dt=dt,
                               horizon=horizon)
            episodes += _as_episodes(out, robot, policy_name(float(noise)), seed, horizon)
    return episodes


def _as_episodes(out: dict, robot, policy: str, seed: int, horizon: int) -> list[dict]:
    rubric = S.rubric_vector()
    t = np.arange(horizon)
    episodes = []
    for i, task_id in enumerate(out["task_id"]):
        task = T.TASKS[int(task_id)]
        rc = np.asarray(out["components"][i], np.float32)
        steps = {"observation": {k: np.asarray(v[i], np.float32) for k, v in out["obs"].items()},
                 "action": np.asarray(out["action"][i], np.float32), "reward_components": rc,
                 "reward": (rc * rubric).sum(-1).astype(np.float32), "discount": np.ones(horizon, np.float32),
                 "is_first": t == 0, "is_last": t == horizon - 1, "is_terminal": np.zeros(horizon, bool),
                 "language_instruction": np.array([T.INSTRUCTIONS[task]] * horizon)}
        episodes.append({"steps": steps, "episode_metadata": {
            "episode_id": f"{robot.name}-{task}-{policy}-{i:05d}", "embodiment": robot.name,
            "embodiment_id": int(robot.embodiment_id), "task": task, "task_id": int(task_id),
            "source": "sim", "policy": policy, "seed": int(seed), "dof": int(robot.dof)}})
    return episodes
