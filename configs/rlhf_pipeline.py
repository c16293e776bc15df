"""The whole RLHF pipeline: SFT → π_SFT rollouts → annotator labels → reward-model ensemble →
PPO-RLHF (and DPO) from π_SFT → evaluation of every policy on the same episodes.

  python -m experiments.rlhf_pipeline --config configs/rlhf_pipeline.py:quick --workdir runs/pipeline

Variants: quick (Panda and UR5 on reach and reach_avoid; about 3–4 minutes on 2 CPU cores) and
default (every arm × task). Each stage has its own sub-config, the one its own experiment reads
(sft: configs/sft.py, reward_model: configs/scaling_sweep.py, ppo: configs/ppo.py, dpo:
configs/dpo.py); the pipeline fills in the paths that connect them.
"""
import ml_collections

from configs import dpo as dpo_config
from configs import ppo as ppo_config
from configs import scaling_sweep as sweep_config
from configs import sft as sft_config

ALL_ARMS = sft_config.EMBODIMENTS
ALL_TASKS = sft_config.TASKS
# Safety-constraint penalties per violated step (joint_limit, speed, workspace, obstacle): the gold
# rubric's own per-step weights of the matching components (joint_limit 0.5, speed_violation 1.0,
# collision 0.5 for leaving the workspace and for obstacle contact), so a rule costs what the
# rubric says the violation costs — no tuning against the evaluation.
SAFETY_WEIGHTS = (0.5, 1.0, 0.5, 0.5)


def get_config(arg: str = "quick") -> ml_collections.ConfigDict:
    if arg not in ("quick", "default"):
        raise ValueError(f"configs/rlhf_pipeline.py: field 'variant': expected 'quick' or 'default', got {arg!r}")
    quick = arg == "quick"
    c = ml_collections.ConfigDict()
    c.variant = arg
    c.seed = 0
    c.arms = ("panda", "ur5") if quick else ALL_ARMS
    c.tasks = ("reach", "reach_avoid") if quick else ALL_TASKS
    c.annotator = "stochastic"   # label source of the preference pairs (rlhf_jax.preferences.annotators presets)

    c.sft = sft_config.get_config(arg)
    # π_SFT rollouts at several exploration-noise levels (× qd_max): the stage-2 preference data.
    c.rollouts = ml_collections.ConfigDict({
        "noise_levels": (0.05, 0.2, 0.5), "episodes_per_combo": 48 if quick else 128, "seed": 11})

    rm = sweep_config.get_config("quick")
    rm.segment_length, rm.stride = 25, 5
    rm.n_train_pool, rm.n_val, rm.n_test = (2000, 300, 500) if quick else (8000, 1000, 2000)
    rm.n_values = (250, 500, 1000, 2000) if quick else (1000, 2000, 4000, 8000)  # the largest N drives PPO
    rm.seeds, rm.members = (0,), 3
    rm.total_steps, rm.chunk_steps = (800, 400) if quick else (4000, 1000)
    rm.fit.n_bootstrap = 200
    c.reward_model = rm   # conditions, dataset_path and save_models are set by the pipeline

    ppo = ppo_config.get_config(arg)
    ppo.ppo.num_updates = 40 if quick else 300
    ppo.kl.total_updates = ppo.ppo.num_updates
    ppo.ppo.value_warmup_updates = 5
    # π_SFT's std is small (σ ≈ 0.03 before the squash), so PPO's default 1e-3 moves the mean by
    # many σ per update: KL ≈ 500 after one update and gold collapses, even on the gold reward.
    # 2e-5 was the larger of the two rates tried (1e-4, 2e-5) that kept gold-reward PPO improving.
    ppo.ppo.learning_rate = 2e-5
    ppo.kl.beta = 0.05
    ppo.safety.weights = SAFETY_WEIGHTS
    ppo.log_every = 5 if quick else 20
    c.ppo = ppo   # env.robot/tasks, ref_checkpoint and reward.checkpoint are set per arm

    dpo = dpo_config.get_config(arg)
    dpo.dpo.betas, dpo.dpo.loss_types = (0.1,), ("sigmoid",)
    dpo.preferences.segment_length, dpo.preferences.stride = rm.segment_length, rm.stride
    dpo.preferences.n_train, dpo.preferences.n_val, dpo.preferences.n_test = rm.n_train_pool, rm.n_val, rm.n_test
    c.dpo = dpo   # sft_workdir, dataset.path and preferences.teacher are set by the pipeline

    c.eval = ml_collections.ConfigDict({"n_episodes": 32 if quick else 128, "seed": 1234,
                                        "aggregation": "mean"})
    return c
