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
