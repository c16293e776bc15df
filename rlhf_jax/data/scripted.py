"""Segments of scripted-policy rollouts, labelled by their gold return (in-run reward fits)."""
from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

from rlhf_jax.envs import make_env, make_policy, rollout
from rlhf_jax.envs.robots import EMBODIMENTS, MAX_DOF
from rlhf_jax.features import joint_features


def scripted_segments(robot_name: str, tasks: Sequence[str], policies: Sequence[str], n_episodes: int,
                      segment_length: int, key, dt: float = 0.05, horizon: int = 50) -> dict:
    """Segments of scripted-policy rollouts for fitting a reward model in-run.

    n_episodes per (task, policy); episodes are cut into non-overlapping segments of
    segment_length (the tail past the last whole segment is dropped). Returns numpy
    {obs [S, L, D] joint features, act [S, L, A] rad/s padded to MAX_DOF, task, embodiment [S] int32,
    gold [S] gold return of the segment}, S = len(tasks)·len(policies)·n_episodes·⌊horizon/L⌋.
    """
    out = {k: [] for k in ("obs", "act", "task", "gold")}
    n_seg = horizon // segment_length
    cut = lambda x: x[:, :n_seg * segment_length].reshape((-1, segment_length) + x.shape[2:])
    for ti, task in enumerate(tasks):
        env = make_env(robot_name, task, dt=dt, horizon=horizon)
        for pi, name in enumerate(policies):
            traj = rollout(env, make_policy(name, env), jax.random.fold_in(key, 1000 * ti + pi), n_episodes)
            feats = np.asarray(joint_features(traj["obs"], env.robot.dof))
            act = np.pad(np.asarray(traj["action"]), ((0, 0), (0, 0), (0, MAX_DOF - env.robot.dof)))
            out["obs"].append(cut(feats))
            out["act"].append(cut(act))
            out["gold"].append(cut(np.asarray(traj["reward"])).sum(-1))
            out["task"].append(np.full(n_episodes * n_seg, env.task_id, np.int32))
    seg = {k: np.concatenate(v) for k, v in out.items()}
    seg["embodiment"] = np.full(len(seg["task"]), EMBODIMENTS.index(robot_name), np.int32)
    return seg
