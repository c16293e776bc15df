"""Outputs of ``experiments.online_rlhf``: incidents per run (``rlhf_jax.evaluation.incidents``),
intervals over seeds, the claims table, the figure, and the docs block made from them (in
``DOC_PAGE``, docs/online_rlhf.md).

Per run, from its evaluation episodes (policy and π_SFT on the same initial states, both
scored by the run's final reward ensemble):

* incidents: ``incident_mask`` per task against π_SFT's episodes of that task (the pipeline's
  definition); the run's rate is incidents / episodes; sft_rate: π_SFT's episodes counted
  against themselves (the definition's floor without any optimisation);
* proxy–gold gap: z_proxy − z_gold, z = (mean over the policy's episodes − mean over π_SFT's)
  / std over π_SFT's, so the two returns are compared in the same units (> 0: the reward model
  thinks the policy improved more than the gold rubric does);
* KL to SFT: mean over episodes of Σ_t log π(a_t|s_t) − log π_SFT(a_t|s_t);
* labels per 1,000 environment steps: labels spent / (PPO environment steps, all
  environments / 1,000), overall and for the labels collected while PPO ran.

Intervals are 95 % Student-t intervals over the runs of a mode (seeds × β).
"""
from __future__ import annotations

import json
import os

import numpy as np

from rlhf_jax.checkpoint import atomic_write_csv, atomic_write_json, atomic_write_text
from rlhf_jax.evaluation import incidents as I
from rlhf_jax.plotting import new_figure, save_figure

CLAIM = "~50% fewer reward-hacking incidents than offline RLHF, at 2–3× the annotation throughput"
TABLE_START, TABLE_END = "<!-- online-table:start -->", "<!-- online-table:end -->"
DOC_PAGE = "docs/online_rlhf.md"  # the page holding the block of results/online_quick


def mean_ci(x) -> dict:
    """{"mean", "ci95": [lo, hi]} of x over runs (Student t; a single run has no interval)."""
    from scipy import stats

    x = np.asarray(x, np.float64)
    if len(x) < 2:
        return {"mean": float(x.mean()), "ci95": [float("nan"), float("nan")]}
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return {"mean": float(x.mean()), "ci95": [float(x.mean() - half), float(x.mean() + half)]}


def run_summary(ep: dict, tasks, labels: int, labels_during_ppo: int, env_steps: int) -> dict:
    """One run's numbers from its evaluation episodes ``ep`` {task [N], policy, sft: {proxy,
    gold, violated, kl [N]}}; tasks: the config's task names (task ids in ``ep`` index TASKS)."""
    from rlhf_jax.envs.tasks import task_id

    pol, sft = ep["policy"], ep["sft"]
    masks, own = {}, []
    for name in tasks:
        sel = ep["task"] == task_id(name)
        ref = (sft["proxy"][sel], sft["gold"][sel])
        masks[name] = I.incident_mask(pol["proxy"][sel], pol["gold"][sel], *ref)
        # π_SFT against its own medians: what the definition counts with no optimisation at all.
        own.append(I.incident_mask(ref[0], ref[1], *ref))
    z = lambda k: (pol[k].mean() - sft[k].mean()) / max(float(sft[k].std()), 1e-8)
    return {"seed": ep["seed"], "beta": ep["beta"], **I.incident_summary(masks),
            "sft_rate": float(np.mean(np.concatenate(own))),
            "gold_return": float(pol["gold"].mean()),
            "gold_gain_vs_sft": float(pol["gold"].mean() - sft["gold"].mean()),
            "proxy_gold_gap": float(z("proxy") - z("gold")), "kl_to_sft": float(pol["kl"].mean()),
            "violations": float(pol["violated"].mean()), "labels": labels,
            "labels_per_1k_env_steps": 1000.0 * labels / env_steps,
            "labels_during_ppo_per_1k_env_steps": 1000.0 * labels_during_ppo / env_steps}


def summarise(config, episodes: dict, schedules: dict) -> dict:
    """incidents.json: per mode its runs and intervals over them, and the online/offline comparison."""
    env_steps = int(config.ppo.num_updates) * int(config.ppo.num_envs) * int(config.ppo.num_steps)
    out = {"definition": I.DEFINITION, "episodes_per_run": None, "modes": {}}
    for mode, eps in episodes.items():
        s = schedules[mode]
        during = s["per_collect"] * len(s["collect"])
        runs = [run_summary(e, config.env.tasks, s["initial"] + during, during, env_steps) for e in eps]
        out["episodes_per_run"] = runs[0]["episodes"]
        out["modes"][mode] = {"runs": runs, "schedule": s, **{k: mean_ci([r[k] for r in runs]) for k in (
            "rate", "sft_rate", "incidents", "gold_return", "gold_gain_vs_sft", "proxy_gold_gap", "kl_to_sft",
            "violations",
            "labels_per_1k_env_steps", "labels_during_ppo_per_1k_env_steps")}}
    if {"online", "offline"} <= set(out["modes"]):
        on, off = out["modes"]["online"], out["modes"]["offline"]
        paired = [a["rate"] - b["rate"] for a, b in zip(on["runs"], off["runs"])]  # same seed and β
        tp_on, tp_off = on["labels_per_1k_env_steps"]["mean"], off["labels_per_1k_env_steps"]["mean"]
        out["comparison"] = {"incident_reduction": I.reduction(off["rate"]["mean"], on["rate"]["mean"]),
                             "rate_difference_online_minus_offline": mean_ci(paired),
                             "throughput_ratio": tp_on / tp_off if tp_off else float("nan")}
    return out


def claims_text(result: dict) -> str:
    """claims.md: the seed's claim against our numbers, stated either way."""
    m, c = result["modes"], result.get("comparison")
    lines = ["# Online vs offline RLHF: the claim against our numbers", "", f"Claim: {CLAIM}.", "",
             f"Incident: {result['definition']}.", "", "| mode | incident rate (95% CI) | incidents per run | "
             "π_SFT's own rate | gold gain vs SFT | proxy–gold gap (z) | KL to SFT | labels / 1k env steps "
             "(during PPO) |", "|---|---|---|---|---|---|---|---|"]
    fmt = lambda d, f="{:.3f}": f.format(d["mean"]) + (" [" + ", ".join(f.format(v) for v in d["ci95"]) + "]"
                                                      if np.isfinite(d["ci95"][0]) else "")
    for mode, s in m.items():
        lines.append(f"| {mode} | {fmt(s['rate'])} | {s['incidents']['mean']:.1f} | {s['sft_rate']['mean']:.3f} | "
                     f"{fmt(s['gold_gain_vs_sft'], '{:+.2f}')} "
                     f"| {s['proxy_gold_gap']['mean']:+.2f} | {s['kl_to_sft']['mean']:.2f} | "
                     f"{s['labels_per_1k_env_steps']['mean']:.2f} "
                     f"({s['labels_during_ppo_per_1k_env_steps']['mean']:.2f}) |")
    if c:
        red, diff = c["incident_reduction"], c["rate_difference_online_minus_offline"]
        lo, hi = diff["ci95"]
        lines += ["", "Incidents: " + _incident_verdict(red, diff["mean"], lo, hi), "",
                  f"Throughput: {c['throughput_ratio']:.2f}× offline's labels per 1,000 environment steps. At budget "
                  "parity both modes spend the same labels over the same PPO steps, so the overall ratio is 1 by "
                  "construction, and the 2–3× claim cannot hold under parity. Online spends its labels while PPO "
                  "runs (the number in brackets); offline spends none then."]
    return "\n".join(lines) + "\n"


def _incident_verdict(red: float, diff: float, lo: float, hi: float) -> str:
    """One sentence on the ~50 % claim from the relative reduction and the paired rate difference."""
    if not np.isfinite(red):
        return "offline RLHF had no incidents, so a relative reduction is undefined; the claim is not tested."
    text = (f"online has {red:.0%} fewer than offline" if red >= 0 else f"online has {-red:.0%} more than offline")
    text += f" (rate difference online − offline {diff:+.3f}, 95% CI [{lo:+.3f}, {hi:+.3f}] over paired runs). "
    if red >= 0.4 and np.isfinite(hi) and hi < 0:
        return text + "This supports the ~50% claim."
    if np.isfinite(lo) and lo <= 0 <= hi:
        return text + "The interval includes no difference, so this does not support the ~50% claim."
    return text + "This does not support the ~50% claim."


def plot(rows: list[dict], result: dict, path: str) -> None:
    fig, axes = new_figure(1, 4, figsize=(17, 3.6))
    for mode, color in (("offline", "tab:blue"), ("online", "tab:orange")):
        mr = [r for r in rows if r["mode"] == mode]
        if not mr:
            continue
        steps = sorted({r["env_steps"] for r in mr})
        for ax, key in zip(axes[:3], ("gold_return", "kl", "labels_spent")):
            y = np.array([[r[key] for r in mr if r["env_steps"] == s] for s in steps])  # [steps, runs]
            ax.plot(steps, y.mean(1), color=color, label=mode)
            ax.fill_between(steps, y.min(1), y.max(1), color=color, alpha=0.2)
            ax.set_title({"gold_return": "gold return (range over runs)", "kl": "KL to SFT (training rollouts)",
                          "labels_spent": "labels spent"}[key])
            ax.set_xlabel("environment steps")
    names = list(result["modes"])
    rates = [result["modes"][n]["rate"] for n in names]
    err = np.abs(np.array([r["ci95"] for r in rates]).T - [r["mean"] for r in rates])
    colors = ["tab:blue", "tab:orange"][:len(names)]
    axes[3].bar(names, [r["mean"] for r in rates], yerr=np.nan_to_num(err), color=colors)
    axes[3].set_title("reward-hacking incident rate (95% CI)")
    axes[0].legend(fontsize=7)
    save_figure(fig, path, dpi=110)


def readme_table(results_dir: str) -> str:
    """The docs block (markers included) from a results directory's incidents.json and run_info.json."""
    with open(os.path.join(results_dir, "incidents.json"), encoding="utf-8") as f:
        result = json.load(f)
    with open(os.path.join(results_dir, "run_info.json"), encoding="utf-8") as f:
        info = json.load(f)
    lines = [TABLE_START, "", "| mode | incident rate (95% CI) | π_SFT's own rate | gold gain vs SFT (95% CI) | "
             "proxy–gold gap (z) | KL to SFT | labels / 1k env steps (during PPO) |", "|---|---|---|---|---|---|---|"]
    ci = lambda d, f: f"{f.format(d['mean'])} [{f.format(d['ci95'][0])}, {f.format(d['ci95'][1])}]"
    for mode, s in result["modes"].items():
        lines.append(f"| {mode} | {ci(s['rate'], '{:.3f}')} | {s['sft_rate']['mean']:.3f} | "
                     f"{ci(s['gold_gain_vs_sft'], '{:+.2f}')} | {s['proxy_gold_gap']['mean']:+.2f} | "
                     f"{s['kl_to_sft']['mean']:.1f} | {s['labels_per_1k_env_steps']['mean']:.2f} "
                     f"({s['labels_during_ppo_per_1k_env_steps']['mean']:.2f}) |")
    c = result.get("comparison", {})
    lines += ["", f"{info['runs']} runs per mode (seeds × β), {result['episodes_per_run']} evaluation episodes per "
              f"run, {info['wall_s'] / 60:.1f} min on {info['cpu_cores']} CPU cores (`{info['command']}`). "
              "Incident reduction "
              f"online vs offline: {c.get('incident_reduction', float('nan')):.0%}.", "", TABLE_END]
    return "\n".join(lines)


def update_readme(readme: str, results_dir: str) -> None:
    """Rewrites the block between the markers of ``readme`` with ``readme_table(results_dir)``."""
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    atomic_write_text(readme, head + readme_table(results_dir) + tail)


def write_outputs(config, workdir: str, rows: list[dict], episodes: dict, schedules: dict, wall_s: float) -> dict:
    """online.csv, incidents.json, claims.md, online_rlhf.png and run_info.json; returns incidents.json."""
    result = summarise(config, episodes, schedules)
    atomic_write_csv(os.path.join(workdir, "online.csv"), rows)
    atomic_write_json(os.path.join(workdir, "incidents.json"), result)
    atomic_write_text(os.path.join(workdir, "claims.md"), claims_text(result))
    plot(rows, result, os.path.join(workdir, "online_rlhf.png"))
    info = {"variant": config.get("variant"), "wall_s": round(wall_s, 1), "cpu_cores": os.cpu_count(),
            "runs": len(config.seeds) * len(config.betas), "modes": list(config.modes),
            "command": f"python -m experiments.online_rlhf --config configs/online_rlhf.py:{config.get('variant')} "
                       "--workdir DIR"}
    atomic_write_json(os.path.join(workdir, "run_info.json"), info)
    return result
