"""Build-once cache of the embedded RLDS dataset, and preference data from it.

Layout under the data dir (env var RLHF_JAX_DATA_DIR, else ~/.cache/rlhf_jax):

  <data_dir>/<variant>-<hash>/COMPLETE.json        written last: config, counts, build time
  <data_dir>/<variant>-<hash>/rlhf_sim/1.0.0/...    the TFDS dataset (builder dir)

<hash> covers every generation setting and the simulator source (rlhf_jax/envs), so changing
either never reuses a stale dataset. A build is written into a temporary sibling directory and
renamed into place only when complete, so a crashed or concurrent build never leaves a
half-written dataset where readers look; a directory without COMPLETE.json is rebuilt.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from typing import Any, Mapping

import numpy as np

from rlhf_jax import compile_cache
from rlhf_jax.data import generate, rlds
from rlhf_jax.data.generate import simulator_fingerprint
from rlhf_jax.errors import ConfigError, describe
from rlhf_jax.data.variants import LEROBOT_PREFIX, dataset_config

ENV_VAR = "RLHF_JAX_DATA_DIR"
MARKER = "COMPLETE.json"
GENERATION_KEYS = ("seed", "embodiments", "tasks", "policies", "episodes_per_combo", "horizon",
                   "dt", "image")


def default_data_dir() -> str:
    """$RLHF_JAX_DATA_DIR if set, else ~/.cache/rlhf_jax."""
    return os.path.expanduser(os.environ.get(ENV_VAR) or os.path.join("~", ".cache", "rlhf_jax"))


def generation_settings(config: Mapping[str, Any]) -> dict:
    """The JSON-safe settings that determine the episodes."""
    missing = [k for k in GENERATION_KEYS if k not in config]
    if missing:
        raise ConfigError(describe("dataset config", missing[0], "present", "missing"))
    out = {}
    for k in GENERATION_KEYS:
        v = config[k]
        out[k] = list(v) if isinstance(v, (tuple, list)) else v
    return out


def config_hash(config: Mapping[str, Any]) -> str:
    """Short stable hash of the generation settings, the RLDS schema version and the simulator
    source, so a cached dataset is never reused after any of them changes."""
    blob = json.dumps({**generation_settings(config), "schema": rlds.SCHEMA_VERSION,
                       "simulator": simulator_fingerprint()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def enable_compilation_cache(data_dir: str | None = None) -> str | None:
    """JAX's persistent compilation cache under <data_dir>/jax_cache (default data dir when None),
    unless one is configured already or $RLHF_JAX_COMPILATION_CACHE switches it off; returns the
    directory in use, or None (``rlhf_jax.compile_cache.enable``).

    Every experiment and benchmark calls it before compiling, so a rerun, a resumed run or the
    next job that builds the same program reads it back instead of compiling it again.
    """
    return compile_cache.enable(os.path.join(data_dir or default_data_dir(), "jax_cache"))


def build_dataset(config: Mapping[str, Any], out_dir: str) -> dict:
    """Generates the episodes of `config` and writes them as RLDS into out_dir (must not exist).

    Returns build info (counts, seconds per stage). Uses a temp dir + rename (see module doc).
    """
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".tmp-{os.path.basename(out_dir)}-{os.getpid()}-{uuid.uuid4().hex}")
    try:
        t0 = time.perf_counter()
        counts: dict[str, int] = {}
        steps = 0

        def counted():  # streams episodes into the writer while later arms still compile
            nonlocal steps
            for ep in generate.iter_episodes(config):
                m = ep["episode_metadata"]
                key = f"{m['embodiment']}/{m['task']}"
                counts[key] = counts.get(key, 0) + 1
                steps += len(ep["steps"]["reward"])
                yield ep

        builder_dir = rlds.write_rlds(counted(), tmp, metadata=generate.dataset_metadata(config))
        info = {"config": generation_settings(config), "hash": config_hash(config),
                "simulator_fingerprint": simulator_fingerprint(),
                "variant": str(config.get("variant", "")), "episodes": sum(counts.values()),
                "steps": steps, "episodes_per_embodiment_task": counts,
                "builder_subdir": os.path.relpath(builder_dir, tmp),
                "build_s": time.perf_counter() - t0}
        with open(os.path.join(tmp, MARKER), "w", encoding="utf-8") as f:
            json.dump(info, f, indent=1, sort_keys=True)
        try:
            os.rename(tmp, out_dir)
        except OSError:
            if not is_complete(out_dir):  # not a concurrent build that won the race: a real error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return info


def is_complete(path: str) -> bool:
    return os.path.isfile(os.path.join(path, MARKER))


def lerobot_dir(variant: Any) -> str | None:
    """The directory of a `lerobot:<dir>` dataset name, else None."""
    is_lerobot = isinstance(variant, str) and variant.startswith(LEROBOT_PREFIX)
    return variant[len(LEROBOT_PREFIX):] if is_lerobot else None


def ensure_dataset(variant: str = "default", data_dir: str | None = None,
                   config: Mapping[str, Any] | None = None) -> str:
    """Path of the TFDS builder dir of `variant` (or of `config`), building it on first use; the
    directory itself for `lerobot:<dir>`."""
    if config is None and lerobot_dir(variant) is not None:
        return lerobot_dir(variant)
    config = dataset_config(variant) if config is None else config
    data_dir = data_dir or default_data_dir()
    name = config.get("variant", variant) or "custom"
    out = os.path.join(data_dir, f"{name}-{config_hash(config)}")
    if not is_complete(out):
        if os.path.exists(out):
            shutil.rmtree(out)  # left by an interrupted older layout: never read a partial dataset
        build_dataset(config, out)
    with open(os.path.join(out, MARKER), encoding="utf-8") as f:
        sub = json.load(f)["builder_subdir"]
    return os.path.join(out, sub)


def load_episodes(variant: str = "default", data_dir: str | None = None) -> list[dict]:
    """ensure_dataset + load_rlds."""
    return rlds.load_rlds(ensure_dataset(variant, data_dir))


def load_preference_data(variant: str = "default", data_dir: str | None = None, *,
                         episodes: list[dict] | None = None, path: str | None = None,
                         **overrides):
    """PreferenceData of a dataset variant with config.preferences defaults (+ overrides).

    overrides: any keyword of make_preference_data (segment_length, n_train, teacher, ...), and
    ``frame_size`` (> 0: camera frames of that side, ``with_frames``) and ``frame_view``.
    A `lerobot:<dir>` dataset is read by `rlhf_jax.data.lerobot`; without gold components (foreign
    data) its pairs carry no oracle labels worth using: label them from a file.
    """
    from rlhf_jax.preferences import segments as preferences  # pylint: disable=g-import-not-at-top
    cfg = dataset_config(variant)
    path = path or ensure_dataset(variant, data_dir)
    if lerobot_dir(variant) is not None:
        from rlhf_jax.data import lerobot  # pylint: disable=g-import-not-at-top
        episodes = lerobot.load_lerobot(path) if episodes is None else episodes
        meta = lerobot.dataset_info(path)
    else:
        episodes = rlds.load_rlds(path) if episodes is None else episodes
        meta = rlds.load_metadata(path)
    names = tuple(meta.get("reward_component_names", ()))
    rubric = meta.get("gold_rubric") or {}
    weights = (np.array([rubric[n] for n in names], np.float32)
               if names and all(n in rubric for n in names) else None)
    kw = dict(cfg.preferences.to_dict())
    kw["split_fractions"] = tuple(kw["split_fractions"])
    kw.update(overrides)
    frame_size, frame_view = int(kw.pop("frame_size", 0) or 0), kw.pop("frame_view", "front")
    pref = preferences.make_preference_data(
        episodes, component_names=names, gold_weights=weights, dt=float(meta.get("dt", cfg.dt)),
        **kw)
    if frame_size:
        with_frames(pref.segments, episodes, frame_size, frame_view)
    return pref


def with_frames(table, episodes: list[dict], size: int, view: str = "front"):
    """Sets ``table.frames`` (every step of ``episodes`` seen by camera ``view`` at size x size) and
    ``table.frame_rows`` (each segment's frames, ``rlhf_jax.data.frames``); returns the table."""
    from rlhf_jax.data import frames  # pylint: disable=g-import-not-at-top
    table.frames, offsets = frames.episode_frames(episodes, size, view)
    table.frame_rows = frames.segment_frame_rows(table.start, table.episode_index, table.margin,
                                                 table.obs.shape[1], offsets)
    return table
