"""The scaling sweep's headline numbers, generated from a results directory, never copied by hand.

  python -m experiments.scaling_report results/medium_9600 --pilot results/quick --readme README.md
  python -m experiments.scaling_report results/quick --readme docs/scaling_sweep.md

``--plot`` also redraws ``accuracy_vs_n.png`` from ``results.csv``, as the sweep draws it.

Reads ``results.csv``, ``config.json`` and ``run_info.json`` of a sweep and writes
``report.json`` beside them, and (with ``--readme PAGE``) the block of that markdown page between
``<!-- scaling-table:start DIR -->`` and ``<!-- scaling-table:end DIR -->``; ``DOC_PAGES`` names the
page that holds each committed directory's block (the medium sweep is the README's headline). Per condition and
curve (ensemble, single model) it fits

* the free form err(N) = E + A·N^−α and the claimed pure form err(N) = A·N^−α (E = 0), both
  with bootstrap intervals (rlhf_jax.scaling.fit_power_law);
* the pure form on excess accuracy over chance, acc(N) − ½ = B·N^γ (the literal reading of
  "accuracy ∝ N^α"; γ = −α of the pure fit on acc − ½);
* the saturation N: beyond it one more doubling gains less than one accuracy point
  (rlhf_jax.scaling.saturation_n), under both error forms;

and reports

* convergence: per (condition, N, seed) the members' best steps, how many select the schedule's
  first evaluation (step 0 under the ``log`` schedule), how many peak in the last quarter, and the
  best-step rule at the largest N (≥ 80% of members before 0.75·T; rlhf_jax.evaluation.convergence);
* the free-form α interval against the 0.1 width the design aims for and, from the bootstrap, the
  seeds that width would need (width ∝ 1/√seeds: an estimate);
* the Markovian-gold estimate (rlhf_jax.evaluation.markovian_estimate, recorded by the sweep)
  beside the highest accuracy measured: an estimate, not a bound, in no fit or claim;
* with ``--pilot``, the α interval width the grid was designed to give: from the pilot sweep's
  scatter of log error around its pure fit, width = 2·1.96·σ / √(S·Σ_N (log N − mean)²) for S
  seeds per N (ordinary least squares on log–log points).
"""
from __future__ import annotations

import csv
import json
import math
import os
import sys

import ml_collections
import numpy as np

from experiments.stages.sweep_outputs import curve_points, fit_curves
from rlhf_jax import checkpoint, plotting, scaling
from rlhf_jax.evaluation import convergence
from rlhf_jax.evaluation.seed_statistics import interval_vs_range
from rlhf_jax.train import eval_schedule

SEED_ALPHA = (0.2, 0.3)        # the claimed α for VLA reward models (docs/claims.md)
SEED_SATURATION = (15000, 30000)  # the claimed saturation range, pairs
TARGET_ALPHA_WIDTH = 0.1       # the free-form α interval width the design aims for (issue: headline α)
MARKER = "scaling-table"
# The page holding each committed results directory's block (``--readme`` of its command).
DOC_PAGES = {"results/medium_9600": "README.md", "results/quick": "docs/scaling_sweep.md"}


def read_run(results_dir: str):
    """(config, rows, run_info) of a sweep directory; rows typed as the sweep wrote them."""
    with open(os.path.join(results_dir, "config.json")) as f:
        config = ml_collections.ConfigDict(json.load(f))
    with open(os.path.join(results_dir, "results.csv")) as f:
        rows = [dict(r, n=int(r["n"]), seed=int(r["seed"]), test_error=float(r["test_error"]))
                for r in csv.DictReader(f)]
    run_info = checkpoint.read_json(os.path.join(results_dir, "run_info.json"))
    return config, rows, run_info


def _interval(fit: dict, key: str) -> dict:
    low, high = fit[f"{key}_ci"]
    return {key: fit[key], f"{key}_ci": [low, high], f"{key}_ci_width": high - low}


def predicted_alpha_width(pilot_dir: str, n_values, n_seeds: int) -> dict:
    """α interval width the grid (n_values × n_seeds) should give, from a pilot sweep's scatter."""
    _, rows, _ = read_run(pilot_dir)
    cond = rows[0]["condition"]
    n, err = curve_points(rows, cond, rows[0]["model_size"], "ensemble")
    x, y = np.log(n), np.log(err)
    slope, intercept = np.polyfit(x, y, 1)
    sigma = float(np.std(y - (slope * x + intercept), ddof=2))
    grid = np.log(np.asarray(n_values, float))
    width = 2 * 1.96 * sigma / np.sqrt(n_seeds * np.sum((grid - grid.mean()) ** 2))
    return {"pilot": os.path.basename(os.path.normpath(pilot_dir)), "pilot_condition": cond,
            "residual_sigma_log_err": sigma, "n_values": [int(v) for v in n_values], "seeds": int(n_seeds),
            "predicted_alpha_ci_width_pure": float(width)}


def curve_report(config, rows, cond: str, size: str, kind: str, free: dict, pure: dict) -> dict:
    """Both error forms, the excess-accuracy form and saturation N of one curve."""
    n, err = curve_points(rows, cond, size, kind)
    excess = scaling.fit_power_law(n, np.maximum(0.5 - err, 0.5 / config.n_test), fix_e=True,
                                   n_bootstrap=config.fit.n_bootstrap, seed=config.seed)
    g_low, g_high = -excess["alpha_ci"][1], -excess["alpha_ci"][0]
    means = {int(v): float(1 - err[n == v].mean()) for v in np.unique(n)}
    return {
        "free": {"E": free["E"], "E_ci": free["E_ci"], "A": free["A"], **_interval(free, "alpha"),
                 "huber_loss": free["loss"]},
        "pure_error": {"A": pure["A"], **_interval(pure, "alpha"), "huber_loss": pure["loss"]},
        "pure_excess_accuracy": {"B": excess["A"], "gamma": -excess["alpha"], "gamma_ci": [g_low, g_high],
                                 "huber_loss": excess["loss"],
                                 # where B·N^γ + ½ would reach accuracy 1
                                 "n_accuracy_one": float((0.5 / excess["A"]) ** (1 / -excess["alpha"]))
                                 if excess["alpha"] < 0 else float("inf")},
        "saturation_free": scaling.saturation_n(free), "saturation_pure": scaling.saturation_n(pure),
        "mean_accuracy": {str(k): v for k, v in means.items()},
    }


def convergence_report(config, rows) -> dict:
    """Best steps per (condition, N, seed), per-N summaries and the best-step rule at the largest N."""
    total = int(config.total_steps)
    schedule = config.get("eval_schedule", "linear")
    first = int(eval_schedule.eval_steps(total, config.eval_every, schedule)[0])
    largest = max(int(v) for v in config.n_values)
    conditions = {}
    for cond, per_n in convergence.best_steps_by_point(rows).items():
        members = {n: [s for seed in per_seed.values() for s in seed] for n, per_seed in per_n.items()}
        conditions[cond] = {
            "rule_at_largest_n": convergence.best_step_rule(members[largest], total),
            "by_n": {str(n): {**convergence.step_summary(members[n], total, first),
                              "best_steps": {str(seed): steps for seed, steps in sorted(per_n[n].items())}}
                     for n in sorted(per_n)}}
    return {"eval_schedule": schedule, "first_evaluation": first, "total_steps": total, "largest_n": largest,
            "conditions": conditions, "met": all(c["rule_at_largest_n"]["met"] for c in conditions.values())}


def width_needed(curve: dict, seeds: int, target: float = TARGET_ALPHA_WIDTH) -> dict:
    """The free-form α interval's width against ``target`` and the seeds per N that would reach it,
    scaling the bootstrap width as 1/√seeds (more points per N, same N grid): an estimate."""
    width = curve["free"]["alpha_ci_width"]
    return {"target_width": target, "free_width": width, "pure_width": curve["pure_error"]["alpha_ci_width"],
            "seeds": int(seeds), "met": bool(width <= target),
            "seeds_needed": max(int(seeds), math.ceil(seeds * (width / target) ** 2))}


def markovian_estimate(run_info: dict, curves: dict) -> dict | None:
    """The Markovian-gold estimate the sweep recorded, beside the highest mean accuracy of any curve
    at any N (runs made before the rename recorded it as ``ceiling``)."""
    est = run_info.get("markovian_estimate")
    if est is None and run_info.get("ceiling"):
        old = run_info["ceiling"]
        est = {"estimate": old["ceiling"], "gold": old["gold"], "dropped": old["dropped"]}
    if not est:
        return None
    name, n, acc = max(((name, n, a) for name, c in curves.items() for n, a in c["mean_accuracy"].items()),
                       key=lambda t: t[2])
    return {**est, "max_mean_accuracy": acc, "max_at": {"curve": name, "n": int(n)},
            "exceeded": bool(acc > est["estimate"])}


def verdict(low: float, high: float, lo_claim: float, hi_claim: float) -> str:
    """'inside' when the interval lies within the claim's range, 'outside' when disjoint."""
    where = interval_vs_range(low, high, lo_claim, hi_claim)
    return "outside" if where in ("above", "below") else where


def build_report(results_dir: str, pilot_dir: str | None = None) -> dict:
    config, rows, run_info = read_run(results_dir)
    free, pure = fit_curves(config, rows, fix_e=False), fit_curves(config, rows, fix_e=True)
    curves = {}
    for name in free:
        cond, kind, *size = name.split("/")
        size = size[0] if size else rows[0]["model_size"]
        curves[name] = curve_report(config, rows, cond, size, kind, free[name], pure[name])
    primary = next(iter(curves))
    head = curves[primary]
    report = {"results_dir": os.path.basename(os.path.normpath(results_dir)), "variant": config.variant,
              "dataset": config.dataset, "n_values": [int(v) for v in config.n_values],
              "seeds": len(config.seeds), "members": int(config.members), "conditions": list(config.conditions),
              "wall_s": run_info.get("wall_s"), "markovian_estimate": markovian_estimate(run_info, curves),
              "convergence": convergence_report(config, rows),
              "width_needed": width_needed(head, len(config.seeds)), "curves": curves, "primary": primary,
              "curve_order": list(curves),  # JSON files sort their keys; the table keeps the sweep's order
              "claims": {
                  "alpha_pure_error_vs_seed": verdict(*head["pure_error"]["alpha_ci"], *SEED_ALPHA),
                  "alpha_free_vs_seed": verdict(*head["free"]["alpha_ci"], *SEED_ALPHA),
                  "gamma_excess_accuracy_vs_seed": verdict(*head["pure_excess_accuracy"]["gamma_ci"], *SEED_ALPHA),
                  "saturation_free_vs_seed": verdict(*head["saturation_free"]["N_ci"], *SEED_SATURATION)}}
    if pilot_dir:
        report["design"] = predicted_alpha_width(pilot_dir, config.n_values, len(config.seeds))
    return report


def _fmt_ci(ci, digits=2) -> str:
    return "[" + ", ".join(f"{v:.{digits}f}" if np.isfinite(v) else "∞" for v in ci) + "]"


def _fmt_n(v) -> str:
    return "∞" if not np.isfinite(v) else f"{v:,.0f}"


def readme_table(report: dict) -> str:
    """The generated markdown block of one results directory, from its report.json."""
    lines = [f"Generated by `python -m experiments.scaling_report results/{report['results_dir']}` from the "
             f"committed `results/{report['results_dir']}/` ({report['variant']}: {len(report['n_values'])} N from "
             f"{report['n_values'][0]:,} to {report['n_values'][-1]:,}, {report['seeds']} seeds, "
             f"{report['members']} members, dataset `{report['dataset']}`, {report['wall_s'] / 60:.0f} min wall).", "",
             "| curve | free form: E [95% CI] | α [95% CI] | pure form (E = 0): α [95% CI] | "
             "excess accuracy γ [95% CI] | saturation N, free [CI] | saturation N, pure [CI] | "
             f"accuracy at N = {report['n_values'][0]:,} → {report['n_values'][-1]:,} |",
             "|---|---|---|---|---|---|---|---|"]
    for name in report["curve_order"]:
        c = report["curves"][name]
        f, p, x = c["free"], c["pure_error"], c["pure_excess_accuracy"]
        sf, sp = c["saturation_free"], c["saturation_pure"]
        acc = [c["mean_accuracy"][k] for k in sorted(c["mean_accuracy"], key=int)]
        lines.append(
            f"| {name.replace('/', ' / ')} | {f['E']:.3f} {_fmt_ci(f['E_ci'], 3)} | {f['alpha']:.2f} "
            f"{_fmt_ci(f['alpha_ci'])} | {p['alpha']:.3f} {_fmt_ci(p['alpha_ci'], 3)} | {x['gamma']:.3f} "
            f"{_fmt_ci(x['gamma_ci'], 3)} | {_fmt_n(sf['N'])} [{_fmt_n(sf['N_ci'][0])}, {_fmt_n(sf['N_ci'][1])}] | "
            f"{_fmt_n(sp['N'])} [{_fmt_n(sp['N_ci'][0])}, {_fmt_n(sp['N_ci'][1])}] | {acc[0]:.3f} → {acc[-1]:.3f} |")
    lines.append("")
    lines += convergence_lines(report)
    need = report["width_needed"]
    lines.append(f"α interval width, free form ({report['primary']}): {need['free_width']:.3f} with {need['seeds']} "
                 f"seeds per N (pure form {need['pure_width']:.3f}); the aim is ≤ {need['target_width']:.1f}: "
                 + ("**met**." if need["met"] else
                    f"**not met**; about {need['seeds_needed']} seeds per N would reach it (bootstrap width "
                    "scaled as 1/√seeds on the same N grid: an estimate)."))
    est = report.get("markovian_estimate")
    if est:
        at = est["max_at"]
        lines.append(f"Markovian-gold estimate (test accuracy of the gold return without its "
                     f"{', '.join(est['dropped'])} term): {est['estimate']:.4f}. The highest mean accuracy measured, "
                     f"{est['max_mean_accuracy']:.4f} ({at['curve']} at N = {at['n']:,}), "
                     + ("exceeds it, so it is not a bound" if est["exceeded"] else "stays below it, yet it is not a bound")
                     + " (a Markovian model recovers part of the jerk term); it enters no fit and no claim.")
    if report.get("design"):
        d = report["design"]
        lines.append(f"Designed α interval width (pure form, from the `{d['pilot']}` pilot's scatter "
                     f"σ = {d['residual_sigma_log_err']:.3f} in log error): "
                     f"{d['predicted_alpha_ci_width_pure']:.3f}; obtained for {report['primary']}: "
                     f"{report['curves'][report['primary']]['pure_error']['alpha_ci_width']:.3f} (pure), "
                     f"{report['curves'][report['primary']]['free']['alpha_ci_width']:.3f} (free).")
    claims = report["claims"]
    lines.append(f"Against the claims we test ({report['primary']}; inside / overlaps / outside the claimed range): "
                 f"the claimed α ≈ 0.2–0.3 against the pure error fit's interval: **{claims['alpha_pure_error_vs_seed']}**; "
                 f"the free fit's: **{claims['alpha_free_vs_seed']}**; the excess-accuracy γ's: "
                 f"**{claims['gamma_excess_accuracy_vs_seed']}**. The claimed saturation at 15,000–30,000 pairs against "
                 f"the free fit's saturation interval: **{claims['saturation_free_vs_seed']}**.")
    return "\n".join(lines)


def convergence_lines(report: dict) -> list[str]:
    """The best-step rule at the largest N and the count of first-evaluation picks, as prose."""
    conv = report["convergence"]
    # JSON files sort their keys: the sweep's condition order and N ascending, as the table.
    conds = {cond: conv["conditions"][cond] for cond in report["conditions"] if cond in conv["conditions"]}
    cut = next(iter(conds.values()))["rule_at_largest_n"]
    per_cond = "; ".join(f"{cond} {c['rule_at_largest_n']['before_cutoff']}/{c['rule_at_largest_n']['members']} "
                         f"(median best step {c['rule_at_largest_n']['median_best_step']:,.0f})"
                         for cond, c in conds.items())
    first = "; ".join(
        f"{cond}: " + (", ".join(f"N = {int(n):,}: {c['by_n'][n]['at_first_evaluation']}/{c['by_n'][n]['members']}"
                                 for n in sorted(c["by_n"], key=int) if c["by_n"][n]["at_first_evaluation"]) or "none")
        for cond, c in conds.items())
    start = ("step 0, the untrained model" if conv["first_evaluation"] == 0
             else f"step {conv['first_evaluation']}; this run's `{conv['eval_schedule']}` schedule has no step 0")
    return [f"Best-step rule (≥ {cut['required_fraction']:.0%} of the N = {conv['largest_n']:,} members reach their "
            f"best validation step before 0.75·T = {cut['cutoff_step']:,.0f} of {conv['total_steps']:,}): "
            f"{per_cond}: **{'met' if conv['met'] else 'NOT met'}**"
            + ("." if conv["met"] else ": the largest N is under-trained, which biases α."),
            f"Members selecting the first evaluation ({start}): {first}. Per-point best steps are in `report.json`."]


def update_readme(readme: str, report: dict) -> bool:
    """Replaces the block of report's directory in the markdown page ``readme``; False when it has none."""
    tag = f"results/{report['results_dir']}"
    start, end = f"<!-- {MARKER}:start {tag} -->", f"<!-- {MARKER}:end {tag} -->"
    with open(readme) as f:
        text = f.read()
    if start not in text or end not in text:
        return False
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    checkpoint.atomic_write_text(readme, f"{head}{start}\n{readme_table(report)}\n{end}{tail}")
    return True


def main(argv) -> int:
    args = argv[1:]
    readme = args.pop(args.index("--readme") + 1) if "--readme" in args else None
    args = [a for a in args if a != "--readme"]
    pilot = args.pop(args.index("--pilot") + 1) if "--pilot" in args else None
    args = [a for a in args if a != "--pilot"]
    redraw = "--plot" in args
    args = [a for a in args if a != "--plot"]
    if len(args) != 1 or not os.path.isfile(os.path.join(args[0], "results.csv")):
        print("usage: python -m experiments.scaling_report RESULTS_DIR [--pilot DIR] [--readme PAGE.md] [--plot] "
              f"(RESULTS_DIR: a sweep workdir with results.csv; found {args})", file=sys.stderr)
        return 2
    report = build_report(args[0], pilot)
    checkpoint.atomic_write_json(os.path.join(args[0], "report.json"), report)
    print(readme_table(report))
    if redraw:  # accuracy_vs_n.png as the sweep draws it, from the committed rows
        config, rows, _ = read_run(args[0])
        plotting.plot_scaling(rows, fit_curves(config, rows), os.path.join(args[0], "accuracy_vs_n.png"))
    if readme and not update_readme(readme, report):
        print(f"{readme}: no <!-- {MARKER}:start results/{report['results_dir']} --> block", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
