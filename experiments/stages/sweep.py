"""The reward-model sweep stage: every (label condition, N, seed, ensemble member) of a model size
trained in one compiled program (``rlhf_jax.train.sweep``), with progress, a non-finite check and
checkpoints per chunk, then test evaluation, saved reward-model artefacts and power-law fits.

Reads top to bottom: config checks → data (label sources, nested subsets) → per model size:
model & optimiser → state (placed on the mesh) → chunks (``train_points``) → test evaluation →
rows, saved reward models → fits, CSV, JSON, plot (``experiments.stages.sweep_outputs``).
``train_points`` is the one sweep trainer: the scaling sweep, label efficiency and
cross-embodiment transfer all train through it.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import sys
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from configs import scaling_sweep as sweep_config
from experiments import cli
from experiments.stages.feature_kinds import (PIXEL_FEATURE_KINDS, build_model, check_feature_kinds, has_pixels,
                                              sized_models, table_kind)
from experiments.stages.sweep_outputs import fit_curves, peak_rss_mib, result_rows, save_reward_models, write_results
from rlhf_jax import checkpoint, config_schema, distributed, sharding
from rlhf_jax.data.dataset import load_preference_data
from rlhf_jax.data.variants import dataset_config
from rlhf_jax.evaluation.markovian_estimate import markovian_gold_accuracy, objective_estimates
from rlhf_jax.labels.label_sources import TeacherSource, as_label_source
from rlhf_jax.models.reward import reward_model_from_config
from rlhf_jax.train import active, eval_schedule, sweep
from rlhf_jax.train.chunks import run_chunks
from rlhf_jax.train.state import make_optimizer
from rlhf_jax.labels.qc_summary import has_gold
from rlhf_jax.train.sweep_data import (SweepInputs, check_grid, held_out_from_labels, make_sweep_data,
                                       objective_condition, with_frames)

# --- Config checks (before anything is loaded or written) ---------------------------------------


def validate(config, config_file: str) -> None:
    """Every field the sweep reads, checked without loading data; raises ConfigError.

    Each field's own domain is its record in ``configs/scaling_sweep.py`` FIELDS; what follows are
    the relations between fields and what they name (label sources, dataset, directories)."""
    config_schema.validate(config, config_file, sweep_config.FIELDS)
    check_grid(config.n_values, config.seeds, config.members, config.n_train_pool, config_file)
    if config.chunk_steps % config.eval_every:
        cli.fail(config_file, "chunk_steps", f"a multiple of eval_every={config.eval_every}", config.chunk_steps)
    if config.total_steps % config.chunk_steps:
        cli.fail(config_file, "total_steps", f"a multiple of chunk_steps={config.chunk_steps}", config.total_steps)
    if not config.conditions:
        cli.fail(config_file, "conditions", "at least one label source", list(config.conditions))
    objectives = check_objective_conditions(config, config_file)
    n_points = len(config.conditions) * max(len(objectives), 1) * len(config.n_values) * len(config.seeds)
    groups = config.get("point_groups", 1)
    if n_points % groups:
        cli.fail(config_file, "point_groups", f"a positive divisor of the {n_points} sweep points "
                 "(conditions x objectives x n_values x seeds)", groups)
    check_feature_kinds(config, config_file)
    dataset_config(config.dataset, config_file)
    cli.check_data_dir(config_file, "data_dir", config.data_dir)
    if config.get("dataset_path") and not os.path.isdir(config.dataset_path):
        cli.fail(config_file, "dataset_path", "'' or an RLDS dataset directory", config.dataset_path)
    if not config.model_sizes:
        cli.fail(config_file, "model_sizes", "at least one tuple of layer widths", list(config.model_sizes))
    save = config.save_models
    names = condition_names(config)
    if save.condition not in ("", "*") and save.condition not in names:
        cli.fail(config_file, "save_models.condition", f"'' (the first), '*' (every one) or one of conditions {names}",
                 save.condition)
    if not save.seeds or not set(save.seeds) <= set(config.seeds):
        cli.fail(config_file, "save_models.seeds", f"at least one of seeds {list(config.seeds)}", list(save.seeds))
    if not set(save.n_values) <= set(config.n_values):
        cli.fail(config_file, "save_models.n_values", f"() (every N) or values of n_values {list(config.n_values)}",
                 list(save.n_values))


def check_objective_conditions(config, config_file: str) -> tuple[str, ...]:
    """Distinct, readable conditions and the ``objectives`` field (distinct names of
    ``preferences.objectives``, over teacher-preset or label-file conditions; a file's rubric must
    answer every objective and name no unknown one); returns the objectives."""
    if len(set(config.conditions)) != len(config.conditions):
        cli.fail(config_file, "conditions", "distinct label sources", list(config.conditions))
    sources = [as_label_source(cond, "conditions", config_file) for cond in config.conditions]
    objectives = tuple(config.get("objectives", ()) or ())
    if not objectives:
        return ()
    if len(set(objectives)) != len(objectives):  # each name's domain: the objectives record of FIELDS
        cli.fail(config_file, "objectives", "() or distinct objectives", list(objectives))
    unanswering = [s.name for s in sources if not hasattr(s, "sub_labels")]
    if unanswering:
        cli.fail(config_file, "conditions", "teacher presets or 'file:' label files only when objectives are set "
                 "(simulated annotators answer the sub-questions from the gold components, a label file in "
                 "its rubric column)", unanswering)
    for source in sources:  # a label file's rubric keys and answers, read before anything is written
        if not isinstance(source, TeacherSource):
            source.check_objectives(objectives, config_file)
    return objectives


def condition_names(config) -> list[str]:
    """The sweep's condition names: the conditions, or ``<condition>@<objective>`` per objective."""
    objectives = tuple(config.get("objectives", ()) or ())
    if not objectives:
        return list(config.conditions)
    return [objective_condition(c, o) for c in config.conditions for o in objectives]


def surf_spec(config, force: bool = False) -> sweep.SurfSpec | None:
    """The sweep's SURF settings, or None when no condition trains with SURF (force: some do,
    as the label-efficiency strategies that name SURF)."""
    surf = config.get("surf")
    if surf is None or not (surf.enabled or force):
        return None
    return sweep.SurfSpec(tau=float(surf.tau), lam=float(surf.lam), mu=int(surf.mu), margin=int(surf.crop),
                          length=int(config.segment_length))


def load_pool(config, config_file: str, surf: sweep.SurfSpec | None):
    """The sweep's preference data (segments, train pool, val and test pairs) before any labels;
    with ``surf`` (``surf_spec``), each segment keeps SURF's crop margin on both sides."""
    pref = load_preference_data(
        config.dataset, config.data_dir or None, path=config.get("dataset_path") or None, segment_length=config.segment_length,
        stride=config.stride, n_train=config.n_train_pool, n_val=config.n_val, n_test=config.n_test,
        teacher="oracle", feature_kind=table_kind(config), cross_embodiment=config.cross_embodiment,
        seed=config.pool_seed, split_seed=config.split_seed,
        margin=(surf or sweep.SurfSpec(margin=0)).margin,
        **(dict(frame_size=int(config.pixels.size), frame_view=config.pixels.view) if has_pixels(config) else {}))
    if int(pref.segments.task_id.max()) >= config.num_tasks:
        cli.fail(config_file, "num_tasks", f"more than the dataset's largest task id {int(pref.segments.task_id.max())}",
                 config.num_tasks)
    if config.num_embodiments and int(pref.segments.embodiment_id.max()) >= config.num_embodiments:
        cli.fail(config_file, "num_embodiments",
                 f"0 or more than the largest embodiment id {int(pref.segments.embodiment_id.max())}",
                 config.num_embodiments)
    return pref


def load_inputs(config, config_file: str, surf: sweep.SurfSpec | None) -> SweepInputs:
    """Preference data → labels per condition → device arrays (errors name ``config_file``'s
    fields); with ``surf``, every condition trains with SURF."""
    pref = load_pool(config, config_file, surf)
    objectives = tuple(config.get("objectives", ()) or ())
    inputs = make_sweep_data(pref, config.conditions, config.n_values, config.seeds,
                             config.members, config.label_seed, where=config_file,
                             confidence_weights=bool(config.get("confidence_weights", False)), objectives=objectives)
    if not has_gold(pref.segments):
        inputs = foreign_held_out(config, config_file, inputs, pref)
    else:
        inputs.markovian_estimate = markovian_gold_accuracy(pref)
        if objectives:
            inputs.markovian_estimate["objectives"] = objective_estimates(pref, objectives)
    if has_pixels(config):  # frames stored once; the state kinds' programs drop them (kind_inputs)
        inputs = with_frames(inputs, pref, int(config.pixels.every), config_file)
    if surf is not None:  # the plain sweep: SURF for every condition
        inputs = dataclasses.replace(inputs, data=inputs.data.replace(
            surf_on=jnp.ones((len(inputs.grid.conditions),), jnp.float32)))
    return inputs


def foreign_held_out(config, config_file: str, inputs: SweepInputs, pref) -> SweepInputs:
    """A dataset without gold (a foreign LeRobot dataset): every condition must be a label file, and
    the test pairs are held-out answers of the first (``sweep_data.held_out_from_labels``)."""
    not_files = [c for c in config.conditions if not str(c).startswith("file")]
    if not_files:
        cli.fail(config_file, "conditions", f"'file:' label conditions only: dataset {config.dataset!r} has no "
                 "gold reward for simulated annotators or an oracle test set", list(config.conditions))
    if config.get("objectives"):  # a head's held-out answers would be the file's, per objective: not built
        cli.fail(config_file, "objectives", f"() on dataset {config.dataset!r}: per-objective heads are scored "
                 "against the objectives' oracle sub-answers, which need the gold reward", list(config.objectives))
    return held_out_from_labels(inputs, pref, 0, where=config_file)


# --- The one sweep trainer --------------------------------------------------------------------


def placement(grid, data, log: Callable[[str], None]):
    """Sweep points over the devices of every process (independent: no communication).
    Returns (point spec, data, point sharding or None on one device)."""
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


def train_points(config, inputs: SweepInputs, model, tx, *, steps: int | None = None,
                 surf: sweep.SurfSpec | None = None, token_dropout: tuple[float, int] | None = None,
                 prepare: Callable | None = None, ckpt_dir: str | None = None, spread: bool = True,
                 log: Callable[[str], None] = cli.log, name: str = "reward-model"):
    """Trains every (point, member) of ``inputs.grid`` for ``steps`` (default config.total_steps);
    returns (final states, history {loss [steps, P, K], val_loss, val_accuracy [evals, P, K],
    eval_steps [evals]: the steps of config.eval_schedule},
    the data as placed on the devices, for scoring with the same placement)).

    config supplies seed, loss, batch_size, eval_every, eval_schedule (default "linear"),
    chunk_steps, bootstrap and point_groups.
    prepare(states, points, data) -> states adjusts the initial states (transfer: start from a
    pretrained model, per-point learning rates). ckpt_dir: checkpoint every chunk and resume from
    the last readable one. spread: place the points over every device (else one device).
    """
    steps = int(steps or config.total_steps)
    chunk = min(int(config.chunk_steps), steps)
    grid = inputs.grid
    points, data, placed = placement(grid, inputs.data, log) if spread else (sweep.point_spec(grid), inputs.data, None)
    sample = sweep.gather_segments(data, jnp.zeros((1,), jnp.int32))
    if surf is not None:
        sample = sweep.window(sample, surf.margin, surf.length)
    states = sweep.init_sweep_state(model, tx, grid, sample, inputs.norm, config.seed, sharding=placed)
    if prepare is not None:
        states = prepare(states, points, data)
    n_chunks, evals_per_chunk = steps // chunk, chunk // config.eval_every
    kind = config.get("eval_schedule", "linear")
    schedule = eval_schedule.eval_steps(n_chunks * chunk, config.eval_every, kind)
    masks = eval_schedule.chunk_masks(schedule, chunk, n_chunks) if kind != "linear" else None
    shape = (len(grid.points), grid.members)
    history = {"loss": np.full((steps,) + shape, np.nan, np.float32),
               "val_loss": np.full((len(schedule),) + shape, np.nan, np.float32),
               "val_accuracy": np.full((len(schedule),) + shape, np.nan, np.float32),
               "eval_steps": schedule}
    ckpt, start_chunk = (checkpoint.Checkpointer(ckpt_dir) if ckpt_dir else None), 0
    restored = ckpt.restore({"states": states, "history": history}) if ckpt else None
    if restored is not None:
        step, tree, meta = restored
        states, history, start_chunk = tree["states"], sharding.to_host(tree["history"]), meta["chunk"]
        log(f"resumed from step {step} (chunk {start_chunk}/{n_chunks})")
    chunk_fn = sweep.make_sweep_chunk(model, tx, config.loss, batch_size=config.batch_size,
                                      eval_every=config.eval_every, evals_per_chunk=evals_per_chunk,
                                      bootstrap=config.bootstrap, surf=surf, token_dropout=token_dropout,
                                      scheduled=masks is not None)

    def record(c, hist):
        history["loss"][c * chunk:(c + 1) * chunk] = hist["loss"]
        if masks is None:
            rows, first = slice(None), c * evals_per_chunk
        else:  # the chunk's evaluated entries, in order, at their places in the schedule
            rows, first = masks[c], int(masks[:c].sum())
        for key in ("val_loss", "val_accuracy"):
            picked = hist[key][rows]
            history[key][first:first + len(picked)] = picked

    def describe(index):
        p, m = index
        cond, n, s = grid.points[p]
        return f"sweep point {p} (condition={grid.conditions[cond]}, N={n}, seed={grid.seeds[s]}), member {m}"

    groups = int(config.get("point_groups", 1))
    if placed is None and groups > 1:  # one device: slices of points in turn, to bound memory
        chunk_fn = sweep.grouped_chunk(chunk_fn, groups)
    # run_chunks calls the chunk once per chunk index from start_chunk on, in order.
    chunk_masks = iter(() if masks is None else masks[start_chunk:])
    step_chunk = ((lambda s: chunk_fn(s, points, data)) if masks is None
                  else (lambda s: chunk_fn(s, points, data, jnp.asarray(next(chunk_masks)))))
    states = run_chunks(
        step_chunk, states, n_chunks=n_chunks, steps_per_chunk=chunk,
        start_chunk=start_chunk, checkpointer=ckpt, on_chunk=record, describe_point=describe, log=log,
        checkpoint_tree=lambda s: {"states": s, "history": history},
        progress=lambda c, h: (f"train loss {np.mean(h['loss'][-config.eval_every:]):.4f}  "
                               f"val acc {last_evaluated(h['val_accuracy']):.3f}"), name=name)
    if ckpt:
        ckpt.close()
    return states, history, data


def last_evaluated(val_accuracy: np.ndarray) -> float:
    """Mean validation accuracy [P, K] at a chunk's last evaluation (NaN rows are steps without one)."""
    done = [row for row in np.asarray(val_accuracy) if np.isfinite(row).all()]
    return float(np.mean(done[-1])) if done else float("nan")


def kind_inputs(inputs: SweepInputs, kind: str) -> SweepInputs:
    """The sweep inputs a feature kind trains on: the same pairs, with frames only for pixel kinds."""
    if kind in PIXEL_FEATURE_KINDS or inputs.data.frames is None:
        return inputs
    return dataclasses.replace(inputs, data=inputs.data.replace(frames=None, seg_frames=None))


def train_one_size(config, inputs: SweepInputs, hidden, ckpt_dir: str, surf: sweep.SurfSpec | None,
                   log: Callable[[str], None] = cli.log, model=None, name: str | None = None):
    """Trains every (point, member) of one model size of the sweep config, checkpointed in ckpt_dir
    (``model``: another shape of the sweep, ``feature_kinds.build_model``; default config.model).

    Returns (test returns [P, K, St] of the best-validation parameters, final states, history).
    """
    if model is None:
        model = reward_model_from_config(config.model, hidden, num_tasks=config.num_tasks,
                                         num_embodiments=config.num_embodiments)
    tx = make_optimizer(config.optimizer, total_steps=config.total_steps)
    states, history, data = train_points(config, inputs, model, tx, surf=surf, ckpt_dir=ckpt_dir, log=log,
                                         name=f"reward-model [{name or 'x'.join(map(str, hidden))}]")
    scorer = sweep.make_segment_scorer(model, surf)
    test_returns = sharding.to_host(scorer(states.best_params, inputs.norm, data, jnp.asarray(inputs.test_rows)))
    return test_returns, states, history


def droid_rows(config, inputs: SweepInputs, states, hidden, ckpt_dir: str, surf: sweep.SurfSpec | None,
               log: Callable[[str], None] = cli.log) -> list[dict]:
    """The DROID-style pseudo-label pass: every point's best ensemble scores the pool, its
    top-vs-bottom unlabelled pairs join its N labels, and it trains again; rows are named
    ``<condition>+droid`` (N still counts the labels bought)."""
    model = reward_model_from_config(config.model, hidden, num_tasks=config.num_tasks,
                                     num_embodiments=config.num_embodiments)
    scorer = sweep.make_segment_scorer(model, surf)
    member_returns = sharding.to_host(scorer(states.best_params, inputs.norm, inputs.data,
                                             jnp.arange(inputs.data.seg_obs.shape[0])))
    second, counts = active.droid_second_pass(inputs, np.asarray(member_returns), config.pseudo.fraction)
    log(f"DROID pseudo-labels per point: {min(counts)}–{max(counts)}")
    test_returns, states2, history = train_one_size(config, second, hidden, ckpt_dir, surf, log)
    rows = result_rows(config, inputs, test_returns, states2, history, hidden)
    for r in rows:
        p = inputs.grid.points.index((inputs.grid.conditions.index(r["condition"]), r["n"],
                                      inputs.grid.seeds.index(r["seed"])))
        r["condition"] = f"{r['condition']}+droid"
        r["pseudo_labels"] = counts[p]
    return rows


# --- The stage -----------------------------------------------------------------------------------


def run_sweep(config, workdir: str, resume: bool = False, log: Callable[[str], None] = cli.log,
              config_file: str = "configs/scaling_sweep.py"):
    """The scaling-sweep experiment; returns the fits. Nothing is written until every check passed."""
    validate(config, config_file)
    primary = distributed.is_primary()
    log = log if primary else (lambda _: None)  # every process trains its share; process 0 logs and writes
    if primary and cli.check_workdir(workdir, resume, config) == "fresh":
        log(f"--resume: no earlier run in {workdir}; starting fresh")
    t0 = time.time()
    surf = surf_spec(config)
    inputs = load_inputs(config, config_file, surf)
    if primary:
        checkpoint.prepare_run_dir(workdir, config.to_json(indent=2, sort_keys=True), resume, error=cli.ConfigError)
    if jax.process_count() > 1:  # the others start once process 0 has accepted the workdir
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("rlhf_jax.sweep.workdir")
    log(f"data ready in {time.time() - t0:.1f}s: {len(inputs.data.train_a)} train-pool pairs, "
        f"{len(inputs.data.val_a)} val, {len(inputs.test_a)} test; {len(inputs.grid.points)} sweep points "
        f"x {inputs.grid.members} members; usable pairs {inputs.usable}")
    rows, saved, t_train = [], [], time.time()
    for i, sized in enumerate(sized_models(config)):
        hidden, shaped = sized.hidden, kind_inputs(inputs, sized.kind)
        test_returns, states, history = train_one_size(
            config, shaped, hidden, os.path.join(workdir, "checkpoints", f"size_{i}"), surf, log,
            model=build_model(config, sized), name=sized.label)
        size_rows = result_rows(config, shaped, test_returns, states, history, hidden, size_label=sized.label,
                                features=sized.kind if config.get("feature_kinds", ()) else None)
        rows += size_rows
        if config.get("pseudo") is not None and config.pseudo.droid:
            rows += droid_rows(config, shaped, states, hidden, os.path.join(workdir, "checkpoints", f"droid_{i}"),
                               surf, log)
        if sized.kind not in PIXEL_FEATURE_KINDS:  # an artefact's reader computes state features only
            saved += save_reward_models(config, shaped, states, size_rows, hidden, i, workdir)
        if primary:
            checkpoint.atomic_write_npz(os.path.join(workdir, f"history_size_{i}.npz"), history)
    t_train = time.time() - t_train
    # A pilot of one N (configs/scaling_sweep.py:medium_pilot) has no curve to fit.
    fits = fit_curves(config, rows) if len(set(config.n_values)) > 1 else {}
    run_info = {"wall_s": time.time() - t0, "train_s": t_train, "label_stats": inputs.label_stats,
                "markovian_estimate": inputs.markovian_estimate, "peak_rss_mib": peak_rss_mib(),
                "label_sources": inputs.label_sources,
                **({"frames_mib": inputs.data.frames.nbytes / 2**20} if inputs.data.frames is not None else {}),
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

