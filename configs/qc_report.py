"""Annotator QC report: gold accuracy, agreement, outliers, and what each QC policy buys.

  python -m experiments.qc_report --config configs/qc_report.py:quick --workdir runs/qc
  python -m experiments.qc_report --config configs/qc_report.py:quick \
      --config.labels=labels.jsonl --workdir runs/qc_file

`labels` is a pool preset (`rlhf_jax.labels.qc_sources.POOLS`, e.g. "crowd": careful annotators plus
a planted random clicker, always-left clicker and 60%-accurate annotator) or a label file
(.jsonl / .parquet, `rlhf_jax.labels.label_set_io`). A preset labels `n_pairs` train-pool pairs of
`dataset`, each answered by `r` annotators of a pool of `pool.size`, with gold questions at
`gold_rate`; a file is read as it is, and its pairs must be segments of `dataset`.

`dataset` may be a LeRobot dataset, `lerobot:<dir>`: one without gold reward (foreign data) is
reported from a label file only, with no label error against an oracle.

Variants: quick (the default dataset, 2,000 pairs, r = 3), tiny (seconds; for tests), lerobot (the
tiny shapes, `--config.dataset=lerobot:<dir> --config.labels=<labels.jsonl>`).

  python -m experiments.qc_report --config configs/qc_report.py:lerobot \
      --config.dataset=lerobot:runs/lerobot_tiny/lerobot --config.labels=runs/label_lerobot/labels.jsonl \
      --workdir runs/qc_lerobot
"""
from __future__ import annotations

import ml_collections

VARIANTS = ("quick", "tiny", "lerobot")


def get_config(arg: str | None = "quick") -> ml_collections.ConfigDict:
    variant = arg or "quick"
    if variant not in VARIANTS:
        raise ValueError(f"configs/qc_report.py: field 'variant': expected one of {VARIANTS}, got {variant!r}")
    c = ml_collections.ConfigDict()
    c.variant = variant
    c.labels = "crowd"
    c.dataset = "default"
    c.data_dir = ""
    c.segment_length = 25
    c.stride = 10
    c.n_pairs = 2000
    c.r = 3
    c.gold_rate = 0.12
    c.seed = 0
    c.pool = ml_collections.ConfigDict(dict(size=10, seed=0))
    c.qc = ml_collections.ConfigDict(dict(
        threshold=0.8,          # gold accuracy below which an annotator is removed (seed: 80%)
        min_gold=5,             # fewer gold answers than this: not enough evidence to judge
        outlier_z=2.0,          # robust (median/MAD) z beyond which a behaviour is an outlier
        alpha_level="ordinal",  # Krippendorff's alpha: ties as the middle of an ordered scale
        min_overlap=10,         # Cohen's kappa only for annotator pairs sharing this many pairs
        policies=("raw", "filtered", "majority", "confidence", "downweighted", "dawid_skene", "adjudicated")))
    c.costs = ml_collections.ConfigDict(dict(human=1.00, expert=2.00, ai=0.03))
    if variant in ("tiny", "lerobot"):
        c.dataset = "tiny" if variant == "tiny" else ""   # lerobot:<dir>, given on the command line
        c.segment_length = 8
        c.stride = 4
        c.n_pairs = 300
    return c
