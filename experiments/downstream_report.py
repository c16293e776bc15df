"""Report of downstream scaling: per N, the reward model's accuracy (test pairs, the policy's own
episodes), the policy's gold gain over π_SFT and the fraction of PPO-on-gold's gain recovered; a
saturating fit of that fraction vs N; the literature's per-doubling claim judged in every
reading. Every interval comes from one two-stage bootstrap over training seeds (reward-model
seed a cluster shared across N — its pairs are nested — and PPO seed within it; PPO-on-gold's
seeds resampled alongside). Writes downstream.csv, fit.json and downstream.png; renders the docs
block from a committed fit.json.

  python -m experiments.downstream_report results/downstream_quick --docs docs/rlhf_pipeline.md
"""
from __future__ import annotations

import os
import sys

import numpy as np
from scipy.optimize import curve_fit

from experiments.doc_blocks import render_main
from rlhf_jax.checkpoint import atomic_write_csv, atomic_write_json
from rlhf_jax.evaluation.seed_statistics import interval_vs_range, percentile_interval
from rlhf_jax.plotting import new_figure, save_figure

DOCS_BLOCK = "downstream-table"
# Fixed before any number was seen (docs/claims.md): a reading is "inside" when its 95% interval
# lies within the claimed range, "excludes" when it lies wholly outside, else "overlaps".
CLAIM = {"text": "each doubling of preference data improves reward-model accuracy by 8-12%, which translates "
                 "to a 5-8% improvement in downstream policy performance",
         "accuracy": (0.08, 0.12), "policy": (0.05, 0.08)}
READINGS = {"accuracy_points": "accuracy", "accuracy_relative": "accuracy", "error_reduction": "accuracy",
            "gold_relative_to_sft": "policy", "fraction_points": "policy", "success_points": "policy"}


def per_doubling(n, y, *, log_y: bool = False) -> float:
    """Least-squares slope of y (or log y) against log2 N: the change per doubling of N."""
    x = np.log2(np.asarray(n, np.float64))
    y = np.log(np.asarray(y, np.float64)) if log_y else np.asarray(y, np.float64)
    return float(np.polyfit(x, y, 1)[0])


def saturating(n, f_max, n_half):
    """fraction(N) = f_max · N / (N + n_half): rises from 0 and saturates at f_max."""
    return f_max * n / (n + n_half)


N_HALF_FLOOR = 1e-3   # the fit's lower bound on n_half: a fit that ends there is flat at f_max over the data


def fit_saturating(n, fraction) -> tuple[float, float]:
    """(f_max, n_half) by least squares (NaN, NaN when the fit fails)."""
    n, fraction = np.asarray(n, np.float64), np.asarray(fraction, np.float64)
    try:
        (f, h), _ = curve_fit(saturating, n, fraction, p0=(max(fraction.max(), 1e-3), float(np.median(n))),
                              bounds=([-10.0, N_HALF_FLOOR], [10.0, 1e9]), maxfev=5000)
        return float(f), float(h)
    except (RuntimeError, ValueError):
        return float("nan"), float("nan")


def readings(n, acc, gold, success, gold_ref, sft_gold) -> dict:
    """Per-N means [N] -> the per-doubling readings and the saturating fit of the fraction recovered."""
    fraction = (gold - sft_gold) / (gold_ref - sft_gold)
    err = np.maximum(1.0 - acc, 1e-6)
    f_max, n_half = fit_saturating(n, fraction)
    return {"accuracy_points": per_doubling(n, acc), "accuracy_relative": float(np.exp(per_doubling(n, acc, log_y=True)) - 1),
            "error_reduction": float(1 - np.exp(per_doubling(n, err, log_y=True))),
            "gold_relative_to_sft": per_doubling(n, gold) / abs(sft_gold), "fraction_points": per_doubling(n, fraction),
            "success_points": per_doubling(n, success), "fit_f_max": f_max, "fit_n_half": n_half}


def _verdict(ci, claimed) -> str:
    where = interval_vs_range(*ci, *claimed)
    return {"inside": "inside the claimed range", "overlaps": "overlaps the claimed range (not decisive)"}.get(
        where, "excludes the claimed range")


def tables(rows: list[dict]):
    """(N [N], seeds, arrays {key: [N, R, P]}, gold references [G]) from the job's rows."""
    learned = [r for r in rows if r["n"] is not None]
    ns, seeds = sorted({r["n"] for r in learned}), sorted({r["seed"] for r in learned})
    ppo = sorted({r["ppo_seed"] for r in learned})
    at = {(r["n"], r["seed"], r["ppo_seed"]): r for r in learned}
    arrays = {k: np.asarray([[[at[(n, s, p)][k] for p in ppo] for s in seeds] for n in ns], np.float64)
              for k in ("gold_return", "success", "rm_test_accuracy", "rm_accuracy_on_policy")}
    gold_ref = np.asarray([r["gold_return"] for r in rows if r["n"] is None], np.float64)
    return np.asarray(ns, np.float64), seeds, arrays, gold_ref


def analyse(rows: list[dict], sft_gold: float, n_bootstrap: int, seed: int = 0) -> dict:
    """Per-N summaries, the fit and the per-doubling readings, each with its two-stage interval."""
    ns, seeds, a, gold_ref = tables(rows)
    _, R, P = a["gold_return"].shape
    rng = np.random.default_rng(seed)

    def per_n(idx_r, idx_p, idx_g):
        pick = lambda x: x[:, idx_r[:, None], idx_p].mean((1, 2))   # [N]
        ref = gold_ref[idx_g].mean()
        return {"acc": pick(a["rm_test_accuracy"]), "own": pick(a["rm_accuracy_on_policy"]),
                "gold": pick(a["gold_return"]), "success": pick(a["success"]), "ref": ref}

    def reading(m):
        return readings(ns, m["acc"], m["gold"], m["success"], m["ref"], sft_gold)

    point = per_n(np.arange(R), np.tile(np.arange(P), (R, 1)), np.arange(len(gold_ref)))
    boots = [per_n(rng.integers(0, R, R), rng.integers(0, P, (R, P)), rng.integers(0, len(gold_ref), len(gold_ref)))
             for _ in range(n_bootstrap)]
    ci = lambda values: percentile_interval(np.asarray(values)[np.isfinite(values)])
    by_n = {}
    for i, n in enumerate(ns):
        frac = lambda m: (m["gold"][i] - sft_gold) / (m["ref"] - sft_gold)
        by_n[str(int(n))] = {
            "rm_test_accuracy": {"mean": float(point["acc"][i]), "ci95": ci([b["acc"][i] for b in boots])},
            "rm_accuracy_on_policy": {"mean": float(point["own"][i]), "ci95": ci([b["own"][i] for b in boots])},
            "gold_gain": {"mean": float(point["gold"][i] - sft_gold), "ci95": ci([b["gold"][i] - sft_gold for b in boots])},
            "fraction_recovered": {"mean": float(frac(point)), "ci95": ci([frac(b) for b in boots])},
            "success": float(point["success"][i])}
    est, reps = reading(point), [reading(b) for b in boots]
    out = {k: {"value": v, "ci95": ci([r[k] for r in reps])} for k, v in est.items()}
    verdicts = {k: _verdict(out[k]["ci95"], CLAIM[READINGS[k]]) for k in READINGS}
    return {"by_n": by_n, "per_doubling": {k: out[k] for k in READINGS},
            "fit": {"form": "fraction(N) = f_max * N / (N + n_half)", "f_max": out["fit_f_max"], "n_half": out["fit_n_half"]},
            "claim": CLAIM["text"], "verdicts": verdicts, "gold_reference": {"mean": float(gold_ref.mean()),
                                                                           "seeds": len(gold_ref)},
            "reward_model_seeds": len(seeds), "ppo_seeds": P}


def write_outputs(workdir: str, rows: list[dict], refs: dict, config, *, wall_s: float, ppo_s: float) -> dict:
    """downstream.csv, fit.json and downstream.png; returns the fit.json dict."""
    atomic_write_csv(os.path.join(workdir, "downstream.csv"), rows)
    fit = analyse(rows, refs["sft"], int(config.n_bootstrap), int(config.pipeline.seed))
    fit.update(sft_gold=refs["sft"], expert_gold=refs["expert"], points=len(rows), arm=config.arm,
               tasks=list(config.pipeline.tasks), wall_s=round(wall_s, 1), ppo_program_s=round(ppo_s, 1))
    atomic_write_json(os.path.join(workdir, "fit.json"), fit)
    plot(fit, rows, os.path.join(workdir, "downstream.png"))
    return fit


def sorted_ns(fit: dict) -> list[int]:
    """fit.json's N in increasing order (its keys are strings, and JSON files keep them sorted as text)."""
    return sorted(int(n) for n in fit["by_n"])


def fit_note(fit: dict) -> str:
    """What the saturating form can be read for: it rises from 0 at N = 0, so a fit of fractions
    below 0 ends with n_half on its floor, a flat line that describes none of the trend."""
    f = fit["fit"]
    if not np.isfinite(f["n_half"]["value"]):
        return "The fit failed."
    if f["n_half"]["value"] <= 1.01 * N_HALF_FLOOR:
        fractions = [fit["by_n"][str(n)]["fraction_recovered"]["mean"] for n in sorted_ns(fit)]
        sign = "every fraction is below 0 and" if max(fractions) < 0 else "the fractions"
        return (f"The form rises from 0 at N = 0; here {sign} n_half sits on its floor ({N_HALF_FLOOR:g}), so the "
                "fitted curve is a flat line at f_max and describes none of the change with N: read the table.")
    return ""


def plot(fit: dict, rows: list[dict], path: str) -> None:
    ns = np.asarray(sorted_ns(fit), np.float64)
    fig, (a1, a2) = new_figure(1, 2, figsize=(10, 3.8))
    for key, label in (("rm_test_accuracy", "test pairs"), ("rm_accuracy_on_policy", "the policy's own episodes")):
        m = np.asarray([fit["by_n"][str(int(n))][key]["mean"] for n in ns])
        c = np.asarray([fit["by_n"][str(int(n))][key]["ci95"] for n in ns]).T
        a1.errorbar(ns, m, yerr=np.abs(c - m), marker="o", capsize=3, label=label)
    a1.set_xscale("log")
    a1.set(xlabel="preference pairs N", ylabel="reward-model accuracy", title="reward model")
    a1.legend(fontsize=7)
    m = np.asarray([fit["by_n"][str(int(n))]["fraction_recovered"]["mean"] for n in ns])
    c = np.asarray([fit["by_n"][str(int(n))]["fraction_recovered"]["ci95"] for n in ns]).T
    a2.errorbar(ns, m, yerr=np.abs(c - m), marker="o", capsize=3, label="PPO-RLHF (mean, 95% CI over seeds)")
    grid = np.geomspace(ns.min(), ns.max(), 50)
    if np.isfinite(fit["fit"]["f_max"]["value"]):
        a2.plot(grid, saturating(grid, fit["fit"]["f_max"]["value"], fit["fit"]["n_half"]["value"]), "--", label="fit")
    a2.axhline(0.0, color="k", lw=0.8)
    a2.axhline(1.0, color="grey", ls=":", lw=0.8, label="PPO on gold")
    a2.set_xscale("log")
    a2.set(xlabel="preference pairs N", ylabel="fraction of PPO-on-gold's gain", title="policy")
    a2.legend(fontsize=7)
    save_figure(fig, path, dpi=110)


def docs_block(fit: dict, results_dir: str) -> str:
    """The docs page's generated block from a committed fit.json."""
    pct = lambda x: f"{x['value']:+.1%} [{x['ci95'][0]:+.1%}, {x['ci95'][1]:+.1%}]"
    head = (f"Generated by `python -m experiments.downstream_report {results_dir} --docs docs/rlhf_pipeline.md` from "
            f"the committed `{results_dir}/fit.json`: {fit['arm']} on {', '.join(fit['tasks'])}; "
            f"{fit['reward_model_seeds']} reward-model seeds × {fit['ppo_seeds']} PPO seeds per N; π_SFT gold "
            f"{fit['sft_gold']:.2f}, PPO on gold {fit['gold_reference']['mean']:.2f} ({fit['gold_reference']['seeds']} "
            f"seeds), expert {fit['expert_gold']:.2f}; {fit['wall_s'] / 60:.0f} min on the machine that made it (the "
            f"vmapped PPO program {fit['ppo_program_s'] / 60:.0f} min). Intervals: 95%, two-stage bootstrap over seeds.")
    lines = [head, "", "| N | RM test accuracy | RM accuracy on the policy's episodes | gold gain vs π_SFT | "
             "fraction of PPO-on-gold's gain | success |", "|---|---|---|---|---|---|"]
    ci = lambda x, f: f"{x['mean']:{f}} [{x['ci95'][0]:{f}}, {x['ci95'][1]:{f}}]"
    for n in sorted_ns(fit):
        v = fit["by_n"][str(n)]
        lines.append(f"| {int(n):,} | {ci(v['rm_test_accuracy'], '.3f')} | {ci(v['rm_accuracy_on_policy'], '.3f')} | "
                     f"{ci(v['gold_gain'], '+.2f')} | {ci(v['fraction_recovered'], '+.2f')} | {v['success']:.1%} |")
    f = fit["fit"]
    lines += ["", f"Fit: {f['form']}, f_max = {f['f_max']['value']:.2f} [{f['f_max']['ci95'][0]:.2f}, "
              f"{f['f_max']['ci95'][1]:.2f}], n_half = {f['n_half']['value']:.3g} [{f['n_half']['ci95'][0]:.3g}, "
              f"{f['n_half']['ci95'][1]:.3g}]. {fit_note(fit)}".rstrip(), "",
              f"Claim: {fit['claim']}. Per doubling of N:", ""]
    lines += [f"* {k.replace('_', ' ')} ({READINGS[k]}): {pct(fit['per_doubling'][k])}: {fit['verdicts'][k]}"
              for k in READINGS]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """``python -m experiments.downstream_report RESULTS_DIR --docs PAGE``: the page's block from fit.json."""
    return render_main(argv, prog="experiments.downstream_report", results_file="fit.json",
                       default_page="docs/rlhf_pipeline.md", name=DOCS_BLOCK, render=docs_block)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
