"""The rollout stage: pi_SFT's own behaviour at several exploration-noise levels, written as an
RLDS dataset of the embedded schema (policy ``sft@<noise>``), so that preference pairs on it come
from the same loaders as the scripted-policy data."""
from __future__ import annotations

import os
from typing import Sequence

from rlhf_jax.checkpoint import restore_policy
from rlhf_jax.data.generate import dataset_metadata
from rlhf_jax.data.policy_rollouts import policy_episodes, policy_name
from rlhf_jax.data.rlds import write_rlds
from rlhf_jax.models.policy import make_policy


def write_policy_rollouts(policy_ckpt: str, out_dir: str, arms: Sequence[str], tasks: Sequence[str],
                          noise_levels: Sequence[float], episodes_per_combo: int, seed: int, dt: float) -> dict:
    """Rolls the checkpointed policy out ``episodes_per_combo`` times per (arm, task, noise level)
    and writes the episodes under ``out_dir/rlds``. Returns {path, episodes, policies}."""
    variables, meta = restore_policy(policy_ckpt)
    model = make_policy(meta["model"], meta["num_tasks"], meta["num_embodiments"])
    eps = policy_episodes(model, variables, arms, tasks, noise_levels, episodes_per_combo, seed, dt=dt)
    names = [policy_name(x) for x in noise_levels]
    md = dataset_metadata({"dt": dt, "horizon": 50, "seed": seed, "variant": "sft_rollouts",
                           "embodiments": arms, "tasks": tasks, "policies": names,
                           "episodes_per_combo": episodes_per_combo})
    md["behaviour_checkpoint"] = policy_ckpt
    path = write_rlds(eps, os.path.join(out_dir, "rlds"), metadata=md)
    return {"path": path, "episodes": len(eps), "policies": names}
