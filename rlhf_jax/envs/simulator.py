"""Pure-JAX kinematic simulator: joint-velocity control of one arm on a table, gold reward.

Functional API::

    env = make_env("panda", "reach_avoid")
    state = env.reset(key)                                  # EnvState pytree
    state, obs, reward_components, done = env.step(state, action)   # action [dof] rad/s

`reset`, `step` and `observe` are pure and jit/vmap-able. The task id lives in the state as data,
so every task of one arm runs the same compiled program (and batches may mix tasks).

Dynamics (kinematic): the requested joint velocity is clipped to +-qd_max, integrated for `dt`,
and the position clipped into [q_min, q_max]; the stored joint velocity is the one actually
realised, (q' - q) / dt. Episodes have a fixed length (`horizon` steps); `done` is the time limit
(truncation, never a terminal state).

Gold reward components (REWARD_COMPONENTS order is a contract). Sign convention: every
component is oriented so that higher is better, and DEFAULT_RUBRIC weights are all >= 0, so the
gold total sum_c w_c r_c is higher for better behaviour:

=================  ======  ==============================================================
progress           +/-     decrease of flange-goal distance this step (m)
success            >= 0    1 while within GOAL_TOL of the goal (reach_hold: also slower
                           than HOLD_SPEED), else 0
collision          <= 0    -1 if any link capsule penetrates the obstacle or the flange is
                           outside the workspace box, else 0
clearance          <= 0    -(margin - gap)+ / margin summed over obstacle (margin 5 cm from
                           the link capsules) and box walls (margin 2 cm from the flange);
                           each term in [-1, 0]
joint_limit        <= 0    -sum_j ((buffer - distance to nearest limit)+ / buffer)^2,
                           buffer 0.15 rad
speed_violation    <= 0    -sum_j min((|a_j| - qd_max_j)+ / qd_max_j, 2), requested speed
                           above the limit (before clipping)
jerk               <= 0    -sum_j ((qd_t - 2 qd_{t-1} + qd_{t-2}) / qd_max_j)^2, squared
                           change of acceleration per step, normalised per joint
time               <= 0    -1 per step until the first success
energy             <= 0    -sum_j (qd_j / qd_max_j)^2 * dt
=================  ======  ==============================================================
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rlhf_jax.envs import robots as R
from rlhf_jax.envs import tasks as T
from rlhf_jax.envs.render import render

REWARD_COMPONENTS = ("progress", "success", "collision", "clearance", "joint_limit",
                     "speed_violation", "jerk", "time", "energy")  # order is a contract
# Gold components that count as constraint violations when negative in a step (evaluation
# metrics, PPO's gold violation rates, reward-hacking incidents).
VIOLATIONS = ("collision", "joint_limit", "speed_violation")

# Weights of the gold rubric (all >= 0: components already carry their sign). Calibrated on
# 50-step episodes of the scripted policies (per-episode weighted sums, typical ranges):
# progress +3..+5 for a completed reach, success +6..+7.5 for reaching in ~15 steps, time -1..-5,
# collision -1..-10 for driving through the obstacle, clearance -0.3..-7, joint_limit 0..-3,
# speed_violation 0..-3, jerk ~0 (expert) .. -5 (very noisy) .. -20 (jerky), energy 0..-4. So
# task completion, safety, smoothness and efficiency each move the total by comparable amounts.
DEFAULT_RUBRIC = {
    "progress": 10.0,
    "success": 0.2,
    "collision": 0.5,
    "clearance": 0.2,
    "joint_limit": 0.5,
    "speed_violation": 1.0,
    "jerk": 0.01,
    "time": 0.1,
    "energy": 0.5,
}

LINK_RADIUS = 0.03  # links are capsules of this radius around the link sample points
OBSTACLE_MARGIN = 0.05
BOX_WALL_MARGIN = 0.02
JOINT_BUFFER = 0.15
HOME_NOISE = 0.1  # rad, uniform perturbation of the home pose on reset


class EnvState(NamedTuple):
    """Simulator state (one environment; vmap adds leading axes).

    q, qd, qd_prev: [dof] joint positions (rad), realised velocity of the last step and of the
    step before (rad/s; qd_prev is kept for the jerk term). eef_pos, eef_vel: [3] flange
    position (m) and velocity (m/s). goal [3], obstacle [4], box [6]: task geometry. task: []
    int32 task id. t: [] int32 steps taken. succeeded: [] bool, success reached at some step.
    """

    q: jnp.ndarray
    qd: jnp.ndarray
    qd_prev: jnp.ndarray
    eef_pos: jnp.ndarray
    eef_vel: jnp.ndarray
    goal: jnp.ndarray
    obstacle: jnp.ndarray
    box: jnp.ndarray
    task: jnp.ndarray
    t: jnp.ndarray
    succeeded: jnp.ndarray


@dataclass(frozen=True, eq=False)
class Env:
    """One (arm, task) environment: static info plus pure functions.

    reset(key) -> EnvState; step(state, action [dof]) -> (state, obs, reward_components [C],
    done []); observe(state) -> obs dict (see `observe`).
    """

    robot: R.Robot
    task: str
    task_id: int
    instruction: str
    dt: float
    horizon: int
    image: bool
    action_dim: int
    reset: Callable
    step: Callable
    observe: Callable

    @property
    def embodiment_id(self) -> int:
        return self.robot.embodiment_id


def reset_state(robot: R.Robot, task_id, key) -> EnvState:
    """Initial state: home pose + U(-0.1, 0.1) rad per joint, task geometry for `task_id`.

    task_id may be traced ([] int32), so one compiled reset serves every task of an arm.
    """
    u = jax.random.uniform(key, (robot.dof + T.N_RANDOM,))  # one draw: see tasks.N_RANDOM
    q = jnp.asarray(robot.q_home, jnp.float32) + HOME_NOISE * (2.0 * u[:robot.dof] - 1.0)
    q = jnp.clip(q, robot.q_min, robot.q_max)
    _, eef = R.forward_kinematics(robot, q)
    task = jnp.asarray(task_id, jnp.int32)
    goal, obstacle, box = T.sample_task(u[robot.dof:], task, eef)
    zeros = jnp.zeros((robot.dof,), jnp.float32)
    return EnvState(q=q, qd=zeros, qd_prev=zeros, eef_pos=eef, eef_vel=jnp.zeros(3), goal=goal,
                    obstacle=obstacle, box=box, task=task, t=jnp.zeros((), jnp.int32),
                    succeeded=jnp.zeros((), bool))


def obstacle_gap(points, obstacle):
    """Signed distance [P] from link capsules (points [P, 3]) to the obstacle sphere surface."""
    return jnp.linalg.norm(points - obstacle[:3], axis=-1) - obstacle[3] - LINK_RADIUS


def box_gap(pos, box):
    """Signed distance [] from pos [3] to the nearest box wall (negative outside)."""
    return jnp.minimum(pos - box[:3], box[3:] - pos).min()


def reward_components(robot: R.Robot, state: EnvState, new: EnvState, action, points, dt):
    """Gold reward components [C] of the transition state -> new (see module docstring).

    action: [dof] requested (unclipped) velocity; points: [P, 3] link points at new.q.
    """
    qd_max = jnp.asarray(robot.qd_max, jnp.float32)
    d_prev = jnp.linalg.norm(state.eef_pos - state.goal)
    d_new = jnp.linalg.norm(new.eef_pos - new.goal)
    progress = d_prev - d_new
    hold_ok = (new.task != T.REACH_HOLD) | (jnp.linalg.norm(new.eef_vel) < T.HOLD_SPEED)
    success = (d_new < T.GOAL_TOL) & hold_ok

    obs_gap = obstacle_gap(points, new.obstacle).min()
    wall_gap = box_gap(new.eef_pos, new.box)
    collision = -((obs_gap < 0.0) | (wall_gap < 0.0)).astype(jnp.float32)
    clearance = -(jnp.clip((OBSTACLE_MARGIN - obs_gap) / OBSTACLE_MARGIN, 0.0, 1.0)
                  + jnp.clip((BOX_WALL_MARGIN - wall_gap) / BOX_WALL_MARGIN, 0.0, 1.0))

    to_limit = jnp.minimum(new.q - robot.q_min, robot.q_max - new.q)
    joint_limit = -jnp.sum(jnp.square(jnp.clip(JOINT_BUFFER - to_limit, 0.0) / JOINT_BUFFER))
    over = jnp.clip((jnp.abs(action) - qd_max) / qd_max, 0.0, 2.0)
    speed_violation = -jnp.sum(jnp.where(jnp.isnan(over), 2.0, over))
    jerk = -jnp.sum(jnp.square((new.qd - 2.0 * state.qd + state.qd_prev) / qd_max))
    time = -(~(state.succeeded | success)).astype(jnp.float32)
    energy = -jnp.sum(jnp.square(new.qd / qd_max)) * dt
    return jnp.stack([progress, success.astype(jnp.float32), collision, clearance, joint_limit,
                      speed_violation, jerk, time, energy])


def observe_state(robot: R.Robot, image: bool, state: EnvState) -> dict:
    """Observation dict: state [2*dof] (q, qd), eef_pos [3], eef_vel [3], gripper [1], goal [3],
    obstacle [4], box [6], and image [64, 64, 3] uint8 when `image`."""
    obs = {
        "state": jnp.concatenate([state.q, state.qd]),
        "eef_pos": state.eef_pos,
        "eef_vel": state.eef_vel,
        "gripper": jnp.zeros((1,), jnp.float32),  # no gripper is actuated in these tasks
        "goal": state.goal,
        "obstacle": state.obstacle,
        "box": state.box,
    }
    if image:
        obs["image"] = render(robot, state)
    return obs


def step_state(robot: R.Robot, dt: float, horizon: int, image: bool, state: EnvState, action):
    """One control step: action [dof] requested joint velocity (rad/s).

    Returns (state, obs, reward_components [C], done []); `Env.step` binds the static args.
    """
    action = jnp.asarray(action, jnp.float32)
    qd_max = jnp.asarray(robot.qd_max, jnp.float32)
    # nan_to_num: a NaN request must not poison the state; it is still charged as a violation.
    cmd = jnp.clip(jnp.nan_to_num(action), -qd_max, qd_max)
    q = jnp.clip(state.q + cmd * dt, robot.q_min, robot.q_max)
    qd = (q - state.q) / dt  # realised velocity (zero into a joint stop)
    frames, eef = R.forward_kinematics(robot, q)
    points = R.link_points(robot, frames)
    new = state._replace(q=q, qd=qd, qd_prev=state.qd, eef_pos=eef,
                         eef_vel=(eef - state.eef_pos) / dt, t=state.t + 1)
    rc = reward_components(robot, state, new, action, points, dt)
    new = new._replace(succeeded=state.succeeded | (rc[1] > 0))
    done = new.t >= horizon
    return new, observe_state(robot, image, new), rc, done


def make_env(robot_name: str, task_name: str, *, dt: float = 0.05, horizon: int = 50,
             image: bool = False) -> Env:
    """Build the (arm, task) environment. Functions are pure closures over static info."""
    if robot_name not in R.ROBOTS:
        raise ValueError(f"unknown robot {robot_name!r}; expected one of {R.EMBODIMENTS}")
    robot = R.ROBOTS[robot_name]
    tid = T.task_id(task_name)

    def reset(key):
        return reset_state(robot, tid, key)

    def step(state, action):
        return step_state(robot, dt, horizon, image, state, action)

    def observe(state):
        return observe_state(robot, image, state)

    return Env(robot=robot, task=task_name, task_id=tid, instruction=T.INSTRUCTIONS[task_name],
               dt=float(dt), horizon=int(horizon), image=bool(image), action_dim=robot.dof,
               reset=reset, step=step, observe=observe)


def gold_reward(components, rubric: dict | None = None):
    """Weighted gold total: components [..., C] -> [...] (sum_c w_c r_c)."""
    w = jnp.asarray(rubric_vector(rubric))
    return (jnp.asarray(components) * w).sum(-1)  # elementwise: exact f32 on any backend


def rubric_vector(rubric: dict | None = None) -> np.ndarray:
    """[C] weights in REWARD_COMPONENTS order."""
    rubric = DEFAULT_RUBRIC if rubric is None else rubric
    return np.asarray([rubric.get(c, 0.0) for c in REWARD_COMPONENTS], np.float32)
