"""LeRobot datasets (v3.0, v2.1) read into our RLDS-like schema, without torch (layer 3).

  episodes = load_lerobot("path/to/dataset")          # list of episodes, schema of rlds.py

Metadata comes from `lerobot_format.read_metadata` (episode -> data file rows, video file and
time span), the columns from the data Parquet files (pyarrow), camera frames from the MP4s by
timestamp (`lerobot_video.decode_frames`, LeRobot's tolerance), and the standardize function
of the dataset's registry entry (`lerobot_registry`, chosen by info.json's robot_type).

Standardized episode: steps/observation state [T, 2·dof] = (q, qd) with qd the finite
difference of q at the dataset's fps; eef_pos, eef_vel, gripper as the entry gives them; goal,
obstacle, box zeros (simulator-only context) unless the dataset is our own export; optional
image [T, 64, 64, 3] (the first camera, nearest-neighbour resized). steps/action [T, dof].
reward_components [T, C]: C = 0 for foreign data (no gold). episode_metadata: episode_id
'<episode_index>' (the row key of label files; start = frame_index), embodiment, embodiment_id
(index among the loaded episodes' sorted embodiments), task (the episode's task string),
task_id (index among the sorted task strings), source 'real', policy 'demonstration',
dataset (the repo id), episode_index.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from rlhf_jax.data import lerobot_video as video
from rlhf_jax.data.lerobot_format import (LeRobotError, LeRobotMetadata, EpisodeEntry, fail, is_lerobot_dir,
                                          read_metadata)
from rlhf_jax.data.lerobot_registry import LeRobotEntry, entry_for
from rlhf_jax.data.rlds_schema import IMAGE_SHAPE, validate_episode
from rlhf_jax.envs.robots import MAX_DOF

PREFIX = "lerobot:"


def parse_dataset(spec: str) -> str | None:
    """The directory of a `lerobot:<dir>` dataset name, or None for any other name."""
    return spec[len(PREFIX):] if isinstance(spec, str) and spec.startswith(PREFIX) else None


def repo_id_of(meta: LeRobotMetadata) -> str:
    """The dataset's repo id: info.json's `repo_id` where a writer put one, else '<parent>/<dir>'
    (the layout of LeRobot's local cache, ~/.cache/huggingface/lerobot/<org>/<name>)."""
    rid = meta.info.get("repo_id")
    return str(rid) if rid else "/".join(meta.root.rstrip("/").split("/")[-2:])


def revision_of(meta: LeRobotMetadata) -> str:
    return str(meta.info.get("revision") or meta.version)


def _column(table, key: str, where: str) -> np.ndarray:
    """A column as numpy: scalars [N], fixed or variable lists [N, D] (all rows the same D)."""
    import pyarrow as pa  # pylint: disable=g-import-not-at-top
    if key not in table.column_names:
        raise fail(LeRobotError, where, key, "a column of the data file", f"missing; it has {table.column_names}")
    col = table.column(key).combine_chunks()
    if pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type) or pa.types.is_large_list(col.type):
        flat = col.flatten().to_numpy(zero_copy_only=False)
        return flat.reshape(len(col), -1) if len(col) else flat.reshape(0, 0)
    return col.to_numpy(zero_copy_only=False)


class _DataFiles:
    """Data Parquet files read once each (v3 files hold many episodes)."""

    def __init__(self):
        self.tables: dict[str, Any] = {}

    def episode_rows(self, ep: EpisodeEntry, keys: Sequence[str]) -> dict[str, np.ndarray]:
        import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
        if ep.data_path not in self.tables:
            if not os.path.isfile(ep.data_path):
                raise fail(LeRobotError, os.path.dirname(ep.data_path), os.path.basename(ep.data_path),
                           f"the data file of episode {ep.episode_index}", "missing")
            table = pq.read_table(ep.data_path)
            self.tables[ep.data_path] = (table, _column(table, "episode_index", ep.data_path))
        table, episode_index = self.tables[ep.data_path]
        rows = np.flatnonzero(episode_index == ep.episode_index)
        if len(rows) != ep.length:
            raise fail(LeRobotError, ep.data_path, "episode_index",
                       f"{ep.length} rows of episode {ep.episode_index} (its length)", f"{len(rows)} rows")
        sub = table.take(rows)
        out = {k: _column(sub, k, ep.data_path) for k in keys}
        order = np.argsort(out["frame_index"], kind="stable")
        return {k: v[order] for k, v in out.items()}


def _rate(x: np.ndarray, dt: float) -> np.ndarray:
    if len(x) < 2:
        return np.zeros_like(x)
    d = np.diff(x, axis=0) / dt
    return np.concatenate([d, d[-1:]], 0).astype(np.float32)


def _resize(img: np.ndarray, size=IMAGE_SHAPE[:2]) -> np.ndarray:
    h, w = img.shape[1:3]
    rows = (np.arange(size[0]) * h // size[0]).clip(0, h - 1)
    cols = (np.arange(size[1]) * w // size[1]).clip(0, w - 1)
    return np.ascontiguousarray(img[:, rows][:, :, cols])


def camera_frames(meta: LeRobotMetadata, ep: EpisodeEntry, key: str, timestamps: np.ndarray, *,
                  entry: LeRobotEntry | None = None, tolerance_s: float = video.TOLERANCE_S) -> np.ndarray:
    """Frames [T, H, W, 3] uint8 RGB of camera `key` of one episode at its frames' timestamps."""
    span = ep.videos[key]
    if not os.path.isfile(span.path):
        raise fail(LeRobotError, os.path.dirname(span.path), os.path.basename(span.path),
                   f"the video of {key}, episode {ep.episode_index}", "missing")
    last = span.from_timestamp + float(np.max(timestamps))
    if span.to_timestamp + tolerance_s < last:
        raise fail(video.VideoTooShortError, span.path, f"videos/{key}/to_timestamp",
                   f">= {last:.4f} s (episode {ep.episode_index}'s last frame)", f"{span.to_timestamp:.4f}")
    frames = video.decode_frames(span.path, span.from_timestamp + np.asarray(timestamps, np.float64),
                                 tolerance_s=tolerance_s, field=f"episode {ep.episode_index} {key} timestamp")
    if entry is not None and key in entry.bgr_keys:
        frames = frames[..., ::-1]
    return frames


def check_videos(meta: LeRobotMetadata, key: str, *, episodes: Sequence[EpisodeEntry] | None = None,
                 tolerance_s: float = video.TOLERANCE_S) -> None:
    """Checks, from packet times only (no decoding), that every frame of every episode
    (from_timestamp + frame_index / fps) has a frame of camera `key` within tolerance: a video
    shorter than its episodes or frames off the episode's clock fail here, before any page is
    served. Raises VideoTooShortError / FrameTimestampError naming the file and the episode."""
    times: dict[str, np.ndarray] = {}
    for ep in meta.episodes if episodes is None else episodes:
        span = ep.videos[key]
        if span.path not in times:
            if not os.path.isfile(span.path):
                raise fail(LeRobotError, os.path.dirname(span.path), os.path.basename(span.path),
                           f"the video of {key}, episode {ep.episode_index}", "missing")
            times[span.path] = video.frame_times(span.path)
        query = span.from_timestamp + np.arange(ep.length) / meta.fps
        video.check_times(span.path, times[span.path], query, tolerance_s=tolerance_s,
                          field=f"episode {ep.episode_index} {key} timestamp")


def _episode(meta: LeRobotMetadata, entry: LeRobotEntry, ep: EpisodeEntry, files: _DataFiles,
             camera: str | None, tolerance_s: float) -> dict:
    """One episode in our schema (module doc)."""
    extra = [k for k in meta.features if k not in entry.columns and meta.features[k].get("dtype") not in
             ("video", "image", "string")]
    cols = files.episode_rows(ep, list(dict.fromkeys(["frame_index", "timestamp", *entry.columns, *extra])))
    out = entry.standardize(cols, {**ep.extra, "episode_index": ep.episode_index})
    where = f"{ep.data_path} (episode {ep.episode_index})"
    q, act = out["q"], out["action"]
    dof = max(q.shape[1], act.shape[1])
    if dof > MAX_DOF or dof < 1:
        raise fail(LeRobotError, where, f"{entry.state_key}/{entry.action_key}",
                   f"1 to {MAX_DOF} values (joints of one arm)", f"{q.shape[1]} and {act.shape[1]}")
    t = len(q)
    pad = lambda x: np.pad(x, [(0, 0), (0, dof - x.shape[1])]).astype(np.float32)
    q, act = pad(q), pad(act)
    dt = 1.0 / meta.fps
    obs = {"state": np.concatenate([q, _rate(q, dt)], 1), "eef_pos": out["eef_pos"], "eef_vel": _rate(out["eef_pos"], dt),
           "gripper": out["gripper"], "goal": np.zeros((t, 3), np.float32), "obstacle": np.zeros((t, 4), np.float32),
           "box": np.zeros((t, 6), np.float32)}
    obs.update(out["observation"])
    if camera:
        obs["image"] = _resize(camera_frames(meta, ep, camera, cols["timestamp"].reshape(-1), entry=entry,
                                             tolerance_s=tolerance_s))
    task = ep.tasks[0] if ep.tasks else ""
    flags = np.zeros(t, bool)
    steps = {"observation": obs, "action": act, "reward": np.asarray(out["reward"], np.float32),
             "discount": np.ones(t, np.float32), "is_first": flags.copy(), "is_last": flags.copy(),
             "is_terminal": flags.copy(), "language_instruction": np.array([task] * t, dtype=object),
             "reward_components": np.asarray(out["components"], np.float32)}
    steps["is_first"][0] = steps["is_last"][-1] = True
    metadata = {"episode_id": str(ep.episode_index), "embodiment": entry.embodiment, "embodiment_id": -1,
                "task": task, "task_id": -1, "source": "real", "policy": "demonstration", "seed": 0, "dof": dof,
                "dataset": repo_id_of(meta), "episode_index": ep.episode_index}
    metadata.update(out["metadata"])
    return {"steps": steps, "episode_metadata": metadata}


def _assign_ids(episodes: list[dict]) -> None:
    """task_id / embodiment_id: index among the sorted distinct values, where not restored."""
    for key, id_key in (("task", "task_id"), ("embodiment", "embodiment_id")):
        vocab = sorted({ep["episode_metadata"][key] for ep in episodes})
        for ep in episodes:
            m = ep["episode_metadata"]
            if int(m[id_key]) < 0:
                m[id_key] = vocab.index(m[key])


def load_lerobot(root: str, *, entry: str | None = None, max_episodes: int | None = None,
                 camera: str | bool = False, tolerance_s: float = video.TOLERANCE_S,
                 validate: bool = True) -> list[dict]:
    """Episodes of the LeRobot dataset at `root` in our schema (module doc).

    entry: registry entry name (default: by robot_type). camera: True for the entry's first
    camera, a feature key, or False for none. Raises LeRobotError (and subclasses) naming the
    file and field: missing key, unsupported version, video shorter than its episode, frame
    outside tolerance.
    """
    if not is_lerobot_dir(root):
        raise fail(LeRobotError, os.fspath(root), "meta/info.json", "a LeRobot dataset directory", "missing")
    meta = read_metadata(root)
    spec = entry_for(meta.info.get("robot_type"), entry)
    for key in spec.columns:
        if key not in meta.features:
            raise fail(LeRobotError, os.path.join(meta.root, "meta/info.json"), f"features.{key}",
                       f"present (registry entry {spec.name!r})", f"missing; features are {sorted(meta.features)}")
    cams = spec.image_keys or meta.video_keys
    key = (cams[0] if cams else None) if camera is True else (camera or None)
    if key is not None and key not in meta.video_keys:
        raise fail(LeRobotError, os.path.join(meta.root, "meta/info.json"), "features", f"a video feature {key!r}",
                   f"video features {list(meta.video_keys)}")
    files = _DataFiles()
    episodes = [_episode(meta, spec, ep, files, key, tolerance_s)
                for ep in meta.episodes[:max_episodes or None]]
    _assign_ids(episodes)
    if validate:
        for ep in episodes:
            validate_episode(ep, meta.root)
    return episodes


def dataset_info(root: str) -> dict:
    """What the preference code needs of a dataset: component names and gold weights (our own
    export stores them in info.json under 'rlhf_jax'), dt = 1/fps, repo id, revision, version."""
    meta = read_metadata(root)
    ours: Mapping[str, Any] = meta.info.get("rlhf_jax", {})
    return {"reward_component_names": list(ours.get("reward_component_names", [])),
            "gold_rubric": dict(ours.get("gold_rubric", {})), "dt": 1.0 / meta.fps,
            "repo_id": repo_id_of(meta), "revision": revision_of(meta), "codebase_version": meta.version,
            "video_keys": list(meta.video_keys), "robot_type": meta.info.get("robot_type")}
