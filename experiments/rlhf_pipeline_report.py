"""Evaluation and report of the RLHF pipeline: every policy and the scripted expert rolled out on
the same episodes (``rlhf_jax.evaluation.rollout_eval``), scored by the gold rubric, the loaded
reward model (proxy) and the KL to π_SFT; incidents counted by ``rlhf_jax.evaluation.incidents``.
Writes pipeline.json, pipeline.md and pipeline.png (``experiments.rlhf_pipeline`` calls it).
"""
from __future__ import annotations

import os
import sys

import numpy as np

from experiments.doc_blocks import render_main
from rlhf_jax.checkpoint import atomic_write_json, atomic_write_text, restore_policy
from rlhf_jax.envs import simulator as S
from rlhf_jax.evaluation import incidents as I
from rlhf_jax.evaluation.policy_eval import VIOLATIONS, episode_metrics
from rlhf_jax.evaluation.reward_accuracy import episode_pair_accuracy, paired_accuracy
from rlhf_jax.evaluation.rollout_eval import arm_key, episodes
from rlhf_jax.models.policy import make_policy
from rlhf_jax.plotting import new_figure, save_figure
from rlhf_jax.reward_artifact import load_reward_model

POLICIES = ("sft", "ppo_rlhf", "ppo_rlhf_no_constraints", "dpo", "ppo_gold", "expert")
DOCS_BLOCK = "pipeline-table"


def _load(ckpt: str, point: int | None = None):
    variables, meta = restore_policy(ckpt)
    if point is not None:  # a DPO sweep checkpoint: parameters stacked over its points
        import jax

        variables = jax.tree.map(lambda x: x[point], variables)
    return variables, meta


def _policy_sources(stages: dict, arms) -> dict:
    """policy -> arm -> (checkpoint, stacked point or None); the expert has none."""
    out = {"sft": {a: (stages["sft"]["checkpoint"], None) for a in arms},
           "dpo": {a: (stages["dpo"]["checkpoint"], 0) for a in arms}}
    for run in ("ppo_rlhf", "ppo_rlhf_no_constraints", "ppo_gold"):
        out[run] = {a: (stages[f"{run}/{a}"]["checkpoint"], None) for a in arms}
    return out


def _mean_ci(x) -> tuple[float, list[float]]:
    x = np.asarray(x, np.float64).ravel()
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else float("nan")
    return float(x.mean()), [float(x.mean() - half), float(x.mean() + half)]


def _entry(per: dict, gold: dict, sft_gold: dict, masks: dict) -> dict:
    """One policy's pipeline.json entry from its per-(arm/task) metrics and episode arrays."""
    keys = list(per)
    mean = lambda k: float(np.mean([per[c][k] for c in keys]))
    gold_all = np.concatenate([gold[c] for c in keys])
    diff = np.concatenate([gold[c] - sft_gold[c] for c in keys])  # paired: the same initial states
    g, g_ci = _mean_ci(gold_all)
    d, d_ci = _mean_ci(diff)
    return {"gold_return": g, "gold_return_ci95": g_ci, "gold_gain_vs_sft": d, "gold_gain_vs_sft_ci95": d_ci,
            "success": mean("success_rate"), "violations": mean("violations/any_rate"),
            "kl_to_sft": mean("kl_to_sft"), "proxy_return": mean("proxy_return"),
            "gold_components": {c: mean(f"gold/{c}") for c in S.REWARD_COMPONENTS},
            "violation_steps": {c: mean(f"violations/{c}_steps") for c in VIOLATIONS},
            "incidents": I.incident_summary(masks), "per_arm_task": per}


def headroom(sft: dict, expert: dict) -> dict:
    """The SFT → expert gap per arm/task: gold return and each gold component (Σ_t, unweighted, and
    weighted by the rubric), expert minus π_SFT, means over the same evaluation episodes. Where it
    is near zero no reward model can make PPO beat π_SFT on that task; the weighted components
    say which parts of the rubric hold the room."""
    w = dict(zip(S.REWARD_COMPONENTS, S.rubric_vector()))
    out = {}
    for combo in sft:
        per_episode = {name: run[combo]["components"].sum(1).mean(0)
                       for name, run in (("sft", sft), ("expert", expert))}
        diff = {c: float(per_episode["expert"][i] - per_episode["sft"][i]) for i, c in enumerate(S.REWARD_COMPONENTS)}
        out[combo] = {"gold_return": float(sum(w[c] * d for c, d in diff.items())), "components": diff,
                      "weighted": {c: float(w[c] * d) for c, d in diff.items()}}
    return out


def reward_model_accuracies(raw: dict, gold_of) -> dict:
    """The reward model's accuracy off its test pairs: on pairs of each policy's own evaluation
    episodes (mean over arm × task), and on expert-vs-π_SFT pairs from the same initial states,
    per arm × task with the mean proxy and gold of both (does it rank the expert above π_SFT?)."""
    own = {name: float(np.nanmean([episode_pair_accuracy(e["proxy"], gold_of({c: e})[c])
                                   for c, e in runs.items()])) for name, runs in raw.items()}
    sft_gold, expert_gold = gold_of(raw["sft"]), gold_of(raw["expert"])
    versus = {}
    for combo, s in raw["sft"].items():
        x = raw["expert"][combo]
        accuracy = paired_accuracy(x["proxy"], expert_gold[combo], s["proxy"], sft_gold[combo])
        versus[combo] = {"paired_accuracy": accuracy,
                         "proxy_sft": float(s["proxy"].mean()), "proxy_expert": float(x["proxy"].mean()),
                         "gold_sft": float(sft_gold[combo].mean()), "gold_expert": float(expert_gold[combo].mean()),
                         "ranks_expert_above_sft": bool(x["proxy"].mean() > s["proxy"].mean())}
    return {"accuracy_on_own_episodes": own, "expert_vs_sft": versus}


def evaluate_all(config, stages: dict, dt: float) -> dict:
    """Rolls out every policy on config.arms × config.tasks; returns the pipeline.json dict."""
    rm = load_reward_model(stages["reward_model"]["checkpoint"], aggregation=config.eval.aggregation)
    sft_vars, sft_meta = _load(stages["sft"]["checkpoint"])
    sft_model = make_policy(sft_meta["model"], sft_meta["num_tasks"], sft_meta["num_embodiments"])
    sources = _policy_sources(stages, config.arms)
    raw = {}  # policy -> "arm/task" -> episode arrays
    for name in POLICIES:
        raw[name] = {}
        for arm in config.arms:
            kw = dict(reward=rm, dt=dt, ref_model=sft_model, ref_variables=sft_vars)
            if name != "expert":
                ckpt, point = sources[name][arm]
                variables, meta = _load(ckpt, point)
                # PPO checkpoints record π_SFT's architecture; DPO's has π_SFT's by construction,
                # with the log-σ floor it trained with, if any.
                model_config = dict(meta.get("model", sft_meta["model"]))
                if meta.get("log_std_floor") is not None:
                    model_config["log_std_floor"] = meta["log_std_floor"]
                model = make_policy(model_config, sft_meta["num_tasks"], sft_meta["num_embodiments"])
                kw.update(model=model, variables=variables)
            ep = episodes(arm, config.tasks, arm_key(config.eval.seed, arm), int(config.eval.n_episodes), **kw)
            for i, task in enumerate(config.tasks):
                raw[name][f"{arm}/{task}"] = {k: v[i] for k, v in ep.items()}
    policies = {}
    sft = raw["sft"]
    gold_of = lambda r: {c: e["components"].sum(1) @ S.rubric_vector() for c, e in r.items()}
    sft_gold = gold_of(sft)
    for name in POLICIES:
        per, masks = {}, {}
        for combo, e in raw[name].items():
            m = episode_metrics(e["components"])
            m["proxy_return"] = float(e["proxy"].mean())
            m["kl_to_sft"] = float(e["kl"].mean()) if name != "expert" else float("nan")
            masks[combo] = I.incident_mask(e["proxy"], gold_of({combo: e})[combo], sft[combo]["proxy"],
                                           sft_gold[combo])
            m["incident_rate"] = float(masks[combo].mean())
            per[combo] = m
        policies[name] = _entry(per, gold_of(raw[name]), sft_gold, masks)
    on, off = policies["ppo_rlhf"]["incidents"]["rate"], policies["ppo_rlhf_no_constraints"]["incidents"]["rate"]
    return {"policies": policies, "arms": list(config.arms), "tasks": list(config.tasks),
            "episodes_per_arm_task": int(config.eval.n_episodes), "incident_definition": I.DEFINITION,
            "constraints": {"incident_rate_on": on, "incident_rate_off": off, "reduction": I.reduction(off, on),
                            "violations_on": policies["ppo_rlhf"]["violations"],
                            "violations_off": policies["ppo_rlhf_no_constraints"]["violations"]},
            "headroom": headroom(raw["sft"], raw["expert"]),
            "reward_model": {**{k: rm.meta.get(k) for k in ("n", "condition", "test_accuracy", "members")},
                             **reward_model_accuracies(raw, gold_of)},
            "annotator": config.annotator}


def policy_table(result: dict) -> list[str]:
    """Markdown lines: one row per policy (gold with its interval, paired gain, rates, KL), then the
    constraints line with the incident definition."""
    lines = ["| policy | gold return (95% CI) | gain vs SFT (95% CI) | success | violations | incidents | KL to SFT |",
             "|---|---|---|---|---|---|---|"]
    for name in [n for n in POLICIES if n in result["policies"]]:  # the pipeline's order, not the JSON's
        p = result["policies"][name]
        lo, hi = p["gold_return_ci95"]
        dlo, dhi = p["gold_gain_vs_sft_ci95"]
        lines.append(f"| {name} | {p['gold_return']:.2f} [{lo:.2f}, {hi:.2f}] | {p['gold_gain_vs_sft']:+.2f} "
                     f"[{dlo:+.2f}, {dhi:+.2f}] | {p['success']:.1%} | {p['violations']:.1%} | "
                     f"{p['incidents']['rate']:.1%} | {p['kl_to_sft']:.3g} |")
    c = result["constraints"]
    return lines + ["", f"Constraints: incident rate {c['incident_rate_off']:.1%} without → "
                    f"{c['incident_rate_on']:.1%} with (reduction {c['reduction']:.0%}). "
                    f"Incident: {result['incident_definition']}."]


def headroom_table(result: dict, top: int = 3) -> list[str]:
    """Markdown lines: the SFT → expert gold gap per arm/task and the components that hold most of
    it (rubric-weighted), from pipeline.json's ``headroom``."""
    if "headroom" not in result:
        return []
    lines = ["| arm/task | expert − SFT gold | largest weighted component gaps |", "|---|---|---|"]
    for combo, h in result["headroom"].items():
        parts = sorted(h["weighted"].items(), key=lambda kv: -abs(kv[1]))[:top]
        lines.append(f"| {combo} | {h['gold_return']:+.2f} | " + ", ".join(f"{c} {v:+.2f}" for c, v in parts) + " |")
    return lines


def reward_model_table(result: dict) -> list[str]:
    """Markdown lines: the reward model's three accuracies (test pairs, each policy's own episodes,
    expert vs π_SFT per arm × task), from pipeline.json's ``reward_model``."""
    rm = result["reward_model"]
    if "expert_vs_sft" not in rm:
        return []
    own = ", ".join(f"{k} {v:.2f}" for k, v in rm["accuracy_on_own_episodes"].items())
    lines = ["", f"Reward-model accuracy: test pairs {rm['test_accuracy']:.3f}; pairs of each policy's own "
             f"episodes: {own}.", "",
             "| arm/task | expert vs π_SFT paired accuracy | proxy π_SFT → expert | gold π_SFT → expert "
             "| ranks the expert above π_SFT |", "|---|---|---|---|---|"]
    for combo, v in rm["expert_vs_sft"].items():
        ranks = "yes" if v["ranks_expert_above_sft"] else "no"
        lines.append(f"| {combo} | {v['paired_accuracy']:.2f} | {v['proxy_sft']:.2f} → {v['proxy_expert']:.2f} | "
                     f"{v['gold_sft']:.2f} → {v['gold_expert']:.2f} | {ranks} |")
    return lines


def docs_block(result: dict, results_dir: str) -> str:
    """The docs page's generated block from a committed pipeline.json."""
    rm, stage_s = result["reward_model"], sum(result["stages"].values())
    head = (f"Generated by `python -m experiments.rlhf_pipeline_report {results_dir} --docs "
            f"docs/rlhf_pipeline.md` from the committed `{results_dir}/pipeline.json`: "
            f"{', '.join(result['arms'])} on {', '.join(result['tasks'])}, {result['episodes_per_arm_task']} "
            f"episodes per arm × task; reward model N = {rm['n']}, {rm['members']} members, test accuracy "
            f"{rm['test_accuracy']:.3f} ({rm['condition']} labels); {stage_s + result['eval_wall_s']:.0f} s of "
            f"stages and evaluation on the machine that made it (per stage: "
            + ", ".join(f"{k} {v:.0f} s" for k, v in result["stages"].items())
            + f", evaluation {result['eval_wall_s']:.0f} s).")
    room = headroom_table(result)
    if room:
        room = ["", "Headroom (expert − π_SFT, same episodes):", ""] + room + reward_model_table(result)
    return "\n".join([head, ""] + policy_table(result) + room)


def write_report(result: dict, workdir: str) -> None:
    atomic_write_json(os.path.join(workdir, "pipeline.json"), result)
    atomic_write_text(os.path.join(workdir, "pipeline.md"),
                      "\n".join(policy_table(result) + [""] + headroom_table(result)) + "\n")
    names = list(result["policies"])
    fig, axes = new_figure(1, 3, figsize=(13, 3.6))
    for ax, key, title in zip(axes, ("gold_return", "success", "violations"),
                              ("gold return (95% CI)", "success rate", "episodes with a violation")):
        vals = [result["policies"][n][key] for n in names]
        err = None
        if key == "gold_return":
            err = np.abs(np.array([result["policies"][n]["gold_return_ci95"] for n in names]).T - vals)
        ax.bar(range(len(names)), vals, yerr=err, color="tab:blue")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
        ax.set_title(title)
    save_figure(fig, os.path.join(workdir, "pipeline.png"), dpi=110)


def main(argv: list[str]) -> int:
    """``python -m experiments.rlhf_pipeline_report RESULTS_DIR --docs PAGE``: the page's block
    from RESULTS_DIR/pipeline.json."""
    return render_main(argv, prog="experiments.rlhf_pipeline_report", results_file="pipeline.json",
                       default_page="docs/rlhf_pipeline.md", name=DOCS_BLOCK, render=docs_block)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
