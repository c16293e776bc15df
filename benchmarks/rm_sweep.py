"""Reward-model training speed -> JSON.

  python -m benchmarks.rm_sweep [--out benchmarks/results/rm_sweep.json] [--steps 200]

(a) The scaling sweep as one compiled program (all points × members vmapped) against the
    same (point, member) runs one at a time in a Python loop, with the same chunk function
    compiled once for a [1, 1] grid; ratio = loop time / sweep time, compile time excluded.
    A second ratio charges each looped run its own compile, as one process per run would.
(b) Single reward-model training throughput (pairs/s) at batch 256 and 4,096, for the quick
    config's model and a wider one, and achieved GFLOP/s (XLA's cost analysis of the compiled
    update) against this machine's measured f32 2048² matmul rate.
Synthetic segments with the quick config's shapes (no dataset needed). Figures only.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import machine_info, matmul_peak_gflops, time_call, write_json
from configs.scaling_sweep import get_config
from rlhf_jax import normalizer
from rlhf_jax.models.reward import make_reward_model
from rlhf_jax.train import sweep
from rlhf_jax.train.reward import make_reward_update
from rlhf_jax.train.state import TrainState, make_optimizer


def synthetic_data(config, n_segments=3000, obs_dim=39, act_dim=7, seed=0):
    rng = np.random.default_rng(seed)
    T, pool, C, S = config.segment_length, config.n_train_pool, len(config.conditions), len(config.seeds)
    a = rng.integers(0, n_segments, pool)
    b = rng.integers(0, n_segments, pool)
    val_rows = np.arange(2 * config.n_val)
    return sweep.SweepData(
        seg_obs=jnp.asarray(rng.normal(size=(n_segments, T, obs_dim)), jnp.float32),
        seg_act=jnp.asarray(rng.normal(size=(n_segments, T, act_dim)), jnp.float32),
        seg_task=jnp.asarray(rng.integers(0, 4, n_segments), jnp.int32),
        seg_emb=jnp.asarray(rng.integers(0, 3, n_segments), jnp.int32),
        train_a=jnp.asarray(a, jnp.int32), train_b=jnp.asarray(b, jnp.int32),
        train_label=jnp.asarray(rng.integers(0, 2, (C, pool)), jnp.float32),
        order=jnp.asarray(np.stack([np.stack([rng.permutation(pool) for _ in range(S)]) for _ in range(C)]), jnp.int32),
        val_rows=jnp.asarray(val_rows, jnp.int32), val_a=jnp.arange(config.n_val, dtype=jnp.int32),
        val_b=jnp.arange(config.n_val, 2 * config.n_val, dtype=jnp.int32),
        val_label=jnp.asarray(rng.integers(0, 2, (C, config.n_val)), jnp.float32),
        val_weight=jnp.ones((C, config.n_val), jnp.float32))


def _norm(obs_dim, act_dim):
    return normalizer.collection(normalizer.identity(obs_dim), normalizer.identity(act_dim))


def sweep_setup(config, steps: int, eval_block: int | None = sweep.EVAL_BLOCK) -> dict:
    """Synthetic data, model, optimiser, grid and chunk function of a sweep shaped like ``config``
    (validation scored ``eval_block`` segments at a time; None = all at once)."""
    data = synthetic_data(config)
    model = make_reward_model("markovian", num_tasks=4, num_embodiments=3, hidden=tuple(config.model_sizes[0]))
    tx = make_optimizer(config.optimizer, total_steps=config.total_steps)
    chunk = sweep.make_sweep_chunk(model, tx, config.loss, batch_size=config.batch_size,
                                   eval_every=config.eval_every, evals_per_chunk=steps // config.eval_every,
                                   bootstrap=True, eval_block=eval_block)
    return {"data": data, "model": model, "tx": tx, "chunk": chunk,
            "norm": _norm(data.seg_obs.shape[-1], data.seg_act.shape[-1]),
            "sample": sweep.gather_segments(data, jnp.zeros((1,), jnp.int32)),
            "grid": sweep.SweepGrid(tuple(config.conditions), tuple(config.n_values), tuple(config.seeds),
                                    config.members)}


def sweep_vs_loop(config, steps: int) -> dict:
    setup = sweep_setup(config, steps)
    data, model, tx, chunk = setup["data"], setup["model"], setup["tx"], setup["chunk"]
    norm, sample, grid = setup["norm"], setup["sample"], setup["grid"]
    states = sweep.init_sweep_state(model, tx, grid, sample, norm, 0)
    points = sweep.point_spec(grid)
    t = time.perf_counter()
    compiled = chunk.lower(states, points, data).compile()
    compile_sweep = time.perf_counter() - t
    states, hist = compiled(states, points, data)  # warm-up run
    jax.block_until_ready(hist)
    t = time.perf_counter()
    states, hist = compiled(states, points, data)
    jax.block_until_ready(hist)
    sweep_s = time.perf_counter() - t

    one = sweep.SweepGrid(grid.conditions[:1], grid.n_values[:1], grid.seeds[:1], 1)
    chunk_one = sweep.make_sweep_chunk(model, tx, config.loss, batch_size=config.batch_size,
                                       eval_every=config.eval_every, evals_per_chunk=steps // config.eval_every,
                                       bootstrap=True)
    single = sweep.init_sweep_state(model, tx, one, sample, norm, 0)
    point = sweep.point_spec(one)
    t = time.perf_counter()
    compiled_one = chunk_one.lower(single, point, data).compile()
    compile_one = time.perf_counter() - t
    single, h = compiled_one(single, point, data)  # warm-up run
    jax.block_until_ready(h)
    runs = len(grid.points) * grid.members
    t = time.perf_counter()
    for _ in range(runs):  # each run has the same cost whatever its N, seed or member
        single, h = compiled_one(single, point, data)
        jax.block_until_ready(h)
    loop_s = time.perf_counter() - t
    return {"runs": runs, "steps": steps, "batch_size": config.batch_size, "segment_length": config.segment_length,
            "sweep_s": sweep_s, "loop_s": loop_s, "ratio_loop_over_sweep": loop_s / sweep_s,
            # One process per run (how sweeps are usually launched) also pays a compile per run.
            "loop_with_per_run_compile_s": loop_s + runs * compile_one,
            "ratio_loop_with_compiles_over_sweep_with_compile": (loop_s + runs * compile_one) / (sweep_s + compile_sweep),
            "compile_sweep_s": compile_sweep, "compile_single_s": compile_one,
            "pairs_per_s_sweep": runs * steps * config.batch_size / sweep_s}


def throughput(config, batch: int, hidden, peak: float, steps: int = 5) -> dict:
    T, D, A = config.segment_length, 39, 7
    model = make_reward_model("markovian", num_tasks=4, num_embodiments=3, hidden=tuple(hidden))
    key = jax.random.key(0)
    b = {"obs_a": jax.random.normal(key, (batch, T, D)), "act_a": jax.random.normal(key, (batch, T, A)),
         "obs_b": jax.random.normal(key, (batch, T, D)) + 1, "act_b": jax.random.normal(key, (batch, T, A)),
         "task_a": jnp.zeros(batch, jnp.int32), "task_b": jnp.zeros(batch, jnp.int32),
         "embodiment_a": jnp.zeros(batch, jnp.int32), "embodiment_b": jnp.ones(batch, jnp.int32),
         "label": jnp.ones(batch), "weight": jnp.ones(batch)}
    variables = model.init(key, b["obs_a"][:1], b["act_a"][:1], b["task_a"][:1], b["embodiment_a"][:1])
    tx = make_optimizer(config.optimizer, total_steps=1000)
    update = make_reward_update(config.loss, model, tx)

    def many(state, batch_):
        return jax.lax.scan(lambda s, _: update(s, batch_), state, None, length=steps)

    state = TrainState.create(variables, tx, jax.random.PRNGKey(0))
    # XLA's cost analysis counts a loop body once, so FLOPs come from one un-looped update.
    cost = jax.jit(update).lower(state, b).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", float("nan"))) * steps
    compiled = jax.jit(many).lower(state, b).compile()
    seconds = time_call(compiled, state, b, repeats=2, block=lambda out: out[1]["loss"])
    return {"batch": batch, "hidden": list(hidden), "pairs_per_s": batch * steps / seconds,
            "gflops_per_s": flops / seconds / 1e9, "fraction_of_matmul_peak": flops / seconds / 1e9 / peak,
            "flops_per_step": flops / steps}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/rm_sweep.json")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args(argv)
    config = get_config("quick")
    info = machine_info()
    peak = matmul_peak_gflops()
    result = {"machine": info, "matmul_peak_gflops": peak,
              "sweep_vs_loop": sweep_vs_loop(config, args.steps),
              "throughput": [throughput(config, b, h, peak) for h in ((64, 64), (512, 512)) for b in (256, 4096)]}
    write_json(args.out, result)


if __name__ == "__main__":
    main()
