"""Camera frames of episodes, stored once per step, and the frame rows of each segment.

The simulator's camera (``rlhf_jax.envs.render``) reads only the arm's joint positions q and the
scene (goal, obstacle, workspace box), all of which every step's observation stores. So the
frames of an episode are a pure function of its stored steps: they are rendered when preference
data is made (at any size, from any view) rather than written into the RLDS files, and a pixels
sweep reads the same cached episodes as a state sweep.

  frames, offsets = episode_frames(episodes, size=16, view="front")   # [F, H, W, 3], [E]
  rows = segment_frame_rows(table, offsets)                            # [S, T + 2w] into frames

Frames are kept once per episode step (F = total steps); a segment holds indices into them, and a
compiled program gathers ``frames[rows]`` per minibatch, so memory does not grow with the number
of segments or pairs. Rendering is one jitted, vmapped call per arm (the robot is static).
"""
from __future__ import annotations

import functools
from typing import Any, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rlhf_jax.envs import render as rendering
from rlhf_jax.envs import robots as R


# Steps rendered per call: the renderer's temporaries are [steps, pixels, primitives, 3] floats.
RENDER_BLOCK = 2048


class SceneState(NamedTuple):
    """The fields of an EnvState that the camera reads, taken from an observation."""
    q: jax.Array
    goal: jax.Array
    obstacle: jax.Array
    box: jax.Array


@functools.lru_cache(maxsize=None)
def _renderer(robot_name: str, size: int, view: str):
    robot = R.ROBOTS[robot_name]
    def one(q, goal, obstacle, box):
        return rendering.render(robot, SceneState(q, goal, obstacle, box), size, view)

    return jax.jit(jax.vmap(one))


def render_steps(robot_name: str, obs: Mapping[str, Any], dof: int, size: int, view: str) -> np.ndarray:
    """Frames [T, size, size, 3] uint8 of steps whose observations are ``obs`` (each key [T, ...]).

    q is the first ``dof`` entries of ``obs["state"]`` (q then qd, as the simulator observes them).
    """
    state = np.asarray(obs["state"], np.float32)
    args = [state[:, :dof]] + [np.asarray(obs[k], np.float32) for k in ("goal", "obstacle", "box")]
    render = _renderer(robot_name, int(size), view)
    n = len(state)
    if n <= RENDER_BLOCK:
        return np.asarray(render(*map(jnp.asarray, args)))
    # Fixed-size blocks (the last padded by repeating its final step): one compile, bounded temporaries.
    pad = (-n) % RENDER_BLOCK
    args = [np.concatenate([a, np.repeat(a[-1:], pad, 0)]) for a in args]
    out = [np.asarray(render(*(jnp.asarray(a[i:i + RENDER_BLOCK]) for a in args)))
           for i in range(0, n + pad, RENDER_BLOCK)]
    return np.concatenate(out)[:n]


def check_frame_settings(size: int, view: str, where: str = "frames") -> None:
    """Raises ValueError unless size >= 4 and view is a camera of ``rlhf_jax.envs.render.VIEWS``."""
    if int(size) < 4:
        raise ValueError(f"{where}: field 'frame_size': expected an image side of at least 4 pixels, got {size!r}")
    if view not in rendering.VIEWS:
        raise ValueError(f"{where}: field 'frame_view': expected one of {sorted(rendering.VIEWS)}, got {view!r}")


def episode_frames(episodes: Sequence[Mapping[str, Any]], size: int = 16,
                   view: str = rendering.DEFAULT_VIEW) -> tuple[np.ndarray, np.ndarray]:
    """(frames [F, size, size, 3] uint8, offsets [E] int64): every step of every episode, rendered
    from its stored state, in episode order; episode e's step t is frame ``offsets[e] + t``.

    Steps of one arm are rendered in one call (one compile per arm and size).
    """
    check_frame_settings(size, view)
    lengths = np.array([len(ep["steps"]["reward"]) for ep in episodes], np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    frames = np.zeros((int(lengths.sum()), size, size, 3), np.uint8)
    by_arm: dict[tuple[str, int], list[int]] = {}
    for e, ep in enumerate(episodes):
        meta = ep["episode_metadata"]
        by_arm.setdefault((str(meta["embodiment"]), int(meta["dof"])), []).append(e)
    for (arm, dof), members in by_arm.items():
        obs = {k: np.concatenate([np.asarray(episodes[e]["steps"]["observation"][k]) for e in members])
               for k in ("state", "goal", "obstacle", "box")}
        rendered = render_steps(arm, obs, dof, size, view)
        rows = np.concatenate([offsets[e] + np.arange(lengths[e]) for e in members])
        frames[rows] = rendered
    return frames, offsets


def segment_frame_rows(start: np.ndarray, episode_index: np.ndarray, margin: int, steps: int,
                       offsets: np.ndarray) -> np.ndarray:
    """[S, steps] int32 frame indices of each segment's stored steps: ``start`` [S] is the centre
    window's first step, the stored steps begin ``margin`` earlier (a SegmentTable's layout)."""
    first = offsets[episode_index] + np.asarray(start, np.int64) - int(margin)
    return (first[:, None] + np.arange(steps)[None, :]).astype(np.int32)
