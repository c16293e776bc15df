"""Export our episodes as a LeRobot v3.0 dataset (no torch, no lerobot package).

  python -m experiments.export_lerobot --config configs/export_lerobot.py:tiny --workdir runs/lerobot_tiny

Writes to the workdir:
  lerobot/      the LeRobot v3.0 dataset (`rlhf_jax.data.lerobot_writer`): frames in Parquet,
                rendered camera views as MP4, meta/info.json, episodes, tasks, stats
  export.json   episodes, frames, codec, seconds to render, write and in all
Read it back with `rlhf_jax.data.lerobot.load_lerobot(<workdir>/lerobot)`, or name it as the
`dataset` of a job: `lerobot:<workdir>/lerobot`.
"""
from __future__ import annotations

import functools
import os
import sys
import time

from configs import export_lerobot as export_config
from experiments import cli
from rlhf_jax import checkpoint, config_schema
from rlhf_jax.data import lerobot_video, lerobot_writer, rlds
from rlhf_jax.data.dataset import ensure_dataset
from rlhf_jax.data.variants import dataset_config
from rlhf_jax.labels import clips


def validate(config, config_file: str) -> None:
    """Every field the export reads, before anything is loaded or written; raises ConfigError.

    Each field's own domain is its record in ``configs/export_lerobot.py`` FIELDS; what follows
    are distinct views, an even frame size, a codec this PyAV build encodes and the repo id's form."""
    config_schema.validate(config, config_file, export_config.FIELDS)
    dataset_config(config.dataset, config_file)
    cli.check_data_dir(config_file, "data_dir", config.data_dir)
    if len(set(config.views)) != len(config.views):
        cli.fail(config_file, "views", f"distinct camera views from {list(clips.sim_views())}", list(config.views))
    if config.size % 2:
        cli.fail(config_file, "size", "an even frame size in [16, 512]", config.size)
    if config.views and not any(lerobot_video.has_encoder(e) for e in
                                {"auto": lerobot_video.AV1_ENCODERS + lerobot_video.H264_ENCODERS,
                                 "av1": lerobot_video.AV1_ENCODERS, "h264": lerobot_video.H264_ENCODERS}[config.codec]):
        cli.fail(config_file, "codec", "a codec this PyAV build can encode", config.codec)
    if "/" not in config.repo_id:
        cli.fail(config_file, "repo_id", "'<owner>/<name>'", config.repo_id)


def export(config, root: str, log=cli.log) -> dict:
    """Writes the LeRobot dataset of `config` under `root`; returns what export.json holds."""
    t0 = time.perf_counter()
    path = ensure_dataset(config.dataset, config.data_dir or None)
    episodes = rlds.load_rlds(path)[:config.max_episodes or None]
    meta = rlds.load_metadata(path)
    t_load = time.perf_counter() - t0
    render = clips.TimedSimCameras(config.views, config.size)
    t1 = time.perf_counter()
    info = lerobot_writer.write_lerobot(
        episodes, root, fps=1.0 / float(meta["dt"]),
        cameras=render.cameras, component_names=meta.get("reward_component_names", ()), gold_rubric=meta.get("gold_rubric"),
        episodes_per_file=config.episodes_per_file or None, codec=config.codec, crf=config.crf,
        repo_id=config.repo_id)
    write_s, render_s = time.perf_counter() - t1, render.seconds
    codecs = sorted({f["info"]["video.codec"] for f in info["features"].values() if f["dtype"] == "video"})
    out = {"episodes": info["total_episodes"], "frames": info["total_frames"], "fps": info["fps"],
           "views": list(config.views), "codecs": codecs, "load_s": t_load, "render_s": render_s,
           "write_s": write_s - render_s, "total_s": time.perf_counter() - t0, "dataset": config.dataset}
    log(f"wrote {out['episodes']} episodes ({out['frames']} frames, video {codecs or 'none'}) to {root} "
        f"in {out['total_s']:.1f}s (render {render_s:.1f}s)")
    return out


def _body(inv: cli.Invocation) -> None:
    validate(inv.config, inv.config_file)
    cli.check_workdir(inv.workdir, False, inv.config)
    checkpoint.prepare_run_dir(inv.workdir, inv.config.to_json(indent=2, sort_keys=True), False, error=cli.ConfigError)
    out = export(inv.config, os.path.join(inv.workdir, "lerobot"))
    checkpoint.atomic_write_json(os.path.join(inv.workdir, "export.json"), out)


main = functools.partial(cli.run_main, body=_body, resumable=False)

if __name__ == "__main__":
    sys.exit(main(sys.argv))
