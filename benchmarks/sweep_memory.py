"""Scaling-sweep wall time and peak host memory against the number of sweep points -> JSON.

  python -m benchmarks.sweep_memory [--out benchmarks/results/sweep_memory.json] [--points 6,24,96]
                                    [--eval-blocks none,256]
  python -m benchmarks.sweep_memory --paper --steps 10   # -> benchmarks/results/sweep_memory_paper.json

The whole sweep (points × members) is one vmapped program, so its memory grows with the number
of points: parameters, optimiser state and best-parameter copies per (point, member), plus the
per-step activations of every point's batch. This measures how fast, with the quick config's
model and segment shapes on the synthetic data of ``benchmarks.rm_sweep``. Points are
conditions × N values × seeds (6 N values; 1×1, 2×2, 4×4 conditions × seeds for 6/24/96).

Each point count runs in its own subprocess, because peak RSS (``getrusage().ru_maxrss``) is a
lifetime maximum; the worker records RSS after building the data (baseline) and after the sweep
ran, and the compile time apart from the run time. Each point count runs twice: validation
scored in one pass over all its segments (``none``, as before blocked evaluation) and in blocks
of 256 segments (``sweep.EVAL_BLOCK``, the default).

``--paper`` uses the paper variant's shapes (128×128 MLP, batch 64, 5 members, 2,000 validation
pairs, 9 N values): a line through 9 and 45 points predicts the 180-point grid's peak RSS as one
program and in the variant's 4 slices of points (``point_groups``), and the 180-point grid then
runs ``--steps`` steps and one validation pass in 4 slices to confirm it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap

from benchmarks.common import child_cache_env, machine_info, use_compilation_cache, write_json

WORKER = textwrap.dedent("""
    import json, resource, sys, time
    import jax
    from benchmarks.rm_sweep import sweep_setup
    from configs.scaling_sweep import get_config
    from rlhf_jax.train import sweep

    def rss_mib():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB

    points, steps = int(sys.argv[1]), int(sys.argv[2])
    eval_block = None if sys.argv[3] == "none" else int(sys.argv[3])
    variant, groups = sys.argv[4], int(sys.argv[5])
    config = get_config(variant)
    n_count = len(config.n_values)
    # points = N values x conditions x seeds; conditions fill up to the variant's count first
    shapes = {n_count * c * s: (c, s) for c in range(1, 5) for s in range(1, 6)}
    if points not in shapes:
        raise SystemExit(f"points must be {n_count} N values x conditions (1-4) x seeds (1-5), got {points}")
    side_c, side_s = shapes[points]
    config.conditions = tuple(f"c{i}" for i in range(side_c))   # names only: the data are synthetic
    config.seeds = tuple(range(side_s))
    config.eval_every = steps  # one validation pass per timed chunk, whatever the variant's spacing
    setup = sweep_setup(config, steps, eval_block)
    data, grid, chunk = setup["data"], setup["grid"], setup["chunk"]
    assert len(grid.points) == points, len(grid.points)
    jax.block_until_ready(data)
    baseline = rss_mib()
    states = sweep.init_sweep_state(setup["model"], setup["tx"], grid, setup["sample"], setup["norm"], 0)
    pts = sweep.point_spec(grid)
    size = points // groups
    first = lambda tree: jax.tree.map(lambda x: x[:size], tree)  # one slice's shapes
    t = time.perf_counter()
    compiled = chunk.lower(first(states), first(pts), data).compile()
    compile_s = time.perf_counter() - t
    mem = compiled.memory_analysis()
    t = time.perf_counter()
    states, hist = sweep.grouped_chunk(compiled, groups)(states, pts, data)
    jax.block_until_ready(hist)
    run_s = time.perf_counter() - t
    runs = points * config.members
    print(json.dumps({
        "variant": variant, "hidden": list(config.model_sizes[0]), "points": points, "point_groups": groups, "eval_block": eval_block, "n_val_pairs": config.n_val, "members": config.members, "runs": runs, "steps": steps,
        "batch_size": config.batch_size, "compile_s": compile_s, "run_s": run_s,
        "pairs_per_s": runs * steps * config.batch_size / run_s,
        "peak_rss_mib": rss_mib(), "rss_after_data_mib": baseline,
        "xla_temp_mib": getattr(mem, "temp_size_in_bytes", 0) / 2**20 if mem else None,
        "xla_argument_mib": getattr(mem, "argument_size_in_bytes", 0) / 2**20 if mem else None}))
""")


def run_one(points: int, steps: int, eval_block: str, variant: str = "quick", groups: int = 1) -> dict:
    env = child_cache_env(dict(os.environ, JAX_PLATFORMS="cpu"))
    env.pop("XLA_FLAGS", None)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", WORKER, str(points), str(steps), eval_block, variant, str(groups)], env=env, cwd=root,
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode:
        raise RuntimeError(f"{points}-point run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def per_point(runs: list[dict]) -> dict:
    """Least-squares line (slope per point, intercept) of peak RSS and of XLA temporaries against
    sweep points, per block size."""
    import numpy as np  # pylint: disable=g-import-not-at-top

    out = {}
    for block in sorted({r["eval_block"] for r in runs}, key=str):
        sel = [r for r in runs if r["eval_block"] == block]
        if len(sel) < 2:
            continue
        pts = np.array([r["points"] for r in sel], float)
        fits = {key: np.polyfit(pts, [r[key] for r in sel], 1) for key in ("peak_rss_mib", "xla_temp_mib")}
        out[str(block)] = {key: float(f[0]) for key, f in fits.items()}
        out[str(block)].update({f"{key}_intercept": float(f[1]) for key, f in fits.items()})
    return out


def predict_paper(steps: int, predict_from=(9, 45), confirm=180, groups=4) -> dict:
    """The paper grid's peak RSS predicted from a line through small paper-shaped grids, then
    measured at the full grid trained in ``groups`` slices of points (synthetic data, ``steps``
    steps and one validation pass). In slices, the temporaries are those of confirm/groups
    points; the states of all points are a small addition."""
    small = [run_one(p, steps, "256", "paper") for p in predict_from]
    line = per_point(small)["256"]
    at = lambda points: line["peak_rss_mib_intercept"] + line["peak_rss_mib"] * points
    full = run_one(confirm, steps, "256", "paper", groups)
    return {"benchmark": "sweep_memory_paper", "fit_points": list(predict_from), "line": line,
            "predicted_peak_rss_mib_one_program": at(confirm),
            "predicted_peak_rss_mib_in_groups": at(confirm // groups), "point_groups": groups,
            "measured": full, "goal_mib": 8 * 1024,
            "measured_over_predicted": full["peak_rss_mib"] / at(confirm // groups), "runs": small}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/sweep_memory.json")
    parser.add_argument("--points", default="6,24,96")
    parser.add_argument("--steps", type=int, default=100, help="training steps timed (one chunk)")
    parser.add_argument("--eval-blocks", default="none,256", help="validation block sizes; none = one pass")
    parser.add_argument("--paper", action="store_true",
                        help="predict the paper grid's peak from 9- and 45-point paper-shaped grids, then measure "
                             "the full 180-point grid (writes --out, default sweep_memory_paper.json)")
    args = parser.parse_args(argv)
    use_compilation_cache()
    machine = machine_info()  # before the runs, so the load average is the machine's, not theirs
    if args.paper:
        out = args.out.replace("sweep_memory.json", "sweep_memory_paper.json")
        write_json(out, {**predict_paper(args.steps), "machine": machine})
        return
    runs = [run_one(int(p), args.steps, b) for b in args.eval_blocks.split(",") for p in args.points.split(",")]
    write_json(args.out, {
        "benchmark": "sweep_memory",
        "per_point_mib": per_point(runs),
        "what": "one compiled scaling-sweep chunk (quick config model/shapes, synthetic data, 3 members) "
                "at several sweep-point counts: compile and run wall time, peak RSS of the process, and "
                "XLA's buffer estimates for the compiled program; validation in one pass (eval_block null) "
                "and in blocks",
        "runs": runs, "machine": machine})


if __name__ == "__main__":
    main()
