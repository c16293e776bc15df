"""What the sweep stage writes: result rows per (point, member) and per ensemble, saved reward-model
artefacts, power-law fits, results.csv / fit.json / plots / run_info.json."""
from __future__ import annotations

import hashlib
import os

import numpy as np

from experiments.stages.feature_kinds import table_kind
from rlhf_jax import checkpoint, metrics, plotting, reward_artifact, scaling, sharding
from rlhf_jax.labels.label_sources import safe_name
from rlhf_jax.losses import preference_probability
from rlhf_jax.train.sweep_data import SweepInputs


def metric_row(prob, ret, inputs: SweepInputs, condition: str = "") -> dict:
    """Test metrics of one model or ensemble: P(a ≻ b) [St_pairs], segment returns [St], against
    the test labels and gold returns of ``condition`` (an objective's own; else the gold rubric's)."""
    label, gold_return = inputs.test_targets(condition)
    m = metrics.preference_metrics(prob, label)
    return {**{f"test_{key}": v for key, v in m.items()}, "test_error": 1 - m["accuracy"],
            "test_spearman": metrics.return_correlation(ret, gold_return)}


def result_rows(config, inputs: SweepInputs, test_returns, states, history, hidden, size_label: str | None = None,
                features: str | None = None) -> list[dict]:
    """One row per (point, member) and per (point, ensemble), with every test metric; ``model_size``
    is ``size_label`` (default the widths, "32x32"), and a ``features`` column holds the feature kind
    when given (a sweep over feature kinds)."""
    grid = inputs.grid
    best_step, best_val = sharding.to_host((states.best_step, states.best_val_loss))
    eval_steps = np.asarray(history["eval_steps"]) if "eval_steps" in history else (
        np.arange(1, history["val_loss"].shape[0] + 1) * config.eval_every)
    rows = []
    for p, (c, n, s) in enumerate(grid.points):
        ret = test_returns[p]  # [K, St]
        member_prob = preference_probability(ret[:, inputs.test_a], ret[:, inputs.test_b], xp=np)
        name = grid.conditions[c]
        base = {"condition": name, **({"objective": inputs.objectives[name]} if inputs.objectives else {}),
                "n": n, "seed": grid.seeds[s],
                **({"features": features} if features else {}),
                "model_size": size_label or "x".join(map(str, hidden)),
                "usable_pairs": inputs.usable[grid.conditions[c]],
                # N distinct pairs at the condition's mean cost per pair (gold, re-asks, adjudication).
                "dollars": n * inputs.dollars_per_pair.get(grid.conditions[c], float("nan"))}
        for k in range(grid.members):
            at_best = min(np.searchsorted(eval_steps, best_step[p, k]), len(eval_steps) - 1)
            rows.append({**base, "member": str(k), **metric_row(member_prob[k], ret[k], inputs, name),
                         "disagreement": float("nan"), "best_step": int(best_step[p, k]),
                         "best_val_loss": float(best_val[p, k]),
                         "val_accuracy_at_best": float(history["val_accuracy"][at_best, p, k]),
                         "final_train_loss": float(np.mean(history["loss"][-config.eval_every:, p, k]))})
        rows.append({**base, "member": "ensemble", **metric_row(member_prob.mean(0), ret.mean(0), inputs, name),
                     "disagreement": float(member_prob.std(0).mean()), "best_step": int(best_step[p].max()),
                     "best_val_loss": float(best_val[p].mean()), "val_accuracy_at_best": float("nan"),
                     "final_train_loss": float(np.mean(history["loss"][-config.eval_every:, p]))})
    return rows


def reward_model_relpath(condition: str, n: int, seed: int, suffix: str = "") -> str:
    """Where the sweep saves the ensemble of (condition, N, seed), relative to its workdir: the
    condition's ``safe_name`` (a ``qc:`` or ``file:`` condition holds characters a path cannot)."""
    return os.path.join("reward_models", f"{safe_name(condition)}_n{n}_seed{seed}{suffix}")


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
    # "" = the first condition, "*" = every one (a per-objective sweep's heads), else the one named.
    conds = (range(len(grid.conditions)) if save.condition == "*" else
             [grid.conditions.index(save.condition) if save.condition else 0])
    n_values, seeds = set(save.n_values or grid.n_values), set(save.seeds)
    best_params, best_step = sharding.to_host((states.best_params, states.best_step))
    model_config = dict(config.model.to_dict(), hidden=tuple(int(h) for h in hidden),
                        num_tasks=config.num_tasks, num_embodiments=config.num_embodiments)
    accuracy = {(r["condition"], r["n"], r["seed"]): r["test_accuracy"] for r in rows if r["member"] == "ensemble"}
    host = {k: np.asarray(getattr(inputs.data, k)) for k in ("order", "train_a", "train_b", "seg_emb", "seg_task")}
    paths = []
    for p, (c, n, s) in enumerate(grid.points):
        name, seed = grid.conditions[c], grid.seeds[s]
        if c not in conds or n not in n_values or seed not in seeds:
            continue
        rel = reward_model_relpath(name, n, seed, f"_size{size}" if len(config.model_sizes) > 1 else "")
        spec = reward_artifact.feature_spec(table_kind(config), config.num_tasks, config.cross_embodiment)
        meta = {"features": spec, "n": n, "seed": seed, "condition": name,
                "label_source": inputs.label_sources.get(name, {"name": name, "label_seed": config.label_seed}),
                "dataset": config.dataset, "dataset_path": config.get("dataset_path") or None,
                "segment_length": config.segment_length,
                "best_step": best_step[p].tolist(), "test_accuracy": accuracy.get((name, n, seed)),
                "trained_on": trained_on(host, c, n, s, spec), "pairs_hash": pairs_hash(host, c, n, s)}
        reward_artifact.save_reward_model(os.path.join(workdir, rel), model_config,
                                          reward_artifact.point_variables(best_params, inputs.norm, p), meta)
        paths.append(rel)
    return paths


def trained_on(host: dict, condition: int, n: int, seed_index: int, spec: dict) -> dict:
    """The embodiment and task names of the segments in one point's n training pairs (the first
    n of its nested order; −1 marks pairs past the usable ones). ``host``: the sweep data's
    order, train_a, train_b, seg_emb and seg_task as NumPy arrays."""
    order = host["order"][condition, seed_index, :n]
    pairs = order[order >= 0]
    rows = np.concatenate([host["train_a"][pairs], host["train_b"][pairs]])

    def names(ids, vocab):
        return [vocab[i] if i < len(vocab) else str(i) for i in sorted(set(ids[rows].tolist()))]

    return {"embodiments": names(host["seg_emb"], spec["embodiments"]), "tasks": names(host["seg_task"], spec["tasks"])}


# Text columns of results.csv; every other column is a number (int where the sweep wrote one).
TEXT_COLUMNS = ("condition", "objective", "features", "model_size", "member")


def typed_rows(rows: list[dict]) -> list[dict]:
    """results.csv rows (all strings, as csv.DictReader reads them) typed as ``result_rows`` made
    them: the text columns stay strings ("0" is a member's name), "25" becomes 25, "0.605" 0.605
    and "nan" NaN. Writing the typed rows back gives the same text (floats print as their shortest
    repr, which reads back to the same float)."""
    def typed(key, value):
        if key in TEXT_COLUMNS or value == "":
            return value
        try:
            return int(value)
        except ValueError:
            return float(value)

    return [{k: typed(k, v) for k, v in r.items()} for r in rows]


def pairs_hash(host: dict, condition: int, n: int, seed_index: int) -> str:
    """A hash of one point's training pairs (segment rows a, b of the first n of its nested order, in
    order): two models trained on the same pairs of the same table carry the same one, whatever
    answers they learned from (a scalar reward model and the per-objective heads of its pairs)."""
    order = host["order"][condition, seed_index, :n]
    pairs = order[order >= 0]
    rows = np.stack([host["train_a"][pairs], host["train_b"][pairs]]).astype(np.int64)
    return hashlib.sha256(rows.tobytes()).hexdigest()[:16]


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
    sizes = sorted({r["model_size"] for r in rows})
    for size in sizes:
        for cond in dict.fromkeys(r["condition"] for r in rows):
            for kind in ("ensemble", "single"):
                n, err = curve_points(rows, cond, size, kind)
                name = f"{cond}/{kind}" + (f"/{size}" if len(sizes) > 1 else "")
                fits[name] = scaling.fit_power_law(n, np.maximum(err, floor), fix_e=fix_e,
                                                   n_bootstrap=config.fit.n_bootstrap, seed=config.seed)
    return fits


def write_results(workdir: str, config, rows: list[dict], fits: dict, run_info: dict) -> None:
    """results.csv, fit.json (no fits for a one-N pilot), accuracy_vs_n.png (+ accuracy_vs_dollars.png
    when conditions differ in cost per pair), run_info.json — each written atomically."""
    checkpoint.atomic_write_csv(os.path.join(workdir, "results.csv"), rows)
    primary = next(iter(fits), None)  # None: a one-N pilot, no curve fitted
    summary = {k: v for k, v in fits[primary].items() if k != "bootstrap"} if primary else {}
    summary["primary"] = primary
    summary["fits"] = {name: {k: v for k, v in f.items() if k != "bootstrap"} for name, f in fits.items()}
    summary["n_for_target"] = {name: scaling.n_for_target(f, config.fit.target_error) for name, f in fits.items()}
    checkpoint.atomic_write_json(os.path.join(workdir, "fit.json"), summary)
    plotting.plot_scaling(rows, fits, os.path.join(workdir, "accuracy_vs_n.png"))
    per_pair = {r["condition"]: round(r["dollars"] / r["n"], 6) for r in rows}
    if len(set(per_pair.values())) > 1:  # conditions differ in what a pair costs (QC policies)
        plotting.plot_accuracy_vs_dollars(rows, os.path.join(workdir, "accuracy_vs_dollars.png"))
    checkpoint.atomic_write_json(os.path.join(workdir, "run_info.json"), run_info)


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    import resource  # pylint: disable=g-import-not-at-top

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

