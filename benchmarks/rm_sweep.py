"""Reward-model training speed -> JSON.

  python -m benchmarks.rm_sweep [--out benchmarks/results/rm_sweep.json] [--steps 200]

(a) The scaling sweep as one compiled program (all points × members vmapped) against the
    same (point, member) runs one at a time in a Python loop, with the same chunk function
    compiled once for a [1, 1] grid; ratio = loop time / sweep time, compile time excluded.
    A second ratio charges each looped run its own compile, as one process per run would.
(b) Single reward-model training throughput (pairs/s) at batch 256 and 4,096, for a 64×64 and a
    512×512 model, and a vmapped 5-member 64×64 ensemble at batch 4,096: achieved GFLOP/s
    against this machine's measured f32 2048² matmul rate (measured before and after). FLOPs
    come from the model (2 × Dense MACs per row, × 3 for forward + backward; XLA's cost
    analysis is recorded beside it), not from timing; the sweep's include its evaluations.
(c) Profiles: the sweep's share of time in validation scoring (the same chunk evaluating once)
    and in its data path (pair draws, bootstrap weights and segment gathers alone); the same
    sweep run in point groups (``sweep.grouped_chunk``: slices of the points in turn, so a
    smaller working set); and the batch-4,096 step's share in element-wise work (its matmuls
    with GELU, ReLU, none).
Synthetic segments with the quick config's shapes (no dataset needed). Figures only.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import dense_macs, machine_info, matmul_peak_gflops, time_call, use_compilation_cache, write_json
from configs.scaling_sweep import get_config
from rlhf_jax import normalizer
from rlhf_jax.ensemble import bootstrap_weights
from rlhf_jax.models.reward import make_reward_model
from rlhf_jax.train import sweep
from rlhf_jax.train.reward import make_reward_update
from rlhf_jax.train.state import TrainState, make_optimizer


def synthetic_data(config, n_segments=3000, obs_dim=39, act_dim=7, seed=0):
    rng = np.random.default_rng(seed)
    n_segments = max(n_segments, 2 * config.n_val)  # validation rows are the first 2·n_val segments
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


def identity_norm(obs_dim, act_dim):
    """The norm collection of an unnormalised reward model (identity statistics)."""
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
            "norm": identity_norm(data.seg_obs.shape[-1], data.seg_act.shape[-1]),
            "sample": sweep.gather_segments(data, jnp.zeros((1,), jnp.int32)),
            "grid": sweep.SweepGrid(tuple(config.conditions), tuple(config.n_values), tuple(config.seeds),
                                    config.members)}


def compiled_single_run(model, tx, config, data, steps: int, sample, norm, *, bootstrap: bool = True,
                        seed: int = 0) -> tuple:
    """One (point, member) run of the sweep chunk compiled alone and warmed up: (compiled,
    state, point, compile s). Run ``runs`` times, it is the loop the one-program sweep replaces
    (the chunk donates its state: pass each call the state the last one returned)."""
    one = sweep.SweepGrid(tuple(config.conditions[:1]), tuple(config.n_values[:1]), tuple(config.seeds[:1]), 1)
    chunk = sweep.make_sweep_chunk(model, tx, config.loss, batch_size=config.batch_size,
                                   eval_every=config.eval_every, evals_per_chunk=max(steps // config.eval_every, 1),
                                   bootstrap=bootstrap)
    state, point = sweep.init_sweep_state(model, tx, one, sample, norm, seed), sweep.point_spec(one)
    t = time.perf_counter()
    compiled = chunk.lower(state, point, data).compile()
    compile_s = time.perf_counter() - t
    state, hist = compiled(state, point, data)  # warm-up run
    jax.block_until_ready(hist)
    return compiled, state, point, compile_s


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

    compiled_one, single, point, compile_one = compiled_single_run(model, tx, config, data, steps, sample, norm)
    runs = len(grid.points) * grid.members
    macs = dense_macs(states.train.params)  # every (point, member) together: [P, K, in, out] kernels
    evals = steps // config.eval_every
    model_flops = (train_flops_per_pair(macs, config.segment_length) * config.batch_size * steps
                   + evals * int(data.val_rows.shape[0]) * config.segment_length * 2 * macs)
    # Profile: the same chunk evaluating once at its end instead of every eval_every steps.
    chunk_one_eval = sweep.make_sweep_chunk(model, tx, config.loss, batch_size=config.batch_size,
                                            eval_every=steps, evals_per_chunk=1, bootstrap=True)
    compiled_one_eval = chunk_one_eval.lower(states, points, data).compile()
    one_eval_s = time_call(compiled_one_eval, states, points, data, repeats=1, block=lambda out: out[1])
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
            "pairs_per_s_sweep": runs * steps * config.batch_size / sweep_s,
            "hidden": list(config.model_sizes[0]), "model_flops": model_flops,
            "gflops_per_s_sweep": model_flops / sweep_s / 1e9, "gflops_per_s_loop": model_flops / loop_s / 1e9,
            "sweep_s_evaluating_once": one_eval_s, "evaluation_share_of_sweep": 1 - one_eval_s / sweep_s}


def _pair_batch(batch: int, T: int, D: int = 39, A: int = 7) -> dict:
    key = jax.random.key(0)
    return {"obs_a": jax.random.normal(key, (batch, T, D)), "act_a": jax.random.normal(key, (batch, T, A)),
            "obs_b": jax.random.normal(key, (batch, T, D)) + 1, "act_b": jax.random.normal(key, (batch, T, A)),
            "task_a": jnp.zeros(batch, jnp.int32), "task_b": jnp.zeros(batch, jnp.int32),
            "embodiment_a": jnp.zeros(batch, jnp.int32), "embodiment_b": jnp.ones(batch, jnp.int32),
            "label": jnp.ones(batch), "weight": jnp.ones(batch)}


def train_flops_per_pair(macs: int, T: int) -> float:
    """Model FLOPs of one Bradley-Terry pair: 2 segments × T steps × 2·MACs forward, × 3 for
    forward + backward (the backward pass is two matmuls per forward one)."""
    return 3 * 2 * T * 2 * macs


def throughput(config, batch: int, hidden, peak: float, steps: int = 5, members: int = 0) -> dict:
    """Single-model update (members = 0) or a vmapped ensemble of ``members`` on one batch."""
    T = config.segment_length
    model = make_reward_model("markovian", num_tasks=4, num_embodiments=3, hidden=tuple(hidden))
    b = _pair_batch(batch, T)
    variables = model.init(jax.random.key(0), b["obs_a"][:1], b["act_a"][:1], b["task_a"][:1], b["embodiment_a"][:1])
    tx = make_optimizer(config.optimizer, total_steps=1000)
    update = make_reward_update(config.loss, model, tx)
    state = TrainState.create(variables, tx, jax.random.PRNGKey(0))
    if members:
        update = jax.vmap(update, in_axes=(0, None))
        state = jax.tree.map(lambda x: jnp.stack([x] * members), state)

    def many(state, batch_):
        return jax.lax.scan(lambda s, _: update(s, batch_), state, None, length=steps)

    # XLA's cost analysis counts a loop body once, so its FLOPs come from one un-looped update.
    cost = jax.jit(update).lower(state, b).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    xla_flops = float(cost.get("flops", float("nan"))) * steps
    model_flops = train_flops_per_pair(dense_macs(variables["params"]), T) * batch * steps * max(members, 1)
    compiled = jax.jit(many).lower(state, b).compile()
    seconds = time_call(compiled, state, b, repeats=2, block=lambda out: out[1]["loss"])
    return {"batch": batch, "hidden": list(hidden), "members": max(members, 1),
            "pairs_per_s": batch * steps * max(members, 1) / seconds,
            "gflops_per_s": model_flops / seconds / 1e9, "fraction_of_matmul_peak": model_flops / seconds / 1e9 / peak,
            "model_flops_per_step": model_flops / steps, "xla_flops_per_step": xla_flops / steps,
            "xla_gflops_per_s": xla_flops / seconds / 1e9}


def data_path_profile(config, steps: int) -> dict:
    """Seconds of the sweep's data path alone, vmapped over every (point, member) as in the
    sweep chunk: each step's pair draw, bootstrap weights and segment gathers, the gathered
    batch summed so XLA keeps it (no model, no update, no validation)."""
    setup = sweep_setup(config, steps)
    data, batch_size = setup["data"], config.batch_size
    states = sweep.init_sweep_state(setup["model"], setup["tx"], setup["grid"], setup["sample"], setup["norm"], 0)
    points = sweep.point_spec(setup["grid"])

    def one(rng, boot_key, point):
        rng, key = jax.random.split(rng)
        pool = data.order[point.condition, point.seed_index, jax.random.randint(key, (batch_size,), 0, point.n)]
        segs = (sweep.gather_segments(data, data.train_a[pool]), sweep.gather_segments(data, data.train_b[pool]))
        total = sum(jnp.sum(g["obs"]) + jnp.sum(g["act"]) + jnp.sum(g["task"] + g["embodiment"]) for g in segs)
        return rng, total + jnp.sum(bootstrap_weights(boot_key, pool))

    over_all = jax.vmap(jax.vmap(one, (0, 0, None)), (0, 0, 0))
    run = jax.jit(lambda rngs: jax.lax.scan(lambda r, _: over_all(r, states.boot_key, points), rngs, None,
                                            length=steps))
    rngs = states.train.rng
    jax.block_until_ready(run(rngs))
    return {"data_path_s": time_call(run, rngs, repeats=2, block=lambda out: out[1]), "steps": steps}


def grouped_sweep_seconds(config, steps: int, groups_tried=(4, 6, 12)) -> dict:
    """Seconds of the same sweep chunk run as ``groups`` slices of its points one after another
    (one warm-up, one timed run each): how the rate depends on the working set's size."""
    setup = sweep_setup(config, steps)
    grid, points = setup["grid"], sweep.point_spec(setup["grid"])
    out = {}
    for groups in (g for g in groups_tried if len(grid.points) % g == 0):
        run = sweep.grouped_chunk(setup["chunk"], groups)
        states = sweep.init_sweep_state(setup["model"], setup["tx"], grid, setup["sample"], setup["norm"], 0)
        states, hist = run(states, points, setup["data"])  # warm-up (and compile); donates states
        jax.block_until_ready(hist)
        t = time.perf_counter()
        jax.block_until_ready(run(states, points, setup["data"])[1])
        out[str(groups)] = time.perf_counter() - t
    return out


def activation_profile(batch: int, T: int, hidden, repeats: int = 3) -> dict:
    """Forward + backward of the reward MLP's matmuls at the update's row count, with its GELU,
    with ReLU and with no activation: how much of the step is element-wise work, not matmul."""
    rows, width_in = 2 * batch * T, 39 + 7 + 16
    key = jax.random.key(0)
    x = jax.random.normal(key, (rows, width_in))
    dims = (width_in,) + tuple(hidden) + (1,)
    ws = [jax.random.normal(jax.random.fold_in(key, i), (a, b)) * 0.1 for i, (a, b) in enumerate(zip(dims, dims[1:]))]
    out = {}
    for name, act in (("gelu", jax.nn.gelu), ("relu", jax.nn.relu), ("none", lambda v: v)):
        def loss(ws, act=act):
            h = x
            for w in ws[:-1]:
                h = act(h @ w)
            return jnp.mean(h @ ws[-1])
        grad = jax.jit(jax.grad(loss))
        jax.block_until_ready(grad(ws))
        out[f"{name}_s"] = time_call(grad, ws, repeats=repeats)
    out["activation_share_of_step"] = 1 - out["none_s"] / out["gelu_s"]
    # The same convention as the table's FLOPs (× 3 for forward + backward), matmuls alone.
    macs = sum(a * b for a, b in zip(dims, dims[1:]))
    out["matmul_only_gflops_per_s"] = 3 * 2 * macs * rows / out["none_s"] / 1e9
    out.update(rows=rows, hidden=list(hidden))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/rm_sweep.json")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args(argv)
    use_compilation_cache()
    config = get_config("quick")
    info = machine_info()
    peak = matmul_peak_gflops()
    loop = sweep_vs_loop(config, args.steps)
    loop["fraction_of_matmul_peak_sweep"] = loop["gflops_per_s_sweep"] / peak
    loop.update(data_path_profile(config, args.steps))
    loop["data_path_share_of_sweep"] = loop["data_path_s"] / loop["sweep_s"]
    grouped = {"1": loop["sweep_s"], **grouped_sweep_seconds(config, args.steps)}
    best = min(grouped, key=grouped.get)
    loop.update(sweep_s_by_point_groups=grouped, best_point_groups=int(best),
                models_per_group_at_best=loop["runs"] // int(best),
                ratio_loop_over_best_grouped_sweep=loop["loop_s"] / grouped[best])
    result = {"machine": info, "matmul_peak_gflops": peak, "sweep_vs_loop": loop,
              "throughput": [throughput(config, b, h, peak) for h in ((64, 64), (128, 128), (512, 512)) for b in (256, 4096)],
              "ensemble": throughput(config, 4096, (64, 64), peak, members=5),
              "profile_step_4096": activation_profile(4096, config.segment_length, (64, 64)),
              "matmul_peak_gflops_after": matmul_peak_gflops()}
    profile = result["profile_step_4096"]
    profile["matmul_only_fraction_of_peak"] = profile["matmul_only_gflops_per_s"] / peak
    write_json(args.out, result)


if __name__ == "__main__":
    main()
