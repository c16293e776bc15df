"""The files of a label-efficiency run: results.csv, savings.json, claims.md, label_efficiency.png.

Savings are paired by seed (every strategy starts from the same uniform set of its seed) and
their 95% intervals come from resampling seeds with replacement. A strategy that never reaches
the target within the budget is reported as "more than the budget", with the budget as its lower
bound — never dropped.

A pseudo-label run's effective size is read off `uniform_reference` (uniform querying run to 3×
the largest budget of the other strategies, `experiments.label_efficiency_readings`), so it is not
capped at 1×; where a reading sits at a grid edge it is printed as a bound (≥, ≤) and its verdict
says so. Routed strategies are read at matched accuracy and matched cost
(`experiments.label_efficiency_routing`: routing.json, routing.png). What each claim needs of its
interval is fixed in the config's `criteria`.

The docs page's block for a committed run (per-round accuracy with a 95% Student-t interval over
seeds, the savings and the claims from savings.json):

  python -m experiments.label_efficiency_report results/label_efficiency_quick --docs docs/label_efficiency.md
"""
from __future__ import annotations

import csv
import os
import sys

import numpy as np

from experiments import label_efficiency_readings as readings
from experiments import label_efficiency_routing as routing
from experiments.doc_blocks import render_main
from rlhf_jax import checkpoint
from rlhf_jax.evaluation.seed_statistics import interval_text, t_interval
from rlhf_jax.plotting import new_figure, save_figure

CLAIMS = {
    "active": ("Active learning by ensemble disagreement needs 40–60% fewer labels to reach a target "
               "accuracy (30–50% fewer labels overall)", (0.40, 0.60)),
    "pseudo": ("Pseudo-labelling raises the effective dataset size 2–3× (the seed cites DROID's "
               "top/bottom-20% recipe with confidence weights)", (2.0, 3.0)),
    "routing": ("Routing easy comparisons to an AI labeller and hard ones to humans by ensemble "
                "uncertainty cuts cost by 60–70% within 3–5% of all-human accuracy", (0.60, 0.70)),
}


DOCS_BLOCK = "label-efficiency-tables"
DOCS_PAGE = "docs/label_efficiency.md"


def _curve(rows, strategy, seed, x):
    sel = sorted((r for r in rows if r["strategy"] == strategy and r["seed"] == seed), key=lambda r: r["round"])
    return np.array([r[x] for r in sel], float), np.array([r["test_accuracy"] for r in sel], float)


def cost_to_target(xs: np.ndarray, acc: np.ndarray, target: float) -> tuple[float, bool]:
    """(x at which the curve first reaches `target`, reached?) by linear interpolation between
    rounds; (the budget, False) when it never does."""
    hit = np.flatnonzero(acc >= target)
    if not len(hit):
        return float(xs[-1]), False
    i = int(hit[0])
    if i == 0:
        return float(xs[0]), True
    f = (target - acc[i - 1]) / (acc[i] - acc[i - 1])
    return float(xs[i - 1] + f * (xs[i] - xs[i - 1])), True


def _bootstrap(per_seed_a, per_seed_b, stat, n_boot, seed=0):
    """Point value and 95% interval of stat(a, b) resampling seeds (pairs) with replacement."""
    a, b = np.asarray(per_seed_a, float), np.asarray(per_seed_b, float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), (n_boot, len(a)))
    reps = np.array([stat(a[i], b[i]) for i in idx])
    return float(stat(a, b)), [float(np.nanpercentile(reps, 2.5)), float(np.nanpercentile(reps, 97.5))]


def savings(rows: list[dict], config) -> dict:
    """Labels and dollars to reach the target per strategy, and the saving against uniform."""
    seeds = sorted({r["seed"] for r in rows})
    out = {"target_accuracy": config.target_accuracy, "strategies": {}}
    for strat in dict.fromkeys(r["strategy"] for r in rows):
        entry = {}
        for x in ("labels", "dollars"):
            mine = [cost_to_target(*_curve(rows, strat, s, x), config.target_accuracy) for s in seeds]
            base = [cost_to_target(*_curve(rows, "uniform", s, x), config.target_accuracy) for s in seeds]
            val = [m[0] for m in mine]
            reached = all(m[1] for m in mine)
            first = [_curve(rows, strat, s, x)[0][0] for s in seeds]
            at_start = any(m[1] and m[0] == f for m, f in zip(mine, first))  # reached at the first round
            bound = "at_least" if not reached else ("at_most" if at_start else None)
            point, ci = _bootstrap(val, [b[0] for b in base], lambda u, v: 1.0 - u.mean() / v.mean(),
                                   config.n_bootstrap)
            _, to_target_ci = _bootstrap(val, val, lambda u, _: u.mean(), config.n_bootstrap)
            entry[x] = {"to_target": float(np.mean(val)), "to_target_ci": to_target_ci, "per_seed": val,
                        "reached": reached, "bound": bound,
                        "note": "" if reached else "more than the budget for some seed: the budget is a lower bound",
                        "saving_vs_uniform": point, "saving_ci": ci,
                        "uniform_reached": all(b[1] for b in base)}
        out["strategies"][strat] = entry
    return out


def _final(rows, strategy, key):
    last = max(r["round"] for r in rows)
    seeds = sorted({r["seed"] for r in rows})
    return np.array([next(r[key] for r in rows if r["strategy"] == strategy and r["seed"] == s
                          and r["round"] == last) for s in seeds], float)


def _verdict(point, ci, lo, hi) -> str:
    if ci[1] < lo:
        return "not supported (our interval lies below the claimed range)"
    if ci[0] > hi:
        return "exceeded (our interval lies above the claimed range)"
    return "consistent (our interval overlaps the claimed range)"


def claims(rows: list[dict], sav: dict, config) -> tuple[dict, str]:
    """The seed's three claims beside our numbers (dict for savings.json, markdown for claims.md)."""
    strats = set(sav["strategies"])
    out, lines = {}, ["# The seed's claims against this run", "",
                      f"Target accuracy {config.target_accuracy:.3f}; seeds {sorted({r['seed'] for r in rows})}; "
                      "95% intervals resample seeds.", ""]
    active = [s for s in strats if s not in ("uniform",) and config.strategy_defs[s].select != "uniform"
              and config.strategy_defs[s].route == "all_human" and not config.strategy_defs[s].pseudo]
    for s in sorted(active):
        e = sav["strategies"][s]["labels"]
        text, (lo, hi) = CLAIMS["active"]
        v = _verdict(e["saving_vs_uniform"], e["saving_ci"], lo, hi)
        if not (e["reached"] and e["uniform_reached"]):
            v += "; a run missed the target within the budget, so the saving is bounded, not measured"
        out[f"active/{s}"] = {"claim": text, "ours": e["saving_vs_uniform"], "ci": e["saving_ci"], "verdict": v}
        lines.append(f"- **{text}.** `{s}`: {e['saving_vs_uniform']:+.0%} labels to target "
                     f"[{e['saving_ci'][0]:+.0%}, {e['saving_ci'][1]:+.0%}] → {v}.")
    ref = readings.REFERENCE if readings.REFERENCE in strats else "uniform"
    ref_labels, ref_acc = readings.curve(rows, ref, "labels")
    at_least = float(config.criteria.pseudo_effective_size_at_least)
    for s in sorted(x for x in strats if config.strategy_defs[x].pseudo):
        labels = float(_final(rows, s, "labels").mean())
        e = readings.effective_size(ref_labels, ref_acc, _final(rows, s, "test_accuracy"), labels,
                                    config.n_bootstrap, at_least)
        text = CLAIMS["pseudo"][0]
        out[f"pseudo/{s}"] = {"claim": text, **e, "reference": ref, "criterion": f"lower end >= {at_least:g}x",
                              "definition": f"labels `{ref}` needs for the pseudo run's final accuracy (mean over "
                                            "seeds) / the pseudo run's labels"}
        lines.append(f"- **{text}.** `{s}`: {_effective_size_text(out[f'pseudo/{s}'])} → {e['verdict']} "
                     f"(holds if the lower end is >= {at_least:g}x; reference `{ref}` up to "
                     f"{ref_labels[-1]:,.0f} labels).")
    if routing.routed_strategies(rows, config):
        route = routing.routing_readings(rows, config)
        out["routing/matched"] = {"claim": CLAIMS["routing"][0], "verdicts": route["claim"], "details": "routing.json"}
        lines += ["", f"**{CLAIMS['routing'][0]}.** Judged at matched accuracy and matched cost (`routing.json`):",
                  "", routing.routing_lines(route)]
    return out, "\n".join(lines) + "\n"


def _effective_size_text(c: dict) -> str:
    """'effective size ×a [lo, hi]' of a claims entry, with ≥/≤ where the reference's grid clips it."""
    lo_b, hi_b = c.get("ci_bounds", (None, None))
    return (f"effective size ×{readings.fmt_bounded(c['ours'], c.get('bound'), '.2f')} "
            f"[{readings.fmt_bounded(c['ci'][0], lo_b, '.2f')}, {readings.fmt_bounded(c['ci'][1], hi_b, '.2f')}]")


def plot(rows: list[dict], config, path: str) -> None:
    fig, axes = new_figure(1, 2, figsize=(11, 4.2))
    seeds = sorted({r["seed"] for r in rows})
    for strat in dict.fromkeys(r["strategy"] for r in rows):
        for ax, x in zip(axes, ("labels", "dollars")):
            xs = np.mean([_curve(rows, strat, s, x)[0] for s in seeds], axis=0)
            acc = np.array([_curve(rows, strat, s, x)[1] for s in seeds])
            line, = ax.plot(xs, acc.mean(0), marker="o", ms=3, label=strat)
            ax.fill_between(xs, acc.mean(0) - acc.std(0), acc.mean(0) + acc.std(0), color=line.get_color(),
                            alpha=0.15, lw=0)
    for ax, x in zip(axes, ("labels bought (N distinct pairs)", "dollars spent")):
        ax.axhline(config.target_accuracy, color="k", ls="--", lw=1)
        ax.set_xlabel(x)
        ax.set_ylabel("held-out accuracy vs gold")
        ax.grid(True, alpha=0.3)
    axes[1].set_xscale("log")
    axes[0].legend(fontsize=8)
    save_figure(fig, path)


def write_all(workdir: str, rows: list[dict], config) -> dict:
    """results.csv, savings.json, claims.md, label_efficiency.png; routing.json and routing.png when
    the run has routed strategies."""
    sav = savings(rows, config)
    sav["claims"], text = claims(rows, sav, config)
    checkpoint.atomic_write_csv(os.path.join(workdir, "results.csv"), rows)
    checkpoint.atomic_write_json(os.path.join(workdir, "savings.json"), sav)
    checkpoint.atomic_write_text(os.path.join(workdir, "claims.md"), text)
    plot(rows, config, os.path.join(workdir, "label_efficiency.png"))
    if routing.routed_strategies(rows, config):
        route = routing.routing_readings(rows, config)
        checkpoint.atomic_write_json(os.path.join(workdir, "routing.json"), route)
        routing.plot(route, os.path.join(workdir, "routing.png"))
    return sav


def read_rows(f) -> list[dict]:
    """results.csv's rows with the numbers the docs block reads as numbers."""
    return [dict(r, seed=int(r["seed"]), round=int(r["round"]), labels=int(r["labels"]),
                 dollars=float(r["dollars"]), test_accuracy=float(r["test_accuracy"])) for r in csv.DictReader(f)]


def accuracy_table(rows: list[dict]) -> str:
    """Markdown table: per strategy and round, test accuracy's mean over seeds [95% Student-t
    interval over seeds] (seeds are the independent unit: each draws its own uniform start, pool
    order and initialisation), and the mean dollars spent at the last round."""
    rounds = sorted({r["round"] for r in rows})
    labels = {n: sorted({r["labels"] for r in rows if r["round"] == n}) for n in rounds}
    head = [f"{labels[n][0]} labels" if len(labels[n]) == 1 else f"round {n}" for n in rounds]
    lines = ["| strategy | " + " | ".join(head) + " | $ at the end |", "|---|" + "---|" * (len(rounds) + 1)]
    for strat in dict.fromkeys(r["strategy"] for r in rows):
        cells = []
        for n in rounds:
            s = t_interval([r["test_accuracy"] for r in rows if r["strategy"] == strat and r["round"] == n])
            cells.append(interval_text(s))
        spent = np.mean([r["dollars"] for r in rows if r["strategy"] == strat and r["round"] == rounds[-1]])
        lines.append(f"| `{strat}` | " + " | ".join(cells) + f" | {spent:,.0f} |")
    return "\n".join(lines)


def _to_target(entry: dict) -> tuple[str, str]:
    """(cost to target, saving vs uniform [95%]) of one savings.json entry; a run that missed the
    target gives its budget as a lower bound, so the saving is only an upper bound."""
    lo, hi = entry["saving_ci"]
    if not entry["reached"]:
        return f"> {entry['to_target']:,.0f} (budget)", f"≤ {entry['saving_vs_uniform']:+.0%} (bound)"
    saving = f"{entry['saving_vs_uniform']:+.0%} [{lo:+.0%}, {hi:+.0%}]"
    cost = f"{entry['to_target']:,.0f}"
    if "to_target_ci" in entry:  # runs of the current design carry its interval over seeds
        cost += f" [{entry['to_target_ci'][0]:,.0f}, {entry['to_target_ci'][1]:,.0f}]"
    if entry.get("bound") == "at_most":  # some seed reached the target at the first round
        return f"≤ {cost} (first round)", saving
    return cost, saving


def savings_table(sav: dict) -> str:
    """Markdown table of savings.json: labels and dollars to the target accuracy per strategy, the
    savings against uniform, and the effective dataset size of pseudo-label strategies."""
    target = sav["target_accuracy"]
    pseudo = {k.split("/", 1)[1]: v for k, v in sav.get("claims", {}).items() if k.startswith("pseudo/")}
    ci = " [95%]" if any("to_target_ci" in e["labels"] for e in sav["strategies"].values()) else ""
    lines = [f"| strategy | labels to {target:g}{ci} | saving [95%] | dollars to {target:g}{ci} | saving [95%] |"
             + (" effective size at the end [95%] |" if pseudo else ""),
             "|---|---|---|---|---|" + ("---|" if pseudo else "")]
    for strat, entry in sav["strategies"].items():
        row = f"| `{strat}` | " + " | ".join(" | ".join(_to_target(entry[x])) for x in ("labels", "dollars")) + " |"
        if pseudo:
            e = pseudo.get(strat)
            row += f" {_effective_size_text(e).split(' ', 2)[2]} |" if e else " — |"
        lines.append(row)
    return "\n".join(lines)


def claims_lines(sav: dict) -> str:
    """One bullet per claim tested in savings.json: our number, its 95% interval and the verdict."""
    out = []
    for key, c in sav.get("claims", {}).items():
        kind, strat = key.split("/", 1)
        if kind == "routing" and "verdicts" in c:  # matched accuracy and matched cost: routing.json
            out.append(f"* {c['claim']}. Judged at matched accuracy and matched cost: the routing table below.")
            continue
        if kind == "routing":
            ours = (f"cost cut {c['cost_cut']:.0%} [{c['cost_cut_ci'][0]:.0%}, {c['cost_cut_ci'][1]:.0%}], "
                    f"relative accuracy loss {c['accuracy_loss']:+.1%} "
                    f"[{c['accuracy_loss_ci'][0]:+.1%}, {c['accuracy_loss_ci'][1]:+.1%}]")
        elif kind == "pseudo":
            ours = _effective_size_text(c)
        else:
            ours = f"{c['ours']:+.0%} labels to target [{c['ci'][0]:+.0%}, {c['ci'][1]:+.0%}]"
        out.append(f"* {c['claim']}. `{strat}`: {ours} → {c['verdict']}.")
    return "\n".join(out)


def docs_block(rows: list[dict], results_dir: str) -> str:
    """The docs page's block from a committed run's results.csv (and the savings.json beside it)."""
    sav = checkpoint.read_json(os.path.join(results_dir, "savings.json"))
    n_seeds = len({r["seed"] for r in rows})
    head = (f"Generated by `python -m experiments.label_efficiency_report {results_dir} --docs {DOCS_PAGE}` from the "
            f"committed `{results_dir}/results.csv` and `savings.json`. Test accuracy at each round: the mean over "
            f"{n_seeds} seeds and its 95% Student-t interval over those {n_seeds} seeds.")
    savings_head = (f"Labels and dollars to reach {sav['target_accuracy']:g} (mean over the {n_seeds} seeds; the "
                    "intervals of this table resample seeds, paired with uniform's):")
    parts = [head, "", accuracy_table(rows), "", savings_head, "", savings_table(sav)]
    claims_text = claims_lines(sav)
    if claims_text:
        parts += ["", "The claims tested (`claims.md`):", "", claims_text]
    route_file = os.path.join(results_dir, "routing.json")
    if os.path.exists(route_file):
        parts += ["", "Routing at matched accuracy and at matched cost (`routing.json`; 95% intervals resample "
                  "seeds):", "", routing.routing_lines(checkpoint.read_json(route_file))]
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    """``python -m experiments.label_efficiency_report RESULTS_DIR --docs PAGE``: the page's block."""
    return render_main(argv, prog="experiments.label_efficiency_report", results_file="results.csv",
                       default_page=DOCS_PAGE, name=DOCS_BLOCK, render=docs_block, load=read_rows)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
