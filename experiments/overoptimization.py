"""Gold vs proxy return as the policy moves away from π_ref, over a β sweep.

  python -m experiments.overoptimization --config configs/overoptimization.py:quick --workdir runs/overopt_quick

Reads top to bottom: reward → one vmapped PPO program over β → points (d = √KL, gold and proxy
return gains over the initial policy, per β and update) → Gao et al.'s fit → JSON, CSV, plot.
"""
from __future__ import annotations

import functools
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from configs import overoptimization as overoptimization_config
from experiments import cli
from experiments.stages.ppo import build_reward, load_reference
from rlhf_jax import config_schema
from rlhf_jax.checkpoint import atomic_write_json, atomic_write_text, prepare_run_dir
from rlhf_jax.errors import ConfigError, describe
from rlhf_jax.plotting import new_figure, save_figure
from rlhf_jax.train import ppo


def gao_curve(d, alpha, beta_g):
    """R(d) = d·(α − β_g·log d), d = √KL (Gao et al., 2023, RL form)."""
    return d * (alpha - beta_g * np.log(d))


def fit_gao(d, r) -> dict:
    """Least-squares fit of gao_curve to points (d > 0); 95 % intervals from the covariance."""
    from scipy.optimize import curve_fit

    keep = d > 1e-3
    popt, pcov = curve_fit(gao_curve, d[keep], r[keep], p0=(1.0, 0.1), maxfev=10_000)
    se = np.sqrt(np.diag(pcov))
    return {name: {"value": float(v), "ci95": [float(v - 1.96 * s), float(v + 1.96 * s)]}
            for name, v, s in zip(("alpha", "beta_g"), popt, se)} | {"n_points": int(keep.sum())}


def from_pipeline(config, config_file: str):
    """config with ref_checkpoint and reward.checkpoint read from ``pipeline_workdir`` (if set): π_SFT
    and the reward model of the pipeline's first reward-model seed (``reward_model/seed_<r>``)."""
    workdir = config.get("pipeline_workdir", "")
    if not workdir:
        return config
    sweeps = os.path.join(workdir, "reward_model")
    seeds = sorted(d for d in (os.listdir(sweeps) if os.path.isdir(sweeps) else []) if d.startswith("seed_"))
    sft = os.path.join(workdir, "sft", "checkpoints", "sft")
    stage = os.path.join(sweeps, seeds[0], "stage.json") if seeds else ""
    if not (os.path.isdir(sft) and os.path.isfile(stage)):
        raise ConfigError(describe(config_file, "pipeline_workdir", "an rlhf_pipeline workdir whose sft and "
                                   "reward_model/seed_<r> stages finished", workdir))
    with open(stage, encoding="utf-8") as f:
        rm = os.path.join(sweeps, seeds[0], json.load(f)["saved"][-1])  # saved: relative to the sweep
    cli.check_artifact(config_file, "pipeline_workdir", sft, "policy")
    cli.check_artifact(config_file, "pipeline_workdir", rm, "reward_model")
    c = config.copy_and_resolve_references()
    c.ref_checkpoint, c.reward.kind, c.reward.checkpoint = sft, "learned", rm
    return c


def validate_config(config, config_file: str = "configs/overoptimization.py") -> None:
    """Each field's domain (``configs/overoptimization.py`` FIELDS: PPO's and the β sweep's), then
    the PPO relations (``ppo.validate_ppo_config``); raises ConfigError."""
    config_schema.validate(config, config_file, overoptimization_config.FIELDS)
    ppo.validate_ppo_config(config, config_file)


def run(config, workdir: str, log=cli.log, config_file: str = "configs/overoptimization.py") -> dict:
    t0 = time.time()
    config = from_pipeline(config, config_file)
    validate_config(config, config_file)  # before the workdir is touched
    cli.check_workdir(workdir, False, config)
    k_reward, k_train = jax.random.split(jax.random.key(config.seed))
    reward_fn, info = build_reward(config, k_reward, config_file)
    ref_vars, policy_model, _ = load_reference(config)
    train = ppo.make_train(config, reward_fn, ref_vars, policy_model)
    betas = jnp.asarray(config.betas, jnp.float32)
    n = len(config.betas)
    hp = {"beta": betas, "clip_eps": jnp.full((n,), config.ppo.clip_eps), "lr": jnp.full((n,), config.ppo.learning_rate)}
    keys = jnp.stack([k_train] * n)  # same seed: runs differ only by β
    _, m = jax.device_get(jax.jit(jax.vmap(train))(keys, hp))
    log(f"trained {n} β values in {time.time() - t0:.0f} s")
    prepare_run_dir(workdir, config.to_json(indent=2, sort_keys=True), False, error=cli.ConfigError)
    d = np.sqrt(np.maximum(m["kl"], 0.0))  # [β, updates]
    gold = m["gold_return"] - m["gold_return"][:, :1]
    proxy = m["proxy_return"] - m["proxy_return"][:, :1]
    rows = ["beta,update,d,kl,gold_gain,proxy_gain"]
    for i, b in enumerate(config.betas):
        for u in range(d.shape[1]):
            rows.append(f"{b},{u + 1},{d[i, u]},{m['kl'][i, u]},{gold[i, u]},{proxy[i, u]}")
    atomic_write_text(os.path.join(workdir, "overopt_points.csv"), "\n".join(rows) + "\n")
    fits = {"gold": fit_gao(d.ravel(), gold.ravel()), "proxy": fit_gao(d.ravel(), proxy.ravel())}
    out = {"reward": info, "betas": list(config.betas), "fits": fits, "wall_s": time.time() - t0,
           "final": {str(b): {"d": float(d[i, -1]), "gold_gain": float(gold[i, -1]),
                              "proxy_gain": float(proxy[i, -1])} for i, b in enumerate(config.betas)}}
    atomic_write_json(os.path.join(workdir, "overopt_fit.json"), out)
    plot(d, gold, proxy, config.betas, fits, os.path.join(workdir, "overopt.png"))
    log(f"fits: {fits}")
    return out


def plot(d, gold, proxy, betas, fits, path):
    fig, ax = new_figure(figsize=(5.5, 4))
    for i, b in enumerate(betas):
        ax.scatter(d[i], gold[i], s=6, marker="o", label=f"gold β={b}")
        ax.scatter(d[i], proxy[i], s=6, marker="x", label=f"proxy β={b}")
    grid = np.linspace(max(d.min(), 1e-2), d.max(), 200)
    for name, style in (("gold", "-"), ("proxy", "--")):
        f = fits[name]
        ax.plot(grid, gao_curve(grid, f["alpha"]["value"], f["beta_g"]["value"]), "k" + style, label=f"{name} fit")
    ax.set_xlabel("d = √KL(π ‖ π_ref)")
    ax.set_ylabel("return gain over the initial policy")
    ax.legend(fontsize=6, ncol=2)
    save_figure(fig, path, dpi=110)


def _body(inv: cli.Invocation) -> None:
    run(inv.config, inv.workdir, config_file=inv.config_file)


main = functools.partial(cli.run_main, body=_body, resumable=False)

if __name__ == "__main__":
    sys.exit(main(sys.argv))
