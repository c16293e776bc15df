"""Label efficiency: active query selection, pseudo-labels and AI/human routing, in labels and dollars.

  python -m experiments.label_efficiency --config configs/label_efficiency.py:quick --workdir runs/label_eff

Each strategy (selection × routing × pseudo-labels, `strategy_defs`) × seed is one active-learning
run on the same train pool; all of them train together in the compiled sweep program each round.
Variants:
  quick    uniform, disagreement, DROID-style pseudo-labels and uncertainty routing (30% of
           queries to humans), 3 seeds, 100 + 5 × 100 labels; about 8 minutes on 2 CPU cores
  surf     quick's budget with uniform, DROID-style and SURF pseudo-labels (the segment table keeps
           SURF's 5-step crop margin for all three, so they share one test set)
  default  the selection methods of rlhf_jax.query, random and uncertainty routing, all-AI,
           DROID and SURF pseudo-labels; 5 seeds, 100 + 9 × 100 labels
  tiny     seconds, for tests

Data and reward model are configs/scaling_sweep.py's (`SWEEP_FIELDS`, taken from its quick variant,
or its tiny one for tiny): change them there, or per run with --config.<field>.
"""
from __future__ import annotations

import ml_collections

from configs import scaling_sweep as sweep_config

VARIANTS = ("quick", "surf", "default", "tiny")

STRATEGIES = {
    "uniform": dict(select="uniform", route="all_human", human_fraction=1.0, pseudo=""),
    "disagreement": dict(select="disagreement", route="all_human", human_fraction=1.0, pseudo=""),
    "entropy": dict(select="entropy", route="all_human", human_fraction=1.0, pseudo=""),
    "mean_entropy": dict(select="mean_entropy", route="all_human", human_fraction=1.0, pseudo=""),
    "logit": dict(select="logit", route="all_human", human_fraction=1.0, pseudo=""),
    "probability": dict(select="probability", route="all_human", human_fraction=1.0, pseudo=""),
    "label": dict(select="label", route="all_human", human_fraction=1.0, pseudo=""),
    "kcenter": dict(select="kcenter", route="all_human", human_fraction=1.0, pseudo=""),
    "kcenter_disagreement": dict(select="kcenter_disagreement", route="all_human", human_fraction=1.0, pseudo=""),
    "kcenter_entropy": dict(select="kcenter_entropy", route="all_human", human_fraction=1.0, pseudo=""),
    "pseudo_droid": dict(select="uniform", route="all_human", human_fraction=1.0, pseudo="droid"),
    "pseudo_surf": dict(select="uniform", route="all_human", human_fraction=1.0, pseudo="surf"),
    "routed": dict(select="uniform", route="uncertainty", human_fraction=0.3, pseudo=""),
    "random_mix": dict(select="uniform", route="random", human_fraction=0.3, pseudo=""),
    "all_ai": dict(select="uniform", route="all_ai", human_fraction=0.0, pseudo=""),
}


# Fields copied from the sweep's config, in this order: the data, the split and the reward model.
SWEEP_FIELDS = ("dataset", "data_dir", "dataset_path", "segment_length", "stride", "feature_kind",
                "cross_embodiment", "num_tasks", "num_embodiments", "n_train_pool", "n_val", "n_test",
                "pool_seed", "split_seed", "seeds", "members", "bootstrap", "seed", "model", "model_sizes",
                "optimizer", "loss", "batch_size", "total_steps", "eval_every", "chunk_steps")


def get_config(arg: str | None = "quick") -> ml_collections.ConfigDict:
    """`arg` = the variant; see the module docstring."""
    variant = arg or "quick"
    if variant not in VARIANTS:
        raise ValueError(f"configs/label_efficiency.py: field 'variant': expected one of {VARIANTS}, got {variant!r}")
    sweep = sweep_config.get_config("tiny" if variant == "tiny" else "quick")
    c = ml_collections.ConfigDict()
    c.variant = variant
    for field in SWEEP_FIELDS:
        c[field] = sweep[field]
    # Active learning.
    c.strategies = ("uniform", "disagreement", "pseudo_droid", "routed")
    c.strategy_defs = ml_collections.ConfigDict(STRATEGIES)
    c.initial = 100                 # uniform first round (all strategies, all human)
    c.per_round = 100
    c.rounds = 6                    # including the first
    c.schedule = "constant"         # or "hyperbolic"
    c.oversampling = 10.0           # candidates per query (B-Pref's large_batch)
    c.confidence_weights = True     # BT weights = the confidence each annotator reported
    # SURF (strategies with pseudo="surf"), the sweep's settings: tau, lam, mu, crop as in SURF's paper;
    # the segment table then keeps `crop` steps either side of every segment for every strategy (a shared pool).
    c.surf = sweep.surf
    c.humans = ml_collections.ConfigDict(dict(size=5, seed=0))
    c.ai = ml_collections.ConfigDict(dict(eps=0.08, beta=10.0))
    c.costs = ml_collections.ConfigDict(dict(human=1.00, expert=2.00, ai=0.03))
    c.target_accuracy = 0.79
    c.n_bootstrap = 1000
    if variant == "surf":
        c.strategies = ("uniform", "pseudo_droid", "pseudo_surf")
    if variant == "default":
        c.strategies = tuple(STRATEGIES)
        c.seeds = (0, 1, 2, 3, 4)
        c.rounds = 10
    elif variant == "tiny":
        c.strategies = ("uniform", "disagreement", "pseudo_droid", "pseudo_surf", "routed")
        c.model_sizes = ((16,),)
        c.initial = 20
        c.per_round = 20
        c.rounds = 3
        c.target_accuracy = 0.6
        c.n_bootstrap = 50
        c.surf.crop = 2  # tiny episodes are short: a 5-step margin leaves too few validation pairs
    return c
