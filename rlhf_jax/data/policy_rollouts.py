"""Rollouts of a learned Gaussian policy (π_SFT) as RLDS episodes, and the expert's labels.

A rollout executes the policy's deterministic action tanh(μ), perturbed by a `Behaviour`:

* ``noise`` (× qd_max): Gaussian exploration noise on the action;
* ``speed`` s > 0: the deterministic action is scaled by s before the noise is added, so the
  executed joint velocity is clip(s · a + noise · ε, −1, 1) · qd_max (s = 1: unscaled);
* ``goal_shift`` g ≥ 0 metres: the policy network sees the goal displaced by g along a random
  unit direction drawn once per episode, while the environment, its rewards and the recorded
  observation keep the true goal (g = 0: the true goal).

Noise alone gives pairs that differ mostly in jitter. The speed factor and the goal shift give
pairs that differ in what the gold rubric rewards: how close the arm gets to the goal, how long
it takes, and how fast it moves. So preferences on π_SFT's own behaviour teach the reward
model more than "less noise is better".

Every rollout records the observation before each step, the executed joint velocity, the gold
reward components and, at every visited state, the scripted expert's action (for DAgger,
``rlhf_jax.train.dagger``). ``policy_episodes`` turns rollouts of several behaviours into
episodes of the embedded dataset's schema with ``policy = Behaviour.name`` ("sft@<noise>" for
noise alone, e.g. "sft@0.05,speed=0.5,goal=0.1" otherwise) and ``source = "sim"``, so
preference pairs on π_SFT's behaviour come from the same loaders (segments, pairs, annotators)
as the scripted-policy data. Noise, speed and goal shift are traced scalars of one compiled
program per (arm, dt, horizon), shared by all behaviours.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence, Union

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

# Folded into an episode's key for its goal-shift direction; the reset and noise keys (the
# episode key's split) are untouched, so a goal shift leaves initial states and noise as they are.
GOAL_DIRECTION_TAG = 1


@dataclasses.dataclass(frozen=True)
class Behaviour:
    """A perturbation of π_SFT: exploration noise (× qd_max), speed factor (> 0) and goal shift
    (metres, ≥ 0) seen by the policy only. See the module docstring."""

    noise: float
    speed: float = 1.0
    goal_shift: float = 0.0

    def __post_init__(self):
        for field in ("noise", "speed", "goal_shift"):
            object.__setattr__(self, field, float(getattr(self, field)))
        if not (math.isfinite(self.noise) and math.isfinite(self.speed) and math.isfinite(self.goal_shift)):
            raise ValueError(f"behaviour values must be finite, got {self}")
        if self.speed <= 0.0:
            raise ValueError(f"behaviour speed must be > 0, got {self.speed}")
        if self.goal_shift < 0.0:
            raise ValueError(f"behaviour goal_shift must be >= 0 metres, got {self.goal_shift}")

    @property
    def name(self) -> str:
        """``sft@<noise>``, then ``,speed=<s>`` when s != 1 and ``,goal=<g>`` when g != 0."""
        return (policy_name(self.noise) + (f",speed={self.speed:g}" if self.speed != 1.0 else "")
                + (f",goal={self.goal_shift:g}" if self.goal_shift != 0.0 else ""))


BehaviourLike = Union[Behaviour, float]


def as_behaviour(b: BehaviourLike) -> Behaviour:
    """A Behaviour as is; a number is the noise-only Behaviour(noise)."""
    return b if isinstance(b, Behaviour) else Behaviour(float(b))


def policy_name(noise: float) -> str:
    """The behaviour-policy name of noise alone: ``sft@<noise>`` (see `Behaviour.name`)."""
    return f"sft@{noise:g}"


def goal_directions(keys):
    """keys [E] (episode keys) -> unit vectors [E, 3], from each key folded with GOAL_DIRECTION_TAG."""
    def one(k):
        v = jax.random.normal(jax.random.fold_in(k, GOAL_DIRECTION_TAG), (3,), jnp.float32)
        return v / jnp.maximum(jnp.linalg.norm(v), 1e-6)
    return jax.vmap(one)(keys)


def build_rollouts(model, robot_name: str, dt: float, horizon: int):
    """(variables, keys [E], tasks [E], noise [], speed [], goal_shift []) -> {obs: dict [E, T, ...]
    (true goal), action [E, T, dof] rad/s executed, expert [E, T, dof] expert action / qd_max,
    components [E, T, C]} (for `unroll.compiled`); each episode's key splits into its reset key
    and its noise [T, dof], and folds (`goal_directions`) into its goal-shift direction."""
    robot = R.ROBOTS[robot_name]
    dof, emb = robot.dof, jnp.int32(R.EMBODIMENTS.index(robot_name))
    mask = jnp.arange(MAX_DOF) < dof
    qd_max = jnp.asarray(robot.qd_max, jnp.float32)
    expert = {k: jnp.float32(v) for k, v in P.PRESETS["expert"].items()}

    def run(variables, keys, tasks, noise, speed, goal_shift):
        k_reset, k_noise = jax.vmap(jax.random.split, out_axes=1)(keys)
        # drawn up front: cheaper to compile than a random kernel inside the scanned step
        eps = jax.vmap(lambda k: jax.random.normal(k, (horizon, dof), jnp.float32))(k_noise)  # [E, T, dof]
        shifts = goal_shift * goal_directions(keys)  # [E, 3] metres

        def act(e, s, obs, task, shift):
            """One environment: (executed action rad/s [dof], {"expert": label [dof]})."""
            label = P.expert_velocity(robot, expert, s) / qd_max
            seen = {**obs, "goal": obs["goal"] + shift}  # the policy's view only
            mean, log_std = model.apply(variables, F.features(seen, dof, "joint", xp=jnp), task, emb)
            a = sample_action(None, mean, log_std, mask, squash=model.squash, deterministic=True)[:dof]
            # speed·a + noise·e written as speed·(a + (noise/speed)·e): one multiply-add, as without the
            # factor, so that speed 1 compiles to the same rounding (fused or not) as π_SFT's own action
            return jnp.clip(speed * (a + (noise / speed) * e), -1.0, 1.0) * qd_max, {"expert": label}

        policy = lambda e, s, obs: jax.vmap(act)(e, s, obs, tasks, shifts)
        _, traj = U.unroll(robot, policy, U.reset_batch(robot, tasks, k_reset), U.time_major(eps), dt=dt,
                           horizon=horizon, record=("obs", "action", "expert", "components"))
        return U.batch_major(traj)

    return run


def run_rollouts(model, variables, robot_name: str, tasks: Sequence[str], n_episodes: int, key, *,
                 noise: float, dt: float, horizon: int = 50, speed: float = 1.0,
                 goal_shift: float = 0.0) -> dict:
    """Host arrays of the compiled ``build_rollouts`` program for n_episodes per task ([len(tasks)·n, T, ...],
    task-major), plus ``task_id`` [len(tasks)·n]. speed 1 and goal_shift 0 leave π_SFT unperturbed."""
    b = Behaviour(noise, speed, goal_shift)  # validated
    task_ids = np.repeat([T.task_id(t) for t in tasks], n_episodes).astype(np.int32)
    keys = jax.random.split(key, len(task_ids))
    run = U.compiled(build_rollouts, model, robot_name, float(dt), int(horizon))
    out = jax.device_get(run(variables, keys, jnp.asarray(task_ids), jnp.float32(b.noise), jnp.float32(b.speed),
                             jnp.float32(b.goal_shift)))
    out["task_id"] = task_ids
    return out


def policy_episodes(model, variables, embodiments: Sequence[str], tasks: Sequence[str],
                    behaviours: Sequence[BehaviourLike], n_episodes: int, seed: int, *, dt: float,
                    horizon: int = 50) -> list[dict]:
    """RLDS episodes (the ``rlhf_jax.data.rlds`` in-memory layout) of π under every behaviour (a
    Behaviour or a noise level): n_episodes per (arm, task, behaviour), keys from ``seed`` folded
    with the arm's index and the behaviour's position in ``behaviours``."""
    behaviours = [as_behaviour(b) for b in behaviours]
    names = [b.name for b in behaviours]
    if len(set(names)) != len(names):
        raise ValueError(f"behaviours must be distinct (episode ids contain their names), got {names}")
    episodes = []
    for emb in embodiments:
        robot = R.ROBOTS[emb]
        for li, b in enumerate(behaviours):
            key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), R.EMBODIMENTS.index(emb)), li)
            out = run_rollouts(model, variables, emb, tasks, n_episodes, key, noise=b.noise, dt=dt,
                               horizon=horizon, speed=b.speed, goal_shift=b.goal_shift)
            episodes += _as_episodes(out, robot, b.name, seed, horizon)
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
