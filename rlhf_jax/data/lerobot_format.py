"""LeRobot dataset metadata (format v3.0 and v2.1): info.json, episodes, tasks, stats, paths.

Read with pyarrow and json only (no torch, no lerobot package). A dataset directory holds

  meta/info.json      codebase_version, fps, features {key: {dtype, shape, names, info}},
                      data_path / video_path templates, chunks_size, total_episodes, ...
  v3.0: meta/episodes/chunk-XXX/file-YYY.parquet  one row per episode: episode_index, tasks,
          length, data/chunk_index, data/file_index, dataset_from_index, dataset_to_index,
          videos/<key>/{chunk_index, file_index, from_timestamp, to_timestamp}, stats/...
        meta/tasks.parquet   task strings (column `task`, or the pandas index) and `task_index`
        meta/stats.json
        data/chunk-XXX/file-YYY.parquet       many episodes per file (rows in `index` order)
        videos/<key>/chunk-XXX/file-YYY.mp4   many episodes per file, one after another
  v2.1: meta/episodes.jsonl  {"episode_index", "tasks", "length"} per line
        meta/tasks.jsonl     {"task_index", "task"} per line
        meta/episodes_stats.jsonl (or stats.json)
        data/chunk-XXX/episode_NNNNNN.parquet  one episode per file (chunk = index // chunks_size)
        videos/chunk-XXX/<key>/episode_NNNNNN.mp4  one episode per file, starting at 0 s

`read_metadata(root)` gives every episode its data file and frame range, and for each video
feature its file and time span [from_timestamp, to_timestamp). Every failure is one line naming
the file and the field (`LeRobotError` and its subclasses, all `SchemaError`s).
"""
from __future__ import annotations

import dataclasses
import glob
import json
import os
from typing import Any, Mapping

from rlhf_jax.errors import SchemaError, describe

VERSIONS = ("v2.1", "v3.0")
INFO_PATH = "meta/info.json"
V3_EPISODES_GLOB = "meta/episodes/chunk-*/file-*.parquet"
V3_TASKS_PATH = "meta/tasks.parquet"
V3_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V3_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
V3_EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V21_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V21_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
STANDARD_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")
INFO_KEYS = ("codebase_version", "fps", "features", "data_path")


class LeRobotError(SchemaError):
    """A LeRobot dataset file lacks a key or holds a value we cannot read."""


class UnsupportedVersionError(LeRobotError):
    """info.json's codebase_version is not one we read (v3.0, v2.1)."""


class VideoTooShortError(LeRobotError):
    """A video file ends before the last frame of an episode it holds."""


class FrameTimestampError(LeRobotError):
    """A decoded frame lies further from its requested timestamp than the tolerance."""


def fail(cls, where: str, field: str, expected: Any, got: Any) -> LeRobotError:
    """The one-line error `<file>: field '<field>': expected ..., got ...` of class `cls`."""
    return cls(describe(where, field, expected, got))


@dataclasses.dataclass(frozen=True)
class VideoSpan:
    """Where one episode's frames of one camera are: file and [from_timestamp, to_timestamp) s."""
    path: str
    from_timestamp: float
    to_timestamp: float


@dataclasses.dataclass(frozen=True)
class EpisodeEntry:
    """One episode: its frames are rows of `data_path` with this `episode_index` (length rows,
    global `index` in [from_index, to_index)); `videos` maps video keys to spans; `extra` holds
    the episodes table's other columns (e.g. per-episode metadata a writer added)."""
    episode_index: int
    length: int
    tasks: tuple[str, ...]
    data_path: str
    from_index: int
    to_index: int
    videos: Mapping[str, VideoSpan]
    extra: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class LeRobotMetadata:
    """Everything `meta/` says about a dataset; paths are absolute."""
    root: str
    version: str
    info: Mapping[str, Any]
    fps: float
    features: Mapping[str, Mapping[str, Any]]
    episodes: tuple[EpisodeEntry, ...]
    tasks: Mapping[int, str]
    stats: Mapping[str, Any]

    @property
    def video_keys(self) -> tuple[str, ...]:
        return tuple(k for k, f in self.features.items() if f.get("dtype") == "video")

    def feature_names(self, key: str) -> list[str]:
        """The names of a vector feature's entries (`names` may be a list, a dict of lists, or
        null as some v2.1 -> v3 conversions write it; then `key[i]`)."""
        feat = self.features[key]
        size = int(feat["shape"][0]) if feat.get("shape") else 1
        names = feat.get("names")
        if isinstance(names, Mapping):
            names = next(iter(names.values()), None)
        if isinstance(names, list) and len(names) == size and all(isinstance(n, str) for n in names):
            return list(names)
        return [f"{key}[{i}]" for i in range(size)]


def _json(path: str, root: str) -> Any:
    rel = os.path.relpath(path, root)
    if not os.path.isfile(path):
        raise fail(LeRobotError, root, rel, "a file", "missing")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise fail(LeRobotError, path, "json", "valid JSON", f"{e.msg} at line {e.lineno}") from None


def _jsonl(path: str, root: str) -> list[dict]:
    rel = os.path.relpath(path, root)
    if not os.path.isfile(path):
        raise fail(LeRobotError, root, rel, "a file", "missing")
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise fail(LeRobotError, f"{path}:{n}", "json", "one JSON object per line", e.msg) from None
    return rows


def _need(row: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in row or row[key] is None:
        raise fail(LeRobotError, where, key, "present", "missing")
    return row[key]


def read_info(root: str) -> dict:
    """meta/info.json, checked for the keys we read and a version of VERSIONS."""
    path = os.path.join(root, INFO_PATH)
    info = _json(path, root)
    if not isinstance(info, dict):
        raise fail(LeRobotError, path, "info", "a JSON object", type(info).__name__)
    version = _need(info, "codebase_version", path)
    if version not in VERSIONS:
        raise fail(UnsupportedVersionError, path, "codebase_version", f"one of {list(VERSIONS)}", repr(version))
    for key in INFO_KEYS:
        _need(info, key, path)
    for key, feat in info["features"].items():
        for field in ("dtype", "shape"):
            _need(feat, field, f"{path} (features.{key})")
    if float(info["fps"]) <= 0:
        raise fail(LeRobotError, path, "fps", "a positive frame rate", info["fps"])
    return info


def _read_parquet_rows(path: str) -> list[dict]:
    import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
    return pq.read_table(path).to_pylist()


def _tasks_v3(root: str) -> dict[int, str]:
    path = os.path.join(root, V3_TASKS_PATH)
    if not os.path.isfile(path):
        raise fail(LeRobotError, root, V3_TASKS_PATH, "a file", "missing")
    out = {}
    for n, row in enumerate(_read_parquet_rows(path), 1):
        where = f"{path} (row {n})"
        task = row.get("task", row.get("__index_level_0__"))
        if task is None:
            raise fail(LeRobotError, where, "task", "a task string (column or pandas index)", "missing")
        out[int(_need(row, "task_index", where))] = str(task)
    return out


def _video_spans(row: Mapping[str, Any], info: Mapping[str, Any], root: str, where: str,
                 keys: tuple[str, ...]) -> dict[str, VideoSpan]:
    spans = {}
    for key in keys:
        fields = {f: _need(row, f"videos/{key}/{f}", where)
                  for f in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")}
        rel = info.get("video_path", V3_VIDEO_PATH).format(
            video_key=key, chunk_index=int(fields["chunk_index"]), file_index=int(fields["file_index"]))
        spans[key] = VideoSpan(os.path.join(root, rel), float(fields["from_timestamp"]),
                               float(fields["to_timestamp"]))
    return spans


def _episodes_v3(root: str, info: Mapping[str, Any], video_keys: tuple[str, ...]) -> list[EpisodeEntry]:
    files = sorted(glob.glob(os.path.join(root, V3_EPISODES_GLOB)))
    if not files:
        raise fail(LeRobotError, root, "meta/episodes/chunk-*/file-*.parquet", "at least one file", "none")
    out = []
    for path in files:
        for n, row in enumerate(_read_parquet_rows(path), 1):
            where = f"{path} (row {n})"
            rel = info["data_path"].format(chunk_index=int(_need(row, "data/chunk_index", where)),
                                           file_index=int(_need(row, "data/file_index", where)))
            extra = {k: v for k, v in row.items() if not k.startswith(("data/", "videos/", "stats/", "meta/"))
                     and k not in ("episode_index", "tasks", "length", "dataset_from_index", "dataset_to_index")}
            out.append(EpisodeEntry(
                episode_index=int(_need(row, "episode_index", where)), length=int(_need(row, "length", where)),
                tasks=tuple(_need(row, "tasks", where)), data_path=os.path.join(root, rel),
                from_index=int(_need(row, "dataset_from_index", where)),
                to_index=int(_need(row, "dataset_to_index", where)),
                videos=_video_spans(row, info, root, where, video_keys), extra=extra))
    return out


def _episodes_v21(root: str, info: Mapping[str, Any], video_keys: tuple[str, ...]) -> list[EpisodeEntry]:
    path = os.path.join(root, "meta", "episodes.jsonl")
    chunks_size = int(_need(info, "chunks_size", os.path.join(root, INFO_PATH)))
    fps, start, out = float(info["fps"]), 0, []
    for n, row in enumerate(_jsonl(path, root), 1):
        where = f"{path}:{n}"
        idx, length = int(_need(row, "episode_index", where)), int(_need(row, "length", where))
        fmt = dict(episode_chunk=idx // chunks_size, episode_index=idx)
        videos = {k: VideoSpan(os.path.join(root, info.get("video_path", V21_VIDEO_PATH).format(video_key=k, **fmt)),
                               0.0, length / fps) for k in video_keys}
        extra = {k: v for k, v in row.items() if k not in ("episode_index", "tasks", "length")}
        out.append(EpisodeEntry(idx, length, tuple(_need(row, "tasks", where)),
                                os.path.join(root, info["data_path"].format(**fmt)), start, start + length,
                                videos, extra))
        start += length
    return out


def _stats(root: str, version: str) -> dict:
    """Dataset stats (meta/stats.json) or, for v2.1 without one, per-episode stats by index."""
    path = os.path.join(root, "meta", "stats.json")
    if os.path.isfile(path):
        return _json(path, root)
    per_episode = os.path.join(root, "meta", "episodes_stats.jsonl")
    if version == "v2.1" and os.path.isfile(per_episode):
        return {"episodes": {int(r["episode_index"]): r.get("stats", {}) for r in _jsonl(per_episode, root)}}
    return {}


def read_metadata(root: str) -> LeRobotMetadata:
    """Reads meta/ of a LeRobot v3.0 or v2.1 dataset; raises LeRobotError naming file and field."""
    root = os.path.abspath(os.fspath(root))
    info = read_info(root)
    version = info["codebase_version"]
    video_keys = tuple(k for k, f in info["features"].items() if f.get("dtype") == "video")
    if video_keys:
        _need(info, "video_path", os.path.join(root, INFO_PATH))
    if version == "v3.0":
        episodes, tasks = _episodes_v3(root, info, video_keys), _tasks_v3(root)
    else:
        episodes = _episodes_v21(root, info, video_keys)
        tasks = {}
        for n, row in enumerate(_jsonl(os.path.join(root, "meta", "tasks.jsonl"), root), 1):
            where = f"{os.path.join(root, 'meta', 'tasks.jsonl')}:{n}"
            tasks[int(_need(row, "task_index", where))] = str(_need(row, "task", where))
    episodes.sort(key=lambda e: e.episode_index)
    return LeRobotMetadata(root=root, version=version, info=info, fps=float(info["fps"]),
                           features=info["features"], episodes=tuple(episodes), tasks=tasks,
                           stats=_stats(root, version))


def is_lerobot_dir(path: str) -> bool:
    """True when `path` holds meta/info.json."""
    return os.path.isfile(os.path.join(os.fspath(path), INFO_PATH))
