"""The persistent compilation cache, cold against warm, in fresh processes -> JSON.

  python -m benchmarks.compile_cache [--out benchmarks/results/compile_cache.json] [--steps 25]

The program is the quick scaling sweep's chunk (``configs/scaling_sweep.py:quick``: 108 models
of 32×32, 2 conditions × 6 N × 3 seeds × 3 members, batch 32) on the synthetic segments of
``benchmarks.rm_sweep`` (no dataset, so the process is imports, data, the sweep's state, one
compile and ``--steps`` training steps). Each run is a new Python process, as a rerun of an
experiment is: first with an empty cache directory (cold: everything compiles, and the programs
that took at least the minimum compile time are written), then again on that directory (warm).
Both are done at the experiments' minimum compile time (1 s: only programs slower to compile are
written) and at 0 (every program written). Reported per run: the chunk's trace and lowering, its
compile (or read back from the cache), the programs compiled or read, cache hits and writes, and
the process's wall time from start to exit; then warm over cold.

The benchmark measures the cache itself, so its runs use their own temporary directories, never
the data dir's cache, whatever $RLHF_JAX_COMPILATION_CACHE says.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

from benchmarks.common import machine_info, write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One fresh process: the cache at argv[1] with minimum compile time argv[2], then the quick
# sweep's chunk of argv[3] steps traced, compiled and run once.
WORKER = textwrap.dedent("""
    import json, sys, time
    from rlhf_jax import compile_cache
    compile_cache.enable(sys.argv[1], min_compile_time_s=float(sys.argv[2]))
    events = compile_cache.CompileEvents().__enter__()
    import jax
    from benchmarks.rm_sweep import sweep_setup
    from configs.scaling_sweep import get_config
    from rlhf_jax.train import sweep
    config, steps = get_config("quick"), int(sys.argv[3])
    config.eval_every = min(config.eval_every, steps)
    setup = sweep_setup(config, steps)
    states = sweep.init_sweep_state(setup["model"], setup["tx"], setup["grid"], setup["sample"], setup["norm"], 0)
    points = sweep.point_spec(setup["grid"])
    t = time.perf_counter()
    lowered = setup["chunk"].lower(states, points, setup["data"])
    lower_s = time.perf_counter() - t
    t = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    jax.block_until_ready(compiled(states, points, setup["data"]))
    run_s = time.perf_counter() - t
    print(json.dumps({"chunk_lower_s": lower_s, "chunk_compile_s": compile_s, "chunk_run_s": run_s,
                      "programs_compiled_or_read": events.compiles, "cache_hits": events.cache_hits,
                      "cache_writes": events.cache_writes, "models": len(setup["grid"].points) * config.members}))
""")


def run_process(cache_dir: str, min_compile_time_s: float, steps: int) -> dict:
    """One fresh process of the worker on ``cache_dir``: its figures plus its wall time."""
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR", "RLHF_JAX_COMPILATION_CACHE")}
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", WORKER, cache_dir, str(min_compile_time_s), str(steps)], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    wall_s = time.perf_counter() - t
    if proc.returncode:
        raise RuntimeError(f"worker failed:\n{proc.stderr[-3000:]}")
    entries = sum(len(files) for _, _, files in os.walk(cache_dir))
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "process_s": wall_s, "cache_files_after": entries}


def cold_then_warm(min_compile_time_s: float, steps: int) -> dict:
    """A cold process on an empty cache directory, then a warm one on the same directory."""
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = os.path.join(tmp, "jax_cache")
        cold = run_process(cache_dir, min_compile_time_s, steps)
        warm = run_process(cache_dir, min_compile_time_s, steps)
    return {"min_compile_time_s": min_compile_time_s, "cold": cold, "warm": warm,
            "chunk_compile_warm_over_cold": warm["chunk_compile_s"] / cold["chunk_compile_s"],
            "process_warm_over_cold": warm["process_s"] / cold["process_s"],
            "process_s_saved": cold["process_s"] - warm["process_s"]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/compile_cache.json")
    parser.add_argument("--steps", type=int, default=25, help="training steps the chunk runs (one evaluation at 25)")
    args = parser.parse_args(argv)
    info = machine_info()  # before the runs, so the load average is the machine's, not theirs
    from rlhf_jax.compile_cache import MIN_COMPILE_TIME_S

    write_json(args.out, {
        "benchmark": "compile_cache",
        "what": "the quick scaling sweep's chunk (108 models of 32x32, batch 32, synthetic segments) in fresh "
                f"processes, {args.steps} steps: an empty persistent compilation cache (cold), then the same "
                "directory again (warm); at the experiments' minimum compile time and at 0",
        "steps": args.steps,
        "runs": [cold_then_warm(MIN_COMPILE_TIME_S, args.steps), cold_then_warm(0.0, args.steps)],
        "compilation_cache": {"enabled": True, "note": "each cold/warm pair on its own temporary directory"},
        "machine": info})


if __name__ == "__main__":
    main()
