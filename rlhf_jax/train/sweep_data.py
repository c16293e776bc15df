"""Host-side preparation of a scaling sweep: labels per label source, nested orders, device arrays.

    inputs = make_sweep_data(pref, sources, n_values, seeds, members, label_seed)

Arguments are explicit (no config object), so every experiment that trains through the compiled
sweep — the scaling sweep, the transfer phases — builds its inputs the same way, and errors name
the caller's config file through ``where``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax.numpy as jnp
import numpy as np

from rlhf_jax import normalizer
from rlhf_jax.errors import ConfigError, SplitError, describe
from rlhf_jax.labels import costs
from rlhf_jax.labels.label_sources import as_label_source, provenance_record
from rlhf_jax.preferences.objectives import check_objectives, objective_table, sub_answers
from rlhf_jax.preferences.segments import PreferenceData, nested_subsets
from rlhf_jax.losses.bradley_terry import check_labels
from rlhf_jax.train.sweep import SweepData, SweepGrid


@dataclasses.dataclass
class SweepInputs:
    grid: SweepGrid
    data: SweepData
    norm: dict
    test_rows: np.ndarray       # [St] unique segment rows of the test pairs
    test_a: np.ndarray          # [Pt] positions into test_rows
    test_b: np.ndarray
    test_label: np.ndarray      # [Pt] gold labels (oracle teacher)
    test_gold_return: np.ndarray  # [St]
    usable: dict                # condition -> usable (kept) train pairs
    label_stats: dict           # condition -> tie/skip fractions of its training labels
    label_sources: dict = dataclasses.field(default_factory=dict)  # condition -> provenance_record
    dollars_per_pair: dict = dataclasses.field(default_factory=dict)  # condition -> train cost / pool pair
    # rlhf_jax.evaluation.markovian_estimate.markovian_gold_accuracy (an estimate, not a bound)
    markovian_estimate: dict = dataclasses.field(default_factory=dict)
    # Per-objective sweeps (``objectives``): condition -> its objective, and the test labels [Pt]
    # (the objective's oracle sub-answers) and gold returns [St] (R_o) it is scored against.
    objectives: dict = dataclasses.field(default_factory=dict)
    test_label_by_condition: dict = dataclasses.field(default_factory=dict)
    test_gold_return_by_condition: dict = dataclasses.field(default_factory=dict)

    def test_targets(self, condition: str) -> tuple[np.ndarray, np.ndarray]:
        """(test labels [Pt], test gold returns [St]) that ``condition`` is scored against."""
        return (self.test_label_by_condition.get(condition, self.test_label),
                self.test_gold_return_by_condition.get(condition, self.test_gold_return))


def check_grid(n_values: Sequence[int], seeds: Sequence[int], members: int, n_pool: int,
               where: str = "make_sweep_data", n_field: str = "n_values") -> None:
    """The grid a sweep can train: raises ConfigError naming the field of ``where``."""
    n = [int(v) for v in n_values]
    if not n or min(n) <= 0 or n != sorted(set(n)):
        raise ConfigError(describe(where, n_field, "strictly increasing positive pair counts", list(n_values)))
    if max(n) > n_pool:
        raise ConfigError(describe(where, n_field, f"at most the train pool of {n_pool} pairs", max(n)))
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(describe(where, "seeds", "at least one seed, no repeats (a repeat is no replicate)",
                                   list(seeds)))
    if int(members) < 1:
        raise ConfigError(describe(where, "members", "an ensemble size of at least 1", members))


def _condition_labels(source, pref: PreferenceData, n_values, seeds, seed: int, val_seed: int, where: str,
                      n_field: str, label_seed: int = 0):
    """Train/val labels of one label source and its nested order per seed (−1 past the usable)."""
    seg = pref.segments
    lab = source.label(seg, pref.train.idx_a, pref.train.idx_b, seed)
    vlab = source.label(seg, pref.val.idx_a, pref.val.idx_b, val_seed)
    return _label_arrays(lab, vlab, source.name, pref, n_values, seeds, where, n_field, label_seed)


def _label_arrays(lab, vlab, name: str, pref: PreferenceData, n_values, seeds, where: str, n_field: str,
                  label_seed: int):
    """One condition's arrays from its train and validation Labels: (train labels, nested orders per
    seed, val labels, val weights, usable count, label stats, provenance record, dollars per pair,
    confidence weights)."""
    n_pool = len(pref.train.idx_a)
    keep = np.asarray(lab.keep, bool)
    check_labels(np.asarray(lab.label)[keep], f"label source {name!r}")
    check_labels(np.asarray(vlab.label)[np.asarray(vlab.keep, bool)], f"label source {name!r}")
    usable = int(keep.sum())
    if max(n_values) > usable:
        raise SplitError(describe(where, n_field, f"at most the {usable} pairs label source {name!r} "
                                  f"keeps (of a pool of {n_pool})", max(n_values)))
    orders = []
    for s in seeds:
        perm = nested_subsets(n_pool, n_values, s)
        kept = perm[keep[perm]]  # dropping unkept pairs preserves the permutation order: still nested
        orders.append(np.concatenate([kept, -np.ones(n_pool - len(kept), np.int64)]))
    stats = {"skip_fraction": float(1 - keep.mean()),
             "tie_fraction": float(np.mean(lab.label[keep] == 0.5)) if keep.any() else 0.0}
    record = provenance_record(lab, vlab, name, label_seed)
    # Cost of one training pair: every answer bought for the pool (gold, re-asks and adjudication
    # included) over the pairs it made usable.
    dollars = costs.per_pair(lab.cost, usable)["dollars_per_pair"] if lab.cost is not None else float("nan")
    conf = lab.confidence
    return (lab.label, orders, vlab.label, np.asarray(vlab.keep, np.float32), usable, stats, record,
            dollars, np.where(keep, np.asarray(conf, np.float32), 0.0))


def _objective_conditions(sources, pref: PreferenceData, objectives, n_values, seeds, label_seed: int,
                          where: str, n_field: str):
    """Per (source, objective) condition ``<source>@<objective>``: the source's answers to the
    objective's sub-question (``sub_labels``: a teacher preset's simulated sub-answers, one
    labelling per source seeded as its plain condition would be, so every objective's answers come
    from the same annotators; a label file's rubric column). A pair whose sub-question was skipped
    is not usable for that head (its nested orders skip it; a validation pair gets weight 0), as an
    unanswered main question is. Returns (names, objective per name, per-condition arrays as
    ``_label_arrays``)."""
    names, of, per = [], {}, []
    for c, src in enumerate(sources):
        if not hasattr(src, "sub_labels"):
            raise ConfigError(describe(where, "conditions", "teacher presets or 'file:' label files (sources that "
                                       "answer the objectives' sub-questions)", repr(src.name)))
        lab = src.sub_labels(pref.segments, pref.train.idx_a, pref.train.idx_b, label_seed * 1000 + c, objectives)
        vlab = src.sub_labels(pref.segments, pref.val.idx_a, pref.val.idx_b, label_seed * 1000 + 500 + c, objectives)
        for o in objectives:
            name = objective_condition(src.name, o)
            names.append(name)
            of[name] = o
            per.append(_label_arrays(lab[o], vlab[o], name, pref, n_values, seeds, where, n_field, label_seed))
    return names, of, per


def objective_condition(source: str, objective: str) -> str:
    """The sweep condition of ``objective``'s sub-answers from label source ``source``."""
    return f"{source}@{objective}"


def _objective_test_targets(pref: PreferenceData, objective: str, test_rows: np.ndarray):
    """(oracle sub-answers of the test pairs [Pt], R_o of the test segments [St])."""
    label = sub_answers("oracle", pref.segments, pref.test.idx_a, pref.test.idx_b, 0, (objective,))[objective].label
    returns = objective_table(pref.segments, objective).gold_return[test_rows]
    return np.asarray(label, np.float32), np.asarray(returns, np.float32)


def make_sweep_data(pref: PreferenceData, sources: Sequence[Any], n_values: Sequence[int],
                    seeds: Sequence[int], members: int, label_seed: int = 0,
                    where: str = "make_sweep_data", n_field: str = "n_values",
                    confidence_weights: bool = False, objectives: Sequence[str] = ()) -> SweepInputs:
    """Labels the train/val pools per label source and lays out the shared device arrays.

    sources: label sources or teacher-preset names (``rlhf_jax.labels.label_sources``), one per
    condition; ``where``/``n_field`` name the caller's config file and N field in errors. Source c labels the train pool with seed ``1000·label_seed + c`` and the
    validation pairs with ``1000·label_seed + 500 + c``. The test pairs keep the oracle labels
    they were made with: accuracy is measured against the gold rubric, not against the source a
    condition trains on.

    confidence_weights: weight each training label by the confidence its source reports
    (``Labels.confidence``: what a simulated annotator could report, σ(β|Δ|); a QC policy's vote
    share; a label file's aggregated confidences).

    objectives (``preferences.objectives``): instead of one condition per source, one per (source,
    objective), named ``<source>@<objective>``, trained on that objective's sub-answers and scored
    against its oracle sub-answers; the sources must be teacher presets or label files (whose
    ``rubric`` column holds the sub-answers, ``rlhf_jax.labels.rubric_objectives``). The objectives are one
    more stretch of the vmapped points axis (condition-major), and a point's initialisation does
    not depend on its condition, so each objective's head is the model trained on it alone.
    """
    sources = [as_label_source(s) for s in sources]
    seg, n_pool = pref.segments, len(pref.train.idx_a)
    n_values, seeds = tuple(int(n) for n in n_values), tuple(int(s) for s in seeds)
    check_grid(n_values, seeds, members, n_pool, where, n_field)
    objectives = check_objectives(objectives, where) if objectives else ()
    if objectives:
        names, objective_of, per = _objective_conditions(sources, pref, objectives, n_values, seeds, label_seed,
                                                         where, n_field)
    else:
        names, objective_of = [s.name for s in sources], {}
        per = [_condition_labels(src, pref, n_values, seeds, label_seed * 1000 + c, label_seed * 1000 + 500 + c,
                                 where, n_field, label_seed) for c, src in enumerate(sources)]
    labels, orders, val_labels, val_weights, usable, stats, records, dollars, conf = zip(*per)
    names = tuple(names)

    val_rows, val_inv = np.unique(np.concatenate([pref.val.idx_a, pref.val.idx_b]), return_inverse=True)
    n_val = len(pref.val.idx_a)
    test_rows, test_inv = np.unique(np.concatenate([pref.test.idx_a, pref.test.idx_b]), return_inverse=True)
    n_test = len(pref.test.idx_a)
    # Normalisation statistics come from the training split's segments (unlabelled data,
    # shared by every N), never from validation or test episodes.
    train_rows = np.unique(np.concatenate([pref.train.idx_a, pref.train.idx_b]))
    norm = normalizer.collection(normalizer.stats(seg.obs[train_rows]), normalizer.stats(seg.act[train_rows]))
    data = SweepData(
        seg_obs=jnp.asarray(seg.obs, jnp.float32), seg_act=jnp.asarray(seg.act, jnp.float32),
        seg_task=jnp.asarray(seg.task_id, jnp.int32), seg_emb=jnp.asarray(seg.embodiment_id, jnp.int32),
        train_a=jnp.asarray(pref.train.idx_a, jnp.int32), train_b=jnp.asarray(pref.train.idx_b, jnp.int32),
        train_label=jnp.asarray(np.stack(labels), jnp.float32),
        order=jnp.asarray(np.array(orders), jnp.int32),
        val_rows=jnp.asarray(val_rows, jnp.int32), val_a=jnp.asarray(val_inv[:n_val], jnp.int32),
        val_b=jnp.asarray(val_inv[n_val:], jnp.int32),
        val_label=jnp.asarray(np.stack(val_labels), jnp.float32),
        val_weight=jnp.asarray(np.stack(val_weights), jnp.float32),
        train_weight=jnp.asarray(np.stack(conf), jnp.float32) if confidence_weights else None)
    grid = SweepGrid(conditions=names, n_values=n_values, seeds=seeds, members=int(members))
    targets = {o: _objective_test_targets(pref, o, test_rows) for o in objectives}
    return SweepInputs(grid=grid, data=data, norm=norm, test_rows=test_rows, test_a=test_inv[:n_test],
                       test_b=test_inv[n_test:], test_label=np.asarray(pref.test.label),
                       test_gold_return=np.asarray(seg.gold_return)[test_rows],
                       usable=dict(zip(names, usable)), label_stats=dict(zip(names, stats)),
                       label_sources=dict(zip(names, records)), dollars_per_pair=dict(zip(names, dollars)),
                       objectives=objective_of,
                       test_label_by_condition={n: targets[o][0] for n, o in objective_of.items()},
                       test_gold_return_by_condition={n: targets[o][1] for n, o in objective_of.items()})


def held_out_from_labels(inputs: SweepInputs, pref: PreferenceData, condition: int,
                         where: str = "make_sweep_data") -> SweepInputs:
    """Test pairs for a dataset without gold (foreign data): every other validation pair that
    condition ``condition`` (a label file) answered becomes a test pair with the file's label, and
    is removed from every condition's validation set; the rest stay validation pairs.

    Without an oracle, held-out accuracy can only be agreement with people's held-out answers;
    splitting them keeps the pairs that pick the best step apart from the pairs that score it.
    """
    weight = np.array(inputs.data.val_weight)  # [C, n_val]
    answered = np.flatnonzero(weight[condition] > 0)
    test_pos = answered[1::2]
    if not len(test_pos):
        raise SplitError(describe(where, "conditions", f"a label file answering at least 2 validation pairs "
                                  f"(condition {inputs.grid.conditions[condition]!r})", f"{len(answered)} answered"))
    weight[:, test_pos] = 0.0
    val_label = np.asarray(inputs.data.val_label)[condition]
    idx_a, idx_b = pref.val.idx_a[test_pos], pref.val.idx_b[test_pos]
    test_rows, test_inv = np.unique(np.concatenate([idx_a, idx_b]), return_inverse=True)
    n = len(test_pos)
    data = inputs.data.replace(val_weight=jnp.asarray(weight, jnp.float32))
    return dataclasses.replace(inputs, data=data, test_rows=test_rows, test_a=test_inv[:n], test_b=test_inv[n:],
                               test_label=val_label[test_pos].astype(np.float32),
                               test_gold_return=np.zeros(len(test_rows), np.float32), markovian_estimate={})


def with_frames(inputs: SweepInputs, pref: PreferenceData, every: int, where: str = "make_sweep_data") -> SweepInputs:
    """``inputs`` whose sweep data carries the segment table's camera frames (stored once, [F, H, W, 3])
    and each segment's every ``every``-th frame row [S, ceil(T / every)], for a pixels reward model;
    the pairs, labels and orders are those of ``inputs`` (the same pairs as its state sweep)."""
    seg = pref.segments
    if seg.frames is None or seg.frame_rows is None:
        raise ConfigError(describe(where, "dataset", "preference data with camera frames (a pixels dataset "
                                   "variant, or frame_size > 0)", "a table without frames"))
    if int(every) < 1:
        raise ConfigError(describe(where, "pixels.every", "a frame stride of at least 1", every))
    data = inputs.data.replace(frames=jnp.asarray(seg.frames, jnp.uint8),
                               seg_frames=jnp.asarray(seg.frame_rows[:, ::int(every)], jnp.int32))
    return dataclasses.replace(inputs, data=data)
