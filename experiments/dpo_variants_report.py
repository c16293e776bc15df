"""Report of the DPO variants: per variant (log-σ floor, action clip, log-prob reduction, β) the
gold gain over π_SFT with a 95% Student-t interval over DPO seeds (the independent unit: each seed
draws its own pairs and labels and its own training key), the success rate, the held-out
implicit-reward accuracy, and a verdict. π_SFT is one deterministic policy on fixed evaluation
states: a constant, so the gain's interval is the variant's gold interval shifted. Writes
runs.csv, summary.json and dpo_variants.png; renders the docs block from a committed summary.json.

  python -m experiments.dpo_variants_report results/dpo_variants_quick --docs docs/sft_dpo.md
"""
from __future__ import annotations

import os
import sys

import numpy as np

from experiments.doc_blocks import render_main
from rlhf_jax.checkpoint import atomic_write_csv, atomic_write_json
from rlhf_jax.evaluation.seed_statistics import t_interval
from rlhf_jax.plotting import new_figure, save_figure

DOCS_BLOCK = "dpo-variants-table"
BEATS = "beats SFT"


def verdict(ci95) -> str:
    """The verdict on a gain's 95% interval: "beats SFT" only when it lies above 0, "below SFT"
    when it lies below 0, otherwise "not distinguishable from SFT"."""
    lo, hi = ci95
    return BEATS if lo > 0 else ("below SFT" if hi < 0 else "not distinguishable from SFT")


def summarise(rows: list[dict], sft: dict) -> dict:
    """Per variant (in the order of ``rows``): gold return and gold gain over π_SFT, each a
    t-interval over its seeds; mean success rate and mean held-out (test) implicit-reward
    accuracy; the verdict. ``rows``: one per (variant, seed) with variant, log_std_floor,
    action_clip, logp_reduction, beta, seed, gold_return, success_rate, implicit_accuracy;
    ``sft``: {gold_return, success_rate} of π_SFT on the same states."""
    groups = {}
    for r in rows:
        groups.setdefault(r["variant"], []).append(r)
    out = []
    for name, runs in groups.items():
        gold = np.array([r["gold_return"] for r in runs], np.float64)
        gain = t_interval(gold - sft["gold_return"])
        settings = {k: runs[0][k] for k in ("log_std_floor", "action_clip", "logp_reduction", "beta")}
        out.append({"variant": name, **settings, "seeds": [r["seed"] for r in runs],
                    "gold_return": t_interval(gold), "gain": gain,
                    "success_rate": float(np.mean([r["success_rate"] for r in runs])),
                    "implicit_accuracy": float(np.mean([r["implicit_accuracy"] for r in runs])),
                    "verdict": verdict(gain["ci95"])})
    best = max(out, key=lambda v: v["gain"]["mean"])
    return {"sft": dict(sft), "variants": out, "best": best["variant"],
            "beats_sft": [v["variant"] for v in out if v["verdict"] == BEATS]}


def plot(summary: dict, path: str) -> None:
    """Gold gain over π_SFT per variant (mean, 95% interval over seeds), a line at 0."""
    fig, ax = new_figure(1, 1, figsize=(6.5, 4))
    vs = summary["variants"]
    y = np.array([v["gain"]["mean"] for v in vs])
    ci = np.array([v["gain"]["ci95"] for v in vs]).T
    ax.errorbar(np.arange(len(vs)), y, yerr=np.abs(ci - y), fmt="o", capsize=4)
    ax.axhline(0.0, color="grey", ls="--", lw=1)
    ax.set_xticks(np.arange(len(vs)))
    ax.set_xticklabels([v["variant"] for v in vs], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("gold return − π_SFT's (95% CI over seeds)")
    ax.set_title("DPO from π_SFT: variants", fontsize=10)
    save_figure(fig, path, dpi=110)


def write_outputs(workdir: str, rows: list[dict], sft: dict, config, wall_s: float) -> dict:
    """runs.csv, summary.json (with the settings shared by every run and the wall time; β and the
    log-prob reduction are each variant's) and dpo_variants.png; returns the summary."""
    summary = summarise(rows, sft)
    d = config.pipeline.dpo
    summary.update(arms=list(config.pipeline.arms), tasks=list(config.pipeline.tasks),
                   episodes_per_arm_task=int(config.pipeline.eval.n_episodes), annotator=config.pipeline.annotator,
                   dpo={"loss_type": str(d.dpo.loss_types[0]), "steps": int(d.train.steps),
                        "pairs_train": int(d.preferences.n_train)},
                   wall_s=round(wall_s, 1))
    atomic_write_csv(os.path.join(workdir, "runs.csv"), rows)
    atomic_write_json(os.path.join(workdir, "summary.json"), summary)
    plot(summary, os.path.join(workdir, "dpo_variants.png"))
    return summary


def _ci(x: dict, fmt: str = "+.2f") -> str:
    return f"{x['mean']:{fmt}} [{x['ci95'][0]:{fmt}}, {x['ci95'][1]:{fmt}}]"


def _per_variant_dpo(summary: dict) -> bool:
    """Whether the variants record their own log-prob reduction and β; a summary made before they
    did holds one of each in its ``dpo`` block and renders as it did then."""
    return "beta" in summary["variants"][0]


def docs_block(summary: dict, results_dir: str) -> str:
    """The docs page's generated block from a committed summary.json."""
    d, per_variant = summary["dpo"], _per_variant_dpo(summary)
    dpo = (f"DPO {d['loss_type']}, β and log-prob reduction per variant" if per_variant else
           f"DPO {d['loss_type']} at β {d['beta']:g} ({d['logp_reduction']} log-probs)")
    head = (f"Generated by `python -m experiments.dpo_variants_report {results_dir} --docs docs/sft_dpo.md` from "
            f"the committed `{results_dir}/summary.json`: {', '.join(summary['arms'])} on "
            f"{', '.join(summary['tasks'])}, {summary['episodes_per_arm_task']} evaluation episodes per arm × task; "
            f"{dpo}, {d['steps']} steps on {d['pairs_train']} {summary['annotator']} pairs; "
            f"{len(summary['variants'][0]['seeds'])} seeds per variant; {summary['wall_s'] / 60:.0f} min on the "
            f"machine that made it. π_SFT gold {summary['sft']['gold_return']:.2f}, success "
            f"{summary['sft']['success_rate']:.0%}.")
    settings = ["log σ floor", "action clip"] + (["log-probs", "β"] if per_variant else [])
    columns = ["variant", *settings, "gold gain over π_SFT [95% CI]", "success", "held-out implicit accuracy",
               "verdict"]
    lines = [head, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for v in summary["variants"]:
        floor = "—" if v["log_std_floor"] is None else f"{v['log_std_floor']:g}"
        cells = [v["variant"], floor, f"{v['action_clip']:g}"]
        cells += [v["logp_reduction"], f"{v['beta']:g}"] if per_variant else []
        cells += [_ci(v["gain"]), f"{v['success_rate']:.0%}", f"{v['implicit_accuracy']:.3f}", v["verdict"]]
        lines.append("| " + " | ".join(cells) + " |")
    beats = summary["beats_sft"]
    lines += ["", (f"Beats SFT (interval above 0): {', '.join(beats)}." if beats else
                   f"No variant beats SFT (no interval lies above 0); highest mean gain: {summary['best']}.")]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """``python -m experiments.dpo_variants_report RESULTS_DIR --docs PAGE``: the page's block from summary.json."""
    return render_main(argv, prog="experiments.dpo_variants_report", results_file="summary.json",
                       default_page="docs/sft_dpo.md", name=DOCS_BLOCK, render=docs_block)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
