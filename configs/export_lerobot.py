"""Export the embedded dataset (or any variant of it) as a LeRobot v3.0 dataset.

  python -m experiments.export_lerobot --config configs/export_lerobot.py:tiny --workdir runs/lerobot_tiny
  python -m experiments.export_lerobot --config configs/export_lerobot.py:default --workdir runs/lerobot_default

Writes the dataset to `<workdir>/lerobot/` (read it back as `lerobot:<workdir>/lerobot`) and
`<workdir>/export.json` (episodes, frames, codec, seconds). Variants:
  tiny     the `tiny` dataset (144 episodes of 20 steps), the front camera rendered at 64×64.
  default  the `default` dataset (1,680 episodes of 50 steps), the front camera at 64×64.
`views`: rendered camera views (front, side, top), each an MP4 feature
`observation.images.<view>`; () exports no video. `codec`: "auto" (AV1 when PyAV has an AV1
encoder, as LeRobot writes it, else H.264), "av1" or "h264"; `crf` 20 keeps the round trip
within 3 grey levels. `episodes_per_file`: episodes per data Parquet file (0: all in one).
"""
from __future__ import annotations

import ml_collections

from rlhf_jax.config_schema import choice, choices, integer, string

VARIANTS = ("tiny", "default")


def get_config(arg: str | None = "tiny") -> ml_collections.ConfigDict:
    variant = arg or "tiny"
    if variant not in VARIANTS:
        raise ValueError(f"configs/export_lerobot.py: field 'variant': expected one of {VARIANTS}, got {variant!r}")
    c = ml_collections.ConfigDict()
    c.variant = variant
    c.dataset = variant             # a variant of configs/dataset.py, built and cached on first use
    c.data_dir = ""                 # "" → $RLHF_JAX_DATA_DIR or ~/.cache/rlhf_jax
    c.views = ("front",)
    c.size = 64
    c.codec = "auto"
    c.crf = 20
    c.episodes_per_file = 0
    c.max_episodes = 0              # 0: every episode
    c.repo_id = f"rlhf_jax/rlhf_sim_{variant}"
    return c


FIELDS = (
    choice("variant", "the variant this config was built from", VARIANTS),
    choice("dataset", "configs/dataset.py variant exported", "rlhf_jax.data.variants:VARIANTS"),
    string("data_dir", "dataset cache directory ('' = $RLHF_JAX_DATA_DIR or ~/.cache/rlhf_jax)"),
    choices("views", "camera views rendered into videos (() = none)", "rlhf_jax.envs.render:VIEWS"),
    integer("size", "video frame width and height in pixels (even)", lo=16, hi=512),
    choice("codec", "video codec ('auto' = AV1 if this PyAV build encodes it, else H.264)", ("auto", "av1", "h264")),
    integer("crf", "video quality (constant rate factor, lower is better)", lo=0, hi=51),
    integer("episodes_per_file", "episodes per data/video file (0 = one file per chunk)", lo=0),
    integer("max_episodes", "episodes exported (0 = every episode)", lo=0),
    string("repo_id", "the LeRobot repo id written into meta/info.json"),
)
UNCHECKED = {}
