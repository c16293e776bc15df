"""Reward over-optimisation: sweep β, plot gold and proxy return against d = √KL, fit
R(d) = d·(α − β_g·log d) (Gao et al., 2023) to both curves.

  python -m experiments.overoptimization --config configs/overoptimization.py:quick --workdir runs/overopt_quick

All β values train in one vmapped program (β is a traced hyper-parameter). Writes
overopt_points.csv, overopt_fit.json (parameters with 95 % intervals) and overopt.png.

Variants: quick / default start from a random policy on the in-run reward fit (the baseline);
quick_from_sft starts from π_SFT on the pipeline's saved reward model, both read from an
``experiments.rlhf_pipeline`` workdir:

  python -m experiments.overoptimization --config configs/overoptimization.py:quick_from_sft \
      --config.pipeline_workdir=runs/pipeline --workdir runs/overopt_sft
"""
import ml_collections

from configs import ppo
from rlhf_jax.config_schema import reals, string


VARIANTS = ("quick", "default", "quick_from_sft")


def get_config(arg: str = "default") -> ml_collections.ConfigDict:
    if arg not in ("quick", "default", "quick_from_sft"):
        raise ValueError(f"configs/overoptimization.py: field 'variant': expected 'quick', 'default' or "
                         f"'quick_from_sft', got {arg!r}")
    from_sft = arg == "quick_from_sft"
    arg = "quick" if from_sft else arg
    c = ppo.get_config(arg)
    # An rlhf_pipeline workdir: π_SFT (sft/checkpoints/sft) and its reward model (reward_model/stage.json).
    c.pipeline_workdir = ""
    c.kl.schedule = "fixed"
    c.betas = (0.0, 0.01, 0.03, 0.1, 0.3) if arg == "quick" else (0.0, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
    if arg == "quick":
        c.ppo.num_envs, c.ppo.num_updates = 32, 50
    if from_sft:  # the pipeline's PPO settings for fine-tuning π_SFT (configs/rlhf_pipeline.py)
        c.env.tasks = ("reach", "reach_avoid")
        c.ppo.learning_rate, c.ppo.value_warmup_updates = 2e-5, 5
        c.betas = (0.0, 0.01, 0.03, 0.1, 0.3)
    return c


# --- Field descriptions (rlhf_jax.config_schema): checked before the job writes or compiles ------
FIELDS = (
    *ppo.FIELDS,
    string("pipeline_workdir", "an rlhf_pipeline workdir: pi_SFT and its reward model ('' = none)"),
    reals("betas", "KL betas of the sweep", 0.0, nonempty=True),
)
UNCHECKED = {}
