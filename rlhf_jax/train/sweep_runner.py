"""Runs a scaling sweep end to end: data → one compiled program per model size → results.

Read top to bottom: workdir → data → per model size (model & optimiser → state → chunks with
progress and checkpoints) → test evaluation → fits, CSV, plot.
"""
from __future__ import annotations

import csv
import io
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from rlhf_jax import checkpoint, distributed, metrics, plotting, scaling, sharding
from rlhf_jax.data.dataset import load_preference_data
from rlhf_jax.models.reward import reward_model_from_config
from rlhf_jax.train import sweep
from rlhf_jax.train.state import make_optimizer
from rlhf_jax.train.sweep_inputs import SweepInputs, build_inputs, validate_config


class SweepError(RuntimeError):
    """A sweep that cannot continue (bad workdir, non-finite loss, changed config on resume)."""


def prepare_workdir(workdir: str, resume: bool, config_json: str) -> None:
    """Refuses to overwrite results; checks the directory is writable before any training."""
    if os.path.isdir(workdir) and os.listdir(workdir) and not resume:
        raise SweepError(f"workdir {workdir} exists and is not empty; pass --resume to continue it "
                         "or choose a new --workdir (results are never overwritten)")
    checkpoint.prepare_run_dir(workdir, config_json, resume, error=SweepError)


def load_inputs(config) -> SweepInputs:
    pref = load_preference_data(
        config.dataset, config.data_dir or None, segment_length=config.segment_length,
        stride=config.stride, n_train=config.n_train_pool, n_val=config.n_val, n_test=config.n_test,
        teacher="oracle", feature_kind=config.feature_kind, cross_embodiment=config.cross_embodiment,
        seed=config.pool_seed, split_seed=config.split_seed)
    return build_inputs(config, pref)


def _model_and_tx(config, hidden):
    model = reward_model_from_config(config.model, hidden, num_tasks=config.num_tasks,
                                     num_embodiments=config.num_embodiments)
    return model, make_optimizer(config.optimizer, total_steps=config.total_steps)


def train_one_size(config, inputs: SweepInputs, hidden, ckpt_dir: str, log=print):
    """Trains every (point, member) for one model size.

    Returns (test returns [P, K, St] of the best-validation parameters, final states, history).
    """
    model, tx = _model_and_tx(config, hidden)
    data, grid = inputs.data, inputs.grid
    sample = sweep.gather_segments(data, jnp.zeros((1,), jnp.int32))
    points, placement = sweep.point_spec(grid), None
    if jax.device_count() > 1:
        # Sweep points are independent, so spreading them over devices (of one host or many)
        # needs no communication; jit follows the placement of its inputs.
        mesh = sharding.sweep_mesh()
        if len(grid.points) % mesh.shape["ensemble"] == 0:
            placement = sharding.sweep_points(mesh)
            points, data = sharding.shard_leading(points, mesh), sharding.replicate(data, mesh)
            log(f"{len(grid.points)} sweep points spread over {mesh.shape['ensemble']} devices")
        else:
            log(f"{len(grid.points)} sweep points do not split evenly over {mesh.shape['ensemble']} devices; "
                "running on one device")
    states = sweep.init_sweep_state(model, tx, grid, sample, inputs.norm, config.seed, sharding=placement)
    n_chunks = config.total_steps // config.chunk_steps
    evals_per_chunk = config.chunk_steps // config.eval_every
    shape = (len(grid.points), grid.members)
    history = {"loss": np.full((config.total_steps,) + shape, np.nan, np.float32),
               "val_loss": np.full((n_chunks * evals_per_chunk,) + shape, np.nan, np.float32),
               "val_accuracy": np.full((n_chunks * evals_per_chunk,) + shape, np.nan, np.float32)}
    ckpt = checkpoint.Checkpointer(ckpt_dir)
    start_chunk = 0
    restored = ckpt.restore({"states": states, "history": history})
    if restored is not None:
        step, tree, meta = restored
        states, history, start_chunk = tree["states"], sharding.to_host(tree["history"]), meta["chunk"]
        log(f"resumed from step {step} (chunk {start_chunk}/{n_chunks})")
    chunk_fn = sweep.make_sweep_chunk(model, tx, config.loss, batch_size=config.batch_size,
                                      eval_every=config.eval_every, evals_per_chunk=evals_per_chunk,
                                      bootstrap=config.bootstrap)
    t0 = time.time()
    for c in range(start_chunk, n_chunks):
        new_states, hist = chunk_fn(states, points, data)
        hist = sharding.to_host(hist)
        bad = sweep.first_nonfinite(hist["loss"])
        if bad is not None:
            off, p, m = bad
            cond, n, s = grid.points[p]
            raise SweepError(f"non-finite loss at step {c * config.chunk_steps + off + 1}, sweep point "
                             f"{p} (condition={grid.conditions[cond]}, N={n}, seed={grid.seeds[s]}), "
                             f"member {m}; the last good checkpoint (chunk {c}) is kept in {ckpt_dir}")
        states = new_states
        steps = slice(c * config.chunk_steps, (c + 1) * config.chunk_steps)
        evals = slice(c * evals_per_chunk, (c + 1) * evals_per_chunk)
        history["loss"][steps] = hist["loss"]
        history["val_loss"][evals] = hist["val_loss"]
        history["val_accuracy"][evals] = hist["val_accuracy"]
        ckpt.save((c + 1) * config.chunk_steps, {"states": states, "history": history}, {"chunk": c + 1})
        log(f"[{hidden}] step {(c + 1) * config.chunk_steps}/{config.total_steps}  "
            f"train loss {np.mean(hist['loss'][-config.eval_every:]):.4f}  "
            f"val acc {np.mean(hist['val_accuracy'][-1]):.3f}  ({time.time() - t0:.1f}s)")
    ckpt.close()
    scorer = sweep.make_segment_scorer(model)
    test_returns = sharding.to_host(scorer(states.best_params, inputs.norm, data, jnp.asarray(inputs.test_rows)))
    return test_returns, states, history


def result_rows(config, inputs: SweepInputs, test_returns, states, history, hidden) -> list[dict]:
    """One row per (point, member) and per (point, ensemble), with every test metric."""
    grid = inputs.grid
    best_step, best_val = sharding.to_host((states.best_step, states.best_val_loss))
    eval_steps = np.arange(1, history["val_loss"].shape[0] + 1) * config.eval_every
    rows = []
    for p, (c, n, s) in enumerate(grid.points):
        ret = test_returns[p]  # [K, St]
        r_a, r_b = ret[:, inputs.test_a], ret[:, inputs.test_b]
        member_prob = 1.0 / (1.0 + np.exp(-(r_a - r_b)))
        base = {"condition": grid.conditions[c], "n": n, "seed": grid.seeds[s], "model_size": "x".join(map(str, hidden)),
                "usable_pairs": inputs.usable[grid.conditions[c]]}
        for k in range(grid.members):
            m = metrics.preference_metrics(member_prob[k], inputs.test_label)
            at_best = np.searchsorted(eval_steps, best_step[p, k])
            rows.append({**base, "member": str(k), **{f"test_{key}": v for key, v in m.items()},
                         "test_error": 1 - m["accuracy"],
                         "test_spearman": metrics.return_correlation(ret[k], inputs.test_gold_return),
                         "disagreement": float("nan"), "best_step": int(best_step[p, k]),
                         "best_val_loss": float(best_val[p, k]),
                         "val_accuracy_at_best": float(history["val_accuracy"][min(at_best, len(eval_steps) - 1), p, k]),
                         "final_train_loss": float(np.mean(history["loss"][-config.eval_every:, p, k]))})
        ens_prob = member_prob.mean(0)
        m = metrics.preference_metrics(ens_prob, inputs.test_label)
        rows.append({**base, "member": "ensemble", **{f"test_{key}": v for key, v in m.items()},
                     "test_error": 1 - m["accuracy"],
                     "test_spearman": metrics.return_correlation(ret.mean(0), inputs.test_gold_return),
                     "disagreement": float(member_prob.std(0).mean()), "best_step": int(best_step[p].max()),
                     "best_val_loss": float(best_val[p].mean()), "val_accuracy_at_best": float("nan"),
                     "final_train_loss": float(np.mean(history["loss"][-config.eval_every:, p]))})
    return rows


def fit_curves(config, rows: list[dict]) -> dict:
    """Power-law fit of test error vs N per (model size, condition, ensemble|single)."""
    floor = 0.5 / config.n_test  # an error of 0 has no logarithm; clip to half a test pair
    fits = {}
    for size in sorted({r["model_size"] for r in rows}):
        for cond in config.conditions:
            for kind in ("ensemble", "single"):
                sel = [r for r in rows if r["condition"] == cond and r["model_size"] == size
                       and ((r["member"] == "ensemble") == (kind == "ensemble"))]
                if kind == "single":  # one point per (N, seed): the mean member error
                    by_key = {}
                    for r in sel:
                        by_key.setdefault((r["n"], r["seed"]), []).append(r["test_error"])
                    pts = [(n, np.mean(v)) for (n, _), v in sorted(by_key.items())]
                else:
                    pts = [(r["n"], r["test_error"]) for r in sel]
                n, err = map(np.asarray, zip(*pts))
                name = f"{cond}/{kind}" + (f"/{size}" if len(config.model_sizes) > 1 else "")
                fits[name] = scaling.fit_power_law(n, np.maximum(err, floor), fix_e=config.fit.fix_e,
                                                   n_bootstrap=config.fit.n_bootstrap, seed=config.seed)
    return fits


def write_results(workdir: str, config, rows: list[dict], fits: dict, run_info: dict) -> None:
    """results.csv, fit.json, accuracy_vs_n.png, run_info.json — each written atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    checkpoint.atomic_write_text(os.path.join(workdir, "results.csv"), buf.getvalue())
    primary = fits[next(iter(fits))]
    summary = {k: v for k, v in primary.items() if k != "bootstrap"}
    summary["primary"] = next(iter(fits))
    summary["fits"] = {name: {k: v for k, v in f.items() if k != "bootstrap"} for name, f in fits.items()}
    summary["n_for_target"] = {name: scaling.n_for_target(f, config.fit.target_error) for name, f in fits.items()}
    checkpoint.atomic_write_json(os.path.join(workdir, "fit.json"), summary)
    plotting.plot_scaling(rows, fits, os.path.join(workdir, "accuracy_vs_n.png"))
    checkpoint.atomic_write_json(os.path.join(workdir, "run_info.json"), run_info)


def run_sweep(config, workdir: str, resume: bool = False, log=print) -> dict:
    """The scaling-sweep experiment; returns the fits. See configs/scaling_sweep.py."""
    validate_config(config)
    if not distributed.is_primary():  # every process trains its share; process 0 logs and writes
        log = lambda *_: None  # noqa: E731
    if distributed.is_primary():
        prepare_workdir(workdir, resume, config.to_json(indent=2, sort_keys=True))
    if jax.process_count() > 1:  # the others start once process 0 has accepted the workdir
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("rlhf_jax.sweep.workdir")
    t0 = time.time()
    inputs = load_inputs(config)
    log(f"data ready in {time.time() - t0:.1f}s: {len(inputs.data.train_a)} train-pool pairs, "
        f"{len(inputs.data.val_a)} val, {len(inputs.test_a)} test; {len(inputs.grid.points)} sweep points "
        f"x {inputs.grid.members} members; usable pairs {inputs.usable}")
    rows, t_train = [], time.time()
    for i, hidden in enumerate(config.model_sizes):
        test_returns, states, history = train_one_size(
            config, inputs, hidden, os.path.join(workdir, "checkpoints", f"size_{i}"), log)
        rows += result_rows(config, inputs, test_returns, states, history, hidden)
        if distributed.is_primary():
            checkpoint.atomic_write_npz(os.path.join(workdir, f"history_size_{i}.npz"), history)
    t_train = time.time() - t_train
    fits = fit_curves(config, rows)
    run_info = {"wall_s": time.time() - t0, "train_s": t_train, "label_stats": inputs.label_stats,
                "devices": [str(d) for d in jax.devices()], "python": sys.version.split()[0],
                "jax": jax.__version__, "platform": platform.platform()}
    if distributed.is_primary():
        write_results(workdir, config, rows, fits, run_info)
    for name, f in fits.items():
        log(f"{name}: err(N) = {f['E']:.3g} + {f['A']:.3g}·N^-{f['alpha']:.3f}  "
            f"(alpha 95% CI [{f['alpha_ci'][0]:.3f}, {f['alpha_ci'][1]:.3f}])")
    log(f"wrote {workdir}/results.csv, fit.json, accuracy_vs_n.png in {time.time() - t0:.1f}s")
    return fits
