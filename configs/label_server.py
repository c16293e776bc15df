"""The labelling page: two segments side by side, keyboard labels, gold questions, a label file.

  python -m experiments.label_server --config configs/label_server.py:tiny --workdir runs/label_tiny
  python -m experiments.label_server --config configs/label_server.py:default --workdir runs/label
  python -m experiments.label_server --config configs/label_server.py:oxe \
      --config.oxe.path=/data/oxe/bridge/0.1.0 --workdir runs/label_oxe
  python -m experiments.label_server --config configs/label_server.py:lerobot \
      --config.dataset=lerobot:runs/lerobot_tiny/lerobot --workdir runs/label_lerobot
  python -m experiments.label_server --config configs/label_server.py:tiny --workdir runs/label_tiny --resume

It prints the page's address (127.0.0.1 unless `host` says otherwise; then every annotator needs
its token, printed with its address) and appends every answer to `<workdir>/labels.jsonl`.

Variants:
  tiny     the `tiny` simulated dataset (the scaling sweep's `tiny` pools), 50 pairs, gold 12%
  default  the `default` simulated dataset (the sweep's `quick` pools), 200 pairs, gold 12%
  oxe      an OXE dataset read from `oxe.path` (e.g. bridge), its own cameras, no gold questions
           (real data has no known answer)
  lerobot  a LeRobot dataset (`dataset = "lerobot:<dir>"`, v3.0 or v2.1), its own cameras decoded from
           its MP4s, no gold questions; the pools of configs/scaling_sweep.py:lerobot

`objectives`, e.g. `--config.objectives="('safety','efficiency')"`, adds those objectives'
sub-questions ("which is safer?", ...) to the rubric questions; docs/objectives.md.

`source` is "sim", "oxe" or "lerobot". The pools (`segment_length`, `stride`, `n_train_pool`, `n_val`,
`pool_seed`, `split_seed`) are those of `configs/scaling_sweep.py` for the same dataset, so the
label file answers pairs that sweep asks for (`file:<workdir>/labels.jsonl`). `method`: queue
order, "uniform" or "kcenter" (diverse pairs first). `val_share` of the pairs are validation pairs.
"""
from __future__ import annotations

import ml_collections

from rlhf_jax.config_schema import boolean, choice, choices, integer, real, reals, seed, string, strings

VARIANTS = ("tiny", "default", "oxe", "lerobot")


def get_config(arg: str | None = "tiny") -> ml_collections.ConfigDict:
    variant = arg or "tiny"
    if variant not in VARIANTS:
        raise ValueError(f"configs/label_server.py: field 'variant': expected one of {VARIANTS}, got {variant!r}")
    c = ml_collections.ConfigDict()
    c.variant = variant
    c.source = "sim"
    c.dataset = "tiny"
    c.data_dir = ""
    c.oxe = ml_collections.ConfigDict(dict(name="bridge", path="", split="train", n_episodes=0))
    c.segment_length = 8
    c.stride = 4
    c.n_train_pool = 600
    c.n_val = 100
    c.pool_seed = 0
    c.split_seed = 0
    c.n_pairs = 50
    c.val_share = 0.2
    c.method = "uniform"
    c.seed = 0
    c.gold_rate = 0.12
    c.show_gold_accuracy = False  # an annotator who sees it can learn which items are gold
    c.annotators = ("me",)
    c.tokens = ()                 # one per annotator; empty: random tokens printed at start
    c.host = "127.0.0.1"
    c.port = 8765                 # 0: any free port
    c.clip = ml_collections.ConfigDict(dict(size=192, fps=8.0, views=("front", "side", "top")))
    c.confidence_levels = (0.5, 0.75, 1.0)
    c.rubric = ("avoids the obstacle better", "finishes faster")
    # Objectives (task, safety, smoothness, efficiency; rlhf_jax.preferences.objectives) whose
    # sub-questions the page also asks; each answer is written to the rubric column under the
    # objective's name, as simulated annotators write their sub-answers.
    c.objectives = ()
    if variant == "default":
        c.dataset = "default"
        c.segment_length = 25
        c.stride = 10
        c.n_train_pool = 4000
        c.n_val = 400
        c.n_pairs = 200
        c.clip.fps = 10.0
    elif variant == "lerobot":
        c.source = "lerobot"
        c.dataset = ""            # lerobot:<dir>, given on the command line
        c.gold_rate = 0.0
        c.clip.views = ()         # every camera (video feature) of the dataset
        c.clip.fps = 10.0
        c.rubric = ("completes the task better",)
    elif variant == "oxe":
        c.source = "oxe"
        c.dataset = ""
        c.segment_length = 4
        c.stride = 2
        c.n_train_pool = 8
        c.n_val = 0
        c.val_share = 0.0
        c.n_pairs = 8
        c.gold_rate = 0.0
        c.clip.views = ()         # every RGB camera the dataset records
        c.clip.fps = 5.0
        c.rubric = ("completes the instruction better",)
    return c


# --- Field descriptions (rlhf_jax.config_schema): checked before the job writes or compiles ------
# Relations (n_pairs within the pools, val_share x n_pairs <= n_val, one token per annotator,
# gold_rate 0 for data without gold, views of the source) stay in experiments.label_server.validate.
FIELDS = (
    choice("variant", "the variant this config was built from", VARIANTS),
    choice("source", "where segments come from", ("sim", "oxe", "lerobot")),
    string("dataset", "configs/dataset.py variant, or lerobot:<dir>"),
    string("data_dir", "dataset cache directory ('' = $RLHF_JAX_DATA_DIR or ~/.cache/rlhf_jax)"),
    string("oxe.name", "the OXE dataset (source 'oxe')"),
    string("oxe.path", "local directory of the TFDS dataset (source 'oxe')"),
    string("oxe.split", "TFDS split read"),
    integer("oxe.n_episodes", "episodes read (0 = every episode)", lo=0),
    integer("segment_length", "steps per preference segment"),
    integer("stride", "steps between segment starts"),
    integer("n_train_pool", "candidate training pairs"),
    integer("n_val", "validation pairs", lo=0),
    seed("pool_seed"),
    seed("split_seed"),
    integer("n_pairs", "pairs asked"),
    real("val_share", "share of asked pairs drawn from the validation pool", 0.0, 1.0),
    choice("method", "how the pair queue is ordered", "rlhf_jax.labels.pair_queue:QUEUE_METHODS"),
    seed("seed"),
    real("gold_rate", "share of gold questions", 0.0, 0.5, open_hi=True),
    boolean("show_gold_accuracy", "show annotators their gold accuracy"),
    strings("annotators", "annotator ids (letters, digits, '-' and '_')", nonempty=True),
    strings("tokens", "one login token per annotator (() = random, printed at start)"),
    string("host", "address the server listens on"),
    integer("port", "TCP port (0 = any free one)", lo=0, hi=65535),
    integer("clip.size", "clip frame size in pixels", lo=32, hi=1024),
    real("clip.fps", "clip frames per second", 0.0, 60.0, open_lo=True),
    strings("clip.views", "camera views shown (() = every camera of the dataset)"),
    reals("confidence_levels", "confidence answers offered", 0.0, 1.0, nonempty=True),
    strings("rubric", "criteria shown beside each pair"),
    choices("objectives", "objectives whose sub-questions are asked (docs/objectives.md)",
            "rlhf_jax.preferences.objectives:OBJECTIVE_NAMES"),
)
UNCHECKED = {}
