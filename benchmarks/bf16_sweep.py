"""The quick scaling sweep in float32 and in bfloat16 (``model.compute_dtype``), one run -> JSON.

  python -m benchmarks.bf16_sweep [--out benchmarks/results/bf16_sweep.json] [--steps 800]

Both dtypes train the same sweep: configs/scaling_sweep.py:quick (2 conditions × 6 N × 3 seeds ×
3 members of a 32×32 MLP, batch 32, validation every 25 steps) for ``--steps`` steps (the
schedule shortened to them), from the same initialisations on the same minibatches. Per dtype:
the chunk's compile seconds, then one timed run of all steps (its validation passes included)
-> steps/s and pairs/s; then the best-validation ensembles' test accuracy on the quick sweep's
1,000 test pairs, per point, averaged over points per seed, with its spread over the seeds. The
JSON gives bf16 / f32 steps/s and whether the mean accuracies differ by at most 2 standard
errors over seeds of the float32 accuracies (the test's criterion, tests/test_compute_dtype.py).

The preference data comes from the default dataset's episodes generated in this process (the
simulator is deterministic, so they are the cached dataset's), so no TensorFlow is needed.
The JSON also holds the 2048² matmul rate in float32 and with bfloat16 operands: how much faster
the chip multiplies in bfloat16, against which the sweep's own speed-up can be read. The speed
that matters is a GPU's; the CPU run checks the accuracy.
"""
from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import machine_info, matmul_peak_gflops, time_call, use_compilation_cache, write_json
from configs.scaling_sweep import get_config
from experiments.stages.sweep_outputs import result_rows
from rlhf_jax.models.reward import reward_model_from_config
from rlhf_jax.train import sweep
from rlhf_jax.train.state import make_optimizer
from rlhf_jax.train.sweep_data import make_sweep_data

DTYPES = ("float32", "bfloat16")


def generated_preference_data(config):
    """The sweep's PreferenceData as ``experiments.stages.sweep.load_pool`` makes it, from episodes
    generated in this process instead of read from the RLDS files."""
    from rlhf_jax.data import generate
    from rlhf_jax.data.variants import dataset_config
    from rlhf_jax.preferences import segments as preferences

    data_config = dataset_config(config.dataset)
    meta = generate.dataset_metadata(data_config)
    names = tuple(meta["reward_component_names"])
    settings = dict(data_config.preferences.to_dict(), split_fractions=tuple(data_config.preferences.split_fractions))
    settings.update(segment_length=config.segment_length, stride=config.stride, n_train=config.n_train_pool,
                    n_val=config.n_val, n_test=config.n_test, teacher="oracle", feature_kind=config.feature_kind,
                    cross_embodiment=config.cross_embodiment, seed=config.pool_seed, split_seed=config.split_seed)
    return preferences.make_preference_data(
        generate.generate_episodes(data_config), component_names=names, dt=float(meta["dt"]),
        gold_weights=np.array([meta["gold_rubric"][n] for n in names], np.float32), **settings)


def train_and_score(config, inputs, compute_dtype: str) -> dict:
    """Compiles and times the sweep chunk of every point in ``compute_dtype``; test accuracies."""
    config.model.compute_dtype = compute_dtype
    hidden = config.model_sizes[0]
    model = reward_model_from_config(config.model, hidden, num_tasks=config.num_tasks,
                                     num_embodiments=config.num_embodiments)
    tx = make_optimizer(config.optimizer, total_steps=config.total_steps)
    sample = sweep.gather_segments(inputs.data, jnp.zeros((1,), jnp.int32))
    states = sweep.init_sweep_state(model, tx, inputs.grid, sample, inputs.norm, config.seed)
    points = sweep.point_spec(inputs.grid)
    chunk = sweep.make_sweep_chunk(model, tx, config.loss, batch_size=config.batch_size, eval_every=config.eval_every,
                                   evals_per_chunk=config.total_steps // config.eval_every, bootstrap=config.bootstrap)
    t = time.perf_counter()
    compiled = chunk.lower(states, points, inputs.data).compile()
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    states, history = compiled(states, points, inputs.data)
    history = jax.device_get(history)  # waits for the run
    train_s = time.perf_counter() - t
    scorer = sweep.make_segment_scorer(model)
    test_returns = jax.device_get(scorer(states.best_params, inputs.norm, inputs.data, jnp.asarray(inputs.test_rows)))
    rows = [r for r in result_rows(config, inputs, test_returns, states, history, hidden) if r["member"] == "ensemble"]
    models = len(inputs.grid.points) * inputs.grid.members
    return {"compile_s": compile_s, "train_s": train_s, "steps_per_s": config.total_steps / train_s,
            "pairs_per_s": models * config.total_steps * config.batch_size / train_s,
            "final_train_loss": float(np.mean(history["loss"][-config.eval_every:])),
            **accuracy_over_seeds(rows, config.seeds)}


def accuracy_over_seeds(rows: list[dict], seeds) -> dict:
    """Ensemble test accuracy per point, per seed (mean over conditions and N), its mean, standard
    deviation and standard error over the seeds, and the mean per (condition, N)."""
    per_seed = np.array([np.mean([r["test_accuracy"] for r in rows if r["seed"] == s]) for s in seeds])
    by_point = {}
    for r in rows:
        by_point.setdefault(f"{r['condition']}/{r['n']}", []).append(r["test_accuracy"])
    return {"test_accuracy_per_point": [r["test_accuracy"] for r in rows],  # grid order: condition, N, seed
            "test_accuracy_per_seed": per_seed.tolist(), "test_accuracy_mean": float(per_seed.mean()),
            "test_accuracy_std_over_seeds": float(per_seed.std(ddof=1)),
            "test_accuracy_se_over_seeds": float(per_seed.std(ddof=1) / np.sqrt(len(seeds))),
            "test_accuracy_by_condition_n": {k: float(np.mean(v)) for k, v in by_point.items()}}


def compare(f32: dict, bf16: dict) -> dict:
    """bf16 against f32: speed ratio, accuracy difference (paired by seed) and the criterion."""
    paired = np.array(bf16["test_accuracy_per_seed"]) - np.array(f32["test_accuracy_per_seed"])
    per_point = np.abs(np.array(bf16["test_accuracy_per_point"]) - np.array(f32["test_accuracy_per_point"]))
    difference = bf16["test_accuracy_mean"] - f32["test_accuracy_mean"]
    return {"steps_per_s_bf16_over_f32": bf16["steps_per_s"] / f32["steps_per_s"],
            "test_accuracy_bf16_minus_f32": float(difference),
            "test_accuracy_paired_differences_per_seed": paired.tolist(),
            # Per point the two dtypes do differ (rounding moves a few close test pairs).
            "test_accuracy_abs_point_difference_mean": float(per_point.mean()),
            "test_accuracy_abs_point_difference_max": float(per_point.max()),
            "within_seed_spread": bool(abs(difference) <= 2 * f32["test_accuracy_se_over_seeds"])}


def bf16_matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Measured n×n matmul rate with bfloat16 operands and float32 accumulation, in GFLOP/s
    (``benchmarks.common.matmul_peak_gflops``'s float32 figure in the model's bfloat16 form)."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32).astype(jnp.bfloat16)
    f = jax.jit(lambda x: jax.lax.dot(x, x, preferred_element_type=jnp.float32))
    jax.block_until_ready(f(a))
    return 2 * n**3 / time_call(f, a, repeats=repeats) / 1e9


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/bf16_sweep.json")
    parser.add_argument("--steps", type=int, default=get_config("quick").total_steps,
                        help="training steps per dtype, a multiple of eval_every=25 (default: the quick sweep's)")
    args = parser.parse_args(argv)
    use_compilation_cache()
    config = get_config("quick")
    if args.steps <= 0 or args.steps % config.eval_every:
        parser.error(f"--steps: expected a positive multiple of eval_every={config.eval_every}, got {args.steps}")
    config.total_steps = config.chunk_steps = args.steps
    config.optimizer.warmup_steps = min(config.optimizer.warmup_steps, args.steps // 4)
    info = machine_info()
    t = time.perf_counter()
    inputs = make_sweep_data(generated_preference_data(config), config.conditions, config.n_values, config.seeds,
                             config.members, config.label_seed, where="benchmarks.bf16_sweep")
    data_s = time.perf_counter() - t
    runs = {dtype: train_and_score(config, inputs, dtype) for dtype in DTYPES}
    write_json(args.out, {
        "machine": info, "matmul_peak_gflops": matmul_peak_gflops(), "matmul_bf16_gflops": bf16_matmul_gflops(),
        "data_s": data_s,
        "shapes": {"models": len(inputs.grid.points) * inputs.grid.members, "hidden": list(config.model_sizes[0]),
                   "steps": args.steps, "batch_size": config.batch_size, "segment_length": config.segment_length,
                   "eval_every": config.eval_every, "seeds": list(config.seeds), "test_pairs": len(inputs.test_a)},
        "runs": runs, "bf16_vs_f32": compare(runs["float32"], runs["bfloat16"]),
        "load_average_at_end": list(os.getloadavg())})


if __name__ == "__main__":
    main()
