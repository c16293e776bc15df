"""Online vs offline RLHF at equal label budget: preferences collected from the policy while PPO
trains, a sliding-window reward ensemble, and reward-hacking incidents against offline RLHF.

  python -m experiments.online_rlhf --config configs/online_rlhf.py:quick --workdir runs/online_quick

Variants: quick (π_SFT trained in the run with configs/sft.py:quick, Panda on reach and
reach_avoid, 5 seeds; 7 minutes measured on 2 CPU cores) and tiny (a random π_ref, tiny shapes;
seconds, for tests). ref_checkpoint: an SFT policy directory to start from instead of training
one. Both modes start from the same π_SFT, use the same annotator and spend the same budget:
offline labels online.budget pairs of π_SFT segments before PPO; online labels
initial_fraction of them before PPO and the rest from the policy's own rollouts every rm_every
environment steps per environment, refitting the ensemble on the last `window` labels.
Writes online.csv, incidents.json, online_rlhf.png, claims.md, run_info.json.
"""
import ml_collections

from configs import ppo as ppo_config
from configs import sft as sft_config

VARIANTS = ("quick", "tiny")


def get_config(arg: str = "quick") -> ml_collections.ConfigDict:
    if arg not in VARIANTS:
        raise ValueError(f"configs/online_rlhf.py: field 'variant': expected 'quick' or 'tiny', got {arg!r}")
    tiny = arg == "tiny"
    c = ppo_config.get_config("quick")
    c.variant = arg
    del c.reward  # replaced below: the online ensemble's own fields
    c.seeds = (0, 1) if tiny else (0, 1, 2, 3, 4)
    c.betas = (0.02,)  # KL coefficients (fixed schedule); runs = seeds × betas, one vmapped program
    c.modes = ("offline", "online")
    c.annotator = "stochastic"  # a rlhf_jax.preferences.annotators preset (one Boltzmann-rational teacher)
    c.env.tasks = ("reach", "reach_avoid")
    c.env.horizon = 10 if tiny else 50
    # "sft": π_SFT trained in the run (sft block) unless ref_checkpoint is set; "random": a
    # random policy is π_ref (tests and the tiny variant only).
    c.reference = "random" if tiny else "sft"
    c.sft = sft_config.get_config("quick")
    p = c.ppo
    p.num_envs, p.num_steps = (8, 10) if tiny else (32, 50)
    p.num_updates, p.num_minibatches = (6, 2) if tiny else (80, 4)
    # The pipeline's fine-tuning settings for π_SFT (configs/rlhf_pipeline.py), at a lower β so
    # that the proxy can be over-optimised within the run.
    p.learning_rate, p.value_warmup_updates = (1e-3, 0) if tiny else (5e-5, 5)
    c.kl.beta, c.kl.total_updates = 0.02, p.num_updates
    c.log_every = 2 if tiny else 10  # updates per compiled, checkpointed chunk
    c.reward = ml_collections.ConfigDict({
        "ensemble_size": 2 if tiny else 3, "hidden": (16,) if tiny else (64, 64), "aggregation": "mean",
        "lam": 1.0, "scale": 1.0, "segment_length": 5 if tiny else 25,
        "init_steps": 20 if tiny else 400, "refit_steps": 10 if tiny else 150, "batch_size": 16 if tiny else 128,
        # PEBBLE stops reward training at 97 % train accuracy (minibatch accuracy here).
        "stop_accuracy": 0.97})
    c.reward.optimizer = ml_collections.ConfigDict({
        "learning_rate": 3e-3, "schedule": "constant", "warmup_steps": 0, "weight_decay": 0.0, "grad_clip": 1e6})
    c.reward.loss = ml_collections.ConfigDict({"margin": 0.0, "label_smoothing": 0.0, "center_coef": 0.0})
    c.online = ml_collections.ConfigDict({
        "budget": 60 if tiny else 2000,  # labels per run, both modes
        "initial_fraction": 0.1,  # imitation's PreferenceComparisons: 10 % before training
        "rm_every": 20 if tiny else 500,  # environment steps per environment between collections
        "window": 5000,  # labels the online reward model trains on (FIFO)
        "latency": 0,  # updates between a collection and its labels' arrival
        "query": "uniform",  # or a rlhf_jax.query score method, e.g. "disagreement"
        "oversampling": 10.0,  # candidates per query for the active methods
        "reference_rollouts": 2 if tiny else 4})  # π_SFT rollouts: offline data and the annotator's scale
    c.eval = ml_collections.ConfigDict({"rollouts": 1 if tiny else 4, "seed": 1234})  # × num_envs episodes
    return c
