"""LeRobot read and write speed on an embedded dataset variant -> JSON.

  python -m benchmarks.lerobot_io [OUT_JSON] [--variant default] [--views front] [--size 64]

Measures, on the cached variant (built first when missing; its build is not timed):
  * load: the variant's episodes read through TFDS (what the export starts from);
  * write and read without video: `lerobot_writer.write_lerobot` and `lerobot.load_lerobot`
    (frames in Parquet, metadata, stats; read standardises every episode);
  * write and read with the rendered camera views as MP4 (the codec `auto` picks): the render
    time is measured apart and left out of the write figure; the read decodes every frame by
    timestamp and resizes it;
  * the round trip's mean absolute frame error (8-bit levels) on a sample of episodes.
Figures only, never assertions; frames/s = frames (steps) over wall seconds.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

from benchmarks.common import machine_info, package_versions, use_compilation_cache, write_json


def _timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def _dir_bytes(root: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(root) for f in files)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", nargs="?", default="benchmarks/results/lerobot_io.json")
    parser.add_argument("--variant", default="default")
    parser.add_argument("--views", default="front", help="comma-separated rendered views ('' for none)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--sample", type=int, default=20, help="episodes whose frames are compared")
    args = parser.parse_args(argv)
    use_compilation_cache()
    result = {"variant": args.variant, "machine": machine_info(), "video_packages": package_versions(("av",))}
    from rlhf_jax.data import lerobot, lerobot_format, lerobot_writer, rlds
    from rlhf_jax.data.dataset import ensure_dataset
    from rlhf_jax.labels import clips

    path = ensure_dataset(args.variant)
    episodes, load_s, load_cpu = _timed(lambda: rlds.load_rlds(path))
    meta = rlds.load_metadata(path)
    frames = int(sum(len(ep["steps"]["reward"]) for ep in episodes))
    fps = 1.0 / float(meta["dt"])
    views = [v for v in args.views.split(",") if v]
    result.update(episodes=len(episodes), frames=frames, views=views, size=args.size,
                  load={"s": load_s, "cpu_s": load_cpu, "frames_per_s": frames / load_s})
    names, rubric = meta.get("reward_component_names", ()), meta.get("gold_rubric")
    render = clips.TimedSimCameras(views, args.size)

    with tempfile.TemporaryDirectory() as tmp:
        plain, video = os.path.join(tmp, "plain"), os.path.join(tmp, "video")
        _, s, cpu = _timed(lambda: lerobot_writer.write_lerobot(episodes, plain, fps=fps, component_names=names,
                                                                gold_rubric=rubric))
        result["write"] = {"s": s, "cpu_s": cpu, "frames_per_s": frames / s, "bytes": _dir_bytes(plain)}
        _, s, cpu = _timed(lambda: lerobot.load_lerobot(plain))
        result["read"] = {"s": s, "cpu_s": cpu, "frames_per_s": frames / s}
        if views:
            info, s, cpu = _timed(lambda: lerobot_writer.write_lerobot(
                episodes, video, fps=fps, component_names=names, gold_rubric=rubric,
                cameras=render.cameras))
            codecs = sorted({f["info"]["video.codec"] for f in info["features"].values() if f["dtype"] == "video"})
            render_s = render.seconds
            result["write_video"] = {"s": s - render_s, "render_s": render_s, "frames_per_s": frames / (s - render_s),
                                     "render_frames_per_s": frames * len(views) / render_s, "codecs": codecs,
                                     "bytes": _dir_bytes(video)}
            _, s, cpu = _timed(lambda: lerobot.load_lerobot(video, camera=f"observation.images.{views[0]}"))
            result["read_video"] = {"s": s, "cpu_s": cpu, "frames_per_s": frames / s}
            lr = lerobot_format.read_metadata(video)
            rng = np.random.default_rng(0)
            errors = []
            for i in sorted(rng.choice(len(episodes), min(args.sample, len(episodes)), replace=False)):
                ep, t = episodes[i], len(episodes[i]["steps"]["reward"])
                want = clips.sim_frames(ep, 0, t, view=views[0], size=args.size)
                got = lerobot.camera_frames(lr, lr.episodes[i], f"observation.images.{views[0]}", np.arange(t) / fps)
                errors.append(float(np.abs(got.astype(int) - want).mean()))
            result["frame_mae"] = {"episodes": len(errors), "mean": float(np.mean(errors)), "max": float(np.max(errors))}
    result["load_average_end"] = os.getloadavg()
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
