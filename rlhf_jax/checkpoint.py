"""Orbax checkpoints for long runs, and atomic result files.

A checkpoint is any pytree of arrays plus a small JSON-able ``meta`` dict. Restoring falls back
to the previous checkpoint (with a warning) when the latest one cannot be read, so a crash
while writing costs one chunk, never the run.
"""
from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp


class _OrbaxInfoFilter(logging.Filter):
    """Drops orbax's INFO records (a dozen lines per save) from absl's log; warnings pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or f"{os.sep}orbax{os.sep}" not in record.pathname


logging.getLogger("absl").addFilter(_OrbaxInfoFilter())


@contextlib.contextmanager
def _stderr_dropped_if(failed: Callable[[], bool], quiet_s: float = 0.5, max_wait_s: float = 10.0):
    """Holds back the process's stderr while orbax restores run; replays it unless ``failed()``.

    When a corrupted step's first read fails, tensorstore's other reads (one per array) are
    still in flight, and each prints an "Event loop is closed" traceback from its own thread —
    hundreds of interleaved lines — and later, when collected, logs its unretrieved exception. The failure is reported as one warning instead, so after a
    failure the held output is dropped once it has stopped growing for ``quiet_s`` (those reads
    have finished), waiting at most ``max_wait_s``.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            drop = failed()
            if drop:
                _wait_until_quiet(held.fileno(), quiet_s, max_wait_s)
                # The failed reads' asyncio tasks log "Task exception was never retrieved" when
                # they are garbage-collected: collect them now, while the output is still held.
                gc.collect()
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if not drop:
                held.seek(0)
                text = held.read().decode("utf-8", "replace")
                if text:
                    sys.stderr.write(text)
                    sys.stderr.flush()


def _is_typed_key(x) -> bool:
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _wait_until_quiet(fd: int, quiet_s: float, max_wait_s: float) -> None:
    """Returns once the file behind ``fd`` has not grown for ``quiet_s`` (or after ``max_wait_s``)."""
    step = quiet_s / 4
    deadline = time.monotonic() + max_wait_s
    size, still_since = os.fstat(fd).st_size, time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(step)
        now = os.fstat(fd).st_size
        if now != size:
            size, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet_s:
            return


def _as_saveable(tree):
    # Orbax wants plain arrays: not NumPy scalars (np.int32(3) fails; a 0-d array is fine) and
    # not typed PRNG keys, which travel as their uint32 key data and are rewrapped on restore.
    def one(x):
        if isinstance(x, np.generic):
            return np.asarray(x)
        return jax.random.key_data(x) if _is_typed_key(x) else x

    return jax.tree.map(one, tree)


def _rewrap_keys(tree, like):
    return jax.tree.map(lambda x, ref: jax.random.wrap_key_data(x, impl=jax.random.key_impl(ref))
                        if _is_typed_key(ref) else x, tree, like)


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
        """Latest readable (step, state, meta), with ``like`` giving the tree structure (and the
        shardings and typed PRNG keys to restore into); or None."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _as_saveable(like))
        failures, found = [], None
        with _stderr_dropped_if(lambda: bool(failures)):
            for step in reversed(self.steps()):
                try:
                    out = self._manager.restore(step, args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
                    state = out["state"] if like is None else _rewrap_keys(out["state"], like)
                    found = step, state, dict(out["meta"])
                    break
                except Exception as err:  # a truncated or corrupted step: try the one before it
                    # The first line, without tensorstore's kilobyte-long spec dump.
                    reason = (str(err).splitlines() or [""])[0].split(" [tensorstore_spec")[0]
                    failures.append((step, type(err).__name__, reason if len(reason) <= 300 else reason[:300] + " …"))
        for step, kind, reason in failures:
            warnings.warn(f"checkpoint step {step} in {self.directory} could not be restored ({kind}: {reason}); "
                          "falling back to the previous one")
        return found

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


def atomic_write_csv(path: str, rows: list[dict]) -> None:
    """Rows (dicts with the first row's keys; later keys appended) as CSV, written atomically."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for row in rows for k in row)), restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


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


def atomic_write_json(path: str, obj: Any, strict: bool = False) -> None:
    """JSON to a temp file, then a rename. ``strict``: no bare NaN/Infinity tokens (which strict
    JSON parsers refuse): a non-finite number becomes null, and a dict entry gets the reason
    beside it, ``"<key>_null_reason": "not finite (nan)"``."""
    if strict:
        obj = strict_json(json.loads(json.dumps(obj, default=_json_default)))
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default,
                                       allow_nan=not strict) + "\n")


def _non_finite(x) -> bool:
    return isinstance(x, float) and not math.isfinite(x)


def _any_non_finite(items: list) -> bool:
    return any(_any_non_finite(x) if isinstance(x, list) else _non_finite(x) for x in items)


def strict_json(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None, and each such dict entry's reason
    beside it (``<key>_null_reason``); lists keep their length."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out[k] = strict_json(v)
            if _non_finite(v):
                out[f"{k}_null_reason"] = f"not finite ({v})"
            elif isinstance(v, list) and _any_non_finite(v):
                out[f"{k}_null_reason"] = "its null entries were not finite (no data for them)"
        return out
    if isinstance(obj, list):
        return [strict_json(v) for v in obj]
    return None if _non_finite(obj) else obj


def _json_default(x):
    if isinstance(x, (np.generic,)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def prepare_run_dir(workdir: str, config_json: str, resume: bool, error: type[Exception] = ValueError) -> None:
    """Makes ``workdir`` ready for a (resumable) run before anything is loaded or trained.

    Creates it and writes a 4 KiB probe, so an unwritable or full disk is reported now, not
    after hours of training; then writes ``config.json``, or on ``resume`` checks that the saved
    one equals ``config_json`` (checkpoints of another config would not match). Raises ``error``.
    """
    probe = os.path.join(workdir, ".write-test")
    try:
        os.makedirs(workdir, exist_ok=True)
        with open(probe, "w") as f:
            f.write("x" * 4096)
        os.remove(probe)
    except OSError as err:
        raise error(f"workdir {workdir} is not usable ({err.strerror}); nothing was trained") from err
    saved = os.path.join(workdir, "config.json")
    if resume and os.path.exists(saved):
        with open(saved, encoding="utf-8") as f:
            if json.load(f) != json.loads(config_json):
                raise error(f"--resume: {saved} differs from the given config; resume with the same config "
                            "(or start a new workdir)")
    else:
        atomic_write_text(saved, config_json)


# --- Policies: variables + JSON metadata, restored without a template ----------------------


def save_policy(directory: str, variables: dict, meta: dict, step: int = 0) -> str:
    """Writes policy variables ({"params", "norm"}, possibly stacked over a sweep) and JSON
    metadata (model config, ids, action_clip) as an orbax checkpoint; returns the directory."""
    ckpt = Checkpointer(directory, max_to_keep=1)
    ckpt.save(int(step), jax.device_get(variables), meta)
    ckpt.close()
    return ckpt.directory


def restore_policy(directory: str) -> tuple[dict, dict]:
    """(variables, meta) of the latest step of ``save_policy``'s directory. No template is
    needed: the arrays come back as saved, and ``meta["model"]`` rebuilds the module."""
    ckpt = Checkpointer(directory)
    out = ckpt.restore(None)
    ckpt.close()
    if out is None:
        raise FileNotFoundError(f"no policy checkpoint under {os.path.abspath(directory)}")
    _, variables, meta = out
    return jax.tree.map(jnp.asarray, dict(variables)), meta
