"""Every GPU benchmark in one call, within a time budget, with the JSONs in one folder.

  python -m benchmarks.gpu_all [--out benchmarks/results/<gpu>] [--budget_s 300]

Meant for a machine with one GPU and no network, under whatever JAX its image brings (the
committed H200 figures ran under JAX 0.11.2): run it from the repository root, without
installing the package. It runs, one process each, in this order:

  python -m benchmarks.gpu_sweep --steps 1000      -> gpu_sweep.json (the paper grid's chunk)
  python -m benchmarks.gpu_sweep --steps 200, twice on one persistent compilation cache
                                                   -> gpu_sweep_cache1.json (cold), _cache2.json (warm)
  python -m benchmarks.rm_sweep                    -> rm_sweep_gpu.json
  python -m benchmarks.ppo --envs 32768            -> ppo_32768.json
  python -m benchmarks.ppo --envs 2048             -> ppo_2048.json

and, with ``--extra`` (outside the default budget, which the runs above already fill):

  python -m benchmarks.bf16_sweep                  -> bf16_sweep.json (the quick sweep, f32 and bf16)
  python -m benchmarks.sweep_levers --shapes paper -> sweep_levers.json (the sweep's levers, predicted)
  python -m benchmarks.ppo_levers --envs 32768     -> ppo_levers.json (the PPO update's levers, predicted)

and writes gpu_all.json (each run's command, exit code and seconds). The JSONs go to a folder
named by the GPU's model, as ``nvidia-smi`` names it (``benchmarks/results/h200`` on an NVIDIA
H200, ``benchmarks/results/h100_80gb_hbm3`` on an H100 SXM), so a run on another chip never
overwrites the committed figures of the first; without an NVIDIA GPU it refuses to start unless ``--out`` is given. ``--only a.json,b.json`` runs
just those (default or extra), e.g. the lever runs in a session of their own. Each run gets a fresh
compilation cache directory, so every compile it reports is cold except the second of the cache
pair; the pair also caches programs of any size or compile time, so that all of them are reused.
A run that would start after ``--budget_s`` is skipped, and one still running then is stopped;
its earlier JSON, if any, is left in place and gpu_all.json says so. On one H200 these runs took
64, 27, 12, 84, 63 and 60 s (310 s), so at the default budget of 5 minutes the last one may be
cut. The order puts the cache pair together (a warm figure needs its cold run just before it)
and the runs the README's table leans on most first.

None of these benchmarks imports TensorFlow (the GPU image has none). ml-collections (the
configs' only dependency the image lacks) is installed with pip from the wheel in
``benchmarks/wheels/`` when ``import ml_collections`` fails; that wheel comes from
``pip download ml-collections==1.1.0 --no-deps -d benchmarks/wheels/``.
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time

WHEEL_DIR = os.path.join("benchmarks", "wheels")  # relative to the repository root
RESULTS_DIR = os.path.join("benchmarks", "results")


@dataclasses.dataclass(frozen=True)
class Run:
    """One benchmark process: ``python -m module *args --out <out>/json_name``."""

    json_name: str
    module: str
    args: tuple[str, ...] = ()
    # Runs with the same cache key share one persistent compilation cache directory.
    cache_key: str = ""

    def argv(self, out_dir: str) -> list[str]:
        return [sys.executable, "-m", self.module, *self.args, "--out", os.path.join(out_dir, self.json_name)]


RUNS = (
    Run("gpu_sweep.json", "benchmarks.gpu_sweep", ("--steps", "1000")),
    Run("gpu_sweep_cache1.json", "benchmarks.gpu_sweep", ("--steps", "200"), cache_key="pair"),
    Run("gpu_sweep_cache2.json", "benchmarks.gpu_sweep", ("--steps", "200"), cache_key="pair"),
    Run("rm_sweep_gpu.json", "benchmarks.rm_sweep"),
    Run("ppo_32768.json", "benchmarks.ppo", ("--envs", "32768")),
    Run("ppo_2048.json", "benchmarks.ppo", ("--envs", "2048")),
)
# Not in the 5-minute budget (the runs above took 310 s on one H200): run after them with --extra
# and a larger --budget_s.
EXTRA_RUNS = (Run("bf16_sweep.json", "benchmarks.bf16_sweep"),
              Run("sweep_levers.json", "benchmarks.sweep_levers", ("--shapes", "paper")),
              Run("ppo_levers.json", "benchmarks.ppo_levers", ("--envs", "32768")))


def gpu_folder_name(gpu_name: str) -> str:
    """The results folder of a GPU model: its whole name, less the vendor's words, as one slug, so that
    variants of a chip keep folders of their own: 'NVIDIA H200' -> 'h200', 'NVIDIA H100 80GB HBM3' ->
    'h100_80gb_hbm3', 'NVIDIA H100 PCIe' -> 'h100_pcie', 'NVIDIA GeForce RTX 4070 Ti SUPER' -> 'rtx_4070_ti_super'."""
    words = [w for w in re.split(r"[^a-z0-9]+", gpu_name.lower()) if w and w not in ("nvidia", "geforce", "tesla")]
    return "_".join(words) or "gpu"


def detected_gpu(run=subprocess.run) -> str | None:
    """The first GPU's model name from ``nvidia-smi`` (without importing JAX, whose backend would hold
    GPU memory in this process while the benchmarks run in theirs), or None without one."""
    try:
        done = run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                   timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    names = [line.strip() for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else []
    return names[0] if names else None


def run_environment(run: Run, cache_root: str) -> dict[str, str]:
    """The process environment of ``run``: its own compilation cache (shared by its cache key)."""
    env = dict(os.environ)
    env["JAX_COMPILATION_CACHE_DIR"] = os.path.join(cache_root, run.cache_key or run.json_name)
    if run.cache_key:
        # JAX skips programs under 1 s of compile or small entries by default; the pair measures
        # a warm start, which only holds if every program was written.
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    return env


def ensure_ml_collections(wheel_dir: str = WHEEL_DIR) -> str:
    """Installs ml-collections from ``wheel_dir`` when it cannot be imported; returns what it did.

    Raises FileNotFoundError (with the command that makes the wheel) when it is missing and no
    wheel is there.
    """
    if importlib.util.find_spec("ml_collections") is not None:
        return "ml_collections already importable"
    wheels = sorted(glob.glob(os.path.join(wheel_dir, "ml_collections-*.whl")))
    if not wheels:
        raise FileNotFoundError(
            f"ml_collections is not installed and {wheel_dir}/ holds no ml_collections wheel; on a machine with "
            f"network: pip download ml-collections==1.1.0 --no-deps -d {wheel_dir}/")
    # --no-deps: its dependencies (absl-py, PyYAML) come with JAX's usual stack, and there is no index.
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", wheels[-1]], check=True)
    return f"installed {wheels[-1]}"


def run_all(runs, out_dir: str, budget_s: float, launch=subprocess.run, clock=time.monotonic) -> list[dict]:
    """Runs ``runs`` in order within ``budget_s`` seconds; one record per run.

    ``launch`` and ``clock`` are ``subprocess.run`` and ``time.monotonic`` in use (a test passes
    fakes). A record has the command, ``status`` (ok / failed / timed out / skipped), exit code
    and seconds.
    """
    records, start = [], clock()
    with tempfile.TemporaryDirectory(prefix="gpu_all_cache_") as cache_root:
        for run in runs:
            argv = run.argv(out_dir)
            record = {"json": run.json_name, "command": " ".join(["python"] + argv[1:])}
            left = budget_s - (clock() - start)
            if left <= 0:
                records.append({**record, "status": "skipped", "returncode": None, "seconds": 0.0})
                continue
            t = clock()
            try:
                code = launch(argv, env=run_environment(run, cache_root), timeout=left).returncode
                status = "ok" if code == 0 else "failed"
            except subprocess.TimeoutExpired:
                code, status = None, "timed out"
            records.append({**record, "status": status, "returncode": code, "seconds": round(clock() - t, 1)})
            print(f"gpu_all: {record['command']}: {status} ({records[-1]['seconds']} s)", flush=True)
    return records


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None,
                        help="folder for the JSONs (default: benchmarks/results/<the GPU's model>, e.g. h200)")
    parser.add_argument("--budget_s", type=float, default=300.0, help="wall-clock budget for all runs")
    parser.add_argument("--wheels", default=WHEEL_DIR, help="folder holding the ml-collections wheel")
    parser.add_argument("--extra", action="store_true",
                        help="also run the runs outside the default budget (bf16_sweep and the levers); "
                             "raise --budget_s with it")
    parser.add_argument("--only", default="",
                        help="comma-separated JSON names (e.g. sweep_levers.json,ppo_levers.json): run just those, "
                             "from the default and the extra runs, in their usual order")
    args = parser.parse_args(argv)
    runs = RUNS + (EXTRA_RUNS if args.extra else ())
    if args.only:
        wanted = set(args.only.split(","))
        unknown = sorted(wanted - {run.json_name for run in RUNS + EXTRA_RUNS})
        if unknown:
            print(f"gpu_all: --only: expected JSON names of {', '.join(r.json_name for r in RUNS + EXTRA_RUNS)}; "
                  f"found {', '.join(unknown)}", file=sys.stderr)
            return 2
        runs = tuple(run for run in RUNS + EXTRA_RUNS if run.json_name in wanted)
    if args.out is None:
        gpu = detected_gpu()
        if gpu is None:
            print("gpu_all: --out: expected an NVIDIA GPU to name the results folder (nvidia-smi); found none "
                  "(pass --out to run the benchmarks on this machine anyway)", file=sys.stderr)
            return 2
        args.out = os.path.join(RESULTS_DIR, gpu_folder_name(gpu))
        print(f"gpu_all: {gpu}: the JSONs go to {args.out}", flush=True)
    try:
        print(f"gpu_all: {ensure_ml_collections(args.wheels)}", flush=True)
    except (FileNotFoundError, subprocess.CalledProcessError) as err:
        print(f"gpu_all: cannot provide ml_collections: {err}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    records = run_all(runs, args.out, args.budget_s)
    summary = {"budget_s": args.budget_s, "total_s": round(sum(r["seconds"] for r in records), 1), "runs": records}
    with open(os.path.join(args.out, "gpu_all.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    not_ok = [r["json"] for r in records if r["status"] != "ok"]
    print(f"gpu_all: {len(records) - len(not_ok)} of {len(records)} runs ok in {summary['total_s']} s"
          + (f"; not refreshed: {', '.join(not_ok)}" if not_ok else ""))
    return 1 if not_ok else 0


if __name__ == "__main__":
    sys.exit(main())
