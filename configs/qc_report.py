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

from rlhf_jax.config_schema import choice, choices, integer, real, seed, string

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


# --- Field descriptions (rlhf_jax.config_schema): checked before the job writes or compiles ------
# Relations (r <= pool.size, labels names an existing file or a pool preset) stay in
# experiments.qc_report.validate.
COST_FIELDS = tuple(real(f"costs.{kind}", f"dollars per {kind} label", 0.0) for kind in ("human", "expert", "ai"))
FIELDS = (
    choice("variant", "the variant this config was built from", VARIANTS),
    string("labels", "a label file (.jsonl/.parquet) or a simulated pool preset"),
    string("dataset", "configs/dataset.py variant, or lerobot:<dir>"),
    string("data_dir", "dataset cache directory ('' = $RLHF_JAX_DATA_DIR or ~/.cache/rlhf_jax)"),
    integer("segment_length", "steps per preference segment"),
    integer("stride", "steps between segment starts"),
    integer("n_pairs", "pairs the simulated pool labels", lo=10),
    integer("r", "labels per pair"),
    real("gold_rate", "share of gold questions", 0.0, 0.5, open_lo=True, open_hi=True),
    seed("seed"),
    integer("pool.size", "annotators in the simulated pool (3 planted + 2 careful at least)", lo=5),
    seed("pool.seed"),
    real("qc.threshold", "gold accuracy below which an annotator is removed (0.5 is chance)", 0.5, 1.0,
         open_lo=True),
    integer("qc.min_gold", "gold answers needed to judge an annotator"),
    real("qc.outlier_z", "robust z beyond which a behaviour is an outlier", 0.0, open_lo=True),
    choice("qc.alpha_level", "Krippendorff's alpha: ties as an ordered scale's middle, or nominal",
           ("ordinal", "nominal")),
    integer("qc.min_overlap", "shared pairs needed for an annotator pair's Cohen's kappa"),
    choices("qc.policies", "QC policies compared", "rlhf_jax.labels.qc_sources:POLICY_R", nonempty=True),
    *COST_FIELDS,
)
UNCHECKED = {}
