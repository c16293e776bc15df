"""Reward over-optimisation: sweep β, plot gold and proxy return against d = √KL, fit
R(d) = d·(α − β_g·log d) (Gao et al., 2023) to both curves.

  python -m experiments.overoptimization --config configs/overoptimization.py:quick --workdir runs/overopt_quick

All β values train in one vmapped program (β is a traced hyper-parameter). Writes
overopt_points.csv, overopt_fit.json (parameters with 95 % intervals) and overopt.png.
"""
import ml_collections

from configs import ppo


def get_config(arg: str = "default") -> ml_collections.ConfigDict:
    if arg not in ("quick", "default"):
        raise ValueError(f"configs/overoptimization.py: field 'variant': expected 'quick' or 'default', got {arg!r}")
    c = ppo.get_config(arg)
    c.kl.schedule = "fixed"
    c.betas = (0.0, 0.01, 0.03, 0.1, 0.3) if arg == "quick" else (0.0, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
    if arg == "quick":
        c.ppo.num_envs, c.ppo.num_updates = 32, 50
    return c
