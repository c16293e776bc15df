"""Reward-model scaling sweep: held-out accuracy vs number of preference pairs N.

  python -m experiments.scaling_sweep --config configs/scaling_sweep.py:quick --workdir runs/quick
  python -m experiments.scaling_sweep --config configs/scaling_sweep.py:quick --workdir runs/quick --resume

Reads top to bottom: config and workdir checks → data (label sources, nested subsets) → per model
size: model & optimiser → state (placed on the mesh) → chunks (run_chunks: progress, NaN check,
checkpoints) → test evaluation → rows, saved reward models → power-law fits, CSV, JSON, plot.
Every (condition, N, seed, member) of a model size trains in one compiled program
(rlhf_jax.train.sweep).
"""
from __future__ import annotations

import dataclasses

import functools
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import cli
from rlhf_jax.data.variants import dataset_config
from rlhf_jax import checkpoint, distributed, metrics, plotting, reward_artifact, scaling, sharding
from rlhf_jax.data.dataset import enable_compilation_cache, load_preference_data
from rlhf_jax.labels.label_sources import as_label_source, safe_name
from rlhf_jax.evaluation.ceiling import model_class_ceiling
from rlhf_jax.models.reward import reward_model_from_config
from rlhf_jax.train import active, sweep
from rlhf_jax.train.chunks import run_chunks
from rlhf_jax.train.state import make_optimizer
from rlhf_jax.train.sweep_data import SweepInputs, check_grid, make_sweep_data

POSITIVE = ("batch_size", "total_steps", "eval_every", "chunk_steps", "segment_length", "stride", "n_val",
            "n_test", "n_train_pool")


# --- Config checks (before anything is loaded or written) ---------------------------------------


def validate(config, where: str) -> None:
    """Every field the sweep reads, checked without loading data; raises ConfigError."""
    for field in POSITIVE:
        if int(config[field]) <= 0:
            cli.fail(where, field, "a positive integer", config[field])
    check_grid(config.n_values, config.seeds, config.members, config.n_train_pool, where)
    if config.chunk_steps % config.eval_every:
        cli.fail(where, "chunk_steps", f"a multiple of eval_every={config.eval_every}", config.chunk_steps)
    if config.total_steps % config.chunk_steps:
        cli.fail(where, "total_steps", f"a multiple of chunk_steps={config.chunk_steps}", config.total_steps)
    if not config.conditions:
        cli.fail(where, "conditions", "at least one label source", list(config.conditions))
    n_points = len(config.conditions) * len(config.n_values) * len(config.seeds)
    groups = config.get("point_groups", 1)
    if not isinstance(groups, int) or groups < 1 or n_points % groups:
        cli.fail(where, "point_groups", f"a positive divisor of the {n_points} sweep points "
                 "(conditions x n_values x seeds)", groups)
    if len(set(config.conditions)) != len(config.conditions):
        cli.fail(where, "conditions", "distinct label sources", list(config.conditions))
    for cond in config.conditions:
        as_label_source(cond, "conditions", where)
    if config.feature_kind not in ("joint", "eef"):
        cli.fail(where, "feature_kind", "'joint' or 'eef'", config.feature_kind)
    dataset_config(config.dataset, where)
    cli.check_data_dir(where, "data_dir", config.data_dir)
    if config.dataset_path and not os.path.isdir(config.dataset_path):
        cli.fail(where, "dataset_path", "'' or an RLDS dataset directory", config.dataset_path)
    if config.model.kind not in ("markovian", "transformer"):
        cli.fail(where, "model.kind", "'markovian' or 'transformer'", config.model.kind)
    if not config.model_sizes:
        cli.fail(where, "model_sizes", "at least one tuple of layer widths", list(config.model_sizes))
    for hidden in config.model_sizes:
        if not hidden or any(int(h) <= 0 for h in hidden):
            cli.fail(where, "model_sizes", "tuples of positive layer widths", list(hidden))
    for field in ("num_tasks", "members"):
        if int(config[field]) < 1:
            cli.fail(where, field, "at least 1", config[field])
    if config.num_embodiments < 0:
        cli.fail(where, "num_embodiments", "0 (no embodiment input) or more", config.num_embodiments)
    check_surf(config, where)
    if config.get("pseudo") is not None and not 0 < config.pseudo.fraction <= 0.5:
        cli.fail(where, "pseudo.fraction", "a top/bottom fraction in (0, 0.5]", config.pseudo.fraction)
    if config.fit.n_bootstrap < 0:
        cli.fail(where, "fit.n_bootstrap", "a non-negative integer", config.fit.n_bootstrap)
    save = config.save_models
    if save.condition and save.condition not in config.conditions:
        cli.fail(where, "save_models.condition", f"'' (the first) or one of conditions {list(config.conditions)}",
                 save.condition)
    if not save.seeds or not set(save.seeds) <= set(config.seeds):
        cli.fail(where, "save_models.seeds", f"at least one of seeds {list(config.seeds)}", list(save.seeds))
    if not set(save.n_values) <= set(config.n_values):
        cli.fail(where, "save_models.n_values", f"() (every N) or values of n_values {list(config.n_values)}",
                 list(save.n_values))


def check_surf(config, where: str) -> None:
    """The surf block's fields (SURF's ranges); raises ConfigError."""
    surf = config.get("surf")
    if surf is None:
        return
    if not 0.5 <= surf.tau < 1.0:
        cli.fail(where, "surf.tau", "a confidence threshold in [0.5, 1)", surf.tau)
    if surf.lam < 0:
        cli.fail(where, "surf.lam", "a weight >= 0", surf.lam)
    if surf.mu < 1:
        cli.fail(where, "surf.mu", "an unlabelled:labelled batch ratio >= 1", surf.mu)
    if surf.crop < 1:
        cli.fail(where, "surf.crop", "a crop margin of at least 1 step", surf.crop)


def surf_spec(config, force: bool = False) -> sweep.SurfSpec | None:
    """The sweep's SURF settings, or None when no condition trains with SURF (force: some do,
    as the label-efficiency strategies that name SURF)."""
    surf = config.get("surf")
    if surf is None or not (surf.enabled or force):
        return None
    return sweep.SurfSpec(tau=float(surf.tau), lam=float(surf.lam), mu=int(surf.mu), margin=int(surf.crop),
                          length=int(config.segment_length))


def load_pool(config, where: str, surf: sweep.SurfSpec | None = None):
    """The sweep's preference data (segments, train pool, val and test pairs) before any labels."""
    pref = load_preference_data(
        config.dataset, config.data_dir or None, path=config.get("dataset_path") or None, segment_length=config.segment_length,
        stride=config.stride, n_train=config.n_train_pool, n_val=config.n_val, n_test=config.n_test,
        teacher="oracle", feature_kind=config.feature_kind, cross_embodiment=config.cross_embodiment,
        seed=config.pool_seed, split_seed=config.split_seed,
        margin=(surf or surf_spec(config) or sweep.SurfSpec(margin=0)).margin)
    if int(pref.segments.task_id.max()) >= config.num_tasks:
        cli.fail(where, "num_tasks", f"more than the dataset's largest task id {int(pref.segments.task_id.max())}",
                 config.num_tasks)
    if config.num_embodiments and int(pref.segments.embodiment_id.max()) >= config.num_embodiments:
        cli.fail(where, "num_embodiments",
                 f"0 or more than the largest embodiment id {int(pref.segments.embodiment_id.max())}",
                 config.num_embodiments)
    return pref


def load_inputs(config, where: str) -> SweepInputs:
    """Preference data → labels per condition → device arrays (errors name ``where``'s fields)."""
    pref = load_pool(config, where)
    inputs = make_sweep_data(pref, config.conditions, config.n_values, config.seeds,
                             config.members, config.label_seed, where=where,
                             confidence_weights=bool(config.get("confidence_weights", False)))
    inputs.ceiling = model_class_ceiling(pref)
    if surf_spec(config) is not None:  # the plain sweep: SURF for every condition
        inputs = dataclasses.replace(inputs, data=inputs.data.replace(
            surf_on=jnp.ones((len(config.conditions),), jnp.float32)))
    return inputs


# --- Training of one model size ----------------------------------------------------------------


def _placement(grid, data, log):
    """Sweep points over the devices of every process (independent: no communication)."""
    points = sweep.point_spec(grid)
    if jax.device_count() == 1:
        return points, data, None
    mesh = sharding.sweep_mesh()
    if len(grid.points) % mesh.shape["ensemble"]:
        log(f"{len(grid.points)} sweep points do not split evenly over {mesh.shape['ensemble']} devices; "
            "running on one device")
        return points, data, None
    log(f"{len(grid.points)} sweep points spread over {mesh.shape['ensemble']} devices")
    return sharding.shard_leading(points, mesh), sharding.replicate(data, mesh), sharding.sweep_points(mesh)


def train_one_size(config, inputs: SweepInputs, hidden, ckpt_dir: str, log=print, surf: sweep.SurfSpec | None = None):
    """Trains every (point, member) for one model size.

    Returns (test returns [P, K, St] of the best-validation parameters, final states, history).
    """
    model = reward_model_from_config(config.model, hidden, num_tasks=config.num_tasks,
                                     num_embodiments=config.num_embodiments)
    tx = make_optimizer(config.optimizer, total_steps=config.total_steps)
    grid = inputs.grid
    points, data, placement = _placement(grid, inputs.data, log)
    surf = surf or surf_spec(config)
    sample = sweep.gather_segments(data, jnp.zeros((1,), jnp.int32))
    if surf is not None:
        sample = sweep.window(sample, surf.margin, surf.length)
    states = sweep.init_sweep_state(model, tx, grid, sample, inputs.norm, config.seed, sharding=placement)
    n_chunks, evals_per_chunk = config.total_steps // config.chunk_steps, config.chunk_steps // config.eval_every
    shape = (len(grid.points), grid.members)
    history = {"loss": np.full((config.total_steps,) + shape, np.nan, np.float32),
               "val_loss": np.full((n_chunks * evals_per_chunk,) + shape, np.nan, np.float32),
               "val_accuracy": np.full((n_chunks * evals_per_chunk,) + shape, np.nan, np.float32)}
    ckpt, start_chunk = checkpoint.Checkpointer(ckpt_dir), 0
    restored = ckpt.restore({"states": states, "history": history})
    if restored is not None:
        step, tree, meta = restored
        states, history, start_chunk = tree["states"], sharding.to_host(tree["history"]), meta["chunk"]
        log(f"resumed from step {step} (chunk {start_chunk}/{n_chunks})")
    chunk_fn = sweep.make_sweep_chunk(model, tx, config.loss, batch_size=config.batch_size,
                                      eval_every=config.eval_every, evals_per_chunk=evals_per_chunk,
                                      bootstrap=config.bootstrap, surf=surf)

    def record(c, hist):
        history["loss"][c * config.chunk_steps:(c + 1) * config.chunk_steps] = hist["loss"]
        for key in ("val_loss", "val_accuracy"):
            history[key][c * evals_per_chunk:(c + 1) * evals_per_chunk] = hist[key]

    def where(index):
        p, m = index
        cond, n, s = grid.points[p]
        return f"sweep point {p} (condition={grid.conditions[cond]}, N={n}, seed={grid.seeds[s]}), member {m}"

    groups = int(config.get("point_groups", 1))
    if placement is None and groups > 1:  # one device: slices of points in turn, to bound memory
        chunk_fn = sweep.grouped_chunk(chunk_fn, groups)
    states = run_chunks(
        lambda s: chunk_fn(s, points, data), states, n_chunks=n_chunks, steps_per_chunk=config.chunk_steps,
        start_chunk=start_chunk, checkpointer=ckpt, on_chunk=record, describe_point=where, log=log,
        checkpoint_tree=lambda s: {"states": s, "history": history},
        progress=lambda c, h: (f"train loss {np.mean(h['loss'][-config.eval_every:]):.4f}  "
                               f"val acc {np.mean(h['val_accuracy'][-1]):.3f}"),
        name=f"reward-model [{'x'.join(map(str, hidden))}]")
    ckpt.close()
    scorer = sweep.make_segment_scorer(model, surf)
    test_returns = sharding.to_host(scorer(states.best_params, inputs.norm, data, jnp.asarray(inputs.test_rows)))
    return test_returns, states, history


# --- Results ----------------------------------------------------------------------------------


def _metric_row(prob, ret, inputs: SweepInputs) -> dict:
    m = metrics.preference_metrics(prob, inputs.test_label)
    return {**{f"test_{key}": v for key, v in m.items()}, "test_error": 1 - m["accuracy"],
            "test_spearman": metrics.return_correlation(ret, inputs.test_gold_return)}


def result_rows(config, inputs: SweepInputs, test_returns, states, history, hidden) -> list[dict]:
    """One row per (point, member) and per (point, ensemble), with every test metric."""
    grid = inputs.grid
    best_step, best_val = sharding.to_host((states.best_step, states.best_val_loss))
    eval_steps = np.arange(1, history["val_loss"].shape[0] + 1) * config.eval_every
    rows = []
    for p, (c, n, s) in enumerate(grid.points):
        ret = test_returns[p]  # [K, St]
        member_prob = 1.0 / (1.0 + np.exp(-(ret[:, inputs.test_a] - ret[:, inputs.test_b])))
        base = {"condition": grid.conditions[c], "n": n, "seed": grid.seeds[s],
                "model_size": "x".join(map(str, hidden)), "usable_pairs": inputs.usable[grid.conditions[c]],
                # N distinct pairs at the condition's mean cost per pair (gold, re-asks, adjudication).
                "dollars": n * inputs.dollars_per_pair.get(grid.conditions[c], float("nan"))}
        for k in range(grid.members):
            at_best = min(np.searchsorted(eval_steps, best_step[p, k]), len(eval_steps) - 1)
            rows.append({**base, "member": str(k), **_metric_row(member_prob[k], ret[k], inputs),
                         "disagreement": float("nan"), "best_step": int(best_step[p, k]),
                         "best_val_loss": float(best_val[p, k]),
                         "val_accuracy_at_best": float(history["val_accuracy"][at_best, p, k]),
                         "final_train_loss": float(np.mean(history["loss"][-config.eval_every:, p, k]))})
        rows.append({**base, "member": "ensemble", **_metric_row(member_prob.mean(0), ret.mean(0), inputs),
                     "disagreement": float(member_prob.std(0).mean()), "best_step": int(best_step[p].max()),
                     "best_val_loss": float(best_val[p].mean()), "val_accuracy_at_best": float("nan"),
                     "final_train_loss": float(np.mean(history["loss"][-config.eval_every:, p]))})
    return rows


def save_reward_models(config, inputs: SweepInputs, states, rows: list[dict], hidden, size: int,
                       workdir: str) -> list[str]:
    """Saves the best-validation ensemble of every ``save_models`` point of one model size as a
    reward-model artefact; returns the paths relative to ``workdir``.

    Every process calls it, as it does the chunk checkpoints (gathering sharded parameters is
    collective).
    """
    save, grid = config.save_models, inputs.grid
    if not save.enabled:
        return []
    cond = grid.conditions.index(save.condition) if save.condition else 0
    n_values, seeds = set(save.n_values or grid.n_values), set(save.seeds)
    best_params, best_step = sharding.to_host((states.best_params, states.best_step))
    model_config = dict(config.model.to_dict(), hidden=tuple(int(h) for h in hidden),
                        num_tasks=config.num_tasks, num_embodiments=config.num_embodiments)
    accuracy = {(r["condition"], r["n"], r["seed"]): r["test_accuracy"] for r in rows if r["member"] == "ensemble"}
    paths = []
    for p, (c, n, s) in enumerate(grid.points):
        name, seed = grid.conditions[c], grid.seeds[s]
        if c != cond or n not in n_values or seed not in seeds:
            continue
        suffix = f"_size{size}" if len(config.model_sizes) > 1 else ""
        rel = os.path.join("reward_models", f"{safe_name(name)}_n{n}_seed{seed}{suffix}")
        spec = reward_artifact.feature_spec(config.feature_kind, config.num_tasks, config.cross_embodiment)
        meta = {"features": spec, "n": n, "seed": seed, "condition": name,
                "label_source": inputs.label_sources.get(name, {"name": name, "label_seed": config.label_seed}),
                "dataset": config.dataset, "segment_length": config.segment_length,
                "best_step": best_step[p].tolist(), "test_accuracy": accuracy.get((name, n, seed))}
        reward_artifact.save_reward_model(os.path.join(workdir, rel), model_config,
                                          reward_artifact.point_variables(best_params, inputs.norm, p), meta)
        paths.append(rel)
    return paths


def droid_rows(config, inputs: SweepInputs, states, hidden, ckpt_dir: str, log=print) -> list[dict]:
    """The DROID-style pseudo-label pass: every point's best ensemble scores the pool, its
    top-vs-bottom unlabelled pairs join its N labels, and it trains again; rows are named
    ``<condition>+droid`` (N still counts the labels bought)."""
    surf = surf_spec(config)
    model = reward_model_from_config(config.model, hidden, num_tasks=config.num_tasks,
                                     num_embodiments=config.num_embodiments)
    scorer = sweep.make_segment_scorer(model, surf)
    member_returns = sharding.to_host(scorer(states.best_params, inputs.norm, inputs.data,
                                             jnp.arange(inputs.data.seg_obs.shape[0])))
    second, counts = active.droid_second_pass(inputs, np.asarray(member_returns), config.pseudo.fraction)
    log(f"DROID pseudo-labels per point: {min(counts)}–{max(counts)}")
    test_returns, states2, history = train_one_size(config, second, hidden, ckpt_dir, log, surf=surf)
    rows = result_rows(config, inputs, test_returns, states2, history, hidden)
    for r in rows:
        p = inputs.grid.points.index((inputs.grid.conditions.index(r["condition"]), r["n"],
                                      inputs.grid.seeds.index(r["seed"])))
        r["condition"] = f"{r['condition']}+droid"
        r["pseudo_labels"] = counts[p]
    return rows


def curve_points(rows: list[dict], cond: str, size: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(N [M], test error [M]) of one curve: ensemble = one point per (N, seed); single = the
    mean member error per (N, seed)."""
    sel = [r for r in rows if r["condition"] == cond and r["model_size"] == size
           and ((r["member"] == "ensemble") == (kind == "ensemble"))]
    by_key = {}
    for r in sel:
        by_key.setdefault((int(r["n"]), int(r["seed"])), []).append(float(r["test_error"]))
    n, err = zip(*[(n, np.mean(v)) for (n, _), v in sorted(by_key.items())])
    return np.asarray(n), np.asarray(err)


def fit_curves(config, rows: list[dict], fix_e: bool | None = None) -> dict:
    """Power-law fit of test error vs N per (model size, condition, ensemble|single)."""
    floor = 0.5 / config.n_test  # an error of 0 has no logarithm; clip to half a test pair
    fix_e = config.fit.fix_e if fix_e is None else fix_e
    fits = {}
    for size in sorted({r["model_size"] for r in rows}):
        for cond in dict.fromkeys(r["condition"] for r in rows):
            for kind in ("ensemble", "single"):
                n, err = curve_points(rows, cond, size, kind)
                name = f"{cond}/{kind}" + (f"/{size}" if len(config.model_sizes) > 1 else "")
                fits[name] = scaling.fit_power_law(n, np.maximum(err, floor), fix_e=fix_e,
                                                   n_bootstrap=config.fit.n_bootstrap, seed=config.seed)
    return fits


def write_results(workdir: str, config, rows: list[dict], fits: dict, run_info: dict) -> None:
    """results.csv, fit.json, accuracy_vs_n.png (+ accuracy_vs_dollars.png when conditions differ
    in cost per pair), run_info.json — each written atomically."""
    checkpoint.atomic_write_csv(os.path.join(workdir, "results.csv"), rows)
    primary = next(iter(fits))
    summary = {k: v for k, v in fits[primary].items() if k != "bootstrap"}
    summary["primary"] = primary
    summary["fits"] = {name: {k: v for k, v in f.items() if k != "bootstrap"} for name, f in fits.items()}
    summary["n_for_target"] = {name: scaling.n_for_target(f, config.fit.target_error) for name, f in fits.items()}
    checkpoint.atomic_write_json(os.path.join(workdir, "fit.json"), summary)
    plotting.plot_scaling(rows, fits, os.path.join(workdir, "accuracy_vs_n.png"),
                          ceiling=run_info.get("ceiling", {}).get("ceiling"))
    per_pair = {r["condition"]: round(r["dollars"] / r["n"], 6) for r in rows}
    if len(set(per_pair.values())) > 1:  # conditions differ in what a pair costs (QC policies)
        plotting.plot_accuracy_vs_dollars(rows, os.path.join(workdir, "accuracy_vs_dollars.png"))
    checkpoint.atomic_write_json(os.path.join(workdir, "run_info.json"), run_info)


# --- The experiment ----------------------------------------------------------------------------


def run_sweep(config, workdir: str, resume: bool = False, log=print, where: str = "configs/scaling_sweep.py"):
    """The scaling-sweep experiment; returns the fits. Nothing is written until every check passed."""
    validate(config, where)
    primary = distributed.is_primary()
    log = log if primary else (lambda *_: None)  # every process trains its share; process 0 logs and writes
    if primary and cli.check_workdir(workdir, resume, config) == "fresh":
        log(f"--resume: no earlier run in {workdir}; starting fresh")
    t0 = time.time()
    inputs = load_inputs(config, where)
    if primary:
        checkpoint.prepare_run_dir(workdir, config.to_json(indent=2, sort_keys=True), resume, error=cli.ConfigError)
    if jax.process_count() > 1:  # the others start once process 0 has accepted the workdir
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("rlhf_jax.sweep.workdir")
    log(f"data ready in {time.time() - t0:.1f}s: {len(inputs.data.train_a)} train-pool pairs, "
        f"{len(inputs.data.val_a)} val, {len(inputs.test_a)} test; {len(inputs.grid.points)} sweep points "
        f"x {inputs.grid.members} members; usable pairs {inputs.usable}")
    rows, saved, t_train = [], [], time.time()
    for i, hidden in enumerate(config.model_sizes):
        test_returns, states, history = train_one_size(
            config, inputs, hidden, os.path.join(workdir, "checkpoints", f"size_{i}"), log)
        size_rows = result_rows(config, inputs, test_returns, states, history, hidden)
        rows += size_rows
        if config.get("pseudo") is not None and config.pseudo.droid:
            rows += droid_rows(config, inputs, states, hidden, os.path.join(workdir, "checkpoints", f"droid_{i}"),
                               log)
        saved += save_reward_models(config, inputs, states, size_rows, hidden, i, workdir)
        if primary:
            checkpoint.atomic_write_npz(os.path.join(workdir, f"history_size_{i}.npz"), history)
    t_train = time.time() - t_train
    fits = fit_curves(config, rows)
    run_info = {"wall_s": time.time() - t0, "train_s": t_train, "label_stats": inputs.label_stats,
                "ceiling": inputs.ceiling, "peak_rss_mib": peak_rss_mib(),
                "label_sources": inputs.label_sources,
                "devices": [str(d) for d in jax.devices()], "python": sys.version.split()[0],
                "jax": jax.__version__, "platform": platform.platform(), "reward_models": saved}
    if primary:
        write_results(workdir, config, rows, fits, run_info)
    for name, f in fits.items():
        log(f"{name}: err(N) = {f['E']:.3g} + {f['A']:.3g}·N^-{f['alpha']:.3f}  "
            f"(alpha 95% CI [{f['alpha_ci'][0]:.3f}, {f['alpha_ci'][1]:.3f}])")
    log(f"wrote {workdir}/results.csv, fit.json, accuracy_vs_n.png"
        + (f" and {len(saved)} reward model(s) under reward_models/" if saved else "") + f" in {time.time() - t0:.1f}s")
    return fits


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    import resource  # pylint: disable=g-import-not-at-top

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _body(inv: cli.Invocation) -> None:
    distributed.initialize(inv.config)  # multi-host from config or RLHF_JAX_* variables; else a no-op
    enable_compilation_cache(inv.config.data_dir or None)
    run_sweep(inv.config, inv.workdir, resume=inv.resume, where=inv.config_file)


main = functools.partial(cli.run_main, body=_body)

if __name__ == "__main__":
    sys.exit(main(sys.argv))
