"""Label efficiency: active query selection, pseudo-labels and AI/human routing, in labels and dollars.

  python -m experiments.label_efficiency --config configs/label_efficiency.py:quick --workdir runs/label_eff

Each strategy (selection × routing × pseudo-labels, `strategy_defs`) × seed is one active-learning
run on the same train pool; all of them train together in the compiled sweep program each round.
Variants:
  quick    uniform, its reference extension, disagreement, DROID-style pseudo-labels and uncertainty
           routing (30% of queries to humans), 5 seeds, 100 + 5 × 100 labels; about 10–15 minutes
           on 2 CPU cores
  surf     quick's budget with uniform, its reference, DROID-style and SURF pseudo-labels (the segment
           table keeps SURF's 5-step crop margin for all of them, so they share one test set); 5 seeds
  routing  all-human uniform and routing by uncertainty and at random with 10%, 30% and 60% of the
           queries to humans (each routed run buys 3× the labels a round); 5 seeds; about 15–20 minutes
  default  the selection methods of rlhf_jax.query, random and uncertainty routing, all-AI,
           DROID and SURF pseudo-labels and uniform's reference; 5 seeds, 100 + 7 × 100 labels
           (80 strategy-seeds × 8 rounds: about 90 minutes; --resume continues a stopped run)
  tiny     seconds, for tests

`uniform_reference` is uniform querying that buys enough labels a round to reach `reference_reach`
(3) × the largest budget of the other strategies by the last round, in the same compiled program,
so a pseudo-label run's effective size up to 3× is measured, not capped at 1×.

The criteria of the seed's claims are fixed here, before any run (`criteria`):
  pseudo-labels  "2–3× effective size" holds if the lower end of its 95% interval is >= 2×
  routing        "60–70% cheaper within 3–5%" holds at matched accuracy (the cost to reach
                 all-human's final accuracy minus 3, or minus 5, points) if the lower end of the
                 cost cut's interval is >= 60%; at matched cost, accuracy is read at 35% of
                 all-human's cost, and holds if the upper end of the accuracy gap is <= 3 (or 5) points

Data and reward model are configs/scaling_sweep.py's (`SWEEP_FIELDS`, taken from its quick variant,
or its tiny one for tiny): change them there, or per run with --config.<field>.
"""
from __future__ import annotations

import ml_collections

from configs import scaling_sweep as sweep_config
from rlhf_jax.config_schema import Field, boolean, choice, integer, layers, real, reals, seed, strings

VARIANTS = ("quick", "surf", "routing", "default", "tiny")

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
    "uniform_reference": dict(select="uniform", route="all_human", human_fraction=1.0, pseudo="", reference=True),
}
# The routing sweep: human fraction × routing rule; each routed run buys 3× the labels a round.
ROUTED = {f"routed_{rule}_{round(100 * f)}": dict(select="uniform", route=rule, human_fraction=f, pseudo="",
                                                  per_round_multiple=3)
          for rule in ("uncertainty", "random") for f in (0.1, 0.3, 0.6)}


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
    c.strategy_defs = ml_collections.ConfigDict({**STRATEGIES, **ROUTED})
    c.reference_reach = 3.0         # uniform_reference ends at >= this × the largest other budget
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
    # Pre-registered (see the module docstring): what each claim needs of its interval.
    c.criteria = ml_collections.ConfigDict(dict(pseudo_effective_size_at_least=2.0, routing_cost_cut_at_least=0.60,
                                                routing_within_points=(0.03, 0.05), routing_matched_cost=0.35))
    c.strategies = ("uniform", "uniform_reference", "disagreement", "pseudo_droid", "routed")
    c.seeds = (0, 1, 2, 3, 4)
    if variant == "surf":
        c.strategies = ("uniform", "uniform_reference", "pseudo_droid", "pseudo_surf")
    if variant == "routing":
        c.strategies = ("uniform",) + tuple(ROUTED)
    if variant == "default":
        c.strategies = tuple(STRATEGIES)
        # 8 rounds, not 10: at 10 the run takes well over an hour on 2 cores, longer than a working
        # directory is kept between work periods; 5 seeds were kept rather than rounds.
        c.rounds = 8
    elif variant == "tiny":
        c.strategies = ("uniform", "uniform_reference", "disagreement", "pseudo_droid", "pseudo_surf", "routed",
                        "routed_uncertainty_30")
        c.seeds = sweep.seeds
        c.model_sizes = ((16,),)
        c.initial = 20
        c.per_round = 20
        c.rounds = 3
        c.target_accuracy = 0.6
        c.n_bootstrap = 50
        c.surf.crop = 2  # tiny episodes are short: a 5-step margin leaves too few validation pairs
    return c


# --- Field descriptions (rlhf_jax.config_schema): checked before the job writes or compiles ------
# Relations (strategies named in strategy_defs and including 'uniform', budgets within the pool,
# oversampling >= 2 for the k-center hybrids, one model size, chunk_steps dividing total_steps)
# stay in experiments.label_efficiency.validate.
_FROM_SWEEP = tuple(f for f in sweep_config.FIELDS if f.path.split(".")[0] in SWEEP_FIELDS + ("surf",)
                    and f.path != "model_sizes")
FIELDS = (
    choice("variant", "the variant this config was built from", VARIANTS),
    *_FROM_SWEEP,
    layers("model_sizes", "the reward MLP's size (exactly one)"),
    strings("strategies", "strategies run, by name in strategy_defs", nonempty=True),
    choice("strategy_defs.*.select", "how a round's queries are selected", "rlhf_jax.query:METHODS"),
    choice("strategy_defs.*.route", "who labels a query", "rlhf_jax.preferences.routing:ROUTES"),
    real("strategy_defs.*.human_fraction", "share of queries routed to humans", 0.0, 1.0),
    choice("strategy_defs.*.pseudo", "pseudo-labels ('' = none)", "rlhf_jax.train.active:PSEUDO"),
    Field("strategy_defs.*.per_round_multiple", "integer", "labels bought per round, as a multiple", lo=1,
          optional=True),
    Field("strategy_defs.*.reference", "boolean", "the run extends uniform's curve to reference_reach",
          optional=True),
    real("reference_reach", "uniform_reference ends at this multiple of the largest other budget", 1.0),
    integer("initial", "uniform first-round labels"),
    integer("per_round", "labels per later round"),
    integer("rounds", "rounds, the first included"),
    choice("schedule", "labels per round: constant or hyperbolic", ("constant", "hyperbolic")),
    real("oversampling", "candidates per query", 1.0),
    boolean("confidence_weights", "weight each label by its annotator's confidence"),
    integer("humans.size", "human annotators"),
    seed("humans.seed"),
    real("ai.eps", "the AI labeller's mistake rate", 0.0, 1.0),
    real("ai.beta", "the AI labeller's rationality", 0.0, open_lo=True),
    *(real(f"costs.{kind}", f"dollars per {kind} label", 0.0) for kind in ("human", "expert", "ai")),
    real("target_accuracy", "accuracy the label counts are read at", 0.0, 1.0, open_lo=True, open_hi=True),
    integer("n_bootstrap", "bootstrap resamples of the intervals"),
    real("criteria.pseudo_effective_size_at_least", "effective-size claim of pseudo-labels", 0.0, open_lo=True),
    real("criteria.routing_cost_cut_at_least", "cost-cut claim of routing", 0.0, 1.0),
    reals("criteria.routing_within_points", "accuracy tolerance of the routing claim", 0.0, 1.0, length=2),
    real("criteria.routing_matched_cost", "matched-cost share of the routing claim", 0.0, 1.0),
)
UNCHECKED = {}
