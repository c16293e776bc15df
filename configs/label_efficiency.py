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
"""
from __future__ import annotations

import ml_collections

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


def get_config(arg: str | None = "quick") -> ml_collections.ConfigDict:
    variant = arg or "quick"
    if variant not in VARIANTS:
        raise ValueError(f"configs/label_efficiency.py: field 'variant': expected one of {VARIANTS}, got {variant!r}")
    c = ml_collections.ConfigDict()
    c.variant = variant
    # Data and reward model: as configs/scaling_sweep.py:quick.
    c.dataset = "default"
    c.data_dir = ""
    c.dataset_path = ""
    c.segment_length = 25
    c.stride = 10
    c.feature_kind = "joint"
    c.cross_embodiment = False
    c.num_tasks = 4
    c.num_embodiments = 3
    c.n_train_pool = 4000
    c.n_val = 400
    c.n_test = 1000
    c.pool_seed = 0
    c.split_seed = 0
    c.seeds = (0, 1, 2)
    c.members = 3
    c.bootstrap = True
    c.seed = 0
    c.model = ml_collections.ConfigDict(dict(kind="markovian", context_dim=8, aggregate="sum"))
    c.model_sizes = ((32, 32),)
    c.optimizer = ml_collections.ConfigDict(dict(learning_rate=3e-3, schedule="cosine", warmup_steps=50,
                                                 weight_decay=1e-4, grad_clip=1.0))
    c.loss = ml_collections.ConfigDict(dict(margin=0.0, label_smoothing=0.0, center_coef=1e-3))
    c.batch_size = 32
    c.total_steps = 800
    c.eval_every = 25
    c.chunk_steps = 400
    # Active learning.
    c.strategies = ("uniform", "disagreement", "pseudo_droid", "routed")
    c.strategy_defs = ml_collections.ConfigDict(STRATEGIES)
    c.initial = 100                 # uniform first round (all strategies, all human)
    c.per_round = 100
    c.rounds = 6                    # including the first
    c.schedule = "constant"         # or "hyperbolic"
    c.oversampling = 10.0           # candidates per query (B-Pref's large_batch)
    c.confidence_weights = True     # BT weights = the confidence each annotator reported
    # SURF (strategies with pseudo="surf"): tau, lam, mu, crop as in SURF's paper; the segment table
    # then keeps `crop` steps either side of every segment for every strategy (a shared pool).
    c.surf = ml_collections.ConfigDict(dict(enabled=False, tau=0.95, lam=1.0, mu=2, crop=5))
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
        c.dataset = "tiny"
        c.segment_length = 8
        c.stride = 4
        c.n_train_pool = 600
        c.n_val = 100
        c.n_test = 100
        c.seeds = (0, 1)
        c.members = 2
        c.model_sizes = ((16,),)
        c.initial = 20
        c.per_round = 20
        c.rounds = 3
        c.total_steps = 40
        c.eval_every = 10
        c.chunk_steps = 20
        c.target_accuracy = 0.6
        c.n_bootstrap = 50
        c.surf.crop = 2  # tiny episodes are short: a 5-step margin leaves too few validation pairs
    return c
