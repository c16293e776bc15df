"""Readings of a label-efficiency run that may sit at the edge of what was run, with their bounds.

Not a job: the report (`experiments.label_efficiency_report`) and the routing readings import it.

Curves are the mean over seeds of test accuracy per round; intervals are percentile intervals of
a bootstrap that resamples seeds with replacement (a seed fixes a run's start, pool order and
initialisation, and the same seeds are drawn for every curve of a replicate, so comparisons stay
paired). Levels are read off a curve by first crossing with log-linear interpolation, never
extrapolated (`rlhf_jax.evaluation.transfer_stats`): a level the curve never reaches sits beyond
its grid, one reached at the first point sits at or before it. Such a reading is a bound, and a
verdict that rests on it says so.
"""
from __future__ import annotations

import numpy as np

from rlhf_jax.evaluation import transfer_stats as ts

# The strategy that extends uniform's curve (configs/label_efficiency.py: reference=True).
REFERENCE = "uniform_reference"


def curve(rows: list[dict], strategy: str, x: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """(x per round [R] (mean over seeds), accuracy [S, R]) of one strategy, seeds in sorted order."""
    seeds = sorted({r["seed"] for r in rows})
    xs, acc = [], []
    for s in seeds:
        sel = sorted((r for r in rows if r["strategy"] == strategy and r["seed"] == s), key=lambda r: r["round"])
        xs.append([float(r[x]) for r in sel])
        acc.append([float(r["test_accuracy"]) for r in sel])
    return np.mean(xs, axis=0), np.asarray(acc, np.float64)


def seed_resamples(n_seeds: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """[n_boot, n_seeds] seed indices drawn with replacement (row 0 is not special)."""
    return np.random.default_rng(seed).integers(0, n_seeds, (n_boot, n_seeds))


def edge_bound(n: float, grid) -> str | None:
    """What a cost read off a curve is: "at_least" its value when the level was never reached
    (`first_crossing` gives inf, clipped here to the grid's end), "at_most" when it was reached at
    the first point, None for an interpolated estimate."""
    return {"above_grid": "at_least", "below_grid": "at_most"}.get(ts.grid_edge(n, grid))


def effective_size(ref_labels: np.ndarray, ref_acc: np.ndarray, run_acc: np.ndarray, run_labels: float,
                   n_boot: int, at_least: float, seed: int = 0) -> dict:
    """Effective dataset size of a run: the labels the reference curve needs to reach the run's final
    accuracy, over the labels the run bought.

    ref_labels [R]: the reference's labels per round; ref_acc [S, R]: its accuracy per seed (the mean
    over seeds, made non-decreasing: more uniform labels never cost accuracy in expectation);
    run_acc [S]: the run's final accuracy per seed (the same seeds). The claim holds if the lower
    end of the 95% interval is >= `at_least`. Beyond the reference's last point the size is
    "at_least" reference_max / run_labels; at its first point, "at_most" reference_min / run_labels.
    """
    grid = np.asarray(ref_labels, np.float64)

    def size(idx):
        ref = np.maximum.accumulate(ref_acc[idx].mean(0))
        return ts.first_crossing(grid, ref, run_acc[idx].mean())

    n_point = float(size(np.arange(len(run_acc))))
    reps = np.array([size(i) for i in seed_resamples(len(run_acc), n_boot, seed)])
    lo, hi = ts.interval(reps)
    clip = lambda n: float(np.clip(n, grid[0], grid[-1]) / run_labels)  # noqa: E731
    bounds = (edge_bound(lo, grid), edge_bound(hi, grid))
    verdict = ts.bounded_verdict(clip(lo), clip(hi), bounds, at_least=at_least)
    return {"ours": clip(n_point), "bound": edge_bound(n_point, grid), "ci": [clip(lo), clip(hi)],
            "ci_bounds": list(bounds), "grid": [clip(grid[0]), clip(grid[-1])],
            "verdict": verdict + bound_note(edge_bound(n_point, grid), bounds)}


def bound_note(point_bound: str | None, ci_bounds) -> str:
    """The words a verdict carries when its reading sits at a grid edge."""
    parts = (["the estimate"] if point_bound else []) + (["its interval"] if any(ci_bounds) else [])
    return " (bound: the grid clips " + " and ".join(parts) + ")" if parts else ""


def fmt_bounded(value: float, bound: str | None, spec: str) -> str:
    """`value` formatted with `spec`, prefixed ≥ or ≤ when it is a bound."""
    return {"at_least": "≥ ", "at_most": "≤ "}.get(bound, "") + format(value, spec)
