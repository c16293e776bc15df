"""Orbax checkpoints for long runs, and atomic result files.

A checkpoint is any pytree of arrays plus a small JSON-able ``meta`` dict. Restoring falls back
to the previous checkpoint (with a warning) when the latest one cannot be read, so a crash
while writing costs one chunk, never the run.

Every checkpoint says what it is: its meta records ``artifact`` (one of ``ARTIFACT_KINDS``:
"policy", "reward_model", "train_state") and ``format_version``. Restoring refuses another kind,
and a template whose shapes differ from the stored ones, with one ``ArtifactError`` line naming
the path and what was expected; it never restores part of a state. A checkpoint saved before
the record existed is read as the current version, with a one-line warning on stderr.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from rlhf_jax.errors import ArtifactError
from rlhf_jax.held_stderr import stderr_dropped_if
from rlhf_jax.strict_json import from_strict_json, read_json, strict_json  # noqa: F401 (re-exported)

FORMAT_VERSION = 1
# What each kind is, as a loader's error says it expected it.
ARTIFACT_KINDS = {
    "policy": "a policy checkpoint (save_policy; train_sft writes checkpoints/sft)",
    "reward_model": "a reward-model artefact (save_reward_model; the sweep writes reward_models/<point>)",
    "train_state": "a training-state checkpoint (the chunk states a run resumes from)",
}


class _OrbaxInfoFilter(logging.Filter):
    """Drops orbax's INFO records (a dozen lines per save) from absl's log; warnings pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or f"{os.sep}orbax{os.sep}" not in record.pathname


logging.getLogger("absl").addFilter(_OrbaxInfoFilter())


def _is_typed_key(x) -> bool:
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


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


def _legacy_kind(meta: dict) -> str | None:
    """The kind of a checkpoint saved before checkpoints recorded one, told by its meta fields."""
    if "features" in meta and "members" in meta:
        return "reward_model"
    if "model" in meta and "action_clip" in meta:
        return "policy"
    if "chunk" in meta:
        return "train_state"
    return None


_WARNED_UNRECORDED: set[str] = set()


def _warn_unrecorded_kind(directory: str, kind: str) -> None:
    """One stderr line, once per directory, for a checkpoint saved before kinds were recorded."""
    if directory not in _WARNED_UNRECORDED:
        _WARNED_UNRECORDED.add(directory)
        print(f"warning: {directory}: saved before checkpoints recorded their kind; read as a {kind}, "
              f"format version {FORMAT_VERSION}", file=sys.stderr)


def _leaf_name(path) -> str:
    # One spelling for a leaf whether it sits in a dict, a list, a namedtuple or a dataclass,
    # as the template has it and as orbax stores it.
    parts = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path]
    return ".".join(parts) or "<root>"


def _shapes(tree) -> dict[str, tuple]:
    return {_leaf_name(p): tuple(x.shape) for p, x in jax.tree_util.tree_leaves_with_path(tree)}


class Checkpointer:
    """Saves and restores (state, meta) at integer steps under ``directory``; ``kind`` (one of
    ``ARTIFACT_KINDS``) is recorded in every meta and required on restore."""

    def __init__(self, directory: str, max_to_keep: int = 2, kind: str = "train_state"):
        if kind not in ARTIFACT_KINDS:
            raise ValueError(f"Checkpointer kind: expected one of {sorted(ARTIFACT_KINDS)}, got {kind!r}")
        self.directory, self.kind = os.path.abspath(directory), kind
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options,
                                              item_names=("state", "meta"))

    def save(self, step: int, state: Any, meta: dict) -> None:
        meta = dict(meta, artifact=self.kind, format_version=FORMAT_VERSION)
        self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(_as_saveable(state)), meta=ocp.args.JsonSave(meta)))
        self._manager.wait_until_finished()

    def steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def stored_meta(self, step: int, warn: bool = True) -> dict:
        """The JSON meta of ``step``, read without its arrays; checks the kind (ArtifactError)
        and, with ``warn``, says on stderr when the meta predates the kind record."""
        with open(os.path.join(self.directory, str(step), "meta", "metadata"), encoding="utf-8") as f:
            meta = json.load(f)
        if not isinstance(meta, dict):
            raise ValueError(f"meta is a JSON {type(meta).__name__}, not an object")
        self._check_kind(meta, warn)
        return meta

    def _check_kind(self, meta: dict, warn: bool = True) -> None:
        found = meta.get("artifact")
        if found is None:
            legacy = _legacy_kind(meta)
            if legacy not in (None, self.kind):
                raise ArtifactError(self.directory, ARTIFACT_KINDS[self.kind], f"a {legacy} checkpoint "
                                    "(saved without a kind record)")
            if warn:
                _warn_unrecorded_kind(self.directory, self.kind)
            return
        if found != self.kind:
            raise ArtifactError(self.directory, ARTIFACT_KINDS[self.kind], f"a {found} checkpoint")
        version = meta.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ArtifactError(self.directory, f"format_version at most {FORMAT_VERSION}",
                                f"{version!r} (saved by a newer version of this code)")

    def _check_shapes(self, step: int, like: Any) -> None:
        """ArtifactError naming the leaves whose stored shapes differ from ``like``'s; nothing
        when the stored tree cannot be read here (the restore then reports it)."""
        try:
            stored = ocp.StandardCheckpointHandler().metadata(epath.Path(self.directory) / str(step) / "state")
            stored = _shapes(getattr(stored, "tree", stored))
        except Exception:  # unreadable metadata: a corrupted step, which restore falls back past
            return
        wanted = _shapes(like)
        if set(stored) != set(wanted):
            return  # another spelling of the same tree; orbax's restore judges the structure
        differ = [f"{k} (stored {stored[k]}, requested {wanted[k]})" for k in sorted(wanted) if stored[k] != wanted[k]]
        if differ:
            more = f" and {len(differ) - 4} more" if len(differ) > 4 else ""
            raise ArtifactError(self.directory, "a checkpoint of this config's shapes",
                                f"other shapes at step {step}: {'; '.join(differ[:4])}{more} "
                                "(a checkpoint of another config; start a new workdir)")

    def restore(self, like: Any) -> tuple[int, Any, dict] | None:
        """Latest readable (step, state, meta), with ``like`` giving the tree structure (and the
        shardings and typed PRNG keys to restore into); or None when there is no step.

        A step of another kind, or whose shapes differ from ``like``'s, raises ArtifactError:
        it belongs to another run, and no earlier step would fit better."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _as_saveable(like))
        failures, found = [], None
        with stderr_dropped_if(lambda: bool(failures)):
            for step in reversed(self.steps()):
                try:
                    self.stored_meta(step, warn=False)  # said below: stderr is held here
                except (OSError, ValueError) as err:
                    if isinstance(err, ArtifactError):
                        raise
                    failures.append((step, type(err).__name__, str(err)[:300]))
                    continue
                if like is not None:
                    self._check_shapes(step, abstract)
                try:
                    out = self._manager.restore(step, args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
                    state = out["state"] if like is None else _rewrap_keys(out["state"], like)
                    found = step, state, dict(out["meta"])
                    break
                except Exception as err:  # a truncated or corrupted step: try the one before it
                    # The first line, without tensorstore's kilobyte-long spec dump.
                    reason = (str(err).splitlines() or [""])[0].split(" [tensorstore_spec")[0]
                    if "not compatible with the stored shape" in reason:  # another run's state
                        raise ArtifactError(self.directory, "a checkpoint of this config's shapes",
                                            f"other shapes at step {step}: {reason.split('. ')[0]} "
                                            "(a checkpoint of another config; start a new workdir)") from None
                    failures.append((step, type(err).__name__, reason if len(reason) <= 300 else reason[:300] + " …"))
        if found is not None and "artifact" not in found[2]:
            _warn_unrecorded_kind(self.directory, self.kind)
        if found is None and failures:
            # Every step is broken: starting over would overwrite the run's other files with a
            # fresh run's, so the workdir is refused as it is.
            step, kind, reason = failures[0]
            raise ArtifactError(self.directory, "at least one readable checkpoint step",
                                f"{len(failures)} unreadable step(s), the newest {step} ({kind}: {reason}); "
                                "nothing was overwritten: remove the broken steps or start a new workdir")
        for step, kind, reason in failures:  # all newer than the step found
            warnings.warn(f"checkpoint step {step} in {self.directory} could not be restored ({kind}: {reason}); "
                          f"falling back to step {found[0]}")
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


def atomic_write_json(path: str, obj: Any) -> None:
    """Strict JSON to a temp file, then a rename: no bare NaN/Infinity tokens (which strict JSON
    parsers refuse); a non-finite number becomes null with the reason beside it
    (``rlhf_jax.strict_json``), and ``read_json`` turns it back into the number."""
    obj = strict_json(json.loads(json.dumps(obj, default=_json_default)))
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


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
    metadata (model config, ids, action_clip) as an orbax checkpoint of kind "policy"; returns
    the directory."""
    ckpt = Checkpointer(directory, max_to_keep=1, kind="policy")
    ckpt.save(int(step), jax.device_get(variables), meta)
    ckpt.close()
    return ckpt.directory


def _no_artifact_here(directory: str) -> str | None:
    """What ``directory`` is when it cannot hold a checkpoint (for the error line), else None."""
    if not os.path.exists(directory):
        return "no such directory"
    if not os.path.isdir(directory):
        return "a file, not a directory"
    if not os.listdir(directory):
        return "an empty directory"
    return None


def read_artifact_meta(directory: str, kind: str) -> dict:
    """The meta of the latest step of the ``kind`` checkpoint at ``directory``, read without its
    arrays, so a job checks what it was given before it writes anything. Raises ArtifactError
    (path, what was expected, what was found) for a missing, empty or unreadable directory and
    for another kind."""
    full = os.path.abspath(directory)
    problem = _no_artifact_here(full)
    if problem:
        raise ArtifactError(full, ARTIFACT_KINDS[kind], problem)
    ckpt = Checkpointer(full, max_to_keep=1, kind=kind)
    try:
        steps = ckpt.steps()
        if not steps:
            raise ArtifactError(full, ARTIFACT_KINDS[kind], f"no checkpoint step among {sorted(os.listdir(full))[:5]}")
        try:
            return ckpt.stored_meta(steps[-1])
        except ArtifactError:
            raise
        except (OSError, ValueError) as err:
            raise ArtifactError(full, ARTIFACT_KINDS[kind], f"an unreadable meta record at step {steps[-1]} "
                                f"({type(err).__name__})") from err
    finally:
        ckpt.close()


def restore_artifact(directory: str, kind: str) -> tuple[dict, dict]:
    """(arrays, meta) of the latest step of the ``kind`` checkpoint at ``directory``, restored
    without a template. Raises ArtifactError as ``read_artifact_meta`` does, and when no step
    can be read."""
    read_artifact_meta(directory, kind)
    ckpt = Checkpointer(directory, max_to_keep=1, kind=kind)
    try:
        out = ckpt.restore(None)
    except ArtifactError as err:  # every step broken: say so as this kind's loader
        raise ArtifactError(ckpt.directory, ARTIFACT_KINDS[kind], f"no readable checkpoint step: {err.found}") from None
    finally:
        ckpt.close()
    if out is None:
        raise ArtifactError(ckpt.directory, ARTIFACT_KINDS[kind], "no readable checkpoint step")
    _, tree, meta = out
    return jax.tree.map(jnp.asarray, dict(tree)), meta


def restore_policy(directory: str) -> tuple[dict, dict]:
    """(variables, meta) of the latest step of ``save_policy``'s directory. No template is
    needed: the arrays come back as saved, and ``meta["model"]`` rebuilds the module. Raises
    ArtifactError for a missing, empty or unreadable directory and for another kind."""
    return restore_artifact(directory, "policy")
