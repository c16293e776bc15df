"""Our episodes written as a LeRobot v3.0 dataset (pyarrow + PyAV; no torch, no lerobot).

  write_lerobot(episodes, root, fps=20.0, cameras={"observation.images.front": frames_fn})

Layout (what `lerobot_format` reads, and LeRobot's own v3.0 layout):
  meta/info.json                       codebase_version v3.0, robot_type 'rlhf_sim', fps, features
                                       (dtype, shape, names: never null), path templates, totals,
                                       and under 'rlhf_jax' the gold rubric of our components
  meta/episodes/chunk-000/file-000.parquet  one row per episode: tasks, length, data file and
                                       frame range, video file and time span, stats/<key>/<stat>,
                                       and our episode metadata as rlhf_sim/<key> columns
  meta/tasks.parquet                   task strings (pandas index `task`) and task_index
  meta/stats.json                      min, max, mean, std, count per feature
  data/chunk-000/file-NNN.parquet      frames; `episodes_per_file` episodes per file
  videos/<camera>/chunk-000/file-NNN.mp4  camera frames, episodes one after another

Frame columns: timestamp (frame_index / fps), frame_index, episode_index, index (global),
task_index, observation.state [2·MAX_DOF] = (q, qd) each zero-padded to MAX_DOF, action
[MAX_DOF] (zero-padded; rlhf_sim/dof says how many are real), observation.{eef_pos, eef_vel,
gripper, goal, obstacle, box}, next.reward [1], next.done [1], rlhf_sim.reward_components [C].
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from rlhf_jax.data import lerobot_video as video
from rlhf_jax.data.lerobot_format import V3_DATA_PATH, V3_EPISODES_PATH, V3_TASKS_PATH, V3_VIDEO_PATH
from rlhf_jax.data.lerobot_registry import SIM_COMPONENTS, SIM_OBS, SIM_PREFIX
from rlhf_jax.envs.robots import MAX_DOF

CHUNKS_SIZE = 1000
META_KEYS = ("episode_id", "embodiment", "embodiment_id", "task", "task_id", "source", "policy", "seed", "dof")


def _pad(x: np.ndarray, width: int) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return np.pad(x, [(0, 0), (0, width - x.shape[1])])


def episode_columns(ep: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The frame columns of one of our episodes, [T, D] float32 each (module doc)."""
    steps, dof = ep["steps"], int(ep["episode_metadata"]["dof"])
    obs = steps["observation"]
    state = np.asarray(obs["state"], np.float32)
    t = len(state)
    cols = {"observation.state": np.concatenate([_pad(state[:, :dof], MAX_DOF), _pad(state[:, dof:], MAX_DOF)], 1),
            "action": _pad(steps["action"], MAX_DOF)}
    cols.update({f"observation.{k}": np.asarray(obs[k], np.float32).reshape(t, -1) for k in SIM_OBS})
    cols["next.reward"] = np.asarray(steps["reward"], np.float32).reshape(t, 1)
    cols["next.done"] = np.asarray(steps["is_last"], bool).reshape(t, 1)
    cols[SIM_COMPONENTS] = np.asarray(steps["reward_components"], np.float32).reshape(t, -1)
    return cols


def _names(component_names: Sequence[str]) -> dict[str, list[str]]:
    joints = [f"joint_{i}" for i in range(MAX_DOF)]
    return {"observation.state": [f"{j}.pos" for j in joints] + [f"{j}.vel" for j in joints],
            "action": [f"{j}.vel_cmd" for j in joints],
            "observation.eef_pos": ["x", "y", "z"], "observation.eef_vel": ["vx", "vy", "vz"],
            "observation.gripper": ["gripper"], "observation.goal": ["x", "y", "z"],
            "observation.obstacle": ["x", "y", "z", "radius"],
            "observation.box": ["x_min", "y_min", "z_min", "x_max", "y_max", "z_max"],
            "next.reward": ["reward"], "next.done": ["done"], SIM_COMPONENTS: list(component_names)}


def _stats(x: np.ndarray) -> dict[str, list]:
    """min, max, mean, std over axis 0 ([N, D] -> [D] each) and count, as JSON lists."""
    x = np.asarray(x, np.float64)
    return {"min": x.min(0).tolist(), "max": x.max(0).tolist(), "mean": x.mean(0).tolist(),
            "std": x.std(0).tolist(), "count": [int(len(x))]}


def _image_stats(frames: np.ndarray) -> dict[str, list]:
    """Per-channel stats of frames [N, H, W, 3] in [0, 1], shaped [3, 1, 1] as LeRobot keeps them."""
    s = _stats(frames.reshape(-1, 3) / 255.0)
    return {k: (v if k == "count" else [[[c]] for c in v]) for k, v in s.items()}


def _pooled_image_stats(parts: Sequence[Mapping[str, list]]) -> dict[str, list]:
    """Dataset stats of a camera from its episodes' `_image_stats` (counts as weights)."""
    n = np.array([p["count"][0] for p in parts], np.float64)
    mean = np.array([np.ravel(p["mean"]) for p in parts])
    sq = np.array([np.ravel(p["std"]) for p in parts]) ** 2 + mean ** 2
    m = (n[:, None] * mean).sum(0) / n.sum()
    std = np.sqrt(np.maximum((n[:, None] * sq).sum(0) / n.sum() - m ** 2, 0.0))
    shaped = lambda x: [[[float(c)]] for c in x]
    return {"min": shaped(np.min([np.ravel(p["min"]) for p in parts], 0)),
            "max": shaped(np.max([np.ravel(p["max"]) for p in parts], 0)),
            "mean": shaped(m), "std": shaped(std), "count": [int(n.sum())]}


def _table(columns: Mapping[str, np.ndarray]):
    """A pyarrow table: [N] and [N, 1] arrays as scalars (LeRobot stores shape-[1] features as
    plain values), [N, D] as fixed-size lists."""
    import pyarrow as pa  # pylint: disable=g-import-not-at-top
    arrays = {}
    for k, v in columns.items():
        v = np.asarray(v)
        if v.ndim == 1 or v.shape[1] == 1:
            arrays[k] = pa.array(v.reshape(-1))
        else:
            arrays[k] = pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1])
    return pa.table(arrays)


def _write_tasks(root: str, tasks: Sequence[str]) -> None:
    import pandas as pd  # pylint: disable=g-import-not-at-top
    frame = pd.DataFrame({"task_index": np.arange(len(tasks), dtype=np.int64)}, index=pd.Index(list(tasks), name="task"))
    frame.to_parquet(os.path.join(root, V3_TASKS_PATH))


def _features(cols: Mapping[str, np.ndarray], names: Mapping[str, list], cams: Mapping[str, dict]) -> dict:
    feats = {k: {"dtype": "bool" if v.dtype == bool else "float32", "shape": [int(v.shape[1])], "names": names[k]}
             for k, v in cols.items()}
    for k, info in cams.items():
        feats[k] = {"dtype": "video", "shape": [info["video.height"], info["video.width"], 3],
                    "names": ["height", "width", "channels"], "info": info}
    feats["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
    for k in ("frame_index", "episode_index", "index", "task_index"):
        feats[k] = {"dtype": "int64", "shape": [1], "names": None}
    return feats


def _path(root: str, template: str, **kw) -> str:
    path = os.path.join(root, template.format(**kw))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


def write_lerobot(episodes: Sequence[Mapping[str, Any]], root: str, *, fps: float,
                  cameras: Mapping[str, Callable[[Mapping[str, Any]], np.ndarray]] | None = None,
                  component_names: Sequence[str] = (), gold_rubric: Mapping[str, float] | None = None,
                  episodes_per_file: int | None = None, episodes_per_video_file: int | None = None,
                  codec: str = "auto", crf: int = 20, repo_id: str = "rlhf_jax/rlhf_sim") -> dict:
    """Writes `episodes` (our schema) under `root` as LeRobot v3.0 (module doc); returns info.json.

    cameras: feature key -> frames(episode) [T, H, W, 3] uint8 (H, W even). episodes_per_file /
    episodes_per_video_file: episodes per data Parquet / MP4 file (None: all in one).
    codec: 'auto' (AV1 when PyAV has an AV1 encoder, else H.264), 'av1' or 'h264'.
    """
    cameras = dict(cameras or {})
    encoder = video.pick_encoder(codec) if cameras else None
    tasks = sorted({str(ep["steps"]["language_instruction"][0]) for ep in episodes})
    per_file = episodes_per_file or max(1, len(episodes))
    per_video = episodes_per_video_file or max(1, len(episodes))
    rows, data_buf, stats_cols, stats_images, cam_info = [], [], {}, {}, {}
    writers: dict[str, video.VideoWriter] = {}
    video_time: dict[str, float] = {k: 0.0 for k in cameras}
    index = 0
    for e, ep in enumerate(episodes):
        cols = episode_columns(ep)
        t = len(cols["action"])
        task_index = tasks.index(str(ep["steps"]["language_instruction"][0]))
        frame_cols = {"timestamp": (np.arange(t) / fps).astype(np.float32), "frame_index": np.arange(t, dtype=np.int64),
                      "episode_index": np.full(t, e, np.int64), "index": np.arange(index, index + t, dtype=np.int64),
                      "task_index": np.full(t, task_index, np.int64), **cols}
        data_buf.append(frame_cols)
        row = {"episode_index": e, "tasks": [tasks[task_index]], "length": t,
               "data/chunk_index": 0, "data/file_index": e // per_file,
               "dataset_from_index": index, "dataset_to_index": index + t}
        index += t
        for k, v in cols.items():
            stats_cols.setdefault(k, []).append(v)
            row.update({f"stats/{k}/{s}": val for s, val in _stats(v).items()})
        for key, frames_fn in cameras.items():
            if e % per_video == 0:  # a new file: its clock starts at 0
                video_time[key] = 0.0
                writers[key] = video.VideoWriter(
                    _path(root, V3_VIDEO_PATH, video_key=key, chunk_index=0, file_index=e // per_video), fps,
                    encoder=encoder, crf=crf)
            frames = np.asarray(frames_fn(ep), np.uint8)
            writers[key].write(frames)
            image_stats = _image_stats(frames)
            stats_images.setdefault(key, []).append(image_stats)
            row.update({f"stats/{key}/{s}": v for s, v in image_stats.items()})
            row.update({f"videos/{key}/chunk_index": 0, f"videos/{key}/file_index": e // per_video,
                        f"videos/{key}/from_timestamp": video_time[key],
                        f"videos/{key}/to_timestamp": video_time[key] + t / fps})
            video_time[key] += t / fps
            cam_info[key] = video.video_info(video.CODEC_NAMES[encoder], frames.shape[1], frames.shape[2], fps)
            if (e + 1) % per_video == 0 or e + 1 == len(episodes):
                writers.pop(key).close()
        row.update({SIM_PREFIX + k: ep["episode_metadata"][k] for k in META_KEYS})
        row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
        rows.append(row)
        if (e + 1) % per_file == 0 or e + 1 == len(episodes):
            _flush_data(root, e // per_file, data_buf)
    stats = {k: _stats(np.concatenate(v)) for k, v in stats_cols.items()}
    stats.update({k: _pooled_image_stats(v) for k, v in stats_images.items()})
    return _write_meta(root, rows, tasks, stats_cols, stats, cam_info, fps, component_names, gold_rubric, repo_id,
                       per_file)


def _flush_data(root: str, file_index: int, buf: list) -> None:
    import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
    merged = {k: np.concatenate([b[k] for b in buf]) for k in buf[0]}
    pq.write_table(_table(merged), _path(root, V3_DATA_PATH, chunk_index=0, file_index=file_index))
    buf.clear()


def _write_meta(root, rows, tasks, stats_cols, stats, cam_info, fps, component_names, gold_rubric, repo_id, per_file):
    import pyarrow as pa  # pylint: disable=g-import-not-at-top
    import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
    pq.write_table(pa.Table.from_pylist(rows), _path(root, V3_EPISODES_PATH, chunk_index=0, file_index=0))
    _write_tasks(root, tasks)
    sample = {k: v[0] for k, v in stats_cols.items()}
    n_comp = sample[SIM_COMPONENTS].shape[1]
    names = _names(list(component_names) or [f"c{i}" for i in range(n_comp)])
    total = int(sum(r["length"] for r in rows))
    info = {"codebase_version": "v3.0", "robot_type": "rlhf_sim", "total_episodes": len(rows), "total_frames": total,
            "total_tasks": len(tasks), "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 200, "fps": fps, "splits": {"train": f"0:{len(rows)}"},
            "data_path": V3_DATA_PATH, "video_path": V3_VIDEO_PATH if cam_info else None,
            "features": _features(sample, names, cam_info), "repo_id": repo_id,
            "rlhf_jax": {"reward_component_names": list(names[SIM_COMPONENTS]),
                         "gold_rubric": dict(gold_rubric or {}), "episodes_per_file": per_file}}
    with open(_path(root, "meta/stats.json"), "w", encoding="utf-8") as f:
        json.dump(stats, f)
    with open(_path(root, "meta/info.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)
    return info
