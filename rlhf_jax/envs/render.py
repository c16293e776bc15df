"""64x64 RGB camera image of the scene, rendered in JAX (jit/vmap-able, no graphics library).

Orthographic cameras (`VIEWS`): "front" (the default, and the one training images use) looks
at the workspace from the front-right, above the table; "side" from the robot's left, lower;
"top" from almost straight above. Every pixel casts a parallel ray; primitives are composited
with a per-pixel depth buffer:

* table top (z = 0) as a checkerboard of 10 cm squares, sky elsewhere;
* the arm as capsules (radius LINK_RADIUS) along the DH frame origins, flange in red;
* the goal as a green disc, the obstacle as a shaded blue sphere, the workspace box as dark
  edges (only for tasks that have them: a parked obstacle / open box draws nothing).

Cost is O(pixels x primitives) elementwise work (~4k x 30), only paid when `image=True`.
"""
from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from rlhf_jax.envs import robots as R

SIZE = 64
R_LINK = 0.03  # drawn link radius (m), as the simulator's collision capsules
_TARGET = np.array([0.30, 0.0, 0.30], np.float32)  # camera looks at this point
_EYE_DIR = np.array([1.3, 0.9, 1.0], np.float32)  # from the target towards the camera
_HALF_EXTENT = 0.62  # metres from the image center to its border


class Camera(NamedTuple):
    """An orthographic camera: ray direction and image-plane axes (unit vectors, float32)."""
    target: np.ndarray
    fwd: np.ndarray
    right: np.ndarray
    up: np.ndarray
    half_extent: float


def make_camera(eye_dir, target=_TARGET, half_extent: float = _HALF_EXTENT) -> Camera:
    """Camera looking at `target` from direction `eye_dir` (not vertical), z up in the image."""
    eye_dir = np.asarray(eye_dir, np.float32)
    fwd = -eye_dir / np.linalg.norm(eye_dir)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right = (right / np.linalg.norm(right)).astype(np.float32)
    return Camera(np.asarray(target, np.float32), fwd, right, np.cross(right, fwd).astype(np.float32),
                  float(half_extent))


VIEWS = {
    "front": make_camera(_EYE_DIR),
    "side": make_camera([0.15, 1.4, 0.45]),
    "top": make_camera([0.25, 0.05, 1.6], half_extent=0.7),
}
DEFAULT_VIEW = "front"
_FWD, _RIGHT, _UP = VIEWS["front"].fwd, VIEWS["front"].right, VIEWS["front"].up

_SKY = np.array([200, 215, 230], np.float32)
_TABLE = (np.array([170, 140, 105], np.float32), np.array([150, 120, 90], np.float32))
_LINK = (np.array([225, 225, 225], np.float32), np.array([120, 125, 135], np.float32))
_FLANGE = np.array([220, 40, 40], np.float32)
_GOAL = np.array([40, 200, 60], np.float32)
_OBSTACLE = np.array([50, 90, 230], np.float32)
_BOX = np.array([40, 40, 40], np.float32)

_BOX_EDGES = np.array([(0, 1), (0, 2), (0, 4), (1, 3), (1, 5), (2, 3), (2, 6), (3, 7),
                       (4, 5), (4, 6), (5, 7), (6, 7)])  # corner i has bits (x, y, z)


def _pixels(size: int, half_extent: float = _HALF_EXTENT) -> np.ndarray:
    """[size*size, 2] image-plane coordinates (m) of pixel centers, row 0 at the top."""
    c = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    u, v = np.meshgrid(c * half_extent, -c * half_extent)
    return np.stack([u.ravel(), v.ravel()], -1).astype(np.float32)


def _project(p, cam: Camera = VIEWS["front"]):
    """p [..., 3] -> (uv [..., 2] image-plane coordinates, depth [...] along the view ray)."""
    rel = p - cam.target
    return jnp.stack([rel @ cam.right, rel @ cam.up], -1), rel @ cam.fwd


def _segments(pix, a, b, radius, cam: Camera = VIEWS["front"]):
    """Capsules a[S,3]->b[S,3] of `radius`: (hit [N,S], depth [N,S], 3D points [N,S,3])."""
    (ua, da), (ub, db) = _project(a, cam), _project(b, cam)
    ab = ub - ua  # [S, 2]
    rel = pix[:, None, :] - ua[None]  # [N, S, 2]
    s = jnp.clip((rel * ab).sum(-1) / ((ab * ab).sum(-1) + 1e-12), 0.0, 1.0)
    dist = jnp.linalg.norm(rel - s[..., None] * ab, axis=-1)
    return dist < radius, da + s * (db - da)


def _composite(layers, background):
    """layers: list of (hit [N], depth [N], color [N, 3]); nearest hit wins per pixel."""
    depth = jnp.full(background.shape[:1], jnp.inf)
    color = background
    for hit, d, c in layers:
        take = hit & (d < depth)
        depth = jnp.where(take, d, depth)
        color = jnp.where(take[:, None], c, color)
    return color


def render(robot: R.Robot, state, size: int = SIZE, view: str = DEFAULT_VIEW) -> jnp.ndarray:
    """Scene image [size, size, 3] uint8 of an EnvState (uses q, goal, obstacle, box) seen from
    camera `view` (a key of VIEWS)."""
    if view not in VIEWS:
        raise ValueError(f"render: field 'view': expected one of {sorted(VIEWS)}, got {view!r}")
    cam = VIEWS[view]
    pix = jnp.asarray(_pixels(size, cam.half_extent))
    n = pix.shape[0]

    # Background: table checkerboard where the ray meets z = 0, sky elsewhere.
    origin = cam.target + pix[:, :1] * cam.right + pix[:, 1:] * cam.up - 5.0 * cam.fwd  # [N, 3]
    t_hit = -origin[:, 2] / cam.fwd[2]
    floor = origin + t_hit[:, None] * cam.fwd
    checker = (jnp.floor(floor[:, 0] / 0.1) + jnp.floor(floor[:, 1] / 0.1)) % 2
    table = jnp.where(checker[:, None] > 0, _TABLE[0], _TABLE[1])
    background = jnp.where((t_hit > 0)[:, None], table, _SKY)

    layers = []
    # Arm: capsules between consecutive frame origins (zero-length rows skipped statically).
    frames, eef = R.forward_kinematics(robot, state.q)
    keep = np.nonzero(np.hypot(robot.dh[:, 0], robot.dh[:, 1]) > 1e-9)[0]
    hit, depth = _segments(pix, frames[keep], frames[keep + 1], R_LINK, cam)
    shade = jnp.asarray(np.stack([_LINK[i % 2] for i in range(len(keep))]))  # [S, 3]
    depth = jnp.where(hit, depth, jnp.inf)
    best = jnp.argmin(depth, axis=1)
    layers.append((hit.any(1), depth.min(1), shade[best]))
    # Flange, goal: discs.
    for point, radius, color in ((eef, 0.035, _FLANGE), (state.goal, 0.03, _GOAL)):
        (uv,), (d,) = _project(point[None], cam)
        layers.append((jnp.linalg.norm(pix - uv, axis=-1) < radius, jnp.full(n, d - 0.02),
                       jnp.broadcast_to(color, (n, 3))))
    # Obstacle: sphere with Lambert-like shading from the view direction.
    (uv,), (d,) = _project(state.obstacle[None, :3], cam)
    r = state.obstacle[3]
    rho = jnp.linalg.norm(pix - uv, axis=-1) / jnp.maximum(r, 1e-6)
    nz = jnp.sqrt(jnp.clip(1.0 - rho**2, 0.0, 1.0))
    layers.append(((rho < 1.0) & (r > 0), d - nz * r, (0.45 + 0.55 * nz)[:, None] * _OBSTACLE))
    # Workspace box edges (drawn only for a real box, not the open one).
    lo, hi = state.box[:3], state.box[3:]
    bits = np.array([[(i >> k) & 1 for k in range(3)] for i in range(8)], np.float32)
    corners = lo + bits * (hi - lo)  # [8, 3]
    hit, depth = _segments(pix, corners[_BOX_EDGES[:, 0]], corners[_BOX_EDGES[:, 1]], 0.011, cam)
    real = jnp.all(hi - lo < 3.0)
    layers.append((hit.any(1) & real, jnp.where(hit, depth, jnp.inf).min(1),
                   jnp.broadcast_to(_BOX, (n, 3))))

    image = _composite(layers, background)
    return jnp.clip(image, 0, 255).astype(jnp.uint8).reshape(size, size, 3)

