"""Generate RLDS episodes from the JAX simulator with the scripted behaviour policies.

For each (embodiment, task, policy) one call of `rlhf_jax.envs.policies.rollout` runs all its
episodes as one compiled program: the simulator's `unroll`, a lax.scan over time of the batch of
episodes (no Python loop over steps).
The compiled program is shared by every task and policy of an arm (they are traced data), so a
dataset compiles once per embodiment.

Randomness: the key of a (embodiment, task, policy) batch is the config seed folded with the
*global* ids of the embodiment, task and policy (their index in EMBODIMENTS / TASKS / POLICIES),
so the same config + seed gives the same episodes, and adding a policy to a config leaves the
other batches unchanged.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import os
from typing import Any, Iterator, Mapping

import numpy as np

from rlhf_jax.errors import ConfigError, describe


def _check(name: str, values, allowed) -> list[str]:
    values = list(values)
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ConfigError(describe("dataset config", name,
                                   f"a non-empty subset of {tuple(allowed)}", bad or values))
    return values


def simulator_fingerprint() -> str:
    """sha256 of the simulator's source (rlhf_jax/envs/*.py): the episodes depend on it too."""
    import rlhf_jax.envs  # pylint: disable=g-import-not-at-top
    h = hashlib.sha256()
    root = os.path.dirname(rlhf_jax.envs.__file__)
    for name in sorted(os.listdir(root)):
        if name.endswith(".py"):
            h.update(name.encode())
            with open(os.path.join(root, name), "rb") as f:
                h.update(f.read())
    return h.hexdigest()[:16]


def dataset_metadata(config: Mapping[str, Any]) -> dict:
    """Dataset-level metadata stored as the TFDS metadata.json (JSON-safe)."""
    from rlhf_jax.envs import simulator as S  # pylint: disable=g-import-not-at-top
    return {
        "reward_component_names": list(S.REWARD_COMPONENTS),
        "gold_rubric": {k: float(v) for k, v in S.DEFAULT_RUBRIC.items()},
        "dt": float(config["dt"]), "horizon": int(config["horizon"]),
        "seed": int(config["seed"]), "variant": str(config.get("variant", "")),
        "embodiments": list(config["embodiments"]), "tasks": list(config["tasks"]),
        "policies": list(config["policies"]),
        "episodes_per_combo": int(config["episodes_per_combo"]),
        "image": bool(config.get("image", False)), "source": "sim",
        "simulator_fingerprint": simulator_fingerprint(),
    }


def generate_episodes(config: Mapping[str, Any]) -> list[dict]:
    """All episodes of a dataset config, in (embodiment, task, policy, index) order.

    config keys: seed, embodiments, tasks, policies, episodes_per_combo, horizon, dt, image.
    Returns the in-memory RLDS episodes of `rlhf_jax.data.rlds` (numpy, [T, ...] per step key).
    """
    return list(iter_episodes(config))


def iter_episodes(config: Mapping[str, Any], workers: int | None = None) -> Iterator[dict]:
    """generate_episodes as an iterator, arms computed ahead in background threads.

    Generation is compile-bound (one XLA compile per arm, which releases the GIL), so arms are
    compiled and rolled out concurrently on `workers` threads (default: CPU count) while the
    caller consumes earlier arms' episodes (e.g. TFDS encoding them). Output order and content do
    not depend on thread timing: each arm's keys are fixed and results are yielded in order.
    """
    from rlhf_jax.envs import policies as Pol  # pylint: disable=g-import-not-at-top
    from rlhf_jax.envs import robots as R  # pylint: disable=g-import-not-at-top
    from rlhf_jax.envs import tasks as T  # pylint: disable=g-import-not-at-top

    embodiments = _check("embodiments", config["embodiments"], R.EMBODIMENTS)
    tasks = _check("tasks", config["tasks"], T.TASKS)
    policies = _check("policies", config["policies"], Pol.POLICIES)
    n = int(config["episodes_per_combo"])
    if n < 1:
        raise ConfigError(describe("dataset config", "episodes_per_combo", ">= 1", n))
    workers = workers or min(len(embodiments), os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(_arm_episodes, config, emb, tasks, policies, n)
                   for emb in embodiments]
        try:
            for f in futures:
                yield from f.result()
        finally:
            for f in futures:
                f.cancel()


def _arm_episodes(config: Mapping[str, Any], emb: str, tasks, policies, n: int) -> list[dict]:
    """Episodes of one arm: one rollout call (one compiled unroll) per (task, policy)."""
    import jax  # pylint: disable=g-import-not-at-top
    from rlhf_jax.envs import policies as Pol  # pylint: disable=g-import-not-at-top
    from rlhf_jax.envs import robots as R  # pylint: disable=g-import-not-at-top
    from rlhf_jax.envs import simulator as S  # pylint: disable=g-import-not-at-top
    from rlhf_jax.envs import tasks as T  # pylint: disable=g-import-not-at-top

    seed = int(config["seed"])
    base = jax.random.PRNGKey(seed)
    episodes = []
    for task in tasks:
        env = S.make_env(emb, task, dt=float(config["dt"]), horizon=int(config["horizon"]),
                         image=bool(config.get("image", False)))
        for pol in policies:
            key = jax.random.fold_in(base, R.EMBODIMENTS.index(emb))
            key = jax.random.fold_in(jax.random.fold_in(key, T.TASKS.index(task)),
                                     Pol.POLICIES.index(pol))
            traj = jax.device_get(Pol.rollout(env, Pol.make_policy(pol, env), key, n))
            episodes.extend(_split_batch(traj, env, emb, task, pol, seed))
    return episodes


def _split_batch(traj: Mapping[str, Any], env, emb: str, task: str, pol: str,
                 seed: int) -> list[dict]:
    """Batched rollout arrays [E, T, ...] -> E RLDS episode dicts."""
    obs = {k: np.asarray(v) for k, v in traj["obs"].items()}
    arr = {k: np.asarray(traj[k]) for k in ("action", "reward", "discount", "is_first", "is_last",
                                            "is_terminal", "reward_components")}
    n_ep, horizon = arr["reward"].shape
    instr = np.array([env.instruction] * horizon)
    out = []
    for i in range(n_ep):
        steps = {k: v[i].astype(np.float32) if v.dtype.kind == "f" else v[i]
                 for k, v in arr.items()}
        steps["observation"] = {k: (v[i].astype(np.float32) if v.dtype.kind == "f" else v[i])
                                for k, v in obs.items()}
        steps["language_instruction"] = instr
        out.append({"steps": steps, "episode_metadata": {
            "episode_id": f"{emb}-{task}-{pol}-{i:05d}", "embodiment": emb,
            "embodiment_id": int(env.robot.embodiment_id), "task": task,
            "task_id": int(env.task_id),
            "source": "sim", "policy": pol, "seed": seed, "dof": int(env.action_dim)}})
    return out
