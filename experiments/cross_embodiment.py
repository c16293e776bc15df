"""Reward-model transfer to an unseen arm (or task), built from the scaling-sweep pieces.

  python -m experiments.cross_embodiment --config configs/cross_embodiment.py:default --workdir runs/transfer

Reads top to bottom: config and workdir checks → episodes → per transfer ("panda->ur5") and
model (eef | joint with the unseen arm's token from the mean of the source tokens | joint with a
token learnt under dropout): source pairs → pretrain (seeds × members vmapped, one program,
cached across targets) → the unseen token filled → zero-shot → target phase (fine-tune from the
pretrained ensemble and train from scratch, × learning rates × n × seeds × members, one program
per step budget) → learning rate chosen on validation → rows and per-test-pair correctness →
report (experiments/cross_embodiment_report.py).

Conditions in results.csv (`condition`):
  source_in_domain  pretrained ensemble on the source's held-out pairs
  zero_shot         pretrained ensemble (unseen token filled) on the target's held-out pairs
  finetune          that ensemble fine-tuned on n_target target pairs (source normalisation kept;
                    step 0, the zero-shot model, is a candidate of best-validation selection)
  scratch           fresh ensemble trained on n_target target pairs
Accuracy is the ensemble's (mean member P(a ≻ b)) on fixed held-out pairs, oracle labels, ties
excluded.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from configs import cross_embodiment as cross_embodiment_config
from experiments import cli
from experiments.cross_embodiment_report import write_report
from experiments.stages.sweep import train_points
from rlhf_jax import checkpoint, config_schema
from rlhf_jax.data import rlds
from rlhf_jax.data.dataset import ensure_dataset
from rlhf_jax.preferences.segments import make_preference_data
from rlhf_jax.data.variants import dataset_config
from rlhf_jax.envs.robots import EMBODIMENTS
from rlhf_jax.envs.tasks import TASKS
from rlhf_jax.evaluation.transfer_stats import decided_correct
from rlhf_jax.losses import preference_probability
from rlhf_jax.models.reward import reward_model_from_config
from rlhf_jax.train import sweep, transfer
from rlhf_jax.train.state import make_optimizer, set_learning_rate
from rlhf_jax.train.sweep_data import check_grid, make_sweep_data

NAMES = {"embodiment": EMBODIMENTS, "task": TASKS}


@dataclasses.dataclass(frozen=True)
class Transfer:
    name: str                   # "panda->ur5"
    axis: str                   # "embodiment" | "task"
    source: tuple[str, ...]
    target: str

    def ids(self, names) -> tuple[tuple[int, ...], int]:
        return tuple(NAMES[self.axis].index(n) for n in names), NAMES[self.axis].index(self.target)


def parse_transfers(config, config_file: str) -> list[Transfer]:
    out = []
    for spec in config.transfers:
        src, sep, tgt = str(spec).partition("->")
        names = tuple(s for s in src.split("+") if s)
        if not sep or not names or any(n not in NAMES[config.axis] for n in names + (tgt,)) or tgt in names:
            cli.fail(config_file, "transfers", f"'<source>+…-><target>' over distinct {config.axis} names from "
                     f"{NAMES[config.axis]}", spec)
        out.append(Transfer(str(spec), config.axis, names, tgt))
    return out


def validate(config, config_file: str) -> list[Transfer]:
    """Every field the experiment reads, checked before data is loaded; raises ConfigError.

    Each field's own domain is its record in ``configs/cross_embodiment.py`` FIELDS; what follows
    are the relations (the grid, the unseen token for the axis, chunks, the step budget, transfers
    that name known arms or tasks within the model's ids) and the dataset the config names."""
    config_schema.validate(config, config_file, cross_embodiment_config.FIELDS)
    check_grid(config.n_target, config.seeds, config.members, max(config.n_target), config_file, "n_target")
    if len(config.seeds) < 2:
        cli.fail(config_file, "seeds", "at least two seeds (intervals resample them)", config.seeds)
    if config.axis == "task" and tuple(config.unknown_tokens) != ("mean",):
        cli.fail(config_file, "unknown_tokens", "('mean',) for axis 'task' (an unseen task token is the mean "
                 "of the source tasks'), some of ('mean', 'dropout') otherwise", config.unknown_tokens)
    if config.chunk_steps % config.eval_every:
        cli.fail(config_file, "chunk_steps", f"a multiple of eval_every={config.eval_every}", config.chunk_steps)
    b = config.budget
    if b.min_steps > b.max_steps:
        cli.fail(config_file, "budget", "epochs > 0 and 0 < min_steps ≤ max_steps", b.to_dict())
    dataset_config(config.dataset, config_file)
    cli.check_data_dir(config_file, "data_dir", config.data_dir)
    transfers = parse_transfers(config, config_file)
    # Token ids index the model's embedding; an id at or past the vocabulary size would collide
    # with the unknown token (index num_embodiments / num_tasks) and train on nonsense.
    field = "num_embodiments" if config.axis == "embodiment" else "num_tasks"
    needed = 1 + max(max(t.ids(t.source)[0]) for t in transfers) if transfers else 0
    needed = max(needed, 1 + max((t.ids(())[1] for t in transfers), default=-1))
    if int(config[field]) < needed:
        cli.fail(config_file, field, f"at least {needed} (the {config.axis} ids the transfers name)", config[field])
    return transfers


def budget(config, n_pairs: int) -> int:
    return transfer.steps_for_pairs(n_pairs, batch_size=config.batch_size, multiple=config.chunk_steps,
                                    **config.budget.to_dict())


def preference_data(config, episodes, axis, names, n_train, feature_kind, meta):
    """Oracle-labelled pairs among the episodes of the named arms (or tasks), same task and arm."""
    key = "embodiment" if axis == "embodiment" else "task"
    eps = [ep for ep in episodes if ep["episode_metadata"][key] in names]
    comp = tuple(meta.get("reward_component_names", ()))
    weights = (np.array([meta["gold_rubric"][n] for n in comp], np.float32)
               if comp and "gold_rubric" in meta else None)
    return make_preference_data(
        eps, segment_length=config.segment_length, stride=config.stride, n_train=n_train,
        n_val=config.n_val, n_test=config.n_test, teacher="oracle", feature_kind=feature_kind,
        seed=config.pool_seed, split_seed=config.split_seed, component_names=comp,
        gold_weights=weights, dt=float(meta.get("dt", 0.05)))


def make_model(config, feature_kind):
    # joint features carry an embodiment token, with one spare row for the dropout path's
    # unknown token (index num_embodiments); eef features are embodiment-agnostic (no token).
    n_emb = config.num_embodiments + 1 if feature_kind == "joint" else 0
    return reward_model_from_config(config.model, config.hidden, num_tasks=config.num_tasks, num_embodiments=n_emb)


def start_from(model, *, init_params=None, init_norm=None, use_init=None, learning_rates=None):
    """``prepare(states, points, data)`` for ``stages.sweep.train_points``: per-point constant learning
    rates [P] (an ``inject=True`` optimiser), and points where ``use_init`` [P] is set start from
    ``init_params`` [P, K, ...] with ``init_norm`` (the pretrained model, unseen token filled), so
    their step 0 is exactly the zero-shot model, and that step-0 model is a candidate of
    best-validation selection: on target validation pairs fine-tuning never ends with a higher NLL
    than zero-shot."""

    def prepare(states, points, data):
        shape = states.best_val_loss.shape  # [P, K]
        if learning_rates is not None:
            lr = np.broadcast_to(np.asarray(learning_rates, np.float32)[:, None], shape)
            states = states.replace(train=states.train.replace(
                opt_state=set_learning_rate(states.train.opt_state, jnp.asarray(lr))))
        if init_params is None:
            return states
        use = jnp.asarray(use_init)

        def pick(new, old):
            return jnp.where(use.reshape((-1,) + (1,) * (old.ndim - 1)), new, old)

        params = jax.tree.map(pick, init_params, states.train.params)
        norm = jax.tree.map(lambda n, o: pick(jnp.broadcast_to(n, o.shape), o), init_norm, states.train.norm)
        val0, _ = sweep.make_validation(model)(params, norm, points.condition, data)
        return states.replace(train=states.train.replace(params=params, norm=norm),
                              best_params=jax.tree.map(jnp.copy, params),  # no shared buffer: state is donated
                              best_val_loss=jnp.where(use[:, None], val0, states.best_val_loss))

    return prepare


def train_phase(config, inputs, model, tx, steps, *, prepare=None, token_dropout=None, log=cli.log, name="pretrain"):
    """Every (point, member) of ``inputs.grid`` for ``steps`` through the one sweep trainer, on one
    device; returns the final states."""
    states, _, _ = train_points(config, inputs, model, tx, steps=steps, token_dropout=token_dropout,
                                prepare=prepare, spread=False, log=log, name=f"transfer {name}")
    return states


def test_correct(model, params, norm, inputs) -> np.ndarray:
    """Per decided test pair, whether each point's ensemble is right: [P, T_decided]."""
    ret = np.asarray(sweep.make_segment_scorer(model)(params, norm, inputs.data, jnp.asarray(inputs.test_rows)))
    prob = preference_probability(ret[:, :, inputs.test_a], ret[:, :, inputs.test_b], xp=np)
    return decided_correct(prob.mean(1), inputs.test_label)


def pretrain(config, src, feature_kind, mode, tr: Transfer, log, config_file: str = "configs/cross_embodiment.py"):
    """The source ensemble per seed: (model, best params [S, K, ...], source inputs, steps); a source
    pool too small for n_source is refused naming ``config_file``'s field."""
    src_in = make_sweep_data(src, ("oracle",), (config.n_source,), config.seeds, config.members,
                             config.label_seed, where=config_file, n_field="n_source")
    model, steps = make_model(config, feature_kind), budget(config, config.n_source)
    dropout = (float(config.token_dropout), config.num_embodiments) if mode == "dropout" else None
    states = train_phase(config, src_in, model, make_optimizer(config.optimizer, total_steps=steps), steps,
                         token_dropout=dropout, log=log, name=f"pretrain {feature_kind}/{mode} on {'+'.join(tr.source)}")
    return model, states.best_params, src_in, steps


def filled(params, config, tr: Transfer, mode: str):
    """The pretrained params with the target's (unseen) token filled by ``mode``."""
    source_ids, target_id = tr.ids(tr.source)
    return transfer.fill_unseen_token(params, tr.axis, (target_id,), mode, source_ids=source_ids,
                                      unknown_id=config.num_embodiments)


def target_phase(config, tgt_in, model, init_params, init_norm, kinds, log):
    """Fine-tune / scratch × learning rates × n × seeds; the rate chosen on validation.

    Returns {kind: {"correct" [S, N, T], "lr", "val_loss", "best_step", "steps" [S, N]}}.
    """
    lrs = tuple(float(v) for v in config.target_learning_rates)
    conds = [(k, lr) for k in kinds for lr in lrs]
    tx = make_optimizer(_constant(config.optimizer), total_steps=1, inject=True)  # constant: no length
    seeds, members = tuple(config.seeds), config.members
    shape = (len(kinds), len(lrs), len(config.n_target), len(seeds))
    val_loss, best_step = np.zeros(shape + (members,)), np.zeros(shape + (members,))
    steps_of, correct = np.zeros(shape[2:], np.int64), None
    for steps, ns in transfer.step_groups(config.n_target, batch_size=config.batch_size,
                                          multiple=config.chunk_steps, **config.budget.to_dict()).items():
        grid = sweep.SweepGrid(conditions=tuple(f"{k}@{lr:g}" for k, lr in conds), n_values=ns, seeds=seeds,
                               members=members)
        inputs = dataclasses.replace(tgt_in, grid=grid)
        points = grid.points
        pre = transfer.stacked_rows(init_params, [s for _, _, s in points])
        use = np.array([conds[c][0] == "finetune" for c, _, _ in points])
        lr_p = [conds[c][1] for c, _, _ in points]
        prepare = start_from(model, init_params=pre, init_norm=init_norm, use_init=use, learning_rates=lr_p)
        states = train_phase(config, inputs, model, tx, steps, prepare=prepare, log=log,
                             name=f"target n={','.join(map(str, ns))}")
        # Each point is scored with its own normaliser: fine-tuned = the source's, scratch = the target's.
        corr = np.where(use[:, None], test_correct(model, states.best_params, init_norm, inputs),
                        test_correct(model, states.best_params, inputs.norm, inputs))
        if correct is None:
            correct = np.zeros(shape + (corr.shape[-1],), np.float32)
        bvl, bst = np.asarray(states.best_val_loss), np.asarray(states.best_step)
        for p, (c, n, s) in enumerate(points):
            k, l_i, j = kinds.index(conds[c][0]), lrs.index(conds[c][1]), config.n_target.index(n)
            correct[k, l_i, j, s], val_loss[k, l_i, j, s], best_step[k, l_i, j, s] = corr[p], bvl[p], bst[p]
            steps_of[j, s] = steps
    out = {}
    for k, kind in enumerate(kinds):
        pick = transfer.choose_learning_rate(val_loss[k])           # [N, S]
        sel = lambda a: np.take_along_axis(a[k], pick[None, ..., None], 0)[0]  # noqa: E731
        out[kind] = {"correct": np.swapaxes(sel(correct), 0, 1), "lr": np.asarray(lrs)[pick].T,
                     "val_loss": sel(val_loss).mean(-1).T, "best_step": sel(best_step).mean(-1).T,
                     "steps": steps_of.T}
    return out


def _constant(opt_config):
    c = opt_config.copy_and_resolve_references()
    c.schedule = "constant"
    return c


def model_variants(config) -> list[tuple[str, str, str]]:
    """(label, feature kind, unseen-token mode) of each model the experiment compares."""
    out = []
    for kind in config.feature_kinds:
        if kind == "eef" and config.axis == "embodiment":
            out.append(("eef", "eef", "mean"))  # no embodiment token: the mode is never used
        elif len(config.unknown_tokens) == 1:
            out.append((kind, kind, config.unknown_tokens[0]))
        else:
            out += [(f"{kind}/{mode}", kind, mode) for mode in config.unknown_tokens]
    return out


def run_model(config, episodes, meta, tr: Transfer, label, feature_kind, mode, cache, scratch_cache, log,
              config_file: str = "configs/cross_embodiment.py"):
    """One transfer × model: rows and per-test-pair correctness arrays {key: [S, N, T]}."""
    t0 = time.time()
    key = (tr.source, feature_kind, mode)
    if key not in cache:
        src = preference_data(config, episodes, tr.axis, tr.source, config.n_source, feature_kind, meta)
        model, params, src_in, steps = pretrain(config, src, feature_kind, mode, tr, log, config_file)
        src_corr = test_correct(model, params, src_in.norm, src_in)
        cache[key] = (model, params, src_in, steps, src_corr)
    model, params, src_in, pre_steps, src_corr = cache[key]
    params = filled(params, config, tr, mode)
    tgt = preference_data(config, episodes, tr.axis, (tr.target,), max(config.n_target), feature_kind, meta)
    tgt_in = make_sweep_data(tgt, ("oracle",), config.n_target, config.seeds, config.members, config.label_seed,
                             where=config_file, n_field="n_target")
    zs_corr = test_correct(model, params, src_in.norm, tgt_in)
    zs_val, _ = sweep.make_validation(model)(params, jax.tree.map(
        lambda x: jnp.broadcast_to(x, (len(config.seeds), config.members) + x.shape), src_in.norm),
        jnp.zeros(len(config.seeds), jnp.int32), tgt_in.data)
    log(f"[{tr.name} {label}] {src_in.usable['oracle']} source pairs, {len(tgt.train)} target pairs; source acc "
        f"{src_corr.mean():.3f}, zero-shot {zs_corr.mean():.3f} ({time.time() - t0:.0f}s)")
    scratch_key = (tr.name, feature_kind)
    kinds = ("finetune",) if scratch_key in scratch_cache else ("finetune", "scratch")
    res = target_phase(config, tgt_in, model, params, src_in.norm, kinds, log)
    res.setdefault("scratch", scratch_cache.get(scratch_key))
    scratch_cache[scratch_key] = res["scratch"]
    base = {"transfer": tr.name, "axis": tr.axis, "source": "+".join(tr.source), "target": tr.target,
            "model": label, "feature_kind": feature_kind, "n_source": config.n_source}
    rows = []
    for s, seed in enumerate(config.seeds):
        rows.append({**base, "condition": "source_in_domain", "n_target": 0, "seed": seed,
                     "accuracy": float(src_corr[s].mean()), "learning_rate": config.optimizer.learning_rate,
                     "steps": pre_steps, "best_step": float("nan"), "val_loss": float("nan")})
        rows.append({**base, "condition": "zero_shot", "n_target": 0, "seed": seed,
                     "accuracy": float(zs_corr[s].mean()), "learning_rate": 0.0, "steps": 0, "best_step": 0.0,
                     "val_loss": float(np.asarray(zs_val)[s].mean())})
    for kind in ("finetune", "scratch"):
        r = res[kind]
        for j, n in enumerate(config.n_target):
            for s, seed in enumerate(config.seeds):
                rows.append({**base, "condition": kind, "n_target": n, "seed": seed,
                             "accuracy": float(r["correct"][s, j].mean()), "learning_rate": float(r["lr"][s, j]),
                             "steps": int(r["steps"][s, j]), "best_step": float(r["best_step"][s, j]),
                             "val_loss": float(r["val_loss"][s, j])})
    prefix = f"{tr.name}|{label}|"
    arrays = {prefix + "source_in_domain": src_corr[:, None], prefix + "zero_shot": zs_corr[:, None],
              prefix + "finetune": res["finetune"]["correct"], prefix + "scratch": res["scratch"]["correct"]}
    log(f"[{tr.name} {label}] done in {time.time() - t0:.0f}s")
    return rows, arrays


def run_transfer(config, workdir: str, log=cli.log, config_file: str = "configs/cross_embodiment.py") -> dict:
    """The transfer experiment (configs/cross_embodiment.py); returns the report's summary.

    Config, workdir and data are checked before anything is written; the run is not resumable.
    """
    transfers = validate(config, config_file)
    cli.check_workdir(workdir, False, config)
    t0 = time.time()
    path = ensure_dataset(config.dataset, config.data_dir or None)
    episodes, meta = rlds.load_rlds(path), rlds.load_metadata(path)
    log(f"{len(episodes)} episodes loaded in {time.time() - t0:.1f}s")
    key = "embodiment" if config.axis == "embodiment" else "task"
    present = sorted({ep["episode_metadata"][key] for ep in episodes})
    for tr in transfers:
        if any(n not in present for n in tr.source + (tr.target,)):
            cli.fail(config_file, "transfers", f"{config.axis} names present in dataset {config.dataset!r} "
                     f"({'/'.join(present)})", tr.name)
    checkpoint.prepare_run_dir(workdir, config.to_json(indent=2, sort_keys=True), resume=False,
                               error=cli.ConfigError)
    rows, arrays, cache, scratch_cache = [], {}, {}, {}
    for tr in transfers:
        for label, feature_kind, mode in model_variants(config):
            r, a = run_model(config, episodes, meta, tr, label, feature_kind, mode, cache, scratch_cache, log,
                             config_file)
            rows += r
            arrays.update(a)
    checkpoint.atomic_write_csv(os.path.join(workdir, "results.csv"), rows)
    checkpoint.atomic_write_npz(os.path.join(workdir, "test_correct.npz"), {k: v.astype(np.float16) for k, v in arrays.items()})
    info = {"wall_s": time.time() - t0, "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
            "cpu_count": os.cpu_count()}
    checkpoint.atomic_write_json(os.path.join(workdir, "run_info.json"), info)
    summary = write_report(workdir, log=log)
    log(f"wrote {workdir}/results.csv, test_correct.npz, summary.json, claims.md, accuracy_vs_n_target.png "
        f"in {time.time() - t0:.1f}s")
    return summary


def _body(inv: cli.Invocation) -> None:
    run_transfer(inv.config, inv.workdir, config_file=inv.config_file)


main = functools.partial(cli.run_main, body=_body, resumable=False)

if __name__ == "__main__":
    sys.exit(main(sys.argv))
