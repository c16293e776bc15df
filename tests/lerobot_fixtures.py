"""Small LeRobot datasets written by the tests themselves, in LeRobot's own layouts.

`write_so100` writes a foreign dataset the way LeRobot records an SO-100 arm: its own joint names
(`shoulder_pan.pos`, ...), no gold columns, a camera as MP4, in format v3.0 (episodes spread over
two data Parquet files, all episodes in one shared MP4) or v2.1 (one Parquet and one MP4 per
episode, episodes.jsonl / tasks.jsonl). It is written here with pyarrow and PyAV directly,
independently of `rlhf_jax.data.lerobot_writer`, so reading it checks the reader against the
layout rather than against our own writer. `sim_episodes` makes schema-valid episodes of ours
(two arms of 7 and 6 joints) for the writer's round trip.
"""
from __future__ import annotations

import json
import os

import numpy as np

from rlhf_jax.data import lerobot_video

SO100_NAMES = ["shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos", "wrist_roll.pos",
               "gripper.pos"]
CAMERA = "observation.images.front"
TASKS = ("pick the cube", "push the cube left")


def frames_of(episode_index: int, length: int, size: int = 32) -> np.ndarray:
    """Smooth, distinct frames [T, size, size, 3] uint8 (they survive lossy coding)."""
    y, x = np.mgrid[0:size, 0:size] / size
    t = np.arange(length)[:, None, None]
    r = 0.5 + 0.4 * np.sin(np.pi * (x + 0.05 * t + 0.1 * episode_index))
    g = 0.5 + 0.4 * np.cos(np.pi * (y - 0.03 * t))
    b = np.broadcast_to(0.3 + 0.2 * x * y, r.shape)
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)


def so100_columns(episode_index: int, length: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed * 1000 + episode_index)
    state = np.cumsum(rng.normal(0, 2.0, (length, 6)), 0).astype(np.float32)
    action = (state + rng.normal(0, 0.5, (length, 6))).astype(np.float32)
    return {"observation.state": state, "action": action}


def _features(fps: float, codec: str, size: int) -> dict:
    vec = lambda names: {"dtype": "float32", "shape": [len(names)], "names": names}
    return {"action": vec(SO100_NAMES), "observation.state": vec(SO100_NAMES),
            CAMERA: {"dtype": "video", "shape": [size, size, 3], "names": ["height", "width", "channels"],
                     "info": lerobot_video.video_info(codec, size, size, fps)},
            "timestamp": {"dtype": "float32", "shape": [1], "names": None},
            **{k: {"dtype": "int64", "shape": [1], "names": None}
               for k in ("frame_index", "episode_index", "index", "task_index")}}


def _frame_table(episodes: list[tuple[int, int]], start_index: int, fps: float, seed: int):
    import pyarrow as pa
    cols = {k: [] for k in ("timestamp", "frame_index", "episode_index", "index", "task_index",
                            "observation.state", "action")}
    index = start_index
    for e, length in episodes:
        c = so100_columns(e, length, seed)
        cols["timestamp"].append((np.arange(length) / fps).astype(np.float32))
        cols["frame_index"].append(np.arange(length, dtype=np.int64))
        cols["episode_index"].append(np.full(length, e, np.int64))
        cols["index"].append(np.arange(index, index + length, dtype=np.int64))
        cols["task_index"].append(np.full(length, e % len(TASKS), np.int64))
        cols["observation.state"].append(c["observation.state"])
        cols["action"].append(c["action"])
        index += length
    out = {}
    for k, v in cols.items():
        v = np.concatenate(v)
        out[k] = pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), 6) if v.ndim == 2 else pa.array(v)
    return pa.table(out)


def write_so100(root: str, *, version: str = "v3.0", lengths=(12, 10, 14, 11), fps: float = 10.0,
                size: int = 32, seed: int = 0, codec: str = "h264", video_trim: int = 0) -> str:
    """An SO-100 dataset at `root` (module doc). video_trim drops that many frames from the end of
    the shared (v3) / last (v2.1) video: a video shorter than its episodes."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    encoder = lerobot_video.pick_encoder(codec)
    codec_name = lerobot_video.CODEC_NAMES[encoder]
    n = len(lengths)
    info = {"codebase_version": version, "robot_type": "so100_follower", "total_episodes": n,
            "total_frames": int(sum(lengths)), "total_tasks": len(TASKS), "chunks_size": 1000, "fps": fps,
            "splits": {"train": f"0:{n}"}, "features": _features(fps, codec_name, size)}
    os.makedirs(os.path.join(root, "meta"), exist_ok=True)
    if version == "v3.0":
        info.update(data_path="data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
                    video_path="videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4")
        half = n // 2
        groups = [list(range(half)), list(range(half, n))]
        rows, index = [], 0
        for file_index, group in enumerate(groups):
            table = _frame_table([(e, lengths[e]) for e in group], index, fps, seed)
            path = os.path.join(root, "data", "chunk-000", f"file-{file_index:03d}.parquet")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            pq.write_table(table, path)
            for e in group:
                rows.append({"episode_index": e, "tasks": [TASKS[e % len(TASKS)]], "length": lengths[e],
                             "data/chunk_index": 0, "data/file_index": file_index,
                             "dataset_from_index": index, "dataset_to_index": index + lengths[e]})
                index += lengths[e]
        t0 = 0.0
        for e, row in enumerate(rows):
            row.update({f"videos/{CAMERA}/chunk_index": 0, f"videos/{CAMERA}/file_index": 0,
                        f"videos/{CAMERA}/from_timestamp": t0, f"videos/{CAMERA}/to_timestamp": t0 + lengths[e] / fps})
            t0 += lengths[e] / fps
        frames = np.concatenate([frames_of(e, lengths[e], size) for e in range(n)])
        vpath = os.path.join(root, "videos", CAMERA, "chunk-000", "file-000.mp4")
        os.makedirs(os.path.dirname(vpath), exist_ok=True)
        lerobot_video.encode_video(vpath, frames[:len(frames) - video_trim], fps, encoder=encoder)
        epath = os.path.join(root, "meta", "episodes", "chunk-000", "file-000.parquet")
        os.makedirs(os.path.dirname(epath), exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), epath)
        pq.write_table(pa.table({"task_index": np.arange(len(TASKS), dtype=np.int64), "task": list(TASKS)}),
                       os.path.join(root, "meta", "tasks.parquet"))
    else:
        info.update(total_chunks=1,
                    data_path="data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
                    video_path="videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4")
        index = 0
        with open(os.path.join(root, "meta", "episodes.jsonl"), "w", encoding="utf-8") as f:
            for e, length in enumerate(lengths):
                f.write(json.dumps({"episode_index": e, "tasks": [TASKS[e % len(TASKS)]], "length": length}) + "\n")
                path = os.path.join(root, "data", "chunk-000", f"episode_{e:06d}.parquet")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                pq.write_table(_frame_table([(e, length)], index, fps, seed), path)
                index += length
                vpath = os.path.join(root, "videos", "chunk-000", CAMERA, f"episode_{e:06d}.mp4")
                os.makedirs(os.path.dirname(vpath), exist_ok=True)
                trim = video_trim if e == n - 1 else 0
                lerobot_video.encode_video(vpath, frames_of(e, length, size)[:length - trim], fps, encoder=encoder)
        with open(os.path.join(root, "meta", "tasks.jsonl"), "w", encoding="utf-8") as f:
            for i, task in enumerate(TASKS):
                f.write(json.dumps({"task_index": i, "task": task}) + "\n")
    with open(os.path.join(root, "meta", "info.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)
    return root


def sim_episodes(n: int = 4, length: int = 9, seed: int = 0, n_components: int = 3) -> list[dict]:
    """Schema-valid episodes of ours: alternating 7- and 6-joint arms, two tasks, gold components."""
    rng = np.random.default_rng(seed)
    out = []
    for e in range(n):
        dof = 7 if e % 2 == 0 else 6
        f = lambda *shape: rng.normal(size=(length, *shape)).astype(np.float32)
        comps = f(n_components)
        flags = np.zeros(length, bool)
        first, last = flags.copy(), flags.copy()
        first[0] = last[-1] = True
        task = ("reach", "reach_avoid")[e % 2]
        out.append({"steps": {
            "observation": {"state": f(2 * dof), "eef_pos": f(3), "eef_vel": f(3), "gripper": f(1), "goal": f(3),
                            "obstacle": f(4), "box": f(6)},
            "action": f(dof), "reward": comps.sum(1), "discount": np.ones(length, np.float32),
            "is_first": first, "is_last": last, "is_terminal": last.copy(),
            "language_instruction": np.array([f"instruction of {task}"] * length, dtype=object),
            "reward_components": comps},
            "episode_metadata": {"episode_id": f"sim/{e}", "embodiment": ("panda", "ur5")[e % 2],
                                 "embodiment_id": e % 2, "task": task, "task_id": e % 2, "source": "sim",
                                 "policy": "expert", "seed": e, "dof": dof}})
    return out
