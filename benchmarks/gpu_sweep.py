"""The `paper` scaling sweep on one accelerator: wall time, pairs/s, achieved TFLOP/s -> JSON.

  python -m benchmarks.gpu_sweep [--out benchmarks/results/gpu_sweep.json] [--steps 1000]
  python -m benchmarks.gpu_sweep --smoke      # seconds on a CPU: checks the script end to end

One short prepared run for a machine with a GPU: configs/scaling_sweep.py:paper's grid (4
conditions × 9 N × 5 seeds = 180 points, 5 members, batch 64, a 128×128 MLP, 25-step segments)
as one compiled program, on the synthetic data of ``benchmarks.rm_sweep`` (no dataset build, so
the time is all training). It compiles one chunk of ``--steps`` steps, runs it once to warm up
and once timed, and projects the paper's ``total_steps`` from the timed chunk (reported as a
projection, not a measurement). It also times one (point, member) run of the same chunk
compiled alone; ``runs`` of those one after another is the loop the sweep replaces, and
``ratio_loop_over_sweep`` is the project's GPU goal (at least 10×: a single small run leaves
most of a GPU idle, which the vmapped sweep fills; on a 2-core CPU one run already occupies
both cores, see ``benchmarks.rm_sweep``).

Achieved FLOP/s counts the training updates only: XLA's cost analysis of one un-looped update
of one model × runs × steps (a loop body is counted once by the analysis, so the chunk's own
figure would undercount). Validation passes are excluded, so it is a lower bound. It is
compared with the chip's dense peak from the vendor datasheet (table below); which peak
applies depends on the matmul precision, recorded in the JSON: JAX's default on NVIDIA GPUs
lets f32 matmuls run as TF32.
"""
from __future__ import annotations

import argparse
import time

# Dense (no structured sparsity) peak TFLOP/s by device kind substring. Sources: NVIDIA H100
# Tensor Core GPU datasheet and NVIDIA H200 Tensor Core GPU datasheet (SXM figures; the
# datasheets quote TF32/BF16 "with sparsity", i.e. twice these), NVIDIA A100 datasheet.
PEAK_TFLOPS = {
    "H200": {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5, "source": "NVIDIA H200 Tensor Core GPU datasheet (SXM)"},
    "H100 80GB HBM3": {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5, "source": "NVIDIA H100 datasheet (SXM)"},
    "H100 PCIe": {"fp32": 51.0, "tf32": 378.0, "bf16": 756.0, "source": "NVIDIA H100 datasheet (PCIe)"},
    "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "source": "NVIDIA A100 datasheet"},
}


def peak_for(device_kind: str) -> dict | None:
    for key, peak in PEAK_TFLOPS.items():
        if key.lower() in device_kind.lower():
            return dict(peak, matched=key)
    return None


def sweep_config(smoke: bool):
    from configs.scaling_sweep import get_config

    config = get_config("paper")
    if smoke:  # same code path, a grid and model small enough for a CPU in seconds
        config.conditions = config.conditions[:1]
        config.n_values = (100, 200)
        config.seeds = (0,)
        config.members = 2
        config.n_train_pool = 400
        config.n_val = 50
        config.model_sizes = ((32, 32),)
        config.eval_every = 10
    return config


def update_flops(config, hidden) -> float:
    """FLOPs of one reward-model update of one (point, member), from XLA's cost analysis."""
    import jax
    import jax.numpy as jnp

    from rlhf_jax.models.reward import make_reward_model
    from rlhf_jax.train.reward import make_reward_update
    from rlhf_jax.train.state import TrainState, make_optimizer

    B, T, D, A = config.batch_size, config.segment_length, 39, 7
    z = lambda *s: jnp.zeros(s, jnp.float32)
    i = jnp.zeros((B,), jnp.int32)
    batch = {"obs_a": z(B, T, D), "act_a": z(B, T, A), "obs_b": z(B, T, D), "act_b": z(B, T, A),
             "task_a": i, "task_b": i, "embodiment_a": i, "embodiment_b": i, "label": z(B), "weight": z(B)}
    model = make_reward_model("markovian", num_tasks=4, num_embodiments=3, hidden=tuple(hidden))
    variables = model.init(jax.random.key(0), batch["obs_a"][:1], batch["act_a"][:1], i[:1], i[:1])
    tx = make_optimizer(config.optimizer, total_steps=config.total_steps)
    state = TrainState.create(variables, tx, jax.random.PRNGKey(0))
    cost = jax.jit(make_reward_update(config.loss, model, tx)).lower(state, batch).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", float("nan")))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/gpu_sweep.json")
    parser.add_argument("--steps", type=int, default=1000, help="steps in the timed chunk (the paper's chunk_steps)")
    parser.add_argument("--smoke", action="store_true", help="tiny grid and model: a CPU check of this script")
    args = parser.parse_args(argv)

    import jax
    import jax.numpy as jnp

    from benchmarks.common import machine_info, use_compilation_cache, write_json
    from benchmarks.rm_sweep import compiled_single_run, identity_norm, synthetic_data
    from rlhf_jax.models.reward import make_reward_model
    from rlhf_jax.train import sweep
    from rlhf_jax.train.state import make_optimizer

    use_compilation_cache()
    config = sweep_config(args.smoke)
    steps = 20 if args.smoke else args.steps
    hidden = config.model_sizes[0]
    t_data = time.perf_counter()
    data = synthetic_data(config, n_segments=600 if args.smoke else 3000)
    jax.block_until_ready(data)
    t_data = time.perf_counter() - t_data
    model = make_reward_model("markovian", num_tasks=4, num_embodiments=3, hidden=tuple(hidden))
    tx = make_optimizer(config.optimizer, total_steps=config.total_steps)
    grid = sweep.SweepGrid(tuple(config.conditions), tuple(config.n_values), tuple(config.seeds), config.members)
    sample = sweep.gather_segments(data, jnp.zeros((1,), jnp.int32))
    norm = identity_norm(data.seg_obs.shape[-1], data.seg_act.shape[-1])
    states = sweep.init_sweep_state(model, tx, grid, sample, norm, config.seed)
    points = sweep.point_spec(grid)
    chunk = sweep.make_sweep_chunk(model, tx, config.loss, batch_size=config.batch_size,
                                   eval_every=config.eval_every, evals_per_chunk=max(steps // config.eval_every, 1),
                                   bootstrap=config.bootstrap)
    t = time.perf_counter()
    compiled = chunk.lower(states, points, data).compile()
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    states, hist = compiled(states, points, data)  # warm-up (first-run allocation, autotuning)
    jax.block_until_ready(hist)
    first_s = time.perf_counter() - t
    t = time.perf_counter()
    states, hist = compiled(states, points, data)
    jax.block_until_ready(hist)
    chunk_s = time.perf_counter() - t

    runs = len(grid.points) * grid.members
    single, state, point, compile_one_s = compiled_single_run(model, tx, config, data, steps, sample, norm,
                                                              bootstrap=config.bootstrap, seed=config.seed)
    t = time.perf_counter()
    jax.block_until_ready(single(state, point, data)[1])
    one_run_s = time.perf_counter() - t
    flops = update_flops(config, hidden) * runs * steps
    device = jax.devices()[0]
    peak = peak_for(getattr(device, "device_kind", ""))
    achieved = flops / chunk_s / 1e12
    result = {
        "benchmark": "gpu_sweep", "smoke": args.smoke,
        "grid": {"conditions": len(config.conditions), "n_values": list(config.n_values), "seeds": len(config.seeds),
                 "members": config.members, "points": len(grid.points), "runs": runs},
        "model": list(hidden), "batch_size": config.batch_size, "segment_length": config.segment_length,
        "steps_timed": steps, "data_s": t_data, "compile_s": compile_s, "first_chunk_s": first_s, "chunk_s": chunk_s,
        "pairs_per_s": runs * steps * config.batch_size / chunk_s,
        # The loop the sweep replaces: the same runs one after another, one compiled program.
        "single_run_s": one_run_s, "single_compile_s": compile_one_s, "loop_s": runs * one_run_s,
        "ratio_loop_over_sweep": runs * one_run_s / chunk_s, "goal_ratio_loop_over_sweep": 10.0,
        "train_flops_per_chunk": flops, "achieved_tflops": achieved,
        "projected_total_s": chunk_s * config.total_steps / steps + compile_s,
        "projection_note": f"total_steps={config.total_steps} at the timed chunk's rate plus one compile",
        "device_kind": getattr(device, "device_kind", str(device)), "platform": device.platform,
        "matmul_precision": str(jax.config.jax_default_matmul_precision),
        "peak_tflops": peak,
        "fraction_of_peak": ({k: achieved / peak[k] for k in ("fp32", "tf32", "bf16")} if peak else None),
        "machine": machine_info()}
    write_json(args.out, result)


if __name__ == "__main__":
    main()
