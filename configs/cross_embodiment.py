"""Cross-embodiment reward-model transfer: pretrain on source arms, evaluate on a target arm.

Run (quick: about 3 minutes on 2 CPU cores once the default dataset is cached):

  python -m experiments.cross_embodiment --config configs/cross_embodiment.py:quick --workdir runs/xemb

Variants; override any field with `--config.<field>=<value>`, e.g. `--config.seeds="(0,1,2)" --config.members=5`:
  quick   source Panda + Gen3 (8,000 pairs) → target UR5; n_target ∈ {100, 250, 500, 1,000,
          2,000, 10,000}; 2 seeds × 3 members; joint+token and eef features.
  paper   as quick with 50,000 source pairs, 5 seeds × 5 members, longer training.
  tiny    the `tiny` dataset (Panda → UR5), a few seconds; for tests and the notebook check.

Outputs in --workdir: results.csv, claims.md / claims.json (the seed's claims vs our numbers),
accuracy_vs_n_target.png, config.json, run_info.json.
"""
from __future__ import annotations

import ml_collections

VARIANTS = ("quick", "paper", "tiny")


def _base() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.variant = "quick"
    c.dataset = "default"               # configs/dataset.py variant (built and cached on first use)
    c.data_dir = ""                     # "" → $RLHF_JAX_DATA_DIR or ~/.cache/rlhf_jax
    c.source_embodiments = ("panda", "gen3")
    c.target_embodiment = "ur5"
    c.feature_kinds = ("joint", "eef")  # joint + embodiment token | embodiment-agnostic eef
    c.segment_length = 25
    c.stride = 10
    c.num_tasks = 4
    c.num_embodiments = 3
    c.n_source = 8000
    c.n_target = (100, 250, 500, 1000, 2000, 10000)
    c.n_val = 400
    c.n_test = 1000
    c.pool_seed = 0
    c.split_seed = 0
    c.label_seed = 0
    c.seeds = (0, 1)
    c.members = 3
    c.bootstrap = True
    c.seed = 0
    c.model = ml_collections.ConfigDict(dict(kind="markovian", context_dim=8, aggregate="sum"))
    c.hidden = (32, 32)
    c.optimizer = ml_collections.ConfigDict(dict(learning_rate=3e-3, schedule="cosine",
                                                 warmup_steps=50, weight_decay=1e-4,
                                                 grad_clip=1.0))
    c.loss = ml_collections.ConfigDict(dict(margin=0.0, label_smoothing=0.0, center_coef=1e-3))
    c.batch_size = 32
    c.pretrain_steps = 600
    c.target_steps = 400
    c.eval_every = 25
    c.chunk_steps = 200
    return c


def get_config(arg: str | None = "quick") -> ml_collections.ConfigDict:
    """`arg` = the variant; see the module docstring."""
    variant = arg or "quick"
    if variant not in VARIANTS:
        raise ValueError(f"configs/cross_embodiment.py: field 'variant': expected one of {VARIANTS}, "
                         f"got {variant!r}")
    c = _base()
    c.variant = variant
    if variant == "paper":
        c.n_source = 50000
        c.seeds = (0, 1, 2, 3, 4)
        c.members = 5
        c.hidden = (128, 128)
        c.batch_size = 64
        c.pretrain_steps = 4000
        c.target_steps = 2000
        c.eval_every = 100
        c.chunk_steps = 1000
    elif variant == "tiny":
        c.dataset = "tiny"
        c.source_embodiments = ("panda",)
        c.num_tasks = 2
        c.segment_length = 8
        c.stride = 4
        c.n_source = 300
        c.n_target = (25, 50, 100)
        c.n_val = 50
        c.n_test = 50
        c.members = 2
        c.hidden = (16,)
        c.pretrain_steps = 40
        c.target_steps = 40
        c.eval_every = 10
        c.chunk_steps = 20
    return c
