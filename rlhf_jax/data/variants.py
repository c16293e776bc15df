"""Variants of the embedded simulator dataset (RLDS) and of the preference data cut from it.

Like a TFDS builder's configs, the variants belong to the library that builds the dataset;
experiment configs name one (`dataset = "default"`). Build one ahead of use (the first use of
`rlhf_jax.data.ensure_dataset` builds it too):

  python -m experiments.make_dataset --config configs/dataset.py:default --data_dir DIR

(--data_dir defaults to $RLHF_JAX_DATA_DIR, else ~/.cache/rlhf_jax.) Variants:
  tiny     2 arms (7- and 6-DoF) x 2 tasks x 3 policies x 12 episodes of 20 steps; for tests.
  default  3 arms x 4 tasks x 7 policies x 20 episodes of 50 steps (1,680 episodes, 84,000 steps);
           25-step segments at steps 0, 10, 20, 25 (6,720) -> 50k/5k/10k train/val/test pairs.
  large    as default with 100 episodes per (arm, task, policy) (8,400 episodes).
  pixels_tiny, pixels
           tiny and default whose preference data carries camera frames: every step seen by the
           front camera at 16x16 (uint8, stored once per step; `rlhf_jax.data.frames`). Frames are
           rendered from the stored states when the preference data is made, so these variants
           read the episodes (and the cache directory) of tiny and default.

A LeRobot dataset is named `lerobot:<dir>` (a directory holding meta/info.json, format v3.0 or
v2.1; `rlhf_jax.data.lerobot`): it takes the `default` variant's preference settings and has no
generation settings of its own.

`episodes_per_combo` is per (embodiment, task, policy). `preferences` holds the defaults of
`rlhf_jax.data.load_preference_data` (segment length, pair counts, teacher, split fractions).
"""
from __future__ import annotations

import os

import ml_collections

from rlhf_jax.errors import ConfigError, describe

VARIANTS = ("tiny", "default", "large", "pixels_tiny", "pixels")
LEROBOT_PREFIX = "lerobot:"

_ALL_EMBODIMENTS = ("panda", "ur5", "gen3")
_ALL_TASKS = ("reach", "reach_avoid", "reach_hold", "reach_in_box")
_ALL_POLICIES = ("expert", "expert_noisy", "expert_very_noisy", "careless", "jerky", "timid",
                 "random")


def dataset_config(variant: str = "default", where: str = "dataset", field: str = "dataset"
                   ) -> ml_collections.ConfigDict:
    """Generation and preference settings of one variant (tiny, default, large, lerobot:<dir>).

    An unknown variant, or a `lerobot:` directory without meta/info.json, raises ConfigError naming
    ``where`` (the caller's config file) and ``field``.
    """
    is_lerobot = isinstance(variant, str) and variant.startswith(LEROBOT_PREFIX)
    if is_lerobot and not os.path.isfile(os.path.join(variant[len(LEROBOT_PREFIX):], "meta", "info.json")):
        raise ConfigError(describe(where, field, "'lerobot:<dir>' naming a LeRobot dataset (<dir>/meta/info.json)",
                                   f"{variant!r} (no meta/info.json there)"))
    if variant not in VARIANTS and not is_lerobot:
        raise ConfigError(describe(where, field, f"one of {VARIANTS} or 'lerobot:<dir>'", repr(variant)))
    c = ml_collections.ConfigDict()
    c.variant = variant
    c.seed = 0
    c.embodiments = _ALL_EMBODIMENTS
    c.tasks = _ALL_TASKS
    c.policies = _ALL_POLICIES
    c.episodes_per_combo = 20
    c.horizon = 50
    c.dt = 0.05
    c.image = False

    p = c.preferences = ml_collections.ConfigDict()
    p.segment_length = 25
    p.stride = 10
    p.n_train = 50_000
    p.n_val = 5_000
    p.n_test = 10_000
    p.teacher = "oracle"
    p.feature_kind = "joint"
    p.cross_embodiment = False
    p.seed = 0
    p.split_seed = 0
    p.split_fractions = (0.8, 0.1, 0.1)
    p.frame_size = 0            # > 0: camera frames of this side with the segments (pixels variants)
    p.frame_view = "front"

    if variant in ("pixels_tiny", "pixels"):
        # The episodes (and cache directory) of tiny / default: frames come from their states.
        c.variant = "tiny" if variant == "pixels_tiny" else "default"
        p.frame_size = 16
    if variant in ("tiny", "pixels_tiny"):
        c.embodiments = ("panda", "ur5")
        c.tasks = ("reach", "reach_avoid")
        c.policies = ("expert", "careless", "random")
        c.episodes_per_combo = 12
        c.horizon = 20
        p.segment_length = 8
        p.stride = 4
        p.n_train, p.n_val, p.n_test = 600, 100, 100
    elif variant == "large":
        c.episodes_per_combo = 100
        p.n_train, p.n_val, p.n_test = 200_000, 10_000, 20_000
    return c
