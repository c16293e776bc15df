"""Kinematic models of three serial arms from their published Denavit-Hartenberg tables.

Each table is kept in the convention its manufacturer publishes it in -- mixing conventions is
the classic forward-kinematics bug, so every `Robot` carries its `convention`:

* ``"modified"`` (Craig): row i holds (a_{i-1}, d_i, alpha_{i-1}, theta_offset_i) and
  T_i = Rot_x(alpha_{i-1}) Trans_x(a_{i-1}) Rot_z(theta_i) Trans_z(d_i).
* ``"standard"`` (classic DH): row i holds (a_i, d_i, alpha_i, theta_offset_i) and
  T_i = Rot_z(theta_i) Trans_z(d_i) Trans_x(a_i) Rot_x(alpha_i).

`dh` rows are stored uniformly as (a, d, alpha, theta_offset); `joint_index[row]` says which joint
drives a row (-1 = fixed transform, e.g. Panda's flange row or Gen3's base flip), so a row's angle
is theta_offset + q[joint_index]. Frame 0 is the base frame (z up, mounted on the table top at
`base_pos`, no base rotation); frame r+1 = frame r @ T_r; the last frame is the flange.

Sources (checked against the manufacturers' documents):
* Franka Emika Panda: Franka "Robot and interface specifications" (modified DH, limits, speeds).
* UR5 (CB3, "serie 3"): Universal Robots DH-parameter table (standard DH); +-2 pi, pi rad/s.
* Kinova Gen3 7-DoF (spherical wrist): Kinova Gen3 user guide, "classical DH parameters"
  (standard DH, with a fixed base flip and +pi offsets). Joints 1, 3, 5, 7 rotate without limit;
  they are modelled as +-2 pi so every array stays finite.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

MAX_DOF = 7
EMBODIMENTS = ("panda", "ur5", "gen3")  # embodiment id = index in this tuple

PI = np.pi


@dataclass(frozen=True, eq=False)  # eq=False: hash by identity, so a Robot can be a static arg
class Robot:
    """Static description of one arm. Arrays are numpy (trace-time constants).

    dh: [F, 4] rows (a, d, alpha, theta_offset) in metres/radians, in `convention`.
    joint_index: [F] int, joint driving each row (-1 = fixed row).
    q_min, q_max, qd_max, q_home: [dof]. base_pos: [3] world position of frame 0.
    reach: published reach in metres (shoulder to flange, fully stretched).
    shoulder_joint: joint whose axis point is the "shoulder" for the reach check.
    """

    name: str
    dof: int
    convention: str
    dh: np.ndarray
    joint_index: np.ndarray
    q_min: np.ndarray
    q_max: np.ndarray
    qd_max: np.ndarray
    q_home: np.ndarray
    base_pos: np.ndarray
    reach: float
    shoulder_joint: int = 1

    @property
    def n_frames(self) -> int:
        """F + 1 frame origins returned by `forward_kinematics` (base included)."""
        return self.dh.shape[0] + 1

    @property
    def embodiment_id(self) -> int:
        return EMBODIMENTS.index(self.name)

    @property
    def joint_rows(self) -> np.ndarray:
        """[dof] row index of each joint's transform."""
        return np.array([int(np.nonzero(self.joint_index == j)[0][0]) for j in range(self.dof)])

    @property
    def axis_frames(self) -> np.ndarray:
        """[dof] frame whose z axis/origin is joint j's rotation axis.

        Standard DH rotates about z of the frame *before* the row (Rot_z comes first); modified
        DH rotates about z of the frame *after* it (its origin lies on that axis because only
        Trans_z(d) follows Rot_z).
        """
        shift = 0 if self.convention == "standard" else 1
        return self.joint_rows + shift

    @property
    def frame_joint_mask(self) -> np.ndarray:
        """[F+1, dof] 1 where joint j can move frame k (k comes after joint j's row)."""
        k = np.arange(self.n_frames)[:, None]
        return (k >= self.joint_rows[None, :] + 1).astype(np.float32)


def _arr(x):
    return np.asarray(x, dtype=np.float64)


# ---- Franka Emika Panda: modified (Craig) DH, rows = (a_{i-1}, d_i, alpha_{i-1}, offset) ----
_PANDA = Robot(
    name="panda",
    dof=7,
    convention="modified",
    dh=_arr([
        [0.0, 0.333, 0.0, 0.0],
        [0.0, 0.0, -PI / 2, 0.0],
        [0.0, 0.316, PI / 2, 0.0],
        [0.0825, 0.0, PI / 2, 0.0],
        [-0.0825, 0.384, -PI / 2, 0.0],
        [0.0, 0.0, PI / 2, 0.0],
        [0.088, 0.0, PI / 2, 0.0],
        [0.0, 0.107, 0.0, 0.0],  # flange (fixed)
    ]),
    joint_index=np.array([0, 1, 2, 3, 4, 5, 6, -1]),
    q_min=_arr([-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973]),
    q_max=_arr([2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973]),
    qd_max=_arr([2.1750, 2.1750, 2.1750, 2.1750, 2.6100, 2.6100, 2.6100]),
    q_home=_arr([0.0, -PI / 4, 0.0, -3 * PI / 4, 0.0, PI / 2, PI / 4]),  # Franka "ready" pose
    base_pos=_arr([0.0, 0.0, 0.0]),
    reach=0.855,
)

# ---- Universal Robots UR5 (CB3): standard DH, rows = (a_i, d_i, alpha_i, offset) ----
_UR5 = Robot(
    name="ur5",
    dof=6,
    convention="standard",
    dh=_arr([
        [0.0, 0.089159, PI / 2, 0.0],
        [-0.425, 0.0, 0.0, 0.0],
        [-0.39225, 0.0, 0.0, 0.0],
        [0.0, 0.10915, PI / 2, 0.0],
        [0.0, 0.09465, -PI / 2, 0.0],
        [0.0, 0.0823, 0.0, 0.0],
    ]),
    joint_index=np.array([0, 1, 2, 3, 4, 5]),
    q_min=np.full(6, -2 * PI),
    q_max=np.full(6, 2 * PI),
    qd_max=np.full(6, PI),
    # UR's zero pose stretches the arm along -x; q1 = pi turns it to face +x (the workspace),
    # elbow up, tool pointing down.
    q_home=_arr([PI, -2.0, 1.9, -1.47, -PI / 2, 0.0]),
    base_pos=_arr([0.0, 0.0, 0.0]),
    reach=0.850,
)

# ---- Kinova Gen3 7-DoF: classical (standard) DH from the user guide ----
_GEN3 = Robot(
    name="gen3",
    dof=7,
    convention="standard",
    dh=_arr([
        [0.0, 0.0, PI, 0.0],  # base -> 1 (fixed flip: frame 1 z points down)
        [0.0, -(0.1564 + 0.1284), PI / 2, 0.0],  # q1
        [0.0, -(0.0054 + 0.0064), PI / 2, PI],  # q2 + pi
        [0.0, -(0.2104 + 0.2104), PI / 2, PI],  # q3 + pi
        [0.0, -(0.0064 + 0.0064), PI / 2, PI],  # q4 + pi
        [0.0, -(0.2084 + 0.1059), PI / 2, PI],  # q5 + pi
        [0.0, 0.0, PI / 2, PI],  # q6 + pi
        [0.0, -(0.1059 + 0.0615), PI, PI],  # q7 + pi, 7 -> interface (flange)
    ]),
    joint_index=np.array([-1, 0, 1, 2, 3, 4, 5, 6]),
    q_min=_arr([-2 * PI, -2.2497, -2 * PI, -2.5796, -2 * PI, -2.0996, -2 * PI]),
    q_max=_arr([2 * PI, 2.2497, 2 * PI, 2.5796, 2 * PI, 2.0996, 2 * PI]),
    qd_max=_arr([1.39, 1.39, 1.39, 1.39, 1.22, 1.22, 1.22]),
    q_home=_arr(np.deg2rad([0.0, 15.0, 180.0, -130.0, 0.0, 55.0, 90.0])),  # Kinova "Home"
    base_pos=_arr([0.0, 0.0, 0.0]),
    reach=0.902,
)

ROBOTS = {r.name: r for r in (_PANDA, _UR5, _GEN3)}


def _row_coefficients(robot: Robot):
    """Static arrays (A, B, C [F, 3, 3], a, b, c [F, 3]) such that each row's rotation is
    cos(theta) A + sin(theta) B + C and its translation cos(theta) a + sin(theta) b + c.

    Building all rows in one vectorised expression (rather than per-row scalar stacks) keeps the
    traced program small; program size is what dominates XLA compile time on CPU.
    """
    a, d, alpha = robot.dh[:, 0], robot.dh[:, 1], robot.dh[:, 2]
    ca, sa = np.cos(alpha), np.sin(alpha)
    ca, sa = np.where(np.abs(ca) < 1e-12, 0.0, ca), np.where(np.abs(sa) < 1e-12, 0.0, sa)
    f = len(a)
    ra, rb, rc = np.zeros((f, 3, 3)), np.zeros((f, 3, 3)), np.zeros((f, 3, 3))
    ta, tb, tc = np.zeros((f, 3)), np.zeros((f, 3)), np.zeros((f, 3))
    if robot.convention == "standard":  # Rot_z(theta) Trans_z(d) Trans_x(a) Rot_x(alpha)
        # R = [[ct, -st ca, st sa], [st, ct ca, -ct sa], [0, sa, ca]], t = (a ct, a st, d)
        ra[:, 0, 0], ra[:, 1, 1], ra[:, 1, 2] = 1.0, ca, -sa
        rb[:, 0, 1], rb[:, 0, 2], rb[:, 1, 0] = -ca, sa, 1.0
        rc[:, 2, 1], rc[:, 2, 2] = sa, ca
        ta[:, 0], tb[:, 1], tc[:, 2] = a, a, d
    elif robot.convention == "modified":  # Rot_x(alpha) Trans_x(a) Rot_z(theta) Trans_z(d)
        # R = [[ct, -st, 0], [st ca, ct ca, -sa], [st sa, ct sa, ca]], t = (a, -sa d, ca d)
        ra[:, 0, 0], ra[:, 1, 1], ra[:, 2, 1] = 1.0, ca, sa
        rb[:, 0, 1], rb[:, 1, 0], rb[:, 2, 0] = -1.0, ca, sa
        rc[:, 1, 2], rc[:, 2, 2] = -sa, ca
        tc[:, 0], tc[:, 1], tc[:, 2] = a, -sa * d, ca * d
    else:
        raise ValueError(f"unknown DH convention {robot.convention!r}")
    return ra, rb, rc, ta, tb, tc


def frames(robot: Robot, q: jnp.ndarray):
    """All frame rotations and origins in the world frame.

    q: [dof]. Returns (rot [F+1, 3, 3], pos [F+1, 3]); index 0 is the base, -1 the flange.
    """
    q = jnp.asarray(q, jnp.float32)
    driven = robot.joint_index >= 0
    theta = jnp.asarray(robot.dh[:, 3], jnp.float32) + jnp.where(
        driven, q[np.where(driven, robot.joint_index, 0)], 0.0)
    ct, st = jnp.cos(theta), jnp.sin(theta)
    ra, rb, rc, ta, tb, tc = (jnp.asarray(x, jnp.float32) for x in _row_coefficients(robot))
    rots = ct[:, None, None] * ra + st[:, None, None] * rb + rc  # [F, 3, 3]
    trans = ct[:, None] * ta + st[:, None] * tb + tc  # [F, 3]
    # The chain itself is sequential: a scan over rows compiles to a small loop, and under vmap
    # runs ~4x faster on CPU than an unrolled chain of broadcast products.

    def link(carry, row):
        rot, pos = carry
        r_rot, r_trans = row
        # HIGHEST: full f32 on every backend (TPU/GPU matmuls may default to reduced precision)
        pos = pos + jnp.dot(rot, r_trans, precision=jax.lax.Precision.HIGHEST)
        rot = jnp.dot(rot, r_rot, precision=jax.lax.Precision.HIGHEST)
        return (rot, pos), (rot, pos)

    base = (jnp.eye(3, dtype=jnp.float32), jnp.asarray(robot.base_pos, jnp.float32))
    _, (rot, pos) = jax.lax.scan(link, base, (rots, trans))
    return (jnp.concatenate([base[0][None], rot]), jnp.concatenate([base[1][None], pos]))


def forward_kinematics(robot: Robot, q: jnp.ndarray):
    """q: [dof] -> (frame_positions [F+1, 3], eef_pos [3]) in the world frame (flange = eef)."""
    _, pos = frames(robot, q)
    return pos, pos[-1]


def frame_jacobians(robot: Robot, q: jnp.ndarray):
    """Analytic position Jacobians of every frame origin.

    Column j of frame k is z_j x (p_k - o_j) for revolute joint j with axis (z_j, o_j), zero when
    joint j comes after frame k. Returns (frame_positions [F+1, 3], jac [F+1, 3, dof]).
    """
    rot, pos = frames(robot, q)
    ax = robot.axis_frames
    z = rot[ax, :, 2]  # [dof, 3] axis directions
    o = pos[ax]  # [dof, 3] points on the axes
    lever = pos[:, None, :] - o[None, :, :]  # [F+1, dof, 3]
    cols = jnp.cross(jnp.broadcast_to(z[None], lever.shape), lever)  # [F+1, dof, 3]
    cols = cols * jnp.asarray(robot.frame_joint_mask)[:, :, None]
    return pos, jnp.swapaxes(cols, 1, 2)


def position_jacobian(robot: Robot, q: jnp.ndarray) -> jnp.ndarray:
    """q: [dof] -> d eef_pos / d q, [3, dof] (analytic, cross-product form)."""
    return frame_jacobians(robot, q)[1][-1]


# ---- link sample points (collision / clearance / rendering) ----
LINK_SPACING = 0.08  # metres between sample points along a link


def link_point_weights(robot: Robot) -> np.ndarray:
    """[P, F+1] static interpolation weights: link points = W @ frame_positions.

    The segment between frames r and r+1 has constant length hypot(a_r, d_r) in either
    convention, so zero-length segments (coincident frames) are skipped statically and longer
    links get proportionally more samples.
    """
    n = robot.n_frames
    rows = []
    for r in range(n - 1):
        length = float(np.hypot(robot.dh[r, 0], robot.dh[r, 1]))
        if length < 1e-9:
            continue
        k = max(1, int(np.ceil(length / LINK_SPACING)))
        for s in np.arange(1, k + 1) / k:  # end point included, start is the previous end
            w = np.zeros(n)
            w[r], w[r + 1] = 1.0 - s, s
            rows.append(w)
    return np.asarray(rows, np.float32)


def link_points(robot: Robot, frame_positions: jnp.ndarray) -> jnp.ndarray:
    """frame_positions [F+1, 3] -> sample points along the links [P, 3] (flange is the last)."""
    return jnp.matmul(jnp.asarray(link_point_weights(robot)), frame_positions,
                      precision=jax.lax.Precision.HIGHEST)


def random_configurations(robot: Robot, n: int, seed: int = 0) -> np.ndarray:
    """[n, dof] uniform in-limit joint configurations (numpy; for checks and sampling)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(robot.q_min, robot.q_max, size=(n, robot.dof))
