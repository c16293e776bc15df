"""Data-parallel reward-update step time on 1/2/4/8 devices -> JSON.

  python -m benchmarks.dp_scaling [--out benchmarks/results/dp_scaling.json] [--devices 1,2,4,8]

Each device count runs in its own subprocess, because JAX fixes the device count at start-up
(XLA_FLAGS=--xla_force_host_platform_device_count=N). The update is
``sharding.data_parallel(make_reward_update(...))``: batch sharded over ("data",), state
replicated, the gradient all-reduce inserted by XLA.

On a CPU host the N "devices" are threads of one process sharing the machine's cores, so this
measures the cost of the sharded program (partitioning, all-reduce, per-device overhead) at a
fixed compute budget — not a speed-up from extra hardware (a faster 8-device step means the
sharded program keeps the shared cores busier than one device does). The JSON records the
usable core count and load average next to the figures so they are read that way.
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
    import json, sys
    import jax, ml_collections, numpy as np, optax
    from benchmarks.common import time_call
    from rlhf_jax.models.reward import make_reward_model
    from rlhf_jax.sharding import data_mesh, data_parallel, shard_batch
    from rlhf_jax.train.reward import make_reward_update
    from rlhf_jax.train.state import TrainState

    batch_size, hidden, repeats = int(sys.argv[1]), tuple(int(h) for h in sys.argv[2].split("x")), int(sys.argv[3])
    B, T, D, A = batch_size, 25, 39, 7   # the quick scaling sweep's segment shapes
    rng = np.random.default_rng(0)
    f32 = lambda *s: rng.normal(size=s).astype(np.float32)
    i32 = lambda hi: rng.integers(0, hi, B).astype(np.int32)
    batch = {"obs_a": f32(B, T, D), "act_a": f32(B, T, A), "obs_b": f32(B, T, D), "act_b": f32(B, T, A),
             "task_a": i32(4), "task_b": i32(4), "embodiment_a": i32(3), "embodiment_b": i32(3),
             "label": rng.integers(0, 2, B).astype(np.float32), "weight": np.ones(B, np.float32)}
    model = make_reward_model("markovian", num_tasks=4, num_embodiments=3, hidden=hidden)
    variables = model.init(jax.random.key(0), batch["obs_a"][:1], batch["act_a"][:1], batch["task_a"][:1],
                           batch["embodiment_a"][:1])
    tx = optax.adam(1e-3)
    cfg = ml_collections.ConfigDict(dict(margin=0.0, label_smoothing=0.0, center_coef=1e-3))
    mesh = data_mesh()
    # donate=False: time_call feeds the same state repeatedly.
    step = data_parallel(make_reward_update(cfg, model, tx), mesh, donate=False)
    state = TrainState.create(variables, tx, jax.random.PRNGKey(0))
    sharded = shard_batch(batch, mesh)
    jax.block_until_ready(step(state, sharded))  # compile
    best = time_call(step, state, sharded, repeats=repeats)
    print(json.dumps({"devices": jax.device_count(), "step_s": best, "pairs_per_s": B / best}))
""")


def run_one(devices: int, batch_size: int, hidden: str, repeats: int) -> dict:
    env = child_cache_env(dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu"))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", WORKER, str(batch_size), hidden, str(repeats)], env=env,
                          cwd=root, capture_output=True, text=True, timeout=900)
    if proc.returncode:
        raise RuntimeError(f"{devices}-device run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/dp_scaling.json")
    parser.add_argument("--devices", default="1,2,4,8")
    parser.add_argument("--batch_size", type=int, default=1024)
    parser.add_argument("--hidden", default="128x128")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    use_compilation_cache()
    info = machine_info()  # before the runs, so the load average is the machine's, not theirs
    runs = [run_one(int(n), args.batch_size, args.hidden, args.repeats) for n in args.devices.split(",")]
    base = runs[0]["step_s"]
    for r in runs:
        r["time_vs_first"] = r["step_s"] / base
    write_json(args.out, {
        "benchmark": "dp_scaling",
        "what": "best-of-N wall time of one data-parallel reward-model update (Bradley-Terry, Markovian "
                f"MLP {args.hidden}, batch {args.batch_size} pairs of 25-step segments)",
        "caveat": f"forced host-platform devices share {info['cpus_usable']} usable CPU core(s) (and the "
                  "machine's load, see machine.load_average): a change with device count reflects how the "
                  "sharded program uses those same cores (one device may leave a core idle; more add "
                  "all-reduce work), not added hardware",
        "batch_size": args.batch_size, "hidden": args.hidden, "repeats": args.repeats,
        "runs": runs, "machine": info})


if __name__ == "__main__":
    main()
