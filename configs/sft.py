"""SFT / behaviour cloning of the reference policy π_ref on the embedded RLDS dataset.

  python -m experiments.train_sft --config configs/sft.py:quick --workdir runs/sft_quick
  python -m experiments.train_sft --config configs/sft.py:default --workdir runs/sft

Override any field on the command line, e.g. ``--config.train.steps=200``. Writes
``sft_metrics.csv``, ``sft_summary.json`` and the orbax checkpoint ``checkpoints/sft``.
"""
import ml_collections

from rlhf_jax.config_schema import Field, boolean, choice, choices, integer, real, seed, string, widths

EMBODIMENTS = ("panda", "ur5", "gen3")   # rlhf_jax.envs.robots.EMBODIMENTS (tests check they match)
TASKS = ("reach", "reach_avoid", "reach_hold", "reach_in_box")  # rlhf_jax.envs.tasks.TASKS


VARIANTS = ("quick", "default")


def get_config(arg: str = "default") -> ml_collections.ConfigDict:
    if arg not in ("quick", "default"):
        raise ValueError(f"configs/sft.py: field 'variant': expected 'quick' or 'default', got {arg!r}")
    quick = arg == "quick"
    c = ml_collections.ConfigDict()
    c.seed = 0
    # Which RLDS dataset (configs/dataset.py variant, built and cached on first use; data_dir ""
    # = $RLHF_JAX_DATA_DIR or ~/.cache/rlhf_jax). Even the quick run needs "default": "tiny"
    # has 16 expert episodes.
    # path: read this RLDS directory instead (e.g. π_SFT rollouts; the variant then only gives
    # the preference defaults).
    c.dataset = ml_collections.ConfigDict({"variant": "default", "data_dir": "", "path": ""})
    # Which behaviour policies count as demonstrations, and whether only successful episodes.
    c.demos = ml_collections.ConfigDict({"policies": ("expert", "expert_noisy"), "only_successful": True})
    c.model = ml_collections.ConfigDict({
        "hidden": (128, 128) if quick else (256, 256), "context_dim": 16, "squash": True,
        "state_dependent_std": True, "log_std_min": -5.0, "log_std_max": 1.0})
    c.optimizer = ml_collections.ConfigDict({
        "learning_rate": 1e-3, "schedule": "cosine", "warmup_steps": 50, "total_steps": 0,  # 0 = train.steps
        "grad_clip": 1.0, "weight_decay": 1e-4})
    c.train = ml_collections.ConfigDict({
        "steps": 3000 if quick else 20000, "batch_size": 256, "log_every": 100 if quick else 500,
        "action_clip": 0.999})
    # DAgger against the scripted expert after behaviour cloning (rlhf_jax.train.dagger): each
    # round rolls the policy out (+ noise × qd_max) on every arm × task, labels the states it
    # visits with expert actions and trains on the union. rounds = 0 is plain BC.
    c.dagger = ml_collections.ConfigDict({
        "rounds": 4, "episodes_per_task": 16, "steps_per_round": 1000 if quick else 4000, "noise": 0.1,
        "seed": 7})
    c.eval = ml_collections.ConfigDict({
        "embodiments": EMBODIMENTS, "tasks": TASKS, "n_episodes": 32 if quick else 128,
        "deterministic": True, "seed": 1234})
    # CSV/JSON are always written; TensorBoard event files (tensorboardX) and W&B on request.
    c.log = ml_collections.ConfigDict({"tensorboard": False, "wandb": False})
    return c


# --- Field descriptions (rlhf_jax.config_schema): checked before the job writes or compiles ------

MODEL_FIELDS = (   # the Gaussian policy network (rlhf_jax.models.policy), shared with PPO's model block
    widths("model.hidden", "the policy MLP's layer widths"),
    integer("model.context_dim", "width of the task/embodiment embedding"),
    boolean("model.squash", "tanh-squash actions into the joint-velocity limits"),
    boolean("model.state_dependent_std", "the policy's log sigma is a function of the state"),
    real("model.log_std_min", "lower clip of the policy's log sigma"),
    real("model.log_std_max", "upper clip of the policy's log sigma"),
)
OPTIMIZER_FIELDS = (   # rlhf_jax.train.state.make_optimizer
    real("optimizer.learning_rate", "peak learning rate", 0.0, open_lo=True),
    choice("optimizer.schedule", "learning-rate schedule after warmup", ("cosine", "constant")),
    integer("optimizer.warmup_steps", "linear warmup steps", lo=0),
    real("optimizer.weight_decay", "AdamW weight decay", 0.0),
    real("optimizer.grad_clip", "global gradient-norm clip", 0.0, open_lo=True),
)
FIELDS = (
    seed("seed"),
    string("dataset.variant", "configs/dataset.py variant the demonstrations come from"),
    Field("dataset.data_dir", "string", "dataset cache directory ('' = $RLHF_JAX_DATA_DIR or ~/.cache/rlhf_jax)",
          optional=True),
    Field("dataset.path", "string", "an RLDS directory read instead of the variant ('' = none)", optional=True),
    choices("demos.policies", "behaviour policies whose episodes count as demonstrations",
            "rlhf_jax.envs.policies:POLICIES", nonempty=True),
    boolean("demos.only_successful", "keep only successful demonstration episodes"),
    *MODEL_FIELDS,
    *OPTIMIZER_FIELDS,
    integer("optimizer.total_steps", "schedule length (0 = train.steps)", lo=0),
    integer("train.steps", "behaviour-cloning steps"),
    integer("train.batch_size", "transitions per step"),
    integer("train.log_every", "steps between metric rows"),
    real("train.action_clip", "|a| bound before the tanh inverse", 0.0, 1.0, open_lo=True, open_hi=True),
    integer("dagger.rounds", "DAgger rounds after behaviour cloning (0 = plain BC)", lo=0),
    integer("dagger.episodes_per_task", "rollouts per arm and task in each DAgger round"),
    integer("dagger.steps_per_round", "training steps per DAgger round"),
    real("dagger.noise", "exploration noise of DAgger rollouts (x qd_max)", 0.0, 1.0),
    seed("dagger.seed"),
    choices("eval.embodiments", "arms the policy is evaluated on", EMBODIMENTS, nonempty=True),
    choices("eval.tasks", "tasks the policy is evaluated on", TASKS, nonempty=True),
    integer("eval.n_episodes", "evaluation episodes per arm and task"),
    boolean("eval.deterministic", "evaluate the policy's mean action"),
    seed("eval.seed"),
    boolean("log.tensorboard", "also write TensorBoard event files"),
    boolean("log.wandb", "also log to Weights & Biases"),
)
UNCHECKED = {}
