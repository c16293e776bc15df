"""The per-step feature layout that reward models and policies read, defined once.

A feature vector is the concatenation of named parts, in this order:

  "joint" (D = 2·MAX_DOF + 20): q [MAX_DOF], qd [MAX_DOF] (joint positions and velocities,
          zero-padded from the arm's dof), then the context parts eef_pos [3], eef_vel [3],
          gripper [1], goal [3], obstacle [4], box [6].
  "eef"   (D = 20): the context parts only (embodiment-agnostic).

Every dimension in the code base (the policy's observation width, PPO's running statistics,
segment tables) is derived from `LAYOUTS` through `feature_dim` / `part_slices`, so adding a
part changes them all at once.

The same functions serve RLDS episodes (numpy, [T, ...]) and simulator observations (jnp,
[..., ...] under jit): `xp` is the array module, by default jnp when any input is a JAX array
(tracers included) and numpy otherwise. Each part is cast to float32 before padding and
concatenation, so `features` gives the same bits on numpy and jnp inputs (it only copies);
the "eef" actions divide by dt, where XLA may round the last bit differently from numpy.
"""
from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from rlhf_jax.envs.robots import MAX_DOF

# Context parts of an observation dict: key -> trailing width (the simulator's observe_state and
# the RLDS schema produce exactly these).
CONTEXT: tuple[tuple[str, int], ...] = (
    ("eef_pos", 3), ("eef_vel", 3), ("gripper", 1), ("goal", 3), ("obstacle", 4), ("box", 6))
CONTEXT_KEYS = tuple(k for k, _ in CONTEXT)
JOINT_PARTS: tuple[tuple[str, int], ...] = (("q", MAX_DOF), ("qd", MAX_DOF))
LAYOUTS: dict[str, tuple[tuple[str, int], ...]] = {"joint": JOINT_PARTS + CONTEXT, "eef": CONTEXT}
FEATURE_KINDS = tuple(LAYOUTS)
# Action width per kind: padded joint velocities, or the realised end-effector velocity.
ACTION_DIMS = {"joint": MAX_DOF, "eef": dict(CONTEXT)["eef_pos"]}


def layout(kind: str) -> tuple[tuple[str, int], ...]:
    """((part name, width), ...) of a feature kind, in concatenation order."""
    if kind not in LAYOUTS:
        raise ValueError(f"feature kind must be one of {FEATURE_KINDS}, got {kind!r}")
    return LAYOUTS[kind]


def feature_dim(kind: str) -> int:
    """D, the width of one feature vector of `kind`."""
    return sum(w for _, w in layout(kind))


def action_dim(kind: str) -> int:
    """A, the width of one action vector of `kind`."""
    layout(kind)
    return ACTION_DIMS[kind]


def part_slices(kind: str) -> dict[str, slice]:
    """part name -> slice of the feature axis (e.g. x[..., part_slices("joint")["goal"]])."""
    out, start = {}, 0
    for name, width in layout(kind):
        out[name] = slice(start, start + width)
        start += width
    return out


def array_module(*arrays):
    """jnp when any of `arrays` is a JAX array (or tracer), else numpy."""
    return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def pad_joints(x, xp=None):
    """x [..., dof] -> [..., MAX_DOF], zeros after the arm's last joint (dtype kept)."""
    xp = xp or array_module(x)
    return xp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, MAX_DOF - x.shape[-1])])


def action_mask(dof, kind: str = "joint", xp=None):
    """float32 [..., A] mask of the real action dims for arms with `dof` joints (int or [...])."""
    xp = xp or array_module(dof)
    dof = xp.asarray(dof)
    if kind == "joint":
        return (xp.arange(action_dim(kind)) < dof[..., None]).astype(xp.float32)
    return xp.ones(dof.shape + (action_dim(kind),), xp.float32)


def features(obs: Mapping[str, Any], dof: int, kind: str = "joint", xp=None):
    """Observation dict -> float32 features [..., D], D = feature_dim(kind).

    obs: "state" [..., 2·dof] (q then qd; read only for "joint") and the CONTEXT_KEYS, each
    [..., width]. Leading axes are kept (one step, an episode [T], a batch [B, T], ...).
    """
    xp = xp or array_module(*(obs[k] for k in ("state",) + CONTEXT_KEYS if k in obs))
    parts = [xp.asarray(obs[k], xp.float32) for k in CONTEXT_KEYS]
    widths = {k: p.shape[-1] for k, p in zip(CONTEXT_KEYS, parts)}
    if kind == "joint":
        state = xp.asarray(obs["state"], xp.float32)
        widths = {"state": state.shape[-1], **widths}
        parts = [pad_joints(state[..., :dof], xp), pad_joints(state[..., dof:], xp)] + parts
    want = dict(CONTEXT, **({"state": 2 * dof} if kind == "joint" else {}))
    if widths != want or dof > MAX_DOF:
        raise ValueError(f"{kind!r} features of a {dof}-joint arm: observation widths {widths}, "
                         f"expected {want} (at most {MAX_DOF} joints)")
    return xp.concatenate(parts, axis=-1)


def joint_features(obs: Mapping[str, Any], dof: int):
    """Simulator observation dict -> the policy's "joint" features [..., feature_dim("joint")]
    (jnp): the layout policies and reward models are trained on."""
    return features(obs, dof, "joint", xp=jnp)


def actions(obs: Mapping[str, Any], action, kind: str, dt: float, xp=None):
    """Per-step actions [T, A] of one episode, A = action_dim(kind).

    "joint": action [T, dof] zero-padded to MAX_DOF. "eef": (eef_pos[t+1] − eef_pos[t]) / dt;
    the last step repeats the previous one, as there is no next observation.
    """
    layout(kind)
    if kind == "joint":
        xp = xp or array_module(action)
        return pad_joints(xp.asarray(action, xp.float32), xp)
    xp = xp or array_module(obs["eef_pos"])
    pos = xp.asarray(obs["eef_pos"], xp.float32)
    vel = xp.diff(pos, axis=-2) / dt
    act = xp.concatenate([vel, vel[..., -1:, :]], -2) if vel.shape[-2] else xp.zeros_like(pos)
    return act.astype(xp.float32)
