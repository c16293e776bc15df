"""Per-dataset normalisation statistics, cached under a hash of what they depend on.

Statistics of the per-step features a reward model reads (`preferences.episode_features`:
obs [D], act [A]) over every episode of a dataset. The cache key hashes everything the numbers
depend on: the dataset's identity (name, and a fingerprint of its stored files or of the episode
ids and lengths), the feature kind, dt, and a stats-format version. Changing any of them never
reuses stale statistics. Stats are saved next to a trained model (`save_with_model`) so a reward
model is always applied with the normalisation it was trained with.

Stats dict: {"key", "dataset", "feature_kind", "count", "obs": S, "act": S} with
S = {"mean", "std", "min", "max", "q01", "q99"} lists of length D (or A); std < 1e-3 is set to 1
(constant features, e.g. zero-filled simulator context on real data, pass through unscaled).
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Mapping, Sequence

import numpy as np

from rlhf_jax import checkpoint
from rlhf_jax import normalizer
from rlhf_jax.preferences.segments import episode_features

STATS_VERSION = 1
FILE_NAME = "normalization.json"


def file_fingerprint(builder_dir: str) -> str:
    """sha256 of a TFDS builder dir's dataset_info.json + features.json (data version, shards)."""
    h = hashlib.sha256()
    for name in ("dataset_info.json", "features.json"):
        path = os.path.join(builder_dir, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()[:16]


def episodes_fingerprint(episodes: Sequence[Mapping[str, Any]]) -> str:
    """sha256 of the episode ids and lengths (for in-memory episodes without a builder dir)."""
    ids = [(ep["episode_metadata"]["episode_id"], len(ep["steps"]["reward"])) for ep in episodes]
    return hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:16]


def stats_key(dataset: str, fingerprint: str, feature_kind: str, dt: float) -> str:
    blob = json.dumps({"dataset": dataset, "fingerprint": fingerprint, "feature_kind": feature_kind,
                       "dt": float(dt), "version": STATS_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def summarize(x: np.ndarray, min_std: float = normalizer.MIN_STD) -> dict:
    """mean/std/min/max/q01/q99 over all rows of x [N, D] (JSON-safe lists)."""
    x = np.asarray(x, np.float64)
    mean, std = normalizer.moments(x, min_std)
    return {"mean": mean.tolist(), "std": std.tolist(),
            "min": x.min(0).tolist(), "max": x.max(0).tolist(),
            "q01": np.quantile(x, 0.01, axis=0).tolist(),
            "q99": np.quantile(x, 0.99, axis=0).tolist()}


def compute_stats(episodes: Sequence[Mapping[str, Any]], feature_kind: str, dt: float) -> dict:
    feats = [episode_features(ep, feature_kind, dt) for ep in episodes]
    obs = np.concatenate([f[0] for f in feats])
    act = np.concatenate([f[1] for f in feats])
    return {"count": int(len(obs)), "obs": summarize(obs), "act": summarize(act)}


def dataset_statistics(episodes: Sequence[Mapping[str, Any]], *, dataset: str,
                       cache_dir: str | None, feature_kind: str = "eef", dt: float = 0.05,
                       fingerprint: str | None = None) -> dict:
    """Stats of `episodes`, read from `<cache_dir>/<dataset>-<key>.json` when present.

    fingerprint: e.g. file_fingerprint(builder_dir); default episodes_fingerprint(episodes).
    cache_dir=None computes without caching.
    """
    fingerprint = fingerprint or episodes_fingerprint(episodes)
    key = stats_key(dataset, fingerprint, feature_kind, dt)
    path = os.path.join(cache_dir, f"{dataset}-{key}.json") if cache_dir else None
    if path and os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    stats = {"key": key, "dataset": dataset, "fingerprint": fingerprint,
             "feature_kind": feature_kind, "dt": float(dt), **compute_stats(episodes, feature_kind,
                                                                             dt)}
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        checkpoint.atomic_write_json(path, stats)
    return stats


def as_model_norm(stats: Mapping[str, Any]) -> dict:
    """The reward model's `norm` collection {obs_norm: {obs_mean, obs_std}, act_norm: {...}}."""
    pair = lambda part: tuple(np.asarray(stats[part][k], np.float32) for k in ("mean", "std"))
    return normalizer.collection(obs=pair("obs"), act=pair("act"))


def save_with_model(stats: Mapping[str, Any], model_dir: str) -> str:
    """Writes stats as <model_dir>/normalization.json; returns the path."""
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, FILE_NAME)
    checkpoint.atomic_write_json(path, dict(stats))
    return path
