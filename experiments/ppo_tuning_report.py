"""Report of the PPO-on-gold grid: per setting (log-σ floor, learning rate, β) the fraction of the
SFT → expert gold gap recovered, with a Student-t interval over seeds (the independent unit); the
setting chosen (highest mean fraction); and whether it reaches the target. Writes grid.csv,
summary.json and ppo_tuning.png; renders the docs block from a committed summary.json.

  python -m experiments.ppo_tuning_report results/ppo_tuning_quick --docs docs/ppo.md
"""
from __future__ import annotations

import os
import sys

import numpy as np

from experiments.doc_blocks import render_main
from rlhf_jax.checkpoint import atomic_write_csv, atomic_write_json
from rlhf_jax.evaluation.seed_statistics import t_interval
from rlhf_jax.plotting import new_figure, save_figure

DOCS_BLOCK = "ppo-tuning-table"
SETTING = ("log_std_floor", "learning_rate", "beta")


def summarise(rows: list[dict], sft_gold: float, expert_gold: float, target: float) -> dict:
    """Per setting: gold return and fraction of the gap, each a t-interval over seeds; the choice
    (highest mean fraction) and the verdict against ``target``."""
    gap = expert_gold - sft_gold
    settings = {}
    for r in rows:
        settings.setdefault(tuple(r[k] for k in SETTING), []).append(r)
    out = []
    for key, runs in settings.items():
        gold = [r["gold_return"] for r in runs]
        out.append({"setting": dict(zip(SETTING, key)), "seeds": len(runs), "gold_return": t_interval(gold),
                    "fraction": t_interval((np.asarray(gold) - sft_gold) / gap),
                    "kl_final": float(np.mean([r["kl_final"] for r in runs]))})
    choice = max(out, key=lambda s: s["fraction"]["mean"])
    frac, (lo, hi) = choice["fraction"]["mean"], choice["fraction"]["ci95"]
    reached = frac >= target
    where = "above" if lo >= target else ("below" if hi < target else "across")
    verdict = (f"{'reached' if reached else 'not reached'}: the {'chosen' if reached else 'best'} setting recovers "
               f"{frac:.0%} of the gap on average over seeds (target {target:.0%}); its 95% interval over seeds, "
               f"[{lo:.2f}, {hi:.2f}], lies {where} the target")
    return {"sft_gold": sft_gold, "expert_gold": expert_gold, "gap": gap, "target_fraction": target,
            "settings": out, "choice": choice, "reached": bool(reached), "verdict": verdict}


def plot(summary: dict, path: str) -> None:
    """Fraction of the gap (mean, 95% interval over seeds) against the learning rate, one line per
    (floor, β); with a budget curve, against the number of updates instead."""
    fig, ax = new_figure(1, 1, figsize=(6.5, 4))
    if "budget_curve" in summary:   # along the budget: fraction against updates, one line per setting
        by_setting = {}
        for p in summary["budget_curve"]:
            by_setting.setdefault(tuple(p["setting"][k] for k in SETTING), []).append(p)
        for key, pts in by_setting.items():
            y = np.array([p["fraction"]["mean"] for p in pts])
            ci = np.array([p["fraction"]["ci95"] for p in pts]).T
            ax.errorbar([p["updates"] for p in pts], y, yerr=np.abs(ci - y), marker="o", capsize=3,
                        label=", ".join(f"{k} {v:g}" for k, v in zip(SETTING, key)))
        ax.legend(fontsize=7)
        ax.axhline(summary["target_fraction"], color="grey", ls="--", lw=1)
        ax.set(xlabel="PPO updates", ylabel="fraction of the SFT → expert gold gap")
        save_figure(fig, path, dpi=110)
        return
    lines = {}
    for s in summary["settings"]:
        lines.setdefault((s["setting"]["log_std_floor"], s["setting"]["beta"]), []).append(s)
    for (floor, beta), pts in sorted(lines.items()):
        pts = sorted(pts, key=lambda s: s["setting"]["learning_rate"])
        x = [p["setting"]["learning_rate"] for p in pts]
        y = np.array([p["fraction"]["mean"] for p in pts])
        ci = np.array([p["fraction"]["ci95"] for p in pts]).T
        ax.errorbar(x, y, yerr=np.abs(ci - y), marker="o", capsize=3, label=f"floor {floor:g}, β {beta:g}")
    ax.axhline(summary["target_fraction"], color="grey", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("fraction of the SFT → expert gold gap")
    ax.legend(fontsize=7)
    save_figure(fig, path, dpi=110)


def budget_curve(rows: list[dict], sft_gold: float, expert_gold: float) -> list[dict]:
    """Per setting and number of updates: the fraction of the gap, a t-interval over seeds."""
    groups = {}
    for r in rows:
        groups.setdefault((tuple(r[k] for k in SETTING), r["updates"]), []).append(r["gold_return"])
    gap = expert_gold - sft_gold
    return [{"setting": dict(zip(SETTING, key)), "updates": updates,
             "fraction": t_interval((np.asarray(gold) - sft_gold) / gap)}
            for (key, updates), gold in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1]))]


def write_outputs(workdir: str, rows: list[dict], sft_gold: float, expert_gold: float, config, wall_s: float) -> dict:
    """grid.csv, summary.json (with the run's wall time) and ppo_tuning.png; returns the summary.
    The choice is made at the full budget; with ``eval_every`` the summary adds the budget curve."""
    final = [r for r in rows if r.get("updates", config.num_updates) == config.num_updates]
    summary = summarise(final, sft_gold, expert_gold, float(config.target_fraction))
    if len({r.get("updates") for r in rows}) > 1:
        summary["budget_curve"] = budget_curve(rows, sft_gold, expert_gold)
    summary.update(arm=config.arm, tasks=list(config.tasks), num_updates=int(config.num_updates),
                   episodes=int(config.pipeline.eval.n_episodes), wall_s=round(wall_s, 1))
    atomic_write_csv(os.path.join(workdir, "grid.csv"), rows)
    atomic_write_json(os.path.join(workdir, "summary.json"), summary)
    plot(summary, os.path.join(workdir, "ppo_tuning.png"))
    return summary


def docs_block(summary: dict, results_dir: str) -> str:
    """The docs page's generated block from a committed summary.json."""
    head = (f"Generated by `python -m experiments.ppo_tuning_report {results_dir} --docs docs/ppo.md` from the "
            f"committed `{results_dir}/summary.json`: {summary['arm']} on {', '.join(summary['tasks'])}, "
            f"{summary['num_updates']} updates, {summary['episodes']} evaluation episodes per run, "
            f"{summary['settings'][0]['seeds']} seeds per setting, {summary['wall_s'] / 60:.0f} min on the machine "
            f"that made it. π_SFT gold {summary['sft_gold']:.2f}, expert {summary['expert_gold']:.2f}.")
    lines = [head, "", "| log σ floor | learning rate | β | gold return [95% CI] | fraction of the gap [95% CI] "
             "| KL |", "|---|---|---|---|---|---|"]
    for s in sorted(summary["settings"], key=lambda s: -s["fraction"]["mean"]):
        g, f, st = s["gold_return"], s["fraction"], s["setting"]
        lines.append(f"| {st['log_std_floor']:g} | {st['learning_rate']:g} | {st['beta']:g} | {g['mean']:.2f} "
                     f"[{g['ci95'][0]:.2f}, {g['ci95'][1]:.2f}] | {f['mean']:.2f} [{f['ci95'][0]:.2f}, "
                     f"{f['ci95'][1]:.2f}] | {s['kl_final']:.3g} |")
    choice = summary["choice"]["setting"]
    lines += ["", f"Choice (highest mean fraction): {choice}; {summary['verdict']}."]
    if "budget_curve" in summary:
        lines += ["", "Budget curve (fraction of the gap [95% CI over seeds] after each number of updates):", "",
                  "| log σ floor | learning rate | β | updates | fraction of the gap [95% CI] |", "|---|---|---|---|---|"]
        for b in summary["budget_curve"]:
            st, f = b["setting"], b["fraction"]
            lines.append(f"| {st['log_std_floor']:g} | {st['learning_rate']:g} | {st['beta']:g} | {b['updates']} | "
                         f"{f['mean']:.2f} [{f['ci95'][0]:.2f}, {f['ci95'][1]:.2f}] |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """``python -m experiments.ppo_tuning_report RESULTS_DIR --docs PAGE``: the page's block from summary.json."""
    return render_main(argv, prog="experiments.ppo_tuning_report", results_file="summary.json",
                       default_page="docs/ppo.md", name=DOCS_BLOCK, render=docs_block)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
