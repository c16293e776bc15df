"""Routing at matched accuracy and at matched cost: routing.json and routing.png of a label-efficiency run.

Not a job: `experiments.label_efficiency_report` calls it when a run has routed strategies.

The all-human reference is `uniform` (every label from a human). Its final accuracy A and its
final cost C fix the two readings of the seed's "routing cuts cost by 60–70% within 3–5% of
all-human accuracy" (points of accuracy, fixed in configs/label_efficiency.py's `criteria`):

  matched accuracy  the dollars D each curve needs to first reach A − δ (δ = 3 and 5 points), and
                    the cost cut 1 − D / C; the all-human curve's own D is on the same cost curve
                    (what buying fewer human labels alone would save). Holds if the cut's 95%
                    interval lies at or above 60%.
  matched cost      each curve's accuracy at 0.35 · C dollars (log-linear between rounds, never
                    extrapolated) and its gap A − accuracy. Holds if the gap's interval lies at or
                    below δ.

Either reading is also taken on the all-human curve itself: where buying fewer human labels alone
meets the criterion, the verdict says so (the learning curve is flat there, and the saving is not
routing's). The table's "vs all-human at that level" column is 1 − D / all-human's own D.

Every interval resamples seeds (paired: the same seeds for the reference and every routed curve).
A curve that never reaches A − δ has a cost beyond its last round (a cut that is at most the
value given); one that reaches it at the first round (all-human, shared by every strategy) has
a cut at least the value given; verdicts on such readings say "bound".
"""
from __future__ import annotations

import numpy as np

from experiments import label_efficiency_readings as rd
from rlhf_jax.evaluation import transfer_stats as ts
from rlhf_jax.plotting import new_figure, save_figure

REFERENCE = "uniform"
RULES = ("uncertainty", "random")
FLIP = {"at_least": "at_most", "at_most": "at_least", None: None}


def routed_strategies(rows: list[dict], config) -> list[str]:
    """The run's strategies routed by a rule of RULES, in the run's order."""
    names = dict.fromkeys(r["strategy"] for r in rows)
    return [s for s in names if config.strategy_defs[s].route in RULES]


def accuracy_at_cost(dollars: np.ndarray, acc: np.ndarray, cost: float) -> float:
    """acc [R] read at `cost` on the dollars [R] grid, log-linear between rounds; nan off the grid."""
    if not dollars[0] <= cost <= dollars[-1]:
        return float("nan")
    return float(np.interp(np.log(cost), np.log(dollars), acc))


def _key(delta: float) -> str:
    return f"within_{round(100 * delta)}_points"


def _reading(idx, curves, ref_cost, deltas, matched_dollars):
    """One replicate (seed indices idx): reference accuracy, per delta the cost of each curve to reach
    it less delta, and each curve's accuracy at the matched cost."""
    ref_final = curves[REFERENCE][1][idx, -1].mean()
    out = {"reference_accuracy": ref_final}
    for name, (dollars, acc) in curves.items():
        mean = acc[idx].mean(0)
        for d in deltas:
            out[(name, d)] = float(ts.first_crossing(dollars, mean, ref_final - d))
        out[(name, "acc")] = accuracy_at_cost(dollars, mean, matched_dollars)
    return out


def _same_level_cut(cost, reps, grid, ref_point, ref_reps, ref_grid) -> dict:
    """1 − cost / all-human's own cost to the same level: what routing saves over buying fewer human
    labels. Costs are clipped to their grids; `bound` is True when either cost sits at a grid edge."""
    clip = lambda n, g: np.clip(n, g[0], g[-1])  # noqa: E731
    cut = lambda a, b: 1.0 - clip(a, grid) / clip(b, ref_grid)  # noqa: E731
    edges = any(rd.edge_bound(float(n), g) for n, g in ((cost, grid), (ref_point, ref_grid)))
    return {"cut": float(cut(cost, ref_point)), "cut_ci": ts.interval(cut(np.asarray(reps), np.asarray(ref_reps))),
            "bound": bool(edges)}


def _cut_entry(cost, reps, grid, ref_cost, at_least):
    """Cost to a level, its cost cut against the reference's cost, intervals and the verdict."""
    lo, hi = ts.interval(reps)
    clip = lambda n: float(np.clip(n, grid[0], grid[-1]))  # noqa: E731
    cut = lambda n: 1.0 - clip(n) / ref_cost  # noqa: E731
    cost_bounds = (rd.edge_bound(lo, grid), rd.edge_bound(hi, grid))
    cut_bounds = (FLIP[cost_bounds[1]], FLIP[cost_bounds[0]])
    point_bound = FLIP[rd.edge_bound(cost, grid)]
    verdict = ts.bounded_verdict(cut(hi), cut(lo), cut_bounds, at_least=at_least)
    return {"cost": clip(cost), "cost_ci": [clip(lo), clip(hi)], "cut": cut(cost), "cut_bound": point_bound,
            "cut_ci": [cut(hi), cut(lo)], "cut_ci_bounds": list(cut_bounds),
            "verdict": verdict + rd.bound_note(point_bound, cut_bounds)}


def _gap_entry(acc, reps_acc, ref, reps_ref, deltas):
    """Accuracy at the matched cost, its gap to all-human's final accuracy, and a verdict per delta."""
    if np.isnan(acc):
        return {"accuracy": None, "gap": None, "verdicts": {_key(d): "not measurable (the curve ends before "
                                                            "this cost)" for d in deltas}}
    gaps = reps_ref - reps_acc
    lo, hi = ts.interval(gaps)
    return {"accuracy": acc, "accuracy_ci": ts.interval(reps_acc), "gap": ref - acc, "gap_ci": [lo, hi],
            "verdicts": {_key(d): ts.verdict(lo, hi, at_most=d) for d in deltas}}


def routing_readings(rows: list[dict], config) -> dict:
    """routing.json: the curves, the cost at matched accuracy, the accuracy at matched cost, the claim."""
    crit = config.criteria
    deltas = tuple(float(d) for d in crit.routing_within_points)
    names = [REFERENCE] + routed_strategies(rows, config)
    curves = {n: rd.curve(rows, n, "dollars") for n in names}
    ref_cost = float(curves[REFERENCE][0][-1])
    matched_dollars = float(crit.routing_matched_cost) * ref_cost
    n_seeds = curves[REFERENCE][1].shape[0]
    point = _reading(np.arange(n_seeds), curves, ref_cost, deltas, matched_dollars)
    reps = [_reading(i, curves, ref_cost, deltas, matched_dollars)
            for i in rd.seed_resamples(n_seeds, config.n_bootstrap)]
    col = lambda k: np.array([r[k] for r in reps])  # noqa: E731
    out = {"reference": REFERENCE, "reference_cost": ref_cost, "seeds": sorted({r["seed"] for r in rows}),
           "reference_accuracy": point["reference_accuracy"],
           "reference_accuracy_ci": ts.interval(col("reference_accuracy")),
           "criteria": {"cost_cut_at_least": float(crit.routing_cost_cut_at_least), "within_points": list(deltas),
                        "matched_cost": float(crit.routing_matched_cost)},
           "curves": {}, "matched_accuracy": {_key(d): {} for d in deltas},
           "matched_cost": {"dollars": matched_dollars, "strategies": {}}}
    for n in names:
        d = config.strategy_defs[n]
        dollars, acc = curves[n]
        out["curves"][n] = {"rule": d.route if n != REFERENCE else "all_human",
                            "human_fraction": float(d.human_fraction), "dollars": dollars.tolist(),
                            "accuracy": acc.mean(0).tolist()}
        for delta in deltas:
            e = _cut_entry(point[(n, delta)], col((n, delta)), dollars, ref_cost, float(crit.routing_cost_cut_at_least))
            e["vs_all_human_same_level"] = _same_level_cut(point[(n, delta)], col((n, delta)), dollars,
                                                           point[(REFERENCE, delta)], col((REFERENCE, delta)),
                                                           curves[REFERENCE][0])
            out["matched_accuracy"][_key(delta)][n] = e
        out["matched_cost"]["strategies"][n] = _gap_entry(point[(n, "acc")], col((n, "acc")),
                                                          point["reference_accuracy"], col("reference_accuracy"),
                                                          deltas)
    out["claim"] = routing_claim(out)
    return out


def _summary(verdicts: dict[str, str]) -> str:
    """One rule's verdict over its human fractions: where it holds, else fails/inconclusive."""
    held = [n for n, v in verdicts.items() if v.startswith("holds")]
    if held:
        return "holds for " + ", ".join(f"`{n}`" for n in held)
    if verdicts and all(v.startswith("fails") for v in verdicts.values()):
        return "fails at every human fraction"
    return "inconclusive (no human fraction holds)"


def routing_claim(readings: dict) -> dict:
    """The seed's claim judged per routing rule at matched accuracy and matched cost, per delta."""
    out = {}
    for rule in RULES:
        names = [n for n, c in readings["curves"].items() if c["rule"] == rule]
        if not names:
            continue
        for key, per in readings["matched_accuracy"].items():
            text = _summary({n: per[n]["verdict"] for n in names})
            own = per[readings["reference"]]
            if own["cut_ci"][0] >= readings["criteria"]["cost_cut_at_least"]:
                text += (f"; but all-human alone reaches this level {_fmt_pct(own['cut'], own['cut_bound'])} "
                         "cheaper, so the cut is the curve's flatness, not routing")
            out[f"{rule}/matched_accuracy/{key}"] = text
        for key in readings["matched_accuracy"]:
            per = readings["matched_cost"]["strategies"]
            text = _summary({n: per[n]["verdicts"][key] for n in names})
            if per[readings["reference"]]["verdicts"][key] == "holds":
                text += "; but all-human alone at this cost is within the points too, so it is not routing's doing"
            out[f"{rule}/matched_cost/{key}"] = text
    return out


def _fmt_pct(v, bound=None) -> str:
    return rd.fmt_bounded(100 * v, bound, ".0f") + "%"


def routing_lines(readings: dict) -> str:
    """Markdown: the cost curve at matched accuracy and the accuracy at matched cost, per strategy,
    then the claim's verdicts (for claims.md and the docs page)."""
    ref = readings["reference_accuracy"]
    lo, hi = readings["reference_accuracy_ci"]
    keys = list(readings["matched_accuracy"])
    lines = [f"All-human (`{readings['reference']}`): final accuracy {ref:.3f} [{lo:.3f}, {hi:.3f}] at "
             f"${readings['reference_cost']:,.0f}. Matched cost: ${readings['matched_cost']['dollars']:,.0f} "
             f"({readings['criteria']['matched_cost']:.0%} of it).", "",
             "| strategy | human fraction | " + " | ".join(f"cost cut to {k.split('_')[1]} points below [95%] | "
                                                         "vs all-human at that level [95%]" for k in keys)
             + " | accuracy at matched cost [95%] | gap [95%] |",
             "|---|---|" + "---|" * (2 * len(keys) + 2)]
    for name, c in readings["curves"].items():
        cells = []
        for k in keys:
            e = readings["matched_accuracy"][k][name]
            b = e["cut_ci_bounds"]
            cells.append(f"{_fmt_pct(e['cut'], e['cut_bound'])} [{_fmt_pct(e['cut_ci'][0], b[0])}, "
                         f"{_fmt_pct(e['cut_ci'][1], b[1])}]")
            same = e["vs_all_human_same_level"]
            cells.append(f"{_fmt_pct(same['cut'])} [{_fmt_pct(same['cut_ci'][0])}, {_fmt_pct(same['cut_ci'][1])}]"
                         + (" (bound)" if same["bound"] else ""))
        m = readings["matched_cost"]["strategies"][name]
        if m["accuracy"] is None:
            cells += ["— (curve ends before)", "—"]
        else:
            cells += [f"{m['accuracy']:.3f} [{m['accuracy_ci'][0]:.3f}, {m['accuracy_ci'][1]:.3f}]",
                      f"{100 * m['gap']:+.1f} [{100 * m['gap_ci'][0]:+.1f}, {100 * m['gap_ci'][1]:+.1f}] points"]
        lines.append(f"| `{name}` | {c['human_fraction']:g} | " + " | ".join(cells) + " |")
    crit = readings["criteria"]
    lines += ["", f"Criteria fixed before the run: at matched accuracy the cost cut's interval lies at or above "
                  f"{crit['cost_cut_at_least']:.0%}; at matched cost the gap's interval lies at or below the points.",
              ""]
    for key, v in readings["claim"].items():
        rule, reading, within = key.split("/")
        lines.append(f"- routing by {rule}, {reading.replace('_', ' ')}, {within.replace('_', ' ')}: {v}.")
    return "\n".join(lines)


def plot(readings: dict, path: str) -> None:
    """routing.png: accuracy against dollars per strategy, and the cost curve at matched accuracy."""
    fig, (left, right) = new_figure(1, 2, figsize=(11, 4.2))
    for name, c in readings["curves"].items():
        style = "k-" if name == readings["reference"] else ("-" if c["rule"] == "uncertainty" else "--")
        left.plot(c["dollars"], c["accuracy"], style, marker="o", ms=3, label=name)
    for k, d in zip(readings["matched_accuracy"], readings["criteria"]["within_points"]):
        left.axhline(readings["reference_accuracy"] - d, color="grey", ls=":", lw=1)
        for rule, marker in zip(RULES, ("o", "s")):
            pts = sorted((c["human_fraction"], readings["matched_accuracy"][k][n])
                         for n, c in readings["curves"].items() if c["rule"] in (rule, "all_human"))
            fr = np.array([p[0] for p in pts])
            cut = np.array([p[1]["cut"] for p in pts])
            err = np.abs(np.array([p[1]["cut_ci"] for p in pts]).T - cut)
            right.errorbar(fr, 100 * cut, yerr=100 * err, marker=marker, capsize=3,
                           label=f"{rule}, {round(100 * d)} points below all-human")
    left.axvline(readings["matched_cost"]["dollars"], color="grey", ls=":", lw=1)
    right.axhline(100 * readings["criteria"]["cost_cut_at_least"], color="k", ls="--", lw=1)
    left.set(xlabel="dollars spent", ylabel="held-out accuracy vs gold", xscale="log")
    right.set(xlabel="fraction of queries to humans", ylabel="cost cut at matched accuracy (%)")
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, path)
