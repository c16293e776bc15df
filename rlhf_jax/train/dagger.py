"""DAgger against the scripted expert: states the learner visits, labelled with expert actions.

Behaviour cloning alone sees only the states the expert (and its noisy variant) visited; its
small errors compound into states no demonstration covers (Ross et al., 2011). Each DAgger
round rolls the current policy out on every (arm, task) — its deterministic action plus
Gaussian exploration noise of ``noise`` × qd_max, so the visited states fan out around its own
path — and labels every visited state with the clean expert's joint velocity. The learner keeps
training on the union of demonstrations and all rounds' relabelled states.

The expert is ``rlhf_jax.envs.policies.expert_velocity`` with the "expert" preset, the same
controller that generated the dataset's demonstrations; it reads only the simulator state, all of
which the "joint" features expose (q, qd, eef, goal, obstacle, box).
"""
from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

from rlhf_jax import features as F
from rlhf_jax.data.policy_rollouts import run_rollouts
from rlhf_jax.envs import robots as R
from rlhf_jax.envs.policies import success_rate
from rlhf_jax.models.policy import GaussianPolicy, MAX_DOF


def relabelled_rollouts(model: GaussianPolicy, variables: dict, embodiments: Sequence[str],
                        tasks: Sequence[str], n_episodes: int, key, *, noise: float, dt: float,
                        horizon: int = 50) -> tuple[dict, dict]:
    """One DAgger round: the policy's rollouts on every (arm, task), expert-labelled.

    Returns (data, info): data in the SFT transition layout of ``rlhf_jax.train.sft`` (obs
    [N, D], act [N, A] expert actions / qd_max, task, embodiment [N], act_mask [N, A]) with
    N = len(embodiments)·len(tasks)·n_episodes·horizon; info has the rollouts' success rate
    (the learner's, with exploration noise) per arm.
    """
    parts, info = [], {}
    for emb in embodiments:
        robot = R.ROBOTS[emb]
        out = run_rollouts(model, variables, emb, tasks, n_episodes, jax.random.fold_in(key, R.EMBODIMENTS.index(emb)),
                           noise=noise, dt=dt, horizon=horizon)
        n = out["action"].shape[0] * horizon
        obs = F.features({k: v.reshape((n,) + v.shape[2:]) for k, v in out["obs"].items()}, robot.dof, "joint")
        parts.append({"obs": obs, "act": F.pad_joints(out["expert"].reshape(n, -1)),
                      "task": np.repeat(out["task_id"], horizon),
                      "embodiment": np.full(n, R.EMBODIMENTS.index(emb), np.int32),
                      "act_mask": np.broadcast_to(F.action_mask(robot.dof), (n, MAX_DOF))})
        info[emb] = round(success_rate({"reward_components": out["components"]}), 4)
    return concat_transitions(parts), info


def concat_transitions(parts: Sequence[dict]) -> dict:
    """Row-wise concatenation of SFT transition dicts with the same keys."""
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]).astype(parts[0][k].dtype) for k in parts[0]}
