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
start from a random policy, which is then π_ref. rlhf_jax.train.ppo.validate_ppo_config checks
every field before a run starts. Writes ppo_metrics.csv, ppo_summary.json, plots and checkpoints/ppo.
"""
import ml_collections


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
