"""The RLDS schema every episode in this project follows, and the check of one episode.

Shared by the writer and the reader of ``rlhf_jax.data.rlds`` (and by the OXE loader, whose
standardised episodes must pass the same check). The layout is documented in ``rlds``.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from rlhf_jax.errors import NonFiniteError, SchemaError, describe

DATASET_NAME = "rlhf_sim"
DATASET_VERSION = "1.0.0"
SCHEMA_VERSION = 1
IMAGE_SHAPE = (64, 64, 3)

# observation key -> fixed trailing shape (None = per-embodiment size, checked against dof).
OBS_SHAPES: dict[str, tuple] = {
    "state": (None,), "eef_pos": (3,), "eef_vel": (3,), "gripper": (1,),
    "goal": (3,), "obstacle": (4,), "box": (6,),
}
STEP_KEYS = ("observation", "action", "reward", "discount", "is_first", "is_last",
             "is_terminal", "language_instruction", "reward_components")
BOOL_STEP_KEYS = ("is_first", "is_last", "is_terminal")
# metadata key -> python type
METADATA_KEYS: dict[str, type] = {
    "episode_id": str, "embodiment": str, "embodiment_id": int, "task": str, "task_id": int,
    "source": str, "policy": str, "seed": int, "dof": int,
}
SOURCES = ("sim", "real")


def _dtype_ok(arr: np.ndarray, kind: str) -> bool:
    if kind == "float":
        return np.issubdtype(arr.dtype, np.floating)
    if kind == "bool":
        return arr.dtype == np.bool_
    if kind == "uint8":
        return arr.dtype == np.uint8
    return True


def validate_episode(ep: Mapping[str, Any], where: str, n_components: int | None = None) -> int:
    """Checks one in-memory episode against the schema; returns its length T.

    Raises SchemaError (missing key, wrong dtype or shape) or NonFiniteError (NaN/Inf), with
    `where` (file / dataset + episode) and the field path in the message.
    """
    for top in ("steps", "episode_metadata"):
        if top not in ep:
            raise SchemaError(describe(where, top,
                                       "an episode dict with keys steps, episode_metadata",
                                       f"keys {sorted(ep)}"))
    steps, meta = ep["steps"], ep["episode_metadata"]
    for key, typ in METADATA_KEYS.items():
        if key not in meta:
            raise SchemaError(describe(where, f"episode_metadata/{key}", "present", "missing"))
        val = meta[key]
        if typ is int and not isinstance(val, (int, np.integer)):
            raise SchemaError(describe(where, f"episode_metadata/{key}", "an integer", repr(val)))
        if typ is str and not isinstance(val, str):
            raise SchemaError(describe(where, f"episode_metadata/{key}", "a string", repr(val)))
    if meta["source"] not in SOURCES:
        raise SchemaError(describe(where, "episode_metadata/source", f"one of {SOURCES}",
                                   repr(meta["source"])))
    dof = int(meta["dof"])
    if dof < 1:
        raise SchemaError(describe(where, "episode_metadata/dof", "a positive integer", dof))
    where = f"{where} (episode_id {meta['episode_id']!r})"
    for key in STEP_KEYS:
        if key not in steps:
            raise SchemaError(describe(where, f"steps/{key}", "present", "missing"))
    obs = steps["observation"]
    for key in OBS_SHAPES:
        if key not in obs:
            raise SchemaError(describe(where, f"steps/observation/{key}", "present", "missing"))

    length = len(steps["reward"])
    if length < 1:
        raise SchemaError(describe(where, "steps/reward", "at least one step", "0 steps"))

    def check(field: str, arr: Any, trailing: tuple, kind: str, finite: bool = True) -> None:
        arr = np.asarray(arr)
        if not _dtype_ok(arr, kind):
            raise SchemaError(describe(where, field, f"dtype {kind}", f"dtype {arr.dtype}"))
        want = (length,) + trailing
        if arr.shape != want:
            raise SchemaError(describe(where, field, f"shape {want}", f"shape {arr.shape}"))
        if finite and kind == "float" and not np.all(np.isfinite(arr)):
            bad = np.argwhere(~np.isfinite(arr))[0]
            raise NonFiniteError(describe(where, field, "finite values",
                                          f"{arr[tuple(bad)]} at index "
                                          f"{tuple(int(i) for i in bad)}"))

    for key, shape in OBS_SHAPES.items():
        trailing = (2 * dof,) if key == "state" else shape
        check(f"steps/observation/{key}", obs[key], trailing, "float")
    if "image" in obs:
        check("steps/observation/image", obs["image"], IMAGE_SHAPE, "uint8")
    check("steps/action", steps["action"], (dof,), "float")
    check("steps/reward", steps["reward"], (), "float")
    check("steps/discount", steps["discount"], (), "float")
    comps = np.asarray(steps["reward_components"])
    c = n_components if n_components is not None else (comps.shape[-1] if comps.ndim == 2 else -1)
    check("steps/reward_components", comps, (c,), "float")
    for key in BOOL_STEP_KEYS:
        check(f"steps/{key}", steps[key], (), "bool")
    instr = steps["language_instruction"]
    if len(instr) != length:
        raise SchemaError(describe(where, "steps/language_instruction", f"{length} strings",
                                   f"{len(instr)}"))
    first, last = np.asarray(steps["is_first"]), np.asarray(steps["is_last"])
    if not first[0] or first[1:].any():
        raise SchemaError(describe(where, "steps/is_first", "True at step 0 only",
                                   f"True at steps {np.flatnonzero(first).tolist()}"))
    if not last[-1] or last[:-1].any():
        raise SchemaError(describe(where, "steps/is_last", "True at the final step only",
                                   f"True at steps {np.flatnonzero(last).tolist()}"))
    return length
