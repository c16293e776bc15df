"""The rollout stage: pi_SFT's own behaviour under several perturbations, written as an RLDS
dataset of the embedded schema, so that preference pairs on it come from the same loaders as the
scripted-policy data.

Each behaviour (``rlhf_jax.data.policy_rollouts.Behaviour``, or a plain noise level) is
exploration noise, optionally with a speed factor and a goal shift seen by the policy only, so
that pairs differ in what the gold rubric rewards (reaching the goal, time, speed) and not only
in noise. Episodes carry the behaviour's name as their policy (``sft@<noise>`` for noise alone,
e.g. ``sft@0.05,speed=0.5`` or ``sft@0.05,goal=0.1`` otherwise)."""
from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import jax

from rlhf_jax.checkpoint import restore_policy
from rlhf_jax.data.generate import dataset_metadata
from rlhf_jax.data.policy_rollouts import BehaviourLike, as_behaviour, policy_episodes
from rlhf_jax.data.rlds import write_rlds
from rlhf_jax.envs.robots import EMBODIMENTS
from rlhf_jax.envs.tasks import TASKS
from rlhf_jax.models.policy import make_policy


def write_policy_rollouts(policy_ckpt: str, out_dir: str, arms: Sequence[str], tasks: Sequence[str],
                          behaviours: Sequence[BehaviourLike], episodes_per_combo: int, seed: int,
                          dt: float, extra_episodes: Sequence[dict] = ()) -> dict:
    """Rolls the checkpointed policy out ``episodes_per_combo`` times per (arm, task, behaviour; a
    Behaviour or a noise level) and writes the episodes under ``out_dir/rlds``; the metadata lists
    the behaviours' names (``policies``) and fields (``behaviours``). ``extra_episodes`` (e.g.
    ``fine_tuned_episodes``) join the dataset after pi_SFT's. Returns {path, episodes, policies}."""
    behaviours = [as_behaviour(b) for b in behaviours]
    variables, meta = restore_policy(policy_ckpt)
    model = make_policy(meta["model"], meta["num_tasks"], meta["num_embodiments"])
    eps = policy_episodes(model, variables, arms, tasks, behaviours, episodes_per_combo, seed, dt=dt)
    names = [b.name for b in behaviours]
    eps = list(eps) + list(extra_episodes)
    names += sorted({e["episode_metadata"]["policy"] for e in extra_episodes})
    md = dataset_metadata({"dt": dt, "horizon": 50, "seed": seed, "variant": "sft_rollouts",
                           "embodiments": arms, "tasks": tasks, "policies": names,
                           "episodes_per_combo": episodes_per_combo})
    md["behaviours"] = [dataclasses.asdict(b) for b in behaviours]
    md["behaviour_checkpoint"] = policy_ckpt
    path = write_rlds(eps, os.path.join(out_dir, "rlds"), metadata=md)
    return {"path": path, "episodes": len(eps), "policies": names}


def fine_tuned_episodes(policies_ckpt: str, indices: Sequence[int], arm: str, tasks: Sequence[str], noise: float,
                        n_episodes: int, seed: int, dt: float, name: str,
                        keep_tasks: Sequence[str] | None = None) -> list[dict]:
    """Episodes of points ``indices`` of a stacked PPO checkpoint (``stages.ppo_points``) on ``arm``,
    ``n_episodes`` per task at exploration ``noise``; their policy is ``<name>/point<i>@<noise>``
    and each point rolls out from its own keys (``seed`` folded with the point index). With
    ``keep_tasks`` (a program trained on those tasks only) only their episodes are kept; the
    rollout still covers ``tasks``, so a task's episodes start where they would for a program of
    every task."""
    variables, meta = restore_policy(policies_ckpt)
    model = make_policy(meta["model"], len(TASKS), len(EMBODIMENTS))
    out = []
    for i in indices:
        eps = policy_episodes(model, jax.tree.map(lambda x: x[i], variables), (arm,), tasks, (noise,), n_episodes,
                              seed + 7919 * (i + 1), dt=dt)
        policy = f"{name}/point{i}@{noise:g}"
        for e in eps:
            md = e["episode_metadata"]
            md["episode_id"] = md["episode_id"].replace(md["policy"], policy)
            md["policy"] = policy
        out += [e for e in eps if keep_tasks is None or e["episode_metadata"]["task"] in keep_tasks]
    return out
