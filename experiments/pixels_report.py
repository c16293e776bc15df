"""Report of a pixels sweep (``configs/scaling_sweep.py:pixels``): state, pixels and pixels +
proprioception reward models trained on the same pairs. Per curve (feature kind x model size):
ensemble test accuracy at every N (mean over seeds, 95% Student-t interval), the power-law exponent
alpha of test error vs N (``rlhf_jax.scaling.fit_power_law``, with its bootstrap interval), and the N
at which each pixel curve reaches the state curve's accuracy at N = 1,600: read off the grid (the
smallest N whose mean reaches it; outside the grid a bound, "> N_max" or "≤ N_min") and from the
fit (an extrapolation), with a bootstrap interval that carries both the pixel fit's and the state
target's uncertainty and counts the replicates that never cross. With a ``benchmark.json`` (``benchmarks/pixels_sweep.py``) beside the results,
the memory per sweep point and the pairs/s of each kind follow.

  python -m experiments.pixels_report results/pixels_vs_state --docs docs/pixels.md
"""
from __future__ import annotations

import csv
import os
import sys

import numpy as np

from experiments.doc_blocks import render_main
from rlhf_jax import scaling
from rlhf_jax.evaluation.seed_statistics import seeds_text
from rlhf_jax.strict_json import read_json

DOCS_BLOCK = "pixels-table"
REFERENCE_N = 1600  # the state curve's accuracy here is what the pixel curves must reach
STATE_KINDS = ("joint", "eef")
N_BOOTSTRAP = 200


def read_rows(f) -> list[dict]:
    """results.csv's ensemble rows: N, seed as integers, test accuracy as a float, the curve's kind."""
    rows = []
    for r in csv.DictReader(f):
        if r["member"] == "ensemble":
            kind = r.get("features") or r["model_size"].split("_", 1)[0]
            rows.append(dict(r, n=int(r["n"]), seed=int(r["seed"]), test_accuracy=float(r["test_accuracy"]),
                             features=kind))
    return rows


def curves(rows: list[dict]) -> dict:
    """{(condition, model_size): {"kind": feature kind, "acc": {N: [accuracy per seed]}}}, in row order."""
    out: dict = {}
    for r in rows:
        c = out.setdefault((r["condition"], r["model_size"]), {"kind": r["features"], "acc": {}})
        c["acc"].setdefault(r["n"], []).append(r["test_accuracy"])
    return out


def mean_accuracy(acc: dict) -> dict:
    return {n: float(np.mean(v)) for n, v in sorted(acc.items())}


def fit_alpha(acc: dict, floor: float, n_bootstrap: int = N_BOOTSTRAP) -> dict | None:
    """Power-law fit of test error (1 - accuracy, clipped at ``floor``) vs N over every (N, seed) point."""
    n = [k for k, v in sorted(acc.items()) for _ in v]
    err = [max(1.0 - a, floor) for _, v in sorted(acc.items()) for a in v]
    if len(set(n)) < 2 or len(n) < 3:
        return None
    return scaling.fit_power_law(n, err, n_bootstrap=n_bootstrap, seed=0)


def n_reaching(acc: dict, target: float) -> str:
    """The smallest grid N whose mean accuracy reaches ``target`` (to 9 decimals); a bound when
    none does ("> N_max") or the smallest does ("≤ N_min")."""
    means = mean_accuracy(acc)
    reached = [n for n, m in means.items() if round(m, 9) >= round(target, 9)]
    if not reached:
        return f"> {max(means):,}"
    return f"≤ {reached[0]:,}" if reached[0] == min(means) else f"{reached[0]:,}"


def crossover(fit: dict, state_acc: list[float], seed: int = 0) -> dict:
    """The N* at which the pixel fit's error reaches the state curve's error at N = 1,600, with an interval.

    N* = (A / (err_t − E))^(1/α), err_t = 1 − mean(state_acc). The interval pairs each of the fit's
    bootstrap replicates (E, A, α; they resample its (N, seed) points) with a target redrawn from the state seeds' accuracies (with
    replacement, ``seed`` fixed), so both curves' uncertainty enters. A replicate whose floor E is at or
    above its target (or α ≤ 0) never crosses: N* = inf, counted in ``never``; replicates with too few
    distinct N to fit (NaN) are left out (all of them: a NaN interval). Bounds are order statistics (lower / higher), so an
    inf bound stays inf rather than being interpolated. Returns ``N``, ``N_ci`` [low, high], ``never``
    (share of replicates), ``replicates``.
    """
    acc = np.asarray(state_acc, np.float64)
    boot = {k: np.asarray(fit["bootstrap"][k], np.float64) for k in ("E", "A", "alpha")}
    draws = np.random.default_rng(seed).integers(0, acc.size, size=(boot["alpha"].size, acc.size))
    target_err = 1.0 - acc[draws].mean(axis=1)
    kept = np.isfinite(boot["alpha"])
    samples = _n_star(boot["E"][kept], boot["A"][kept], boot["alpha"][kept], target_err[kept])
    q = (1 - fit["ci"]) / 2
    ci = ([float(np.quantile(samples, q, method="lower")), float(np.quantile(samples, 1 - q, method="higher"))]
          if samples.size else [float("nan")] * 2)
    return {"N": float(_n_star(fit["E"], fit["A"], fit["alpha"], 1.0 - acc.mean())), "N_ci": ci,
            "never": float(np.mean(np.isinf(samples))) if samples.size else float("nan"), "replicates": int(samples.size)}


def _n_star(e, a, alpha, target_err) -> np.ndarray:
    """(A / (target − E))^(1/α) elementwise; inf where the floor is at or above the target or α ≤ 0."""
    e, a, alpha, target_err = np.broadcast_arrays(*(np.asarray(x, np.float64) for x in (e, a, alpha, target_err)))
    gap = target_err - e
    ok = (gap > 0) & (alpha > 0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        n = (a / np.where(ok, gap, 1.0)) ** (1.0 / np.where(ok, alpha, 1.0))
    return np.where(ok, n, np.inf)


def crossover_text(cross: dict | None) -> str:
    """"2,436 [1,900, 4,100]"; an upper bound of inf reads "[1,900, never)", and the share of replicates
    that never cross follows whenever there are any."""
    if cross is None:
        return "—"

    def num(n: float) -> str:
        return f"{n:,.0f}" if np.isfinite(n) else "never"

    low, high = cross["N_ci"]
    if not np.isfinite(low):  # inf: most replicates never cross; NaN: no replicate could be fitted
        interval = ""
    elif np.isinf(high):
        interval = f" [{num(low)}, never)"
    else:
        interval = f" [{num(low)}, {num(high)}]"
    never_share = cross["never"]  # rounding must not turn 99.5% into "100%" nor 0.4% into "0%"
    share = ("< 1%" if never_share < 0.01 else "> 99%" if 0.99 < never_share < 1 else f"{never_share:.0%}")
    never = f"never in {share} of resamples" if cross["never"] > 0 else ""
    if np.isinf(cross["N"]):
        return f"never (fit's floor above it; {never})" if never else "never (fit's floor above it)"
    return f"{num(cross['N'])}{interval}" + (f"; {never}" if never else "")


def test_pairs(results_dir: str, default: int = 1000) -> int:
    """n_test of the run's config.json (``default`` when the results carry none)."""
    path = os.path.join(results_dir, "config.json")
    if not os.path.exists(path):
        return default
    return int(read_json(path).get("n_test", default))


def read_benchmark(results_dir: str) -> dict | None:
    path = os.path.join(results_dir, "benchmark.json")
    if not os.path.exists(path):
        return None
    return read_json(path)


def benchmark_lines(bench: dict) -> list[str]:
    """Memory per sweep point and pairs/s per kind from benchmarks/pixels_sweep.py's JSON."""
    lines = ["", f"Benchmark (`benchmark.json`, {bench.get('machine', {}).get('device', 'device?')}; frames "
             f"{bench['frame_size']}x{bench['frame_size']}, every {bench['every']} steps, {bench['points']} points x "
             f"{bench['members']} members, batch {bench['batch_size']}):", "",
             "| kind | XLA temporaries per point (MiB) | training state per point (MiB) | shared arrays (MiB) "
             "| pairs/s (all points) |", "|---|---|---|---|---|"]
    for kind, m in bench["kinds"].items():
        state = m.get("state_mib_per_point")
        lines.append(f"| {kind} | {m['temp_mib_per_point']:.2f} | {'—' if state is None else f'{state:.2f}'} | "
                     f"{m['shared_mib']:.2f} | {m['pairs_per_s']:,.0f} |")
    return lines


def frames_line(results_dir: str) -> list[str]:
    """The run's frame store (run_info.json ``frames_mib``: every step's frame, stored once), if recorded."""
    path = os.path.join(results_dir, "run_info.json")
    if not os.path.exists(path):
        return []
    mib = read_json(path).get("frames_mib")
    return [] if mib is None else ["", f"The run's frames, one per episode step and stored once, take {mib:.1f} MiB "
                                       "(`run_info.json`), shared by every sweep point."]


def docs_block(rows: list[dict], results_dir: str, benchmark: dict | None = None) -> str:
    """The docs page's generated block from a committed results.csv (and benchmark.json when there)."""
    benchmark = read_benchmark(results_dir) if benchmark is None else benchmark
    table = curves(rows)
    n_values = sorted({r["n"] for r in rows})
    floor = 0.5 / test_pairs(results_dir)  # an error of 0 has no logarithm: half a test pair, as the sweep's fits
    lines = [f"Generated by `python -m experiments.pixels_report {results_dir} --docs docs/pixels.md` from the "
             f"committed `{results_dir}/results.csv`. Ensemble test accuracy (mean over seeds, 95% Student-t "
             "interval); alpha: the exponent of err(N) = E + A·N^-alpha fitted to every (N, seed) point with its "
             "bootstrap 95% interval; pixels reach state: the smallest N of the grid whose mean accuracy reaches the "
             f"state curve's at N = {REFERENCE_N:,} (a bound outside the grid), and the N the fit puts there with a "
             "95% bootstrap interval over the fit's replicates and the state seeds' mean at that N (\"never\": "
             "replicates whose fitted floor is at or above the target, given as their share)."]
    for cond in dict.fromkeys(c for c, _ in table):
        own = {size: c for (name, size), c in table.items() if name == cond}
        state = [c for c in own.values() if c["kind"] in STATE_KINDS]
        ref_n = REFERENCE_N if state and REFERENCE_N in state[0]["acc"] else (max(state[0]["acc"]) if state else None)
        target = float(np.mean(state[0]["acc"][ref_n])) if state else None
        lines += ["", f"Labels from `{cond}`" + (f"; state accuracy at N = {ref_n:,}: {target:.3f}" if state else "")
                  + ":", "", "| features | model | " + " | ".join(f"N={n:,}" for n in n_values)
                  + " | alpha [95%] | pixels reach state: grid | fit [95%] |", "|---|---|" + "---|" * (len(n_values) + 3)]
        for size, c in own.items():
            fit = fit_alpha(c["acc"], floor)
            alpha = "—" if fit is None else f"{fit['alpha']:.3f} [{fit['alpha_ci'][0]:.3f}, {fit['alpha_ci'][1]:.3f}]"
            pixel = c["kind"] not in STATE_KINDS and target is not None
            cross = crossover(fit, state[0]["acc"][ref_n]) if pixel and fit is not None else None
            reach = (n_reaching(c["acc"], target), crossover_text(cross)) if pixel else ("—", "—")
            lines.append(f"| {c['kind']} | {size} | " + " | ".join(seeds_text(c["acc"][n]) if n in c["acc"] else "—"
                                                                    for n in n_values)
                         + f" | {alpha} | {reach[0]} | {reach[1]} |")
    lines += frames_line(results_dir)
    if benchmark:
        lines += benchmark_lines(benchmark)
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """``python -m experiments.pixels_report RESULTS_DIR --docs PAGE``: the page's block from results.csv."""
    return render_main(argv, prog="experiments.pixels_report", results_file="results.csv",
                       default_page="docs/pixels.md", name=DOCS_BLOCK, render=docs_block, load=read_rows)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
