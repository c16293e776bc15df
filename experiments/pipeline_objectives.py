"""The pipeline's comparison of PPO on combined objective heads with PPO on the scalar reward model
(``compare_objectives``; docs/rlhf_pipeline.md, "Scalar reward model vs combined objective heads").

    out = objectives_comparison(scalar_rows, combined_rows, rm_seeds, ppo_seeds, sft_gold, gold_seeds)
    lines = objectives_lines(result)          # the report's sentences and table

Both arms ran under the same (reward-model seed, PPO seed) cells, so every difference is taken cell
by cell (paired) and its interval is the pipeline's cluster bootstrap (reward-model seed the
cluster, ``rlhf_jax.evaluation.seed_statistics``). The criterion, fixed before any run: the gold
return's difference alone decides (interval above 0: the combination is better; below: the scalar
model; else none resolved); the safety components describe where the policies differ.
"""
from __future__ import annotations

import numpy as np

from rlhf_jax.evaluation.seed_statistics import cluster_interval, fraction_recovered

# The gold rubric's safety components (Σ_t per episode, unweighted) and the share of episodes with
# any violation, as the evaluation rows hold them.
SAFETY_COMPONENTS = ("clearance", "collision", "joint_limit", "speed_violation")
SAFETY_KEYS = SAFETY_COMPONENTS + ("violations",)


def cell_matrix(rows, key: str, rm_seeds, ppo_seeds) -> np.ndarray:
    """[reward-model seeds, PPO seeds] of ``key`` (a row field, or a gold component's name) from
    (rm_seed, ppo_seed, row) triples."""
    def value(row):
        return row["gold_components"][key] if key in SAFETY_COMPONENTS else row[key]

    at = {(r, p): value(row) for r, p, row in rows}
    return np.asarray([[at[(r, p)] for p in ppo_seeds] for r in rm_seeds], np.float64)


def verdict(difference: dict) -> str:
    """The criterion on the paired gold difference combined − scalar (its 95% interval)."""
    lo, hi = difference["ci95"]
    if lo > 0:
        return "combined better"
    if hi < 0:
        return "scalar better"
    return "no difference resolved"


def objectives_comparison(scalar_rows, combined_rows, rm_seeds, ppo_seeds, sft_gold: float, gold_seeds) -> dict:
    """Scalar (the headline runs) vs combined heads, paired by cell: each arm's gold gain over π_SFT
    and fraction of PPO-on-gold's gain recovered, the paired gold difference and its verdict, and per
    safety key each arm's mean and the paired difference, all with cluster-bootstrap intervals."""
    R, P = list(rm_seeds), list(ppo_seeds)
    arms = {"scalar": scalar_rows, "combined": combined_rows}
    gold = {name: cell_matrix(rows, "gold_return", R, P) for name, rows in arms.items()}
    out = {name: {"gain": cluster_interval(g - sft_gold), "fraction_recovered": fraction_recovered(g, sft_gold, gold_seeds)}
           for name, g in gold.items()}
    diff = cluster_interval(gold["combined"] - gold["scalar"])
    out["combined_minus_scalar"] = dict(diff, verdict=verdict(diff))
    out["safety"] = {}
    for key in SAFETY_KEYS:
        m = {name: cell_matrix(rows, key, R, P) for name, rows in arms.items()}
        out["safety"][key] = {"scalar": cluster_interval(m["scalar"]), "combined": cluster_interval(m["combined"]),
                              "combined_minus_scalar": cluster_interval(m["combined"] - m["scalar"])}
    return out


def _ci(x: dict, fmt: str = "+.2f") -> str:
    return f"{x['mean']:{fmt}} [{x['ci95'][0]:{fmt}}, {x['ci95'][1]:{fmt}}]"


def objectives_lines(result: dict) -> list[str]:
    """Markdown lines of the comparison (none when the run did not make it)."""
    o = result.get("objectives")
    if not o:
        return []
    d, s, c = o["combined_minus_scalar"], o["scalar"], o["combined"]
    weights = "; ".join(f"seed {seed}: " + ", ".join(f"{k} {w:.2f}" for k, w in ws.items())
                        for seed, ws in o.get("weights", {}).items())
    lines = [f"Combined objective heads vs the scalar reward model (same pairs, same PPO seeds; weights s_o / s: "
             f"{weights}): gold − π_SFT scalar {_ci(s['gain'])}, combined {_ci(c['gain'])}; fraction of PPO-on-gold's "
             f"gain recovered scalar {s['fraction_recovered']['fraction']:.2f}, combined "
             f"{c['fraction_recovered']['fraction']:.2f}; combined − scalar (paired) {_ci(d)} gold: **{d['verdict']}** "
             f"(half-width {d['half_width']:.2f}).", "",
             "| safety (Σ_t per episode; violations: share of episodes) | scalar | combined | combined − scalar (paired) |",
             "|---|---|---|---|"]
    for key, v in o["safety"].items():
        fmt = ".1%" if key == "violations" else "+.3f"
        lines.append(f"| {key} | {_ci(v['scalar'], fmt)} | {_ci(v['combined'], fmt)} | "
                     f"{_ci(v['combined_minus_scalar'], '+.1%' if key == 'violations' else '+.3f')} |")
    return lines
