"""Evaluation and report of the RLHF pipeline: every trained policy, π_SFT and the scripted expert
rolled out on the same evaluation states (``experiments.stages.point_eval``), and the comparisons
the pipeline exists for, with intervals over training seeds (``rlhf_jax.evaluation.seed_statistics``:
reward-model seed a cluster, PPO seed within it):

* headline: PPO-RLHF **without** constraints − π_SFT, PPO-on-gold − π_SFT, the fraction of
  PPO-on-gold's gain recovered, and whether the interval is narrow enough to see a third of it;
* constraints on − off (paired: same reward model, same PPO seed), violations and incidents;
* the iterated round − π_SFT and − round 1 (paired);
* with ``compare_objectives``: PPO on combined objective heads − PPO on the scalar reward model
  (paired; ``experiments.pipeline_objectives``);
* each reward model's accuracy on its test pairs, on its policies' own episodes, and on
  expert-vs-π_SFT pairs per arm × task; the SFT → expert headroom per component.

Writes pipeline.json, pipeline.md and pipeline.png (``experiments.rlhf_pipeline`` calls it); the
docs block is rendered from a committed pipeline.json.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

from experiments.doc_blocks import render_main
from experiments.pipeline_objectives import objectives_comparison, objectives_lines
from experiments.stages import point_eval as E
from experiments.stages.rlhf import ppo_programs
from rlhf_jax.checkpoint import atomic_write_json, atomic_write_text, restore_policy
from rlhf_jax.envs import simulator as S
from rlhf_jax.evaluation import incidents as I
from rlhf_jax.evaluation.seed_statistics import cluster_interval, fraction_recovered, relative_reduction
from rlhf_jax.models.policy import make_policy
from rlhf_jax.objective_heads import load_objective_heads
from rlhf_jax.plotting import new_figure, save_figure
from rlhf_jax.reward_artifact import load_reward_model

DOCS_BLOCK = "pipeline-table"
SETS = {"headline": "ppo_rlhf_no_constraints", "constraints": "ppo_rlhf", "round2": "ppo_rlhf_round2",
        "objectives": "ppo_rlhf_objectives"}
# The claim we test on constraints (docs/claims.md): they cut reward-hacking incidents by 60–80%.
INCIDENT_CUT_CLAIM = (0.6, 0.8)


def headroom(sft: dict, expert: dict) -> dict:
    """The SFT → expert gap per arm/task: gold return and each gold component (Σ_t, unweighted, and
    weighted by the rubric), expert minus π_SFT, means over the same evaluation episodes."""
    w = dict(zip(S.REWARD_COMPONENTS, S.rubric_vector()))
    out = {}
    for combo in sft:
        per_episode = {name: run[combo]["components"].sum(1).mean(0) for name, run in (("sft", sft), ("expert", expert))}
        diff = {c: float(per_episode["expert"][i] - per_episode["sft"][i]) for i, c in enumerate(S.REWARD_COMPONENTS)}
        out[combo] = {"gold_return": float(sum(w[c] * d for c, d in diff.items())), "components": diff,
                      "weighted": {c: float(w[c] * d) for c, d in diff.items()}}
    return out


def _over_arms(config, dt, rm, sft, model=None, variables_by_arm=None) -> dict:
    """{"arm/task": episodes} of one policy over every arm (variables_by_arm: arm -> variables)."""
    raw = {}
    for arm in config.arms:
        raw.update(E.policy_episodes(config, arm, dt, rm, sft, model, variables_by_arm[arm] if model else None))
    return raw


def evaluate_points(config, st: dict, dt: float, sft, rewards: dict) -> dict:
    """set -> list of (rm_seed, ppo_seed, row) for every trained PPO point (gold points: set "gold");
    ``rewards``: point set -> {rm_seed: evaluated reward} its proxy is read under. A run (reward-
    model seed × PPO seed) is one policy per PPO program (``rlhf.ppo_programs``: per arm, or per
    arm and task), each evaluated on its own tasks' evaluation states; the row gathers them all."""
    out, programs = {}, ppo_programs(config)
    for point_set in [s for s in SETS if s in st]:
        models = {name: E.load_stacked(st[point_set][name]["checkpoint"]) for name, _, _ in programs}
        for i, p in enumerate(st[point_set][programs[0][0]]["points"]):
            r = p["rm_seed"]
            name = "gold" if r is None else point_set
            rm_seed = r if r is not None else config.reward_model.seeds[0]
            rm = rewards[point_set][rm_seed]
            raw = {}
            for program, arm, tasks in programs:
                model, variables, _ = models[program]
                raw.update(E.policy_episodes(config, arm, dt, rm["model"], sft, model, E.point(variables, i),
                                             keep_tasks=tasks))
            out.setdefault(name, []).append((r, p["seed"], E.policy_row(raw, rm["sft"])))
    return out


def _matrix(rows, key: str, rm_seeds, ppo_seeds) -> np.ndarray:
    """[reward-model seeds, PPO seeds] of ``key`` from (rm_seed, ppo_seed, row) triples."""
    at = {(r, p): row[key] for r, p, row in rows}
    return np.asarray([[at[(r, p)] for p in ppo_seeds] for r in rm_seeds], np.float64)


def comparisons(config, rows: dict, sft_gold: float) -> dict:
    """The headline, constraints and iterated-round comparisons with intervals over seeds."""
    R, P, P2 = list(config.reward_model.seeds), list(config.ppo_seeds), list(config.secondary_ppo_seeds)
    gold_seeds = np.asarray([row["gold_return"] for _, _, row in rows["gold"]])
    head = _matrix(rows["headline"], "gold_return", R, P)
    gain = cluster_interval(head - sft_gold)
    gold_gain = cluster_interval(gold_seeds[None] - sft_gold)
    out = {"headline": {"gain": gain, "gold_gain": gold_gain,
                        "fraction_recovered": fraction_recovered(head, sft_gold, gold_seeds),
                        "power": {"half_width": gain["half_width"], "third_of_gold_gain": gold_gain["mean"] / 3,
                                  "sufficient": bool(gain["half_width"] <= gold_gain["mean"] / 3)}}}
    if "constraints" in rows:
        on = {k: _matrix(rows["constraints"], k, R, P2) for k in ("gold_return", "violations", "incident_rate")}
        off = {k: _matrix(rows["headline"], k, R, P2) for k in ("gold_return", "violations", "incident_rate")}
        out["constraints"] = {f"{k}_{side}": cluster_interval(v[k]) for side, v in (("on", on), ("off", off)) for k in v}
        out["constraints"]["gold_on_minus_off"] = cluster_interval(on["gold_return"] - off["gold_return"])
        out["constraints"]["incident_reduction"] = relative_reduction(on["incident_rate"], off["incident_rate"],
                                                                      INCIDENT_CUT_CLAIM)
    if "objectives" in rows:
        out["objectives"] = objectives_comparison(rows["headline"], rows["objectives"], R, P, sft_gold, gold_seeds)
    if "round2" in rows:
        r2 = _matrix(rows["round2"], "gold_return", R, P2)
        out["round2"] = {"gain": cluster_interval(r2 - sft_gold),
                         "minus_round1": cluster_interval(r2 - _matrix(rows["headline"], "gold_return", R, P2)),
                         "fraction_recovered": fraction_recovered(r2, sft_gold, gold_seeds)}
    return out


def reward_model_summary(rm: dict, rows: list, point_set: str) -> dict:
    """One reward model's three accuracies: test pairs, its policies' own episodes, expert vs π_SFT."""
    own = [row["rm_accuracy_on_own_episodes"] for r, _, row in rows if r == rm["seed"]]
    return {"round": 2 if point_set == "round2" else 1, "seed": rm["seed"], "path": rm["path"],
            **{k: rm["model"].meta.get(k) for k in ("n", "condition", "test_accuracy", "members")},
            "accuracy_on_own_episodes": float(np.mean(own)) if own else float("nan"),
            "expert_vs_sft": E.expert_vs_sft(rm["expert"], rm["sft"])}


def _policy_summary(rows: list, sft_gold: float) -> dict:
    """Mean row over seeds, and the gold gain over π_SFT with its cluster interval."""
    keys = ("gold_return", "success", "violations", "proxy_return", "kl_to_sft", "incident_rate")
    out = {k: float(np.mean([row[k] for _, _, row in rows])) for k in keys}
    seeds = sorted({r for r, _, _ in rows}, key=str)
    ppo = sorted({p for _, p, _ in rows})
    m = _matrix(rows, "gold_return", seeds, ppo)
    out.update(gain_vs_sft=cluster_interval(m - sft_gold), runs=len(rows),
               gold_components={c: float(np.mean([row["gold_components"][c] for _, _, row in rows]))
                                for c in S.REWARD_COMPONENTS})
    return out


def evaluate_all(config, st: dict, dt: float, workdir: str) -> dict:
    """Every policy of the pipeline's stages evaluated and compared; returns the pipeline.json dict."""
    sft_vars, sft_meta = restore_policy(st["sft"]["checkpoint"])
    sft_model = make_policy(sft_meta["model"], sft_meta["num_tasks"], sft_meta["num_embodiments"])
    sft = (sft_model, sft_vars)

    def reward_models(paths, load=load_reward_model):
        out = {}
        for r, path in paths.items():
            rm = load(path, aggregation=config.eval.aggregation)
            out[r] = {"seed": r, "path": os.path.relpath(path, workdir), "model": rm,
                      "sft": _over_arms(config, dt, rm, sft, sft_model, {a: sft_vars for a in config.arms}),
                      "expert": _over_arms(config, dt, rm, sft)}
        return out

    rms = reward_models(st["reward_models"])
    rms2 = reward_models(st["round2_reward_models"]) if "round2_reward_models" in st else {}
    first = rms[config.reward_model.seeds[0]]
    sft_row, expert_row = E.policy_row(first["sft"], first["sft"]), E.policy_row(first["expert"], first["sft"], expert=True)
    heads = reward_models(st.get("objective_heads", {}), load_objective_heads)
    rows = evaluate_points(config, st, dt, sft, {"headline": rms, "constraints": rms, "round2": rms2,
                                                 "objectives": heads})
    dpo_vars, dpo_meta = restore_policy(st["dpo"]["checkpoint"])
    dpo_model = make_policy(dict(sft_meta["model"], **({"log_std_floor": dpo_meta["log_std_floor"]}
                                                      if dpo_meta.get("log_std_floor") is not None else {})),
                            sft_meta["num_tasks"], sft_meta["num_embodiments"])
    dpo_point = E.point(dpo_vars, 0)
    dpo_row = E.policy_row(_over_arms(config, dt, first["model"], sft, dpo_model, {a: dpo_point for a in config.arms}),
                           first["sft"])
    sft_gold = sft_row["gold_return"]
    policies = {"sft": sft_row, "expert": expert_row, "ppo_gold": _policy_summary([(0, p, r) for _, p, r in rows["gold"]], sft_gold)}
    policies.update({SETS[s]: _policy_summary(rows[s], sft_gold) for s in SETS if s in rows})
    policies["dpo"] = dpo_row
    compared = comparisons(config, rows, sft_gold)
    if "objectives" in compared:
        compared["objectives"]["weights"] = {r: h["model"].weights for r, h in heads.items()}
    return {"arms": list(config.arms), "tasks": list(config.tasks), "annotator": config.annotator,
            "episodes_per_arm_task": int(config.eval.n_episodes),
            "seeds": {"reward_model": list(config.reward_model.seeds), "ppo": list(config.ppo_seeds),
                      "secondary_ppo": list(config.secondary_ppo_seeds)},
            "incident_definition": I.DEFINITION, "headroom": headroom(first["sft"], first["expert"]),
            **compared, "policies": policies,
            "runs": {name: [{"rm_seed": r, "ppo_seed": p, **row} for r, p, row in v] for name, v in rows.items()},
            "reward_models": [reward_model_summary(rm, rows.get("round2" if rnd else "headline", []),
                                                   "round2" if rnd else "headline")
                              for rnd, group in ((0, rms), (1, rms2)) for rm in group.values()],
            "stages": stage_walls(workdir)}


def stage_walls(workdir: str) -> dict:
    """Wall seconds of every finished stage under ``workdir`` (its stage.json), by stage path."""
    out = {}
    for root, _, files in sorted(os.walk(workdir)):
        if "stage.json" in files:
            with open(os.path.join(root, "stage.json"), encoding="utf-8") as f:
                out[os.path.relpath(root, workdir)] = json.load(f).get("wall_s")
    return out


# --- Tables, plot, docs block ---------------------------------------------------------------------


def _ci(x: dict, fmt: str = "+.2f") -> str:
    return f"{x['mean']:{fmt}} [{x['ci95'][0]:{fmt}}, {x['ci95'][1]:{fmt}}]"


def gain_by_reward_model(result: dict) -> dict[int, float]:
    """The headline runs' mean gold − π_SFT per reward-model seed (the clusters of the interval)."""
    sft, by = result["policies"]["sft"]["gold_return"], {}
    for row in result["runs"]["headline"]:
        by.setdefault(int(row["rm_seed"]), []).append(row["gold_return"] - sft)
    return {seed: float(np.mean(gains)) for seed, gains in sorted(by.items())}


def clusters_needed(half_width: float, target: float, clusters: int) -> int:
    """Reward-model seeds for a half-width of ``target`` at the spread measured with ``clusters`` of
    them: a cluster interval's half-width shrinks as 1/√(clusters) when the spread between clusters stays."""
    return int(np.ceil(clusters * (half_width / target) ** 2))


def headline_lines(result: dict) -> list[str]:
    """The headline sentences: the learned reward's gain without the rules, the bound, the power."""
    h, seeds = result["headline"], result["seeds"]
    f, pw = h["fraction_recovered"], h["power"]
    by_rm = ", ".join(f"seed {s} {g:+.2f}" for s, g in gain_by_reward_model(result).items())
    power = (f"Power: the interval's half-width {pw['half_width']:.2f} is "
             f"{'within' if pw['sufficient'] else 'above'} a third of PPO-on-gold's gain ({pw['third_of_gold_gain']:.2f})")
    if not pw["sufficient"]:
        k = clusters_needed(pw["half_width"], pw["third_of_gold_gain"], len(seeds["reward_model"]))
        power += f"; at the measured spread between reward models it would take about {k} reward-model seeds"
    return [f"PPO-RLHF without constraints − π_SFT: {_ci(h['gain'])} gold ({len(seeds['reward_model'])} "
            f"reward-model seeds × {len(seeds['ppo'])} PPO seeds, cluster bootstrap); PPO on gold − π_SFT: "
            f"{_ci(h['gold_gain'])} ({len(seeds['ppo'])} seeds); fraction of PPO-on-gold's gain recovered "
            f"{f['fraction']:.2f} [{f['ci95'][0]:.2f}, {f['ci95'][1]:.2f}].",
            f"Mean gain per reward-model seed: {by_rm}.", power + "."]


def policy_table(result: dict) -> list[str]:
    """Markdown lines: one row per policy (mean over its runs; gain with its interval over seeds)."""
    lines = ["| policy | runs | gold return | gain vs π_SFT (95% CI over seeds) | success | violations | "
             "incidents | KL to π_SFT |", "|---|---|---|---|---|---|---|---|"]
    for name, p in result["policies"].items():
        gain = _ci(p["gain_vs_sft"]) if "gain_vs_sft" in p else ("—" if name != "sft" else "0")
        kl = "—" if not np.isfinite(p["kl_to_sft"]) else f"{p['kl_to_sft']:.3g}"
        lines.append(f"| {name} | {p.get('runs', 1)} | {p['gold_return']:.2f} | {gain} | {p['success']:.1%} | "
                     f"{p['violations']:.1%} | {p['incident_rate']:.1%} | {kl} |")
    return lines


def constraint_lines(result: dict) -> list[str]:
    c = result.get("constraints")
    if not c:
        return []
    return [f"Constraints on − off (paired runs): gold {_ci(c['gold_on_minus_off'])}; episodes with a violation "
            f"{_ci(c['violations_off'], '.1%')} off → {_ci(c['violations_on'], '.1%')} on; incident rate "
            f"{_ci(c['incident_rate_off'], '.1%')} off → {_ci(c['incident_rate_on'], '.1%')} on. "
            f"Incident: {result['incident_definition']}."] + incident_claim_lines(c)


def incident_claim_lines(c: dict) -> list[str]:
    """The claim 'constraints cut incidents by 60–80%' against the paired relative reduction."""
    cut = c.get("incident_reduction")
    if not cut:   # results made before the reduction was reported
        return []
    lo, hi = (f"{x:.0%}" if np.isfinite(x) else "n/a" for x in cut["ci95"])
    claim = "–".join(f"{x:.0%}" for x in cut["claim"])
    return [f"Against the claim that constraints cut reward-hacking incidents by {claim}: the incident rate "
            f"falls by {cut['reduction']:.0%} [{lo}, {hi}] (1 − on / off, paired runs, cluster bootstrap): "
            f"**{cut['verdict']}** the claimed range."]


def round2_lines(result: dict) -> list[str]:
    r = result.get("round2")
    if not r:
        return []
    f = r["fraction_recovered"]
    return [f"Iterated round (the fine-tuned policies' rollouts added, reward models refitted, PPO again): "
            f"− π_SFT {_ci(r['gain'])}, − round 1 {_ci(r['minus_round1'])}, fraction recovered {f['fraction']:.2f} "
            f"[{f['ci95'][0]:.2f}, {f['ci95'][1]:.2f}]."]


def headroom_table(result: dict, top: int = 3) -> list[str]:
    """Markdown lines: the SFT → expert gold gap per arm/task and its largest weighted components."""
    lines = ["| arm/task | expert − π_SFT gold | largest weighted component gaps |", "|---|---|---|"]
    for combo, h in result["headroom"].items():
        parts = sorted(h["weighted"].items(), key=lambda kv: -abs(kv[1]))[:top]
        lines.append(f"| {combo} | {h['gold_return']:+.2f} | " + ", ".join(f"{c} {v:+.2f}" for c, v in parts) + " |")
    return lines


def reward_model_table(result: dict) -> list[str]:
    """Markdown lines: every reward model's three accuracies (test pairs, its policies' own
    episodes, expert vs π_SFT per arm × task)."""
    combos = list(result["headroom"])
    lines = ["| round | seed | N | test pairs | own episodes | " + " | ".join(f"expert vs π_SFT {c}" for c in combos) + " |",
             "|---|---|---|---|---|" + "---|" * len(combos)]
    for rm in result["reward_models"]:
        cells = [f"{rm['expert_vs_sft'][c]['paired_accuracy']:.2f} "
                 f"(mean proxy: expert {'above' if rm['expert_vs_sft'][c]['ranks_expert_above_sft'] else 'below'})"
                 for c in combos]
        lines.append(f"| {rm['round']} | {rm['seed']} | {rm['n']} | {rm['test_accuracy']:.3f} | "
                     f"{rm['accuracy_on_own_episodes']:.2f} | " + " | ".join(cells) + " |")
    return lines


def report_lines(result: dict) -> list[str]:
    objectives = objectives_lines(result)
    return (headline_lines(result) + [""] + policy_table(result) + [""] + constraint_lines(result) + [""]
            + round2_lines(result) + ([""] + objectives if objectives else []) + ["", "Headroom (expert − π_SFT, same episodes):", ""] + headroom_table(result)
            + ["", "Reward models (accuracy; expert vs π_SFT: pairs from the same initial states):", ""]
            + reward_model_table(result))


def docs_block(result: dict, results_dir: str) -> str:
    """The docs page's generated block from a committed pipeline.json."""
    stages = result["stages"]
    # Stage walls plus evaluation: the run's compute even when it was resumed (wall_s then times
    # the last invocation only).
    total = sum(v for v in stages.values() if v) + result["eval_wall_s"]
    head = (f"Generated by `python -m experiments.rlhf_pipeline_report {results_dir} --docs "
            f"docs/rlhf_pipeline.md` from the committed `{results_dir}/pipeline.json`: "
            f"{', '.join(result['arms'])} on {', '.join(result['tasks'])}, {result['episodes_per_arm_task']} "
            f"evaluation episodes per arm × task; {total / 60:.0f} minutes on the machine that made it "
            f"(PPO {sum(v for k, v in stages.items() if 'ppo' in k) / 60:.1f} min, reward models "
            f"{sum(v for k, v in stages.items() if 'reward_model' in k) / 60:.1f} min, evaluation "
            f"{result['eval_wall_s'] / 60:.1f} min).")
    return "\n".join([head, ""] + report_lines(result))


def write_report(result: dict, workdir: str) -> None:
    atomic_write_json(os.path.join(workdir, "pipeline.json"), result)
    atomic_write_text(os.path.join(workdir, "pipeline.md"), "\n".join(report_lines(result)) + "\n")
    names = list(result["policies"])
    fig, axes = new_figure(1, 3, figsize=(13, 3.6))
    for ax, key, title in zip(axes, ("gold_return", "success", "violations"),
                              ("gold return (runs: dots)", "success rate", "episodes with a violation")):
        ax.bar(range(len(names)), [result["policies"][n][key] for n in names], color="tab:blue", alpha=0.6)
        for i, n in enumerate(names):
            runs = result["runs"].get({v: k for k, v in SETS.items()}.get(n, "gold" if n == "ppo_gold" else ""), [])
            ax.plot([i] * len(runs), [r[key] for r in runs], "k.", ms=3)
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
