"""PPO-RLHF: a policy optimised against a learned reward model with a KL penalty to π_ref.

  python -m experiments.ppo_rlhf --config configs/ppo.py:quick --workdir runs/ppo_quick
  python -m experiments.ppo_rlhf --config configs/ppo.py:default --workdir runs/ppo

Override fields on the command line, e.g. ``--config.kl.schedule=adaptive``. reward.kind:
"gold" (the rubric itself, an oracle baseline), "learned" (a Markovian reward ensemble; with
reward.checkpoint empty it is fitted in the run on gold-labelled segments of scripted-policy
rollouts by rlhf_jax.train.reward.make_reward_fit, see rlhf_jax.train.reward.build_learned_reward)
or "objectives" (saved per-objective heads combined by reward.objectives.<objective>.weight;
docs/objectives.md).
ref_checkpoint: an SFT policy directory (experiments.train_sft writes checkpoints/sft); empty =
start from a random policy, which is then π_ref. FIELDS below describes every field (checked before
a run starts, then rlhf_jax.train.ppo_config.validate_ppo_config's relations). Writes
ppo_metrics.csv, ppo_summary.json, plots and checkpoints/ppo.
"""
import ml_collections

from configs import scaling_sweep, sft
from rlhf_jax.config_schema import Field, boolean, choice, choices, integer, prefixed, real, reals, seed, string, widths


VARIANTS = ("quick", "default")


def get_config(arg: str = "default") -> ml_collections.ConfigDict:
    if arg not in ("quick", "default"):
        raise ValueError(f"configs/ppo.py: field 'variant': expected 'quick' or 'default', got {arg!r}")
    quick = arg == "quick"
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.env = ml_collections.ConfigDict({"robot": "panda", "tasks": ("reach",), "dt": 0.05, "horizon": 50})
    c.model = ml_collections.ConfigDict({"hidden": (64, 64) if quick else (128, 128), "context_dim": 16,
                                         "squash": True, "state_dependent_std": False,
                                         "log_std_min": -5.0, "log_std_max": 1.0})
    c.ref_checkpoint = ""
    c.ppo = ml_collections.ConfigDict({
        "num_envs": 64 if quick else 2048, "num_steps": 50, "num_updates": 60 if quick else 500,
        "update_epochs": 4, "num_minibatches": 4 if quick else 32, "gamma": 0.99, "gae_lambda": 0.95,
        "clip_eps": 0.2, "vf_clip": 10.0, "vf_coef": 0.5, "ent_coef": 0.0, "max_grad_norm": 0.5,
        "learning_rate": 1e-3 if quick else 3e-4, "adam_eps": 1e-5, "weight_decay": 0.0,
        "normalize_advantages": True, "value_hidden": (64, 64),
        # Updates that fit only the value function before the policy moves (0 = none).
        "value_warmup_updates": 0,
        # Fine-tuning from π_ref: a floor on the policy's log σ (None = π_ref's own σ), for π
        # and π_ref alike; π_SFT's σ ≈ 0.03 otherwise leaves PPO almost nothing to explore with.
        "log_std_floor": ml_collections.config_dict.placeholder(float)})
    # beta: fixed value, adaptive start, or anneal start; estimator k1 | k3.
    c.kl = ml_collections.ConfigDict({
        "beta": 0.02, "schedule": "fixed", "estimator": "k1", "target": 6.0, "horizon": 10_000,
        "beta_end": 0.001, "total_updates": c.ppo.num_updates})
    c.reward = ml_collections.ConfigDict({
        "kind": "learned", "checkpoint": "", "ensemble_size": 3, "aggregation": "mean", "lam": 1.0,
        "scale": 1.0, "hidden": (32, 32), "fit_episodes": 64 if quick else 512, "fit_steps": 300 if quick else 2000,
        "segment_length": 25, "pairs_per_step": 256})
    # The in-run fit: plain Adam, no clipping in effect, no decay, hard gold labels.
    c.reward.optimizer = ml_collections.ConfigDict({
        "learning_rate": 3e-3, "schedule": "constant", "warmup_steps": 0, "weight_decay": 0.0, "grad_clip": 1e6})
    c.reward.loss = ml_collections.ConfigDict({"margin": 0.0, "label_smoothing": 0.0, "center_coef": 0.0})
    # reward.kind "objectives": one saved head per objective (the sweep's `objectives` option, a
    # Markovian model), combined as sum_o weight_o * r_o; an objective of weight 0 needs no checkpoint.
    c.reward.objectives = ml_collections.ConfigDict({
        o: ml_collections.ConfigDict({"checkpoint": "", "weight": 1.0})
        for o in ("task", "safety", "smoothness", "efficiency")})
    c.safety = ml_collections.ConfigDict({
        "enabled": True, "mode": "penalty", "joint_margin": 0.05, "speed_frac": 0.8,
        "workspace": (0.0, -0.8, 0.0, 0.9, 0.8, 1.0), "clearance": 0.02, "weights": (0.0, 0.0, 0.0, 0.0)})
    c.log_every = 5 if quick else 20
    # CSV/JSON are always written; TensorBoard event files (tensorboardX) and W&B on request.
    c.log = ml_collections.ConfigDict({"tensorboard": False, "wandb": False})
    return c


# --- Field descriptions (rlhf_jax.config_schema): checked before the job writes or compiles ------
# Relations between fields (num_minibatches divides num_envs x num_steps, reward.segment_length <=
# env.horizon, log_std_floor within the model's clip, the anneal's ends > 0, the checkpoints'
# directories) stay in rlhf_jax.train.ppo_config.validate_ppo_config.
REWARD_FIELDS = (   # the learned reward PPO optimises (rlhf_jax.train.reward.build_learned_reward)
    choice("reward.kind", "'gold' (the rubric), 'learned' (a reward-model ensemble) or 'objectives' (saved "
           "per-objective heads, weighted)", ("gold", "learned", "objectives")),
    real("reward.objectives.*.weight", "the objective's weight in the combined reward (0 = unused)", 0.0),
    string("reward.objectives.*.checkpoint", "the objective's saved head (a reward-model directory)"),
    string("reward.checkpoint", "a saved reward-model directory ('' = fit one in the run)"),
    integer("reward.ensemble_size", "reward-model ensemble members"),
    choice("reward.aggregation", "how the members' per-step rewards combine", ("mean", "min", "mean_minus_std")),
    real("reward.lam", "weight of the members' spread in mean_minus_std"),
    real("reward.scale", "factor on the learned reward"),
    widths("reward.hidden", "the reward MLP's layer widths"),
    integer("reward.fit_episodes", "scripted-policy episodes the in-run fit labels"),
    integer("reward.fit_steps", "training steps of the in-run fit"),
    integer("reward.segment_length", "steps per preference segment"),
    integer("reward.pairs_per_step", "preference pairs per fit step"),
    *prefixed("reward.", sft.OPTIMIZER_FIELDS),
    *prefixed("reward.", scaling_sweep.LOSS_FIELDS),
)
FIELDS = (
    seed("seed"),
    choice("env.robot", "the arm PPO controls", "rlhf_jax.envs.robots:ROBOTS"),
    choices("env.tasks", "tasks the environments draw from", "rlhf_jax.envs.tasks:TASKS", nonempty=True),
    real("env.dt", "control period in seconds", 0.0, open_lo=True),
    integer("env.horizon", "steps per episode"),
    *sft.MODEL_FIELDS,
    string("ref_checkpoint", "an SFT checkpoint directory for pi_ref ('' = a random policy)"),
    integer("ppo.num_envs", "parallel environments"),
    integer("ppo.num_steps", "environment steps per update and environment"),
    integer("ppo.num_updates", "PPO updates"),
    integer("ppo.update_epochs", "passes over each update's batch"),
    integer("ppo.num_minibatches", "minibatches per pass"),
    real("ppo.gamma", "discount factor", 0.0, 1.0),
    real("ppo.gae_lambda", "GAE lambda", 0.0, 1.0),
    real("ppo.clip_eps", "PPO ratio clip", 0.0, open_lo=True),
    real("ppo.vf_clip", "value clip (None = no clip)", 0.0, open_lo=True, optional=True),
    real("ppo.vf_coef", "value-loss weight", 0.0),
    real("ppo.ent_coef", "entropy-bonus weight"),
    real("ppo.max_grad_norm", "global gradient-norm clip", 0.0, open_lo=True),
    real("ppo.learning_rate", "Adam learning rate", 0.0),
    real("ppo.adam_eps", "Adam epsilon", 0.0, open_lo=True),
    real("ppo.weight_decay", "weight decay", 0.0),
    boolean("ppo.normalize_advantages", "normalise advantages per minibatch"),
    widths("ppo.value_hidden", "the value MLP's layer widths"),
    integer("ppo.value_warmup_updates", "updates that fit only the value function first", lo=0, optional=True),
    Field("ppo.minibatch_layout", "choice", "how minibatches are cut from the batch (same minibatches either way)",
          options="rlhf_jax.train.ppo:MINIBATCH_LAYOUTS", optional=True),
    Field("ppo.flat_optimizer", "boolean", "run Adam on one flat parameter vector (optax.flatten)", optional=True),
    real("ppo.log_std_floor", "floor on the policy's log sigma (None = pi_ref's own)", optional=True),
    real("kl.beta", "KL coefficient: fixed value, adaptive start or anneal start", 0.0),
    choice("kl.schedule", "how beta moves", "rlhf_jax.losses.kl:KL_SCHEDULES"),
    choice("kl.estimator", "per-step KL estimator", "rlhf_jax.losses.kl:KL_ESTIMATORS"),
    real("kl.target", "the adaptive schedule's target KL", 0.0, open_lo=True),
    real("kl.horizon", "the adaptive schedule's horizon in steps", 0.0, open_lo=True),
    real("kl.beta_end", "the anneal's final beta", 0.0, open_lo=True),
    integer("kl.total_updates", "the anneal's length in updates"),
    *REWARD_FIELDS,
    boolean("safety.enabled", "apply the safety constraints"),
    choice("safety.mode", "how a violated constraint acts", "rlhf_jax.envs.constraints:SAFETY_MODES"),
    real("safety.joint_margin", "joint-limit margin in radians", 0.0),
    real("safety.speed_frac", "speed limit as a fraction of qd_max", 0.0, open_lo=True),
    reals("safety.workspace", "workspace box (lo x, y, z, hi x, y, z) in metres", length=6),
    real("safety.clearance", "obstacle clearance in metres", 0.0),
    reals("safety.weights", "penalty per violated step (joint_limit, speed, workspace, obstacle)", 0.0, length=4),
    integer("log_every", "updates between metric rows"),
    boolean("log.tensorboard", "also write TensorBoard event files"),
    boolean("log.wandb", "also log to Weights & Biases"),
)
UNCHECKED = {}
