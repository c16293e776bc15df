"""Pixels vs state reward models in the compiled sweep: memory per sweep point and pairs/s -> JSON.

  python -m benchmarks.pixels_sweep [--out benchmarks/results/pixels_sweep.json] [--n-values 2] [--steps 20]
  python -m benchmarks.pixels_sweep --variant pixels_gpu --out benchmarks/results/pixels_sweep_gpu.json

Shapes of ``configs/scaling_sweep.py:<variant>`` (segment length, batch, seeds, members, the MLP and
CNN sizes and encoder, frame size and stride; ``--frame-size`` / ``--every`` override the last two)
with the first ``--n-values`` values of its N grid, on synthetic data
(``benchmarks.rm_sweep.synthetic_data`` plus random
uint8 frames, one per segment step, stored once), so no dataset is read. For each sweep shape
(joint, pixels, pixels_proprio x CNN sizes) the chunk of every point x member is compiled; the
JSON holds the XLA temporaries (activations of every point's minibatch) and the training state
(parameters, optimiser state, best copies) per point, the arrays every point shares (segment
table, frames), the compile time and the training pairs per second over every (point, member)
(best of 2 timed chunks of ``--steps`` steps, validation once per chunk). Under 2 minutes on 2
CPU cores with the defaults (``pixels``); ``pixels_gpu`` is meant for one GPU.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import machine_info, time_call, use_compilation_cache, write_json
from benchmarks.rm_sweep import identity_norm, synthetic_data
from configs.scaling_sweep import get_config
from experiments.stages.feature_kinds import PIXEL_FEATURE_KINDS, build_model, sized_models
from rlhf_jax.features import feature_dim
from rlhf_jax.train import sweep
from rlhf_jax.train.state import make_optimizer


def _mib(tree) -> float:
    return sum(x.nbytes for x in jax.tree.leaves(tree)) / 2**20


def with_synthetic_frames(data: sweep.SweepData, size: int, every: int, seed: int = 0) -> sweep.SweepData:
    """``data`` with random frames, one per segment step ([S·T, size, size, 3] uint8), and each segment's
    every ``every``-th frame row."""
    n_seg, length = data.seg_obs.shape[:2]
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n_seg * length, size, size, 3), dtype=np.uint8)
    rows = np.arange(n_seg * length, dtype=np.int32).reshape(n_seg, length)[:, ::every]
    return data.replace(frames=jnp.asarray(frames), seg_frames=jnp.asarray(rows))


def measure(config, sized, data, steps: int) -> dict:
    """Compile and time one sweep shape's chunk; memory per point from XLA's memory analysis."""
    model = build_model(config, sized)
    tx = make_optimizer(config.optimizer, total_steps=config.total_steps)
    grid = sweep.SweepGrid(tuple(config.conditions), tuple(config.n_values), tuple(config.seeds), config.members)
    points = sweep.point_spec(grid)
    norm = identity_norm(data.seg_obs.shape[-1], data.seg_act.shape[-1])
    sample = sweep.gather_segments(data, jnp.zeros((1,), jnp.int32))
    states = sweep.init_sweep_state(model, tx, grid, sample, norm, 0)
    chunk = sweep.make_sweep_chunk(model, tx, config.loss, batch_size=config.batch_size, eval_every=steps,
                                   evals_per_chunk=1, bootstrap=True)
    t = time.perf_counter()
    compiled = chunk.lower(states, points, data).compile()
    compile_s = time.perf_counter() - t
    mem = compiled.memory_analysis()
    n_points = len(grid.points)
    state_mib = _mib(states)
    holder = {"states": states}

    def run():  # the chunk donates its states: each call trains on from the last one's
        holder["states"], hist = compiled(holder["states"], points, data)
        return hist

    run()
    seconds = time_call(run, repeats=2)
    pairs = n_points * grid.members * config.batch_size * steps
    return {"label": sized.label, "compile_s": compile_s, "chunk_s": seconds, "pairs_per_s": pairs / seconds,
            "temp_mib_per_point": (getattr(mem, "temp_size_in_bytes", 0) / 2**20 / n_points) if mem else None,
            "state_mib_per_point": state_mib / n_points,
            "shared_mib": _mib(data)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pixels_sweep")
    parser.add_argument("--out", default="benchmarks/results/pixels_sweep.json")
    parser.add_argument("--variant", default="pixels", choices=("pixels", "pixels_gpu"))
    parser.add_argument("--n-values", type=int, default=2, help="the first K of the variant's N grid")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--frame-size", type=int, default=None, help="default: the variant's")
    parser.add_argument("--every", type=int, default=None, help="default: the variant's")
    parser.add_argument("--segments", type=int, default=1000)
    args = parser.parse_args(argv)
    config = get_config(args.variant)
    if not 1 <= args.n_values <= len(config.n_values):
        parser.error(f"--n-values: expected 1 to {len(config.n_values)}, got {args.n_values}")
    use_compilation_cache()
    config.n_values = tuple(config.n_values[:args.n_values])
    config.n_val = 100
    config.pixels.size = args.frame_size or config.pixels.size
    config.pixels.every = args.every or config.pixels.every
    data = synthetic_data(config, n_segments=args.segments, obs_dim=feature_dim("joint"))
    framed = with_synthetic_frames(data, config.pixels.size, config.pixels.every)
    kinds = {}
    for sized in sized_models(config):
        name = sized.kind if len(config.pixels.cnn_sizes) == 1 or sized.kind not in PIXEL_FEATURE_KINDS else sized.label
        kinds[name] = measure(config, sized, framed if sized.kind in PIXEL_FEATURE_KINDS else data, args.steps)
        print(f"{sized.label}: {kinds[name]['pairs_per_s']:,.0f} pairs/s", flush=True)
    write_json(args.out, {
        "benchmark": "pixels_sweep", "machine": {**machine_info(), "device": jax.devices()[0].platform},
        "variant": args.variant, "frame_size": config.pixels.size, "every": config.pixels.every,
        "encoder": config.pixels.encoder, "segment_length": config.segment_length,
        "points": len(config.n_values) * len(config.seeds), "members": config.members,
        "batch_size": config.batch_size, "steps": args.steps,
        "cnn_sizes": [list(c) for c in config.pixels.cnn_sizes], "model_sizes": [list(h) for h in config.model_sizes],
        "kinds": kinds})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
