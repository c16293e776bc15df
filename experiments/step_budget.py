"""The step budget a sweep's pilot justifies: the best-step rule at its largest N.

  python -m experiments.scaling_sweep --config configs/scaling_sweep.py:medium_pilot --workdir runs/medium_pilot
  python -m experiments.step_budget runs/medium_pilot

Reads ``results.csv`` and ``config.json`` of a sweep directory, prints per condition how many of
the largest N's members reach their best step before 0.75·T (rlhf_jax.evaluation.convergence)
and the rule's verdict, and writes ``step_budget.json`` beside them. When the rule is met, the
pilot's T is the budget to run the full grid with; when it is not, the run is under-trained at
its largest N and the pilot should be repeated with a longer budget (a shorter budget read off
the best steps is printed too, as an estimate: the learning-rate schedule scales with T).
"""
from __future__ import annotations

import csv
import json
import os
import sys

from rlhf_jax import checkpoint
from rlhf_jax.evaluation import convergence


def read_budget(results_dir: str) -> dict:
    """{"total_steps", "n", "conditions": {condition: rule + budget estimate}, "met"} of a sweep dir."""
    with open(os.path.join(results_dir, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(results_dir, "results.csv")) as f:
        rows = list(csv.DictReader(f))
    by_point = convergence.best_steps_by_point(rows)
    total = int(config["total_steps"])
    largest = max(n for per_n in by_point.values() for n in per_n)
    conditions = {}
    for cond, per_n in by_point.items():
        steps = [s for seed in per_n.get(largest, {}).values() for s in seed]
        rule = convergence.best_step_rule(steps, total)
        conditions[cond] = {**rule, "budget_estimate": convergence.budget_estimate(
            steps, multiple=int(config.get("chunk_steps", 1)))}
    return {"results_dir": os.path.basename(os.path.normpath(results_dir)), "total_steps": total, "n": largest,
            "eval_schedule": config.get("eval_schedule", "linear"), "conditions": conditions,
            "met": all(c["met"] for c in conditions.values())}


def describe(budget: dict) -> str:
    lines = [f"{budget['results_dir']}: N = {budget['n']:,}, T = {budget['total_steps']:,} steps "
             f"({budget['eval_schedule']} evaluation schedule)"]
    for cond, c in budget["conditions"].items():
        lines.append(f"  {cond}: {c['before_cutoff']}/{c['members']} members peak before "
                     f"{c['cutoff_step']:,.0f} ({c['fraction_before']:.0%}; rule ≥ {c['required_fraction']:.0%}), "
                     f"median best step {c['median_best_step']:,.0f}; "
                     f"budget estimate from these best steps {c['budget_estimate']:,}")
    verdict = ("met: run the full grid with this budget" if budget["met"]
               else "NOT met: under-trained at the largest N; repeat the pilot with a longer budget")
    lines.append(f"best-step rule {verdict}")
    return "\n".join(lines)


def main(argv) -> int:
    args = argv[1:]
    if len(args) != 1 or not all(os.path.isfile(os.path.join(args[0], f)) for f in ("results.csv", "config.json")):
        print("usage: python -m experiments.step_budget RESULTS_DIR (a sweep workdir with results.csv and "
              f"config.json; found {args})", file=sys.stderr)
        return 2
    budget = read_budget(args[0])
    checkpoint.atomic_write_json(os.path.join(args[0], "step_budget.json"), budget)
    print(describe(budget))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
