"""Per-doubling gains of reward-model accuracy and of the policy it trains, with bootstrap
intervals, against the literature's claim; downstream.csv, fit.json and downstream.png."""
from __future__ import annotations

import os

import numpy as np

from rlhf_jax.checkpoint import atomic_write_csv, atomic_write_json
from rlhf_jax.plotting import new_figure, save_figure

CLAIM = {"text": "each doubling of preference data improves reward-model accuracy by 8-12%, which translates "
                 "to a 5-8% improvement in downstream policy performance",
         "accuracy": (0.08, 0.12), "policy": (0.05, 0.08)}


def per_doubling(n, y, *, log_y: bool = False) -> float:
    """Least-squares slope of y (or log y) against log2 N: the change per doubling of N."""
    x = np.log2(np.asarray(n, np.float64))
    y = np.log(np.asarray(y, np.float64)) if log_y else np.asarray(y, np.float64)
    return float(np.polyfit(x, y, 1)[0])


def _readings(n, acc, gold, success, sft_gold) -> dict:
    err = np.maximum(1.0 - np.asarray(acc), 1e-6)
    return {
        "accuracy_points": per_doubling(n, acc),                       # Δ accuracy per doubling
        "accuracy_relative": float(np.exp(per_doubling(n, acc, log_y=True)) - 1.0),   # × per doubling − 1
        "error_reduction": float(1.0 - np.exp(per_doubling(n, err, log_y=True))),   # 1 − err(2N)/err(N)
        "gold_per_doubling": per_doubling(n, gold),
        "gold_relative_to_sft": per_doubling(n, gold) / abs(sft_gold),
        "success_points": per_doubling(n, success),
    }


def _verdict(ci, claimed) -> str:
    lo, hi = ci
    if claimed[0] <= lo and hi <= claimed[1]:
        return "inside the claimed range"
    if hi < claimed[0] or lo > claimed[1]:
        return "excludes the claimed range"
    return "overlaps the claimed range (not decisive)"


def fit_doublings(rows: list[dict], sft_gold: float, n_bootstrap: int, seed: int = 0) -> dict:
    """Per-doubling readings with 95% bootstrap intervals (points resampled within each N)."""
    cols = {k: np.asarray([r[k] for r in rows], np.float64) for k in ("n", "rm_test_accuracy", "gold_return", "success")}
    args = lambda idx: (cols["n"][idx], cols["rm_test_accuracy"][idx], cols["gold_return"][idx], cols["success"][idx], sft_gold)
    point = _readings(*args(np.arange(len(rows))))
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(cols["n"] == n) for n in np.unique(cols["n"])]
    boots = [_readings(*args(np.concatenate([rng.choice(g, len(g)) for g in groups]))) for _ in range(n_bootstrap)]
    out = {}
    for k, v in point.items():
        b = np.asarray([x[k] for x in boots])
        out[k] = {"value": v, "ci95": [float(np.nanpercentile(b, 2.5)), float(np.nanpercentile(b, 97.5))]}
    claims = {f"accuracy ({k})": _verdict(out[k]["ci95"], CLAIM["accuracy"])
              for k in ("accuracy_relative", "error_reduction")}
    claims["accuracy (points, as a fraction)"] = _verdict(out["accuracy_points"]["ci95"], CLAIM["accuracy"])
    claims["policy (gold relative to |SFT gold|)"] = _verdict(out["gold_relative_to_sft"]["ci95"], CLAIM["policy"])
    claims["policy (success points, as a fraction)"] = _verdict(out["success_points"]["ci95"], CLAIM["policy"])
    return {"per_doubling": out, "claim": CLAIM["text"], "verdicts": claims}


def write_outputs(workdir: str, rows: list[dict], sft_eval: dict, config, *, wall_s: float, ppo_s: float) -> dict:
    atomic_write_csv(os.path.join(workdir, "downstream.csv"), rows)
    fit = fit_doublings(rows, sft_eval["gold_return"], int(config.n_bootstrap), config.pipeline.seed)
    by_n = {}
    for r in rows:
        by_n.setdefault(r["n"], []).append(r)
    fit["by_n"] = {str(n): {k: float(np.mean([r[k] for r in rs])) for k in
                            ("rm_test_accuracy", "gold_return", "success", "rm_accuracy_on_policy", "kl_final")}
                   for n, rs in sorted(by_n.items())}
    fit.update(sft=sft_eval, points=len(rows), arm=config.arm, tasks=list(config.pipeline.tasks),
               wall_s=round(wall_s, 1), ppo_program_s=round(ppo_s, 1))
    atomic_write_json(os.path.join(workdir, "fit.json"), fit)
    ns = np.asarray(sorted(by_n))
    fig, (a1, a2) = new_figure(1, 2, figsize=(10, 3.8))
    for key, label in (("rm_test_accuracy", "test pairs (π_SFT rollouts)"), ("rm_accuracy_on_policy", "on the PPO policy's episodes")):
        a1.scatter([r["n"] for r in rows], [r[key] for r in rows], s=8, alpha=0.5)
        a1.plot(ns, [fit["by_n"][str(n)][key] for n in ns], "-o", label=label)
    a1.set_xscale("log", base=2)
    a1.set(xlabel="preference pairs N", ylabel="reward-model accuracy", title="reward model")
    a1.legend(fontsize=7)
    a2.scatter([r["n"] for r in rows], [r["gold_return"] for r in rows], s=8, alpha=0.5)
    a2.plot(ns, [fit["by_n"][str(n)]["gold_return"] for n in ns], "-o", label="PPO-RLHF gold return")
    a2.axhline(sft_eval["gold_return"], color="k", ls="--", label="π_SFT")
    a2.set_xscale("log", base=2)
    a2.set(xlabel="preference pairs N", ylabel="gold return", title="policy")
    ax2 = a2.twinx()
    ax2.plot(ns, [fit["by_n"][str(n)]["success"] for n in ns], "-s", color="tab:green", label="success")
    ax2.set_ylabel("success rate")
    a2.legend(fontsize=7, loc="lower right")
    save_figure(fig, os.path.join(workdir, "downstream.png"), dpi=110)
    return fit
