"""Orbax checkpoints for long runs, and atomic result files.

A checkpoint is any pytree of arrays plus a small JSON-able ``meta`` dict. Restoring falls back
to the previous checkpoint (with a warning) when the latest one cannot be read, so a crash
while writing costs one chunk, never the run.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


def _as_saveable(tree):
    # Orbax wants arrays, not NumPy scalars (np.int32(3) fails; a 0-d array is fine).
    return jax.tree.map(lambda x: np.asarray(x) if isinstance(x, np.generic) else x, tree)


class Checkpointer:
    """Saves and restores (state, meta) at integer steps under ``directory``."""

    def __init__(self, directory: str, max_to_keep: int = 2):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options,
                                              item_names=("state", "meta"))

    def save(self, step: int, state: Any, meta: dict) -> None:
        self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(_as_saveable(state)), meta=ocp.args.JsonSave(meta)))
        self._manager.wait_until_finished()

    def steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def restore(self, like: Any) -> tuple[int, Any, dict] | None:
        """Latest readable (step, state, meta), with ``like`` giving the tree structure; or None."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _as_saveable(like))
        for step in reversed(self.steps()):
            try:
                out = self._manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
                return step, out["state"], dict(out["meta"])
            except Exception as err:  # a truncated or corrupted step: try the one before it
                warnings.warn(f"checkpoint step {step} in {self.directory} could not be restored "
                              f"({type(err).__name__}: {err}); falling back to the previous one")
        return None

    def close(self) -> None:
        self._manager.close()


def atomic_write_text(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` via a temp file in the same directory and a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_npz(path: str, arrays: dict) -> None:
    """np.savez_compressed to a temp file in the same directory, then a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_json(path: str, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(x):
    if isinstance(x, (np.generic,)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
