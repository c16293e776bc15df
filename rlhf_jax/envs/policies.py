"""Scripted behaviour policies of graded quality, and batched rollouts.

Every scripted policy is one parametric controller (a damped-least-squares differential-IK
expert plus degradations) with a preset parameter vector, so all of them -- and all tasks of one
arm -- share a single compiled rollout program; the parameters and task id are traced data.

Expert (per step, from the state alone):
  1. desired flange velocity: proportional to the goal error (gain, capped at v_max), so it slows
     to a stop at the goal (reach_hold). If the straight path to the goal passes the obstacle
     closer than its clearance radius, it heads at cruise speed for a via point beside the sphere
     instead (recomputed each step, so it slides around the sphere). Inside a workspace box the
     velocity component towards each wall decays to zero near the wall.
  2. joint velocity: joint-limit-aware DLS inverse of the flange Jacobian (columns of joints
     that would run into a nearby limit are scaled down), plus, in the task's null space, a pull
     towards the home posture, a push away from joint limits and Jacobian-transpose repulsion of
     every link point that comes near the obstacle (the elbow swings out of the way).
  3. uniform scaling so no joint exceeds `request_limit` x its speed limit (keeps direction).

Degradations: `careless` ignores obstacle and box, steers by the Jacobian transpose (its flange
path bows away from the straight line) at full speed (bang-bang: it overshoots and never settles)
and requests up to 1.4x the speed limits; `jerky` adds large accelerations alternating in sign
every step; `timid` is the expert at a quarter of the speed; the noisy experts add Gaussian
joint-velocity noise (0.15 / 0.45 x qd_max); `random` samples uniform velocities within the
limits.

Measured on 64 episodes per arm x task (seed 0, DEFAULT_RUBRIC): see tests/test_policies.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from rlhf_jax.envs import robots as R
from rlhf_jax.envs import simulator as S
from rlhf_jax.envs import unroll as U

POLICIES = ("expert", "expert_noisy", "expert_very_noisy", "careless", "jerky", "timid", "random")

PARAM_NAMES = ("gain", "v_max", "constraints", "bang", "transpose", "request_limit", "scale",
               "jerk_amp", "noise", "random_mix")
_EXPERT = dict(gain=4.0, v_max=0.6, constraints=1.0, bang=0.0, transpose=0.0, request_limit=0.95,
               scale=1.0, jerk_amp=0.0, noise=0.0, random_mix=0.0)
PRESETS = {
    "expert": _EXPERT,
    "expert_noisy": {**_EXPERT, "noise": 0.15},
    "expert_very_noisy": {**_EXPERT, "noise": 0.45},
    "careless": {**_EXPERT, "v_max": 0.9, "constraints": 0.0, "bang": 1.0, "transpose": 1.0,
                 "request_limit": 1.4},
    "jerky": {**_EXPERT, "jerk_amp": 0.8},
    "timid": {**_EXPERT, "scale": 0.25},
    "random": {**_EXPERT, "random_mix": 1.0},
}

DLS_DAMPING = 0.05
VIA_MARGIN = 0.10  # extra clearance of the via point beyond obstacle radius + link radius
REPULSE_RANGE = 0.12  # link points closer than this to the obstacle surface are pushed away
REPULSE_GAIN = 3.0
POSTURE_GAIN = 0.5
LIMIT_RANGE = 0.4  # rad; joints closer than this to a limit are pushed back
LIMIT_GAIN = 6.0
WALL_GAIN = 5.0
WALL_MARGIN = 0.03


def _desired_eef_velocity(p, state: S.EnvState, eef):
    """Cartesian velocity command [3] for the flange (expert step 1)."""
    goal, c, r = state.goal, state.obstacle[:3], state.obstacle[3]
    err = goal - eef
    dist = jnp.linalg.norm(err)
    unit = err / (dist + 1e-9)
    speed = jnp.where(p["bang"] > 0, p["v_max"], jnp.minimum(p["v_max"], p["gain"] * dist))
    v_goal = unit * speed

    # Obstacle: does the segment eef -> goal pass within the clearance radius?
    clear_r = r + S.LINK_RADIUS + VIA_MARGIN
    s = jnp.clip(jnp.dot(c - eef, err) / (dist * dist + 1e-9), 0.0, 1.0)
    off = eef + s * err - c
    blocked = (jnp.linalg.norm(off) < clear_r) & (r > 0) & (p["constraints"] > 0)
    # Detour side: away from the center; when the path runs through the center, go over the top
    # (a component of +z orthogonal to the path).
    up = jnp.array([0.0, 0.0, 1.0]) - unit[2] * unit
    side = off + 0.02 * up
    side = side / (jnp.linalg.norm(side) + 1e-9)
    via = c + side * (clear_r + 0.02)
    to_via = via - eef
    v_via = to_via / (jnp.linalg.norm(to_via) + 1e-9) * p["v_max"]
    v = jnp.where(blocked, v_via, v_goal)

    # Box: the velocity towards each wall shrinks to zero at WALL_MARGIN inside it.
    lo, hi = state.box[:3] + WALL_MARGIN, state.box[3:] - WALL_MARGIN
    v_boxed = jnp.clip(v, WALL_GAIN * jnp.minimum(lo - eef, 0.0),
                       WALL_GAIN * jnp.maximum(hi - eef, 0.0))
    return jnp.where(p["constraints"] > 0, v_boxed, v)


def _inv3(m):
    """Inverse of a 3x3 matrix by the adjugate: a handful of fused multiplies, where a generic
    LU inverse would add LAPACK calls and pivoting loops to every compiled rollout."""
    c0, c1, c2 = m[:, 0], m[:, 1], m[:, 2]
    adj = jnp.stack([jnp.cross(c1, c2), jnp.cross(c2, c0), jnp.cross(c0, c1)])  # rows
    return adj / jnp.dot(c0, adj[0])


def _dls_pinv(j):
    """Damped pseudo-inverse [dof, 3] of a position Jacobian j [3, dof]."""
    return j.T @ _inv3(j @ j.T + DLS_DAMPING**2 * jnp.eye(3))


def _dls(j, v):
    return _dls_pinv(j) @ v


def expert_velocity(robot: R.Robot, p: dict, state: S.EnvState):
    """Expert joint-velocity request [dof] (steps 1-3 of the module docstring)."""
    frames, jac = R.frame_jacobians(robot, state.q)  # [F+1, 3], [F+1, 3, dof]
    w = jnp.asarray(R.link_point_weights(robot))
    points, jac_pts = R.link_points(robot, frames), jnp.einsum("pf,fad->pad", w, jac)
    eef, j_eef = frames[-1], jac[-1]
    v = _desired_eef_velocity(p, state, eef)

    q, q_min, q_max = state.q, robot.q_min, robot.q_max
    # Joint-limit-aware DLS: a first solve tells which way each joint wants to go; joints that
    # would move further into a nearby limit get their Jacobian column scaled down (weighted
    # least norm), so the other joints take over instead of the arm pressing into a stop.
    to_lo, to_hi = q - q_min, q_max - q
    qd0 = _dls(j_eef, v)
    room = jnp.where(qd0 < 0, to_lo, to_hi)
    s = jnp.clip(room / LIMIT_RANGE, 0.05, 1.0)  # [dof]
    j_w = j_eef * s
    j_pinv = s[:, None] * _dls_pinv(j_w)  # [dof, 3]
    qd = j_pinv @ v
    null = jnp.eye(robot.dof) - j_pinv @ j_eef

    posture = POSTURE_GAIN * (jnp.asarray(robot.q_home, jnp.float32) - q)
    away = LIMIT_GAIN * (jnp.clip(LIMIT_RANGE - to_lo, 0.0) - jnp.clip(LIMIT_RANGE - to_hi, 0.0))

    # Link points near the obstacle are pushed away (Jacobian transpose). Like the posture
    # terms this acts in the null space of the flange task: the flange itself detours via the
    # via point, the rest of the arm (elbow swing, wrist rotation) gets out of the way.
    gaps = S.obstacle_gap(points, state.obstacle)  # [P]
    normals = points - state.obstacle[:3]
    normals = normals / (jnp.linalg.norm(normals, axis=-1, keepdims=True) + 1e-9)
    push = REPULSE_GAIN * jnp.clip(REPULSE_RANGE - gaps, 0.0) / REPULSE_RANGE  # [P] m/s
    push = push * (state.obstacle[3] > 0) * p["constraints"]
    repulse = jnp.einsum("pad,pa->d", jac_pts, normals * push[:, None])
    qd = qd + null @ (posture + away + repulse)

    # careless: Jacobian-transpose control instead -- the flange moves along J J^T v, not v, so
    # its path bows away from the straight line (out of boxes, into obstacles). Scaled so the
    # flange speed along v matches.
    jt = j_eef.T @ v
    jjt = j_eef @ jt
    jt = jt * jnp.dot(v, v) / (jnp.dot(jjt, v) + 1e-6)
    qd = jnp.where(p["transpose"] > 0, jt, qd)

    qd_max = jnp.asarray(robot.qd_max, jnp.float32)
    ratio = jnp.max(jnp.abs(qd) / qd_max)
    return qd * jnp.minimum(1.0, p["request_limit"] / (ratio + 1e-9))


N_UNIFORMS = 4  # uniform draws per joint and step used by the parametric policy


def scripted_action(robot: R.Robot, params, key, state: S.EnvState):
    """Parametric behaviour policy: params [len(PARAM_NAMES)] -> action [dof] (rad/s)."""
    u = jax.random.uniform(key, (N_UNIFORMS, robot.dof), minval=1e-7, maxval=1.0)
    return scripted_action_from_uniforms(robot, params, u, state)


def scripted_action_from_uniforms(robot: R.Robot, params, u, state: S.EnvState):
    """As `scripted_action`, with the randomness given: u [N_UNIFORMS, dof] in (0, 1].

    Rollouts draw all of an episode's uniforms in one call before the time loop: a random-number
    kernel inside the scanned step costs as much compile time as the whole expert.
    """
    p = dict(zip(PARAM_NAMES, params))
    qd_max = jnp.asarray(robot.qd_max, jnp.float32)
    a = expert_velocity(robot, p, state) * p["scale"]
    # Alternating-sign accelerations of random size: a zig-zag on top of the expert motion.
    sign = 1.0 - 2.0 * (state.t % 2).astype(jnp.float32)
    a = a + p["jerk_amp"] * sign * (0.5 + 0.5 * u[0]) * qd_max
    gauss = jnp.sqrt(-2.0 * jnp.log(u[1])) * jnp.cos(2.0 * jnp.pi * u[2])  # Box-Muller
    a = a + p["noise"] * qd_max * gauss
    uniform = (2.0 * u[3] - 1.0) * qd_max
    return (1.0 - p["random_mix"]) * a + p["random_mix"] * uniform


@dataclass(frozen=True, eq=False)
class ScriptedPolicy:
    """policy(key, state) -> action [dof]; params [len(PARAM_NAMES)] from PRESETS[name]."""

    name: str
    robot: R.Robot
    params: np.ndarray

    def __call__(self, key, state):
        return scripted_action(self.robot, jnp.asarray(self.params), key, state)


def make_policy(name: str, env: S.Env) -> ScriptedPolicy:
    if name not in PRESETS:
        raise ValueError(f"unknown policy {name!r}; expected one of {POLICIES}")
    params = np.asarray([PRESETS[name][k] for k in PARAM_NAMES], np.float32)
    return ScriptedPolicy(name=name, robot=env.robot, params=params)


def build_rollout(robot_name: str, dt: float, horizon: int, image: bool, n_episodes: int, policy_fn=None):
    """(key, task, params) -> trajectories of n_episodes on one arm (for `unroll.compiled`).

    policy_fn=None means the parametric scripted policy with traced `params`, so every task and
    every scripted policy reuses this one compiled program.
    """
    robot = R.ROBOTS[robot_name]

    def episode_inputs(key):
        """Per episode: the reset key and the per-step inputs [T, ...] of its policy."""
        k_reset, k_pol = jax.random.split(key)
        if policy_fn is None:  # all randomness drawn up front (see scripted_action_from_uniforms)
            return k_reset, jax.random.uniform(k_pol, (horizon, N_UNIFORMS, robot.dof), minval=1e-7, maxval=1.0)
        return k_reset, jax.random.split(k_pol, horizon)

    def run(key, task, params):
        k_reset, xs = jax.vmap(episode_inputs)(jax.random.split(key, n_episodes))
        if policy_fn is None:
            act = jax.vmap(lambda u, s: scripted_action_from_uniforms(robot, params, u, s))
        else:
            act = jax.vmap(lambda k, s: jnp.asarray(policy_fn(k, s), jnp.float32))
        _, traj = U.unroll(robot, lambda x, s, obs: (act(x, s), {}), U.reset_batch(robot, task, k_reset),
                           U.time_major(xs), dt=dt, horizon=horizon, image=image,
                           record=("obs", "action", "components"))
        traj = U.batch_major(traj)
        t = jnp.arange(horizon)
        shape = (n_episodes, horizon)
        return {
            "obs": traj["obs"],
            "action": traj["action"],
            "reward_components": traj["components"],
            "reward": S.gold_reward(traj["components"]),
            "is_first": jnp.broadcast_to(t == 0, shape),
            "is_last": jnp.broadcast_to(t == horizon - 1, shape),
            "is_terminal": jnp.zeros(shape, bool),
            "discount": jnp.ones(shape, jnp.float32),
        }

    return run


def rollout(env: S.Env, policy, key, n_episodes: int) -> dict:
    """Run n_episodes episodes of env.horizon steps: one compiled `unroll` over the batch.

    Returns a dict of arrays with leading [E, T]: obs (dict, observation *before* each action),
    action [E, T, dof], reward_components [E, T, C], reward [E, T] (DEFAULT_RUBRIC total),
    is_first, is_last, is_terminal [E, T] bool, discount [E, T]. Episodes end by time limit
    (is_terminal False, discount 1). The same key gives the same trajectories.
    """
    scripted = isinstance(policy, ScriptedPolicy)
    if scripted and policy.robot is not env.robot:
        raise ValueError(f"policy built for {policy.robot.name}, env is {env.robot.name}")
    run = U.compiled(build_rollout, env.robot.name, env.dt, env.horizon, env.image, int(n_episodes),
                     None if scripted else policy)
    params = policy.params if scripted else np.zeros(len(PARAM_NAMES), np.float32)
    return run(key, jnp.int32(env.task_id), jnp.asarray(params))


def success_rate(traj: dict) -> float:
    """Fraction of episodes whose last step is a success (reach_hold: holding still there)."""
    return float(np.mean(np.asarray(traj["reward_components"])[:, -1, 1] > 0))
