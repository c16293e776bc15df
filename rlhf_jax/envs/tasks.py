"""Task families: language instructions and task geometry sampled on reset.

All tasks share one geometry layout so that one compiled simulator serves every task (the task
id is data, not a Python branch):

* goal [3]      target for the flange, world frame (m).
* obstacle [4]  sphere (center xyz, radius); tasks without one park it far below the table with
                radius 0, where it can never be touched or come within any margin.
* box [6]       workspace box (lo xyz, hi xyz) the flange must stay in; tasks without one get
                `OPEN_BOX`, far larger than any arm's reach.

Goals are drawn from `WORKSPACE`, a region in front of the arms (+x) that all three arms reach
comfortably from their home poses (checked by the expert's success rate in the tests).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

TASKS = ("reach", "reach_avoid", "reach_hold", "reach_in_box")  # task id = index

INSTRUCTIONS = {
    "reach": "Move the gripper to the green target.",
    "reach_avoid": "Move the gripper to the green target without touching the blue ball.",
    "reach_hold": "Move the gripper to the green target and hold it still there.",
    "reach_in_box": "Move the gripper to the green target while keeping it inside the box.",
}

REACH, REACH_AVOID, REACH_HOLD, REACH_IN_BOX = range(4)

# Shared goal workspace (m): in front of the bases, above the table top (z = 0).
WORKSPACE = np.array([[0.30, -0.30, 0.12], [0.60, 0.30, 0.45]], np.float32)
GOAL_TOL = 0.03  # success radius around the goal (m)
HOLD_SPEED = 0.05  # reach_hold success also needs flange speed below this (m/s)
MIN_GOAL_DIST = 0.20  # goals at least this far from the start flange ...
MIN_GOAL_DIST_AVOID = 0.35  # ... and further for reach_avoid, to fit the obstacle in between
OBSTACLE_RADIUS = (0.045, 0.07)
OBSTACLE_CLEAR = 0.035  # sphere surface to the plane of the arm at its goal (link radius + margin)
OBSTACLE_AHEAD = 0.08  # sphere surface to the start and to the goal
BOX_MARGIN = (0.03, 0.06)  # box faces lie this far outside the start/goal bounding box

PARKED_OBSTACLE = np.array([0.0, 0.0, -5.0, 0.0], np.float32)
OPEN_BOX = np.array([-5.0, -5.0, -5.0, 5.0, 5.0, 5.0], np.float32)

_N_CANDIDATES = 32


def task_id(task: str) -> int:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    return TASKS.index(task)


# Layout of the one uniform [0, 1) vector a reset draws for the task (a single jax.random call:
# each call adds a hash kernel to every compiled program).
_GOAL_U = slice(0, 3 * _N_CANDIDATES)
_OBST_U = slice(_GOAL_U.stop, _GOAL_U.stop + 6)
_BOX_U = slice(_OBST_U.stop, _OBST_U.stop + 6)
N_RANDOM = _BOX_U.stop


def _lateral(point, through):
    """[...] distance of `point` [..., 3] from the vertical plane containing the base axis (the
    world z axis; all arms are based at the origin) and `through` [..., 3]."""
    d = through[..., :2] / (jnp.linalg.norm(through[..., :2], axis=-1, keepdims=True) + 1e-9)
    return jnp.abs(d[..., 0] * point[..., 1] - d[..., 1] * point[..., 0])


def sample_task(u, task, start):
    """Task geometry for traced task id `task` [] int32 and start flange position `start` [3].

    u: [N_RANDOM] uniforms in [0, 1). Returns (goal [3], obstacle [4], box [6]).

    Goal: uniform in WORKSPACE, at least MIN_GOAL_DIST from the start (fixed-size rejection over
    32 candidates: the first valid one, else the farthest -- branch-free under jit/vmap).
    reach_avoid: a sphere across the straight start->goal path (40-60 % along it, radius in
    OBSTACLE_RADIUS, nudged sideways by up to half a radius), so going straight collides. An arm
    standing at its goal occupies roughly the vertical plane through its base axis and the goal
    (the forearm hangs over the goal), and at the start the plane through the start, so goals are
    only accepted when the sphere sits clear of both planes: the detour is then possible and the
    final pose is collision-free. This favours goals to the sides of the workspace.
    reach_in_box: the start/goal bounding box grown by BOX_MARGIN per face, floor at the table.
    Every branch is computed and selected (cheaper under vmap than lax.switch; one program serves
    all tasks).
    """
    lo, hi = jnp.asarray(WORKSPACE[0]), jnp.asarray(WORKSPACE[1])
    cand = lo + u[_GOAL_U].reshape(_N_CANDIDATES, 3) * (hi - lo)  # [K, 3]
    dist = jnp.linalg.norm(cand - start, axis=-1)

    uo = u[_OBST_U]
    frac = 0.35 + 0.15 * uo[0]
    radius = OBSTACLE_RADIUS[0] + (OBSTACLE_RADIUS[1] - OBSTACLE_RADIUS[0]) * uo[1]
    path = cand - start
    unit = path / (jnp.linalg.norm(path, axis=-1, keepdims=True) + 1e-9)
    side = 2.0 * uo[2:5] - 1.0
    side = side - (unit @ side)[:, None] * unit
    side = side / (jnp.linalg.norm(side, axis=-1, keepdims=True) + 1e-9)
    center = start + frac * path + 0.5 * radius * uo[5] * side  # [K, 3]
    need = radius + OBSTACLE_CLEAR
    clear = ((_lateral(center, cand) >= need)
             & (jnp.linalg.norm(center - start, axis=-1) >= radius + OBSTACLE_AHEAD)
             & (jnp.linalg.norm(center - cand, axis=-1) >= radius + OBSTACLE_AHEAD))

    avoid = task == REACH_AVOID
    ok = (dist >= jnp.where(avoid, MIN_GOAL_DIST_AVOID, MIN_GOAL_DIST)) & (clear | ~avoid)
    score = jnp.where(ok, 1.0, 0.0) + jnp.where(ok.any(), 0.0, dist)  # first valid, else farthest
    idx = jnp.argmax(score)
    goal = cand[idx]
    obstacle = jnp.where(avoid, jnp.concatenate([center[idx], radius[None]]),
                         jnp.asarray(PARKED_OBSTACLE))

    m = BOX_MARGIN[0] + (BOX_MARGIN[1] - BOX_MARGIN[0]) * u[_BOX_U]
    box_lo = jnp.minimum(start, goal) - m[:3]
    box_lo = box_lo.at[2].set(jnp.maximum(box_lo[2], 0.0))
    box = jnp.concatenate([box_lo, jnp.maximum(start, goal) + m[3:]])
    box = jnp.where(task == REACH_IN_BOX, box, jnp.asarray(OPEN_BOX))
    return goal, obstacle, box
