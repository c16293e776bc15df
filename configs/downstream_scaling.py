"""Downstream scaling: for each N of a reward-model sweep and each seed, PPO from the same π_SFT on
that N's reward model — every (N, reward-model seed, PPO seed) point in one vmapped program.

  python -m experiments.downstream_scaling --config configs/downstream_scaling.py:quick --workdir runs/downstream

The SFT, rollout and reward-model stages are the RLHF pipeline's (configs/rlhf_pipeline.py, under
``pipeline``), with the sweep saving an ensemble for every (N, seed). Variants: quick (Panda on
reach and reach_avoid, 4 N × 2 reward-model seeds × 2 PPO seeds) and default.
"""
import ml_collections

from configs import rlhf_pipeline


def get_config(arg: str = "quick") -> ml_collections.ConfigDict:
    if arg not in ("quick", "default"):
        raise ValueError(f"configs/downstream_scaling.py: field 'variant': expected 'quick' or 'default', got {arg!r}")
    quick = arg == "quick"
    c = ml_collections.ConfigDict()
    c.variant = arg
    c.pipeline = rlhf_pipeline.get_config(arg)
    if quick:
        rlhf_pipeline.single_seed_settings(c.pipeline)
    c.pipeline.reward_model.seeds = (0, 1) if quick else (0, 1, 2)
    c.arm = "panda"                 # PPO closes over one robot: one vmapped program per arm
    c.ppo_seeds = (0, 1) if quick else (0, 1, 2, 3)
    c.n_bootstrap = 1000            # resamples of the points for the per-doubling intervals
    return c
