"""Online vs offline RLHF at equal label budget, on the RLHF pipeline's footing: its PPO settings,
its reward-ensemble shape, its evaluation and its PPO-on-gold reference.

  python -m experiments.online_rlhf --config configs/online_rlhf.py:quick --workdir runs/online_quick
  python -m experiments.online_rlhf --config configs/online_rlhf.py:quick_eviction --workdir runs/online_quick_eviction

Variants:

* quick: the quick pipeline's arm and task (Panda on reach_avoid) and its PPO block
  (configs/rlhf_pipeline.py:quick, read from there so that a change there carries over), without
  the safety-constraint penalties as in the pipeline's headline; π_SFT trained in the run with
  the pipeline's SFT config; 5 seeds; the pipeline's label budget (its largest N) and ensemble
  (5 members combined per step by "min"); uniform queries, no latency, a window larger than the
  budget (nothing is evicted).
* quick_eviction: quick with a window of half the budget (the oldest labels are evicted once
  it fills), label latency, and queries chosen by the ensemble's disagreement.
* tiny, tiny_eviction: the same two designs at tiny shapes with a fixed random π_ref (seconds;
  for tests).

ref_checkpoint: an SFT policy directory to start from instead of training one (e.g. the
pipeline's own, runs/pipeline/sft/checkpoints/sft). Both learned modes start from the same
π_SFT, use the same annotator, spend the same budget and the same environment steps: offline
labels online.budget pairs of π_SFT segments before PPO; online labels initial_fraction of them
before PPO and the rest from the policy's own rollouts every rm_every environment steps per
environment, refitting the ensemble on the last `window` labels. Mode "gold" is PPO on the gold
rubric under the same seeds (the bound a learned reward's gain is read against). Writes
online.csv, online.json, online_rlhf.png, claims.md, run_info.json.
"""
import ml_collections

from configs import rlhf_pipeline
from configs import ppo as ppo_config
from configs import scaling_sweep, sft
from rlhf_jax.config_schema import choice, choices, integer, integers, prefixed, real, seed, string, widths

VARIANTS = ("quick", "quick_eviction", "tiny", "tiny_eviction")


def pipeline_quick() -> ml_collections.ConfigDict:
    """The quick pipeline's config: the settings this experiment reuses."""
    return rlhf_pipeline.get_config("quick")


def _tiny_shapes(c: ml_collections.ConfigDict) -> None:
    """Tiny shapes for tests: 8 environments × 10 steps, 6 updates, a random π_ref, 2 seeds."""
    c.seeds = (0, 1)
    c.reference = "random"
    c.env.horizon = 10
    p = c.ppo
    p.num_envs, p.num_steps, p.num_updates, p.num_minibatches = 8, 10, 6, 2
    p.learning_rate, p.value_warmup_updates = 1e-3, 0
    c.kl.total_updates = p.num_updates
    c.log_every = 2
    c.reward.update({"ensemble_size": 2, "hidden": (16,), "segment_length": 5, "init_steps": 20,
                     "refit_steps": 10, "batch_size": 16})
    c.online.update({"budget": 60, "rm_every": 20, "window": 5000, "reference_rollouts": 2})
    c.eval.n_episodes = 4


def _eviction(c: ml_collections.ConfigDict, tiny: bool) -> None:
    """The window holds half the budget, labels arrive late, queries are active."""
    c.online.window = c.online.budget // 2
    c.online.latency = 1 if tiny else 10  # updates: half a tiny collection interval, a sixth of quick's
    c.online.query = "disagreement"  # B-Pref's ensemble-disagreement sampling
    c.online.oversampling = 2.0 if tiny else 10.0


def get_config(arg: str = "quick") -> ml_collections.ConfigDict:
    if arg not in VARIANTS:
        raise ValueError(f"configs/online_rlhf.py: field 'variant': expected one of {VARIANTS}, got {arg!r}")
    pipe = pipeline_quick()
    # The pipeline's PPO block as a whole (model, PPO, KL, env, safety, log_every), so every PPO
    # setting it tunes carries over; its reward block is replaced below by the online ensemble's.
    c = pipe.ppo.copy_and_resolve_references()
    c.variant = arg
    del c.reward
    c.env.robot, c.env.tasks = pipe.arms[0], tuple(pipe.tasks)
    # The pipeline's headline runs PPO-RLHF without the constraint penalties (violations are still
    # counted); so do both modes and the gold reference here.
    c.safety.weights = (0.0,) * len(c.safety.weights)
    c.seeds = tuple(pipe.ppo_seeds)  # the independent units; each seed's runs share its PPO key
    c.modes = ("offline", "online", "gold")  # gold: PPO on the gold rubric, the reference
    c.annotator = pipe.annotator
    # "sft": π_SFT trained in the run (sft block) unless ref_checkpoint is set; "random": a fixed
    # random policy is π_ref (tests and the tiny variants only).
    c.reference = "sft"
    c.sft = pipe.sft
    rm = pipe.reward_model
    c.reward = ml_collections.ConfigDict({
        "ensemble_size": int(rm.members), "hidden": tuple(rm.model_sizes[0]), "aggregation": pipe.eval.aggregation,
        "lam": 1.0, "scale": 1.0, "segment_length": int(rm.segment_length),
        # Warm-started refits need a constant rate (the pipeline's one-shot fit uses a cosine).
        "init_steps": 400, "refit_steps": 150, "batch_size": 128,
        # PEBBLE stops reward training at 97 % train accuracy (minibatch accuracy here).
        "stop_accuracy": 0.97})
    c.reward.optimizer = ml_collections.ConfigDict({
        "learning_rate": 3e-3, "schedule": "constant", "warmup_steps": 0, "weight_decay": 0.0, "grad_clip": 1e6})
    c.reward.loss = ml_collections.ConfigDict({"margin": 0.0, "label_smoothing": 0.0, "center_coef": 0.0})
    c.online = ml_collections.ConfigDict({
        "budget": int(max(rm.n_values)),  # labels per run, both modes: the pipeline's largest N
        "initial_fraction": 0.1,  # imitation's PreferenceComparisons: 10 % before training
        # Environment steps per environment between collections: every 60 updates of 50 steps,
        # 9 collections in 600 updates (each one a refit of every member).
        "rm_every": 3000,
        "window": 5000,  # labels the online reward model trains on (FIFO)
        "latency": 0,  # updates between a collection and its labels' arrival
        "query": "uniform",  # or a rlhf_jax.query score method, e.g. "disagreement"
        "oversampling": 10.0,  # candidates per query for the active methods
        "reference_rollouts": 4})  # π_SFT rollouts: offline data and the annotator's scale
    # The pipeline's evaluation: deterministic episodes from the same initial states.
    c.eval = ml_collections.ConfigDict({"n_episodes": int(pipe.eval.n_episodes), "seed": int(pipe.eval.seed)})
    if arg.startswith("tiny"):
        _tiny_shapes(c)
    if arg.endswith("eviction"):
        _eviction(c, arg.startswith("tiny"))
    return c


# --- Field descriptions (rlhf_jax.config_schema): checked before the job writes or compiles ------
# PPO's table without its reward block (the online ensemble's below); relations (rm_every a
# multiple of ppo.num_steps, num_steps = env.horizon, segment_length <= num_steps, a plain
# annotator preset) stay in experiments.online_rlhf.validate.
FIELDS = (
    choice("variant", "the variant this config was built from", VARIANTS),
    *prefixed("", ppo_config.FIELDS, exclude=("reward",)),
    integers("seeds", "independent seeds", lo=0, nonempty=True),
    choices("modes", "reward modes compared", ("offline", "online", "gold"), nonempty=True),
    string("annotator", "a preset of one teacher (e.g. 'oracle', 'stochastic')"),
    choice("reference", "pi_ref: pi_SFT trained here (or ref_checkpoint), or a fixed random policy",
           ("sft", "random")),
    *prefixed("sft.", sft.FIELDS),
    integer("reward.ensemble_size", "reward-model ensemble members"),
    widths("reward.hidden", "the reward MLP's layer widths"),
    choice("reward.aggregation", "how the members' per-step rewards combine", rlhf_pipeline.AGGREGATIONS),
    real("reward.lam", "weight of the members' spread in mean_minus_std"),
    real("reward.scale", "factor on the learned reward"),
    integer("reward.segment_length", "steps per preference segment"),
    integer("reward.init_steps", "training steps of the first fit"),
    integer("reward.refit_steps", "training steps of each warm-started refit"),
    integer("reward.batch_size", "pairs per fit step"),
    real("reward.stop_accuracy", "minibatch accuracy at which a fit stops (1 = never early)", 0.0, 1.0,
         open_lo=True),
    *prefixed("reward.", sft.OPTIMIZER_FIELDS),
    *prefixed("reward.", scaling_sweep.LOSS_FIELDS),
    integer("online.budget", "labels per run"),
    real("online.initial_fraction", "share of the budget labelled before training", 0.0, 1.0, open_lo=True),
    integer("online.rm_every", "environment steps per environment between collections"),
    integer("online.window", "labels the online reward model trains on (FIFO)"),
    integer("online.latency", "updates between a collection and its labels' arrival", lo=0),
    choice("online.query", "how queries are selected", ("uniform", "disagreement", "entropy", "mean_entropy",
                                                        "logit", "probability", "label")),
    real("online.oversampling", "candidates per query for the active methods", 1.0),
    integer("online.reference_rollouts", "pi_SFT rollouts: offline data and the annotator's scale"),
    integer("eval.n_episodes", "evaluation episodes"),
    seed("eval.seed"),
)
UNCHECKED = {}
