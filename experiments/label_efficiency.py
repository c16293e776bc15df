"""Label efficiency: which pairs to pay for, and what a cheaper labeller buys.

  python -m experiments.label_efficiency --config configs/label_efficiency.py:quick --workdir runs/label_eff

Each round trains every (strategy, seed) run in one compiled program (`rlhf_jax.train.active`),
scores the pool, and buys the next labels. A round's results and every run's labelled set are
saved as ``rounds/round_<t>.json``; ``--resume`` continues after the last saved round (and inside
a round from its chunk checkpoints) to the same final numbers. Writes results.csv, savings.json,
claims.md and label_efficiency.png (`experiments.label_efficiency_report`), and routing.json and
routing.png when the run has routed strategies (`experiments.label_efficiency_routing`).
"""
from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import sys
import time

import jax.numpy as jnp
import numpy as np

from configs import label_efficiency as label_efficiency_config
from experiments import cli
from experiments import label_efficiency_report as report
from experiments.stages.sweep import load_pool, surf_spec, train_one_size
from rlhf_jax import checkpoint, config_schema
from rlhf_jax.preferences import annotators as ann
from rlhf_jax.labels import costs
from rlhf_jax.preferences import routing
from rlhf_jax.data.dataset import dataset_config
from rlhf_jax.ensemble import ensemble_preference_probability
from rlhf_jax.metrics import preference_metrics
from rlhf_jax.query import METHODS
from rlhf_jax.train import active, sweep
from rlhf_jax.train.sweep_data import make_sweep_data


def strategies(config, config_file: str) -> list[active.Strategy]:
    out = []
    for name in config.strategies:
        if name not in config.strategy_defs:
            cli.fail(config_file, "strategies", f"names from strategy_defs {sorted(config.strategy_defs)}", name)
        try:
            out.append(active.Strategy(name=name, **config.strategy_defs[name].to_dict()))
        except (TypeError, cli.ConfigError) as e:
            cli.fail(config_file, f"strategy_defs.{name}", f"select from {METHODS}, route, human_fraction, pseudo", str(e))
    return out


def validate(config, config_file: str) -> list[active.Strategy]:
    """Every field the experiment reads, before data is loaded; raises ConfigError.

    Each field's own domain is its record in ``configs/label_efficiency.py`` FIELDS; what follows
    are the relations (strategies defined and including 'uniform', budgets within the pool, the
    k-center hybrids' oversampling, one model size, chunks that divide the steps)."""
    config_schema.validate(config, config_file, label_efficiency_config.FIELDS)
    if len(set(config.strategies)) != len(config.strategies):
        cli.fail(config_file, "strategies", "distinct strategy names", list(config.strategies))
    strats = strategies(config, config_file)
    if "uniform" not in config.strategies:
        cli.fail(config_file, "strategies", "a list that includes 'uniform' (the baseline of every saving)",
                 list(config.strategies))
    if any(s.reference for s in strats) and config.rounds < 2:
        cli.fail(config_file, "rounds", "at least 2 rounds when a strategy is a reference", config.rounds)
    for s, counts in zip(strats, label_plan(config, strats)):
        if counts[-1] > config.n_train_pool:
            field = "reference_reach" if s.reference else "rounds"
            cli.fail(config_file, field, f"a budget of at most the pool's {config.n_train_pool} pairs "
                     f"(strategy {s.name!r})", counts[-1])
    if any(s.select.startswith("kcenter_") for s in strats) and config.oversampling < 2:
        cli.fail(config_file, "oversampling", ">= 2 (the k-center hybrids keep the top half)", config.oversampling)
    if config.total_steps % config.chunk_steps or config.chunk_steps % config.eval_every:
        cli.fail(config_file, "chunk_steps", "a divisor of total_steps and a multiple of eval_every", config.chunk_steps)
    if len(config.model_sizes) != 1:
        cli.fail(config_file, "model_sizes", "exactly one model size", list(config.model_sizes))
    dataset_config(config.dataset, config_file)
    cli.check_data_dir(config_file, "data_dir", config.data_dir)
    return strats


def label_plan(config, strats) -> list[list[int]]:
    """Per strategy, its cumulative labels after each round (`active.strategy_schedules`)."""
    return active.strategy_schedules(strats, config.initial, config.per_round, config.rounds, config.schedule,
                                     config.reference_reach)


def answer_tables(config, pref) -> tuple[list[dict], list[dict], np.ndarray]:
    """Per seed, every pool pair's answer by the human pool and by the AI labeller (the world each
    run buys from; paired across strategies), and the validation labels (humans, bought once)."""
    seg, a, b = pref.segments, pref.train.idx_a, pref.train.idx_b
    humans = routing.expert_humans(config.humans.size, config.humans.seed)
    ai = routing.ai_labeller(config.ai.eps, config.ai.beta)

    def table(teachers, seed):
        lab = ann.label_pairs(teachers, seg, a, b, seed=seed, timestamp=0.0)
        return {"label": lab.label.astype(np.float32), "confidence": lab.confidence.astype(np.float32)}

    human = [table(humans, 1000 * int(s) + 1) for s in config.seeds]
    machine = [table((ai,), 1000 * int(s) + 2) for s in config.seeds]
    val = ann.label_pairs(humans, seg, pref.val.idx_a, pref.val.idx_b, seed=500, timestamp=0.0).label
    return human, machine, val.astype(np.float32)


def round_inputs(base, runs, strats, seeds, members, config, surf=None):
    """The sweep inputs of one round: per (strategy, seed) its labelled order, labels and weights."""
    n_pool = len(base.data.train_a)
    shape = (len(strats), len(seeds), n_pool)
    order = -np.ones(shape, np.int64)
    label, weight = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    n = []
    for j in range(len(strats)):
        for s in range(len(seeds)):
            r = runs[j][s]
            idx = np.concatenate([r["bought"], r["pseudo"]]).astype(np.int64)
            order[j, s, :len(idx)] = idx
            label[j, s, idx] = np.concatenate([r["label"], r["pseudo_label"]])
            w = np.concatenate([r["confidence"] if config.confidence_weights else np.ones(len(r["bought"])),
                                r["pseudo_weight"]])
            weight[j, s, idx] = w
            n.append(len(idx))
    grid = active.ActiveGrid(conditions=tuple(s.name for s in strats), n_values=(max(n),), seeds=tuple(seeds),
                             members=members, n_per_point=tuple(n))
    v = base.data.val_label
    data = base.data.replace(order=jnp.asarray(order, jnp.int32), train_label=jnp.asarray(label),
                             train_weight=jnp.asarray(weight),
                             val_label=jnp.broadcast_to(v[:1], (len(strats),) + v.shape[1:]),
                             val_weight=jnp.broadcast_to(base.data.val_weight[:1], (len(strats),) + v.shape[1:]),
                             surf_on=None if surf is None else jnp.asarray([float(s.pseudo == "surf") for s in strats]))
    return dataclasses.replace(base, grid=grid, data=data)


def empty_run(bought, human, seed_index):
    """One strategy-seed run before any round: the labels bought so far, all from humans."""
    return {"bought": bought, "label": human[seed_index]["label"][bought],
            "confidence": human[seed_index]["confidence"][bought], "human": np.ones(len(bought), bool),
            "pseudo": np.zeros(0, np.int64), "pseudo_label": np.zeros(0, np.float32),
            "pseudo_weight": np.zeros(0, np.float32)}


def _to_json(runs):
    return [[{k: np.asarray(v).tolist() for k, v in r.items()} for r in per] for per in runs]


def _from_json(obj):
    dt = {"bought": np.int64, "pseudo": np.int64, "human": bool}
    return [[{k: np.asarray(v, dt.get(k, np.float32)) for k, v in r.items()} for r in per] for per in obj]


def round_rows(inputs, test_returns, runs, strats, seeds, t, price) -> list[dict]:
    rows = []
    for p, (j, _, s) in enumerate(inputs.grid.points):
        ret = test_returns[p]
        prob = ensemble_preference_probability(ret[:, inputs.test_a], ret[:, inputs.test_b], xp=np)
        r = runs[j][s]
        n_h, n_ai = int(r["human"].sum()), int((~r["human"]).sum())
        rows.append({"strategy": strats[j].name, "seed": seeds[s], "round": t, "labels": len(r["bought"]),
                     "human_labels": n_h, "ai_labels": n_ai, "pseudo_labels": len(r["pseudo"]),
                     "dollars": n_h * price.human + n_ai * price.ai,
                     "test_accuracy": preference_metrics(prob, inputs.test_label)["accuracy"]})
    return rows


def buy_next(inputs, states, model_scorer, runs, strats, seeds, ks, t, config, human, machine, pref):
    """Each run scores the pool with its best ensemble and buys its next labels (ks[j] for strategy j)."""
    pool_a, pool_b = np.asarray(pref.train.idx_a), np.asarray(pref.train.idx_b)
    rows = np.arange(len(pref.segments.obs))
    ret = np.asarray(model_scorer(states.best_params, inputs.norm, inputs.data, jnp.asarray(rows)))
    feats = pref.segments.obs.mean(1)
    for p, (j, _, s) in enumerate(inputs.grid.points):
        r, strat = runs[j][s], strats[j]
        chosen, dis = active.choose(strat, ret[p], pool_a, pool_b, r["bought"], ks[j], config.oversampling,
                                    int(seeds[s]) * 7919 + j, t, features=feats)
        got = active.routed_answers(chosen, dis, strat, human[s], machine[s], int(seeds[s]), t)
        r["bought"] = np.concatenate([r["bought"], chosen])
        for key in ("label", "confidence", "human"):
            r[key] = np.concatenate([r[key], got[key]])
        if strat.pseudo == "droid":
            free = np.setdiff1d(np.arange(len(pool_a)), r["bought"])
            r["pseudo"], r["pseudo_label"], r["pseudo_weight"] = active.droid_pseudo_labels(
                ret[p].mean(0), pool_a, pool_b, free)


def run(config, workdir: str, resume: bool = False, log=cli.log, config_file: str = "configs/label_efficiency.py"):
    strats = validate(config, config_file)
    if cli.check_workdir(workdir, resume, config) == "fresh":
        log(f"--resume: no earlier run in {workdir}; starting fresh")
    t0 = time.time()
    surf = surf_spec(config, force=any(s.pseudo == "surf" for s in strats))
    pref = load_pool(config, config_file, surf)
    seeds = tuple(int(s) for s in config.seeds)
    plan = label_plan(config, strats)
    counts = plan[0]  # every strategy's first round is the same uniform set
    base = make_sweep_data(pref, ("oracle",), (counts[0],), seeds, config.members, where=config_file)
    human, machine, val = answer_tables(config, pref)
    base = dataclasses.replace(base, data=base.data.replace(val_label=jnp.asarray(val)[None]))
    checkpoint.prepare_run_dir(workdir, config.to_json(indent=2, sort_keys=True), resume, error=cli.ConfigError)
    price = costs.CostModel(**config.costs.to_dict())
    start = active.initial_sets(len(pref.train.idx_a), counts[0], seeds)
    runs = [[empty_run(start[s], human, s) for s in range(len(seeds))] for _ in strats]
    rows, hidden = [], tuple(config.model_sizes[0])
    scorer = None
    for t in range(len(counts)):
        low, high = min(c[t] for c in plan), max(c[t] for c in plan)
        n_t = f"{low}" if low == high else f"{low}–{high}"
        saved = os.path.join(workdir, "rounds", f"round_{t}.json")
        if os.path.exists(saved):
            state = checkpoint.read_json(saved)
            rows, runs = state["rows"], _from_json(state["runs"])
            log(f"round {t}: restored ({n_t} labels per run)")
            continue
        inputs = round_inputs(base, runs, strats, seeds, config.members, config, surf)
        ckpt_dir = os.path.join(workdir, "checkpoints", f"round_{t}")
        test_returns, states, _ = train_one_size(config, inputs, hidden, ckpt_dir, surf, log=lambda _: None)
        rows += round_rows(inputs, test_returns, runs, strats, seeds, t, price)
        mean = {s.name: np.mean([r["test_accuracy"] for r in rows if r["round"] == t and r["strategy"] == s.name])
                for s in strats}
        accuracy = ", ".join(f"{k} {v:.3f}" for k, v in mean.items())
        log(f"round {t + 1}/{len(counts)}: {n_t} labels per run; test accuracy {accuracy} ({time.time() - t0:.0f}s)")
        if t + 1 < len(counts):
            if scorer is None:
                from rlhf_jax.models.reward import reward_model_from_config  # pylint: disable=g-import-not-at-top
                scorer = sweep.make_segment_scorer(reward_model_from_config(
                    config.model, hidden, num_tasks=config.num_tasks, num_embodiments=config.num_embodiments), surf)
            buy_next(inputs, states, scorer, runs, strats, seeds, [c[t + 1] - c[t] for c in plan], t, config,
                     human, machine, pref)
        os.makedirs(os.path.dirname(saved), exist_ok=True)
        checkpoint.atomic_write_json(saved, {"rows": rows, "runs": _to_json(runs)})
        shutil.rmtree(ckpt_dir, ignore_errors=True)  # the round is saved; its chunk checkpoints are not needed
    summary = report.write_all(workdir, rows, config)
    log(f"wrote {workdir}/results.csv, savings.json, claims.md, label_efficiency.png in {time.time() - t0:.0f}s")
    return summary


def _body(inv: cli.Invocation) -> None:
    run(inv.config, inv.workdir, resume=inv.resume, config_file=inv.config_file)


main = functools.partial(cli.run_main, body=_body)

if __name__ == "__main__":
    sys.exit(main(sys.argv))
