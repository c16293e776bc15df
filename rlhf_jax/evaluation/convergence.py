"""Did a sweep's runs converge inside their step budget? The best-step rule and its readings.

Best-validation selection picks, per (point, member), the evaluated step with the lowest
validation loss. Two ways the pick is biased:

* the largest N is under-trained when its members peak in the last quarter of the budget (the
  optimum may lie past T): the **best-step rule** asks that at least ``fraction`` (0.8) of the
  largest-N members reach their best step before ``quantile``·T (0.75·T);
* the smallest N may want less training than the first evaluation allows: the count of members
  that select the schedule's first evaluation says how often selection sat on that edge (with a
  step-0 evaluation, that edge is "no training at all").

Pure functions of best steps; the sweep writes them to ``results.csv`` (``best_step``).
"""
from __future__ import annotations

import math

import numpy as np


def best_step_rule(best_steps, total_steps: int, *, fraction: float = 0.8, quantile: float = 0.75) -> dict:
    """The rule on one group of members (e.g. one condition's largest N).

    best_steps [M]: each member's best step; met ⇔ #{s < quantile·T} ≥ fraction·M.
    Returns members, before_cutoff, fraction_before, cutoff_step, median_best_step, met.
    """
    steps = np.asarray(best_steps, np.float64).ravel()
    if steps.size == 0:
        raise ValueError("best_step_rule needs at least one member's best step")
    cutoff = quantile * float(total_steps)
    before = int(np.sum(steps < cutoff))
    return {"members": int(steps.size), "before_cutoff": before, "fraction_before": before / steps.size,
            "cutoff_step": cutoff, "total_steps": int(total_steps), "required_fraction": fraction,
            "median_best_step": float(np.median(steps)), "met": bool(before >= fraction * steps.size)}


def budget_estimate(best_steps, *, fraction: float = 0.8, quantile: float = 0.75, multiple: int = 1) -> int:
    """The smallest budget T (a multiple of ``multiple``) under which the given best steps meet the
    rule: T > q / quantile, q the ``fraction``-quantile of the best steps (lower interpolation).

    An estimate only: with a learning-rate schedule that scales with T, a shorter T moves every
    best step earlier, and a pilot whose members peaked at its own end says nothing past it.
    """
    steps = np.sort(np.asarray(best_steps, np.float64).ravel())
    q = steps[max(math.ceil(fraction * steps.size) - 1, 0)]
    budget = math.floor(q / quantile) + 1
    return int(math.ceil(budget / multiple) * multiple)


def best_steps_by_point(rows: list[dict]) -> dict:
    """{condition: {N: {seed: [best step per member]}}} from the sweep's member rows (the
    ensemble rows are left out: theirs is the latest member's)."""
    out: dict = {}
    for r in rows:
        if r["member"] == "ensemble":
            continue
        per_seed = out.setdefault(r["condition"], {}).setdefault(int(r["n"]), {})
        per_seed.setdefault(int(r["seed"]), []).append(int(float(r["best_step"])))
    return out


def step_summary(best_steps, total_steps: int, first_eval: int, quantile: float = 0.75) -> dict:
    """One N's members: median best step, how many select the first evaluation, how many peak
    in the last quarter (at or past quantile·T)."""
    steps = np.asarray(best_steps, np.float64).ravel()
    return {"members": int(steps.size), "median_best_step": float(np.median(steps)),
            "at_first_evaluation": int(np.sum(steps == first_eval)),
            "in_last_quarter": int(np.sum(steps >= quantile * total_steps))}
