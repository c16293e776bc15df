"""Simulated annotation teams: pools that label with overlap, gold questions, a simulated clock.

    ls = simulate_label_set(pool, segments, idx_a, idx_b, r=3, seed=0, gold=(ga, gb))

Each pair is answered by r distinct annotators of the pool, drawn uniformly; gold questions (pairs
from a separate gold pool with oracle answers) are mixed in at `gold_rate` of all questions and are
also answered by r annotators, so every annotator sees about that share of gold. Answers come from
`annotators.label_pairs` (the B-Pref teacher family plus careless behaviours); the reported
confidence is the annotator's own σ(β|Δ|), never the oracle probability of its label. Time per
answer is lognormal around the annotator's median `seconds`, longer for close calls; each
annotator works through its questions in a random order from `start_time`, so timestamps are a
deterministic function of the seed.

`crowd_pool` is the QC benchmark team: careful annotators plus three planted bad ones (a random
clicker, an always-left clicker, one 60% accurate) — the cases the QC rules must find.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from rlhf_jax.preferences import annotators as ann
from rlhf_jax.labels import label_sets
from rlhf_jax.errors import ConfigError, SplitError, describe
from rlhf_jax.preferences.pair_sampling import pair_key, sample_pairs

START_TIME = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the simulated team's first working day
INTERFACE = "sim-pool/1"
BAD_KINDS = ("random", "left", "sixty")


def planted(kind: str, i: int = 0) -> ann.Teacher:
    """A bad annotator of a known kind: 'random' clicks at random (fast), 'left' always answers
    the left segment, 'sixty' is rational but 40% of its answers are slips (60% accurate)."""
    if kind == "random":
        return ann.Teacher(f"bad-random-{i}", eps=0.5, seconds=3.0)
    if kind == "left":
        return ann.Teacher(f"bad-left-{i}", left_bias=1.0, seconds=4.0)
    if kind == "sixty":
        return ann.Teacher(f"bad-sixty-{i}", eps=0.4)
    raise ConfigError(describe("planted", "kind", f"one of {BAD_KINDS}", repr(kind)))


def crowd_pool(size: int = 10, seed: int = 0, bad: Sequence[str] = BAD_KINDS) -> tuple[ann.Teacher, ...]:
    """size annotators: size − len(bad) careful ones and the planted `bad` ones.

    Careful = a team past calibration (the seed's target is ≥ 85% agreement with gold): β
    log-uniform in [5, 50] on the relative scale, slips ε uniform in [0, 0.06], median 12–30 s per
    pair. What is left of their error is real ambiguity: pairs whose returns are close.
    """
    bad = tuple(bad)
    if size < len(bad) + 2:
        raise ConfigError(describe("crowd_pool", "size", f"at least {len(bad) + 2} (the planted "
                                   f"{list(bad)} plus two careful annotators)", size))
    rng = np.random.default_rng([seed, 7])
    n_good = size - len(bad)
    betas = np.exp(rng.uniform(np.log(5.0), np.log(50.0), n_good))
    epss = rng.uniform(0.0, 0.06, n_good)
    secs = rng.uniform(12.0, 30.0, n_good)
    good = [ann.Teacher(f"crowd{seed}-{i}", beta=float(b), eps=float(e), seconds=float(s))
            for i, (b, e, s) in enumerate(zip(betas, epss, secs))]
    return tuple(good) + tuple(planted(k, i) for i, k in enumerate(bad))


def senior_annotator() -> ann.Teacher:
    """The adjudicator: an expert who rarely slips and takes its time."""
    return ann.Teacher("senior", beta=50.0, eps=0.01, seconds=45.0, kind="expert",
                       annotator_id="sim/senior")


def gold_pool(segments, exclude_a, exclude_b, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n gold pairs: same-(task, embodiment) pairs of train-split segments, none of them an
    excluded pair (the training pool) — never validation or test segments."""
    split = getattr(segments, "episode_split", None)
    ep = np.asarray(segments.episode_index)
    rows = np.flatnonzero(split[ep] == 0) if split is not None else np.arange(len(ep))
    group = (np.asarray(segments.task_id, np.int64) * 1000 + np.asarray(segments.embodiment_id))[rows]
    exclude = set(pair_key(np.asarray(exclude_a, np.int64), np.asarray(exclude_b, np.int64)).tolist())
    try:
        return sample_pairs(rows, group, int(n), np.random.default_rng([seed, 11]), exclude=exclude)
    except SplitError as e:
        raise SplitError(describe("gold_pool", "gold_rate", "a gold pool the train split can supply "
                                  f"({n} pairs besides the training pool)", str(e))) from e


def n_gold_pairs(n_pairs: int, gold_rate: float) -> int:
    """Gold pairs so that they are `gold_rate` of all questions asked."""
    return int(math.ceil(gold_rate / (1.0 - gold_rate) * n_pairs)) if gold_rate > 0 else 0


def provenance_table(teachers: Sequence[ann.Teacher]) -> dict:
    """annotator_id -> provenance entry of a LabelSet."""
    return {t.annotator_id: {"source": t.source, "kind": t.kind, "name": t.name,
                             "interface_version": INTERFACE,
                             "teacher": {**t.params(), "left_bias": t.left_bias, "skip_rate": t.skip_rate,
                                         "seconds": t.seconds, "kind": t.kind}}
            for t in teachers}


def _assign(n_items: int, k: int, r: int, rng) -> np.ndarray:
    """[n_items, r] distinct annotators per item, uniform."""
    if not 1 <= r <= k:
        raise ConfigError(describe("simulate_label_set", "r", f"labels per pair in [1, {k}] "
                                   "(distinct annotators of the pool)", r))
    return np.argsort(rng.random((n_items, k)), axis=1)[:, :r]


def _clock(annotator: np.ndarray, seconds: np.ndarray, start_time: float, rng) -> np.ndarray:
    """Timestamps: each annotator answers its rows in a random order, back to back."""
    ts = np.empty(len(annotator))
    for j in np.unique(annotator):
        rows = np.flatnonzero(annotator == j)
        rows = rows[rng.permutation(len(rows))]
        ts[rows] = start_time + 60.0 * j + np.cumsum(seconds[rows])
    return ts


def answer(teachers: Sequence[ann.Teacher], segments, rows_a, rows_b, annotator, seed: int, *,
           gold_label=None, start_time: float = START_TIME) -> label_sets.LabelSet:
    """The answers of teachers[annotator[l]] to pairs (rows_a[l], rows_b[l]) as a LabelSet.

    gold_label [L] (NaN where the row is not a gold question) marks gold rows.
    """
    teachers = tuple(teachers)
    lab = ann.label_pairs(teachers, segments, rows_a, rows_b, seed=seed, annotator=annotator,
                          timestamp=0.0)
    return as_label_set(teachers, segments, rows_a, rows_b, lab, seed, gold_label=gold_label,
                        start_time=start_time)


def as_label_set(teachers: Sequence[ann.Teacher], segments, rows_a, rows_b, lab: ann.Labels, seed: int, *,
                 gold_label=None, start_time: float = START_TIME) -> label_sets.LabelSet:
    """`label_pairs` output -> LabelSet, with simulated time per answer and timestamps."""
    annotator = np.asarray(lab.annotator, np.int64)
    rng = np.random.default_rng([seed, 3])
    median = np.array([t.seconds for t in teachers])[annotator]
    # Close calls take longer: up to 1.5x the median when the return difference is ~0.
    seconds = median * np.exp(0.35 * rng.standard_normal(len(annotator))) * (
        1.0 + 0.5 / (1.0 + lab.abs_delta))
    gold_label = np.full(len(annotator), np.nan) if gold_label is None else np.asarray(gold_label, np.float64)
    label = np.where(lab.keep, lab.label.astype(np.float64), np.nan)
    ids = np.array([t.annotator_id for t in teachers], object)[annotator]
    return label_sets.from_pairs(
        segments, rows_a, rows_b, label, ids, provenance_table(teachers),
        confidence=np.where(lab.keep, lab.confidence, 0.0), seconds=seconds,
        timestamp=_clock(annotator, seconds, start_time, rng), interface_version=INTERFACE,
        gold=~np.isnan(gold_label), gold_label=gold_label)


def simulate_label_set(teachers: Any, segments, idx_a, idx_b, *, r: int, seed: int,
                       gold: tuple | None = None, start_time: float = START_TIME,
                       meta: dict | None = None) -> label_sets.LabelSet:
    """Pairs (idx_a[p], idx_b[p]) each answered by r distinct annotators of `teachers`, plus the
    gold pairs `gold = (gold_a, gold_b)` each answered by r annotators with oracle gold answers."""
    teachers = ann.resolve_teachers(teachers)
    idx_a, idx_b = np.asarray(idx_a, np.int64), np.asarray(idx_b, np.int64)
    ga, gb = (np.zeros(0, np.int64),) * 2 if gold is None else tuple(np.asarray(g, np.int64) for g in gold)
    rng = np.random.default_rng([seed, 5])
    pair_a, pair_b = np.concatenate([idx_a, ga]), np.concatenate([idx_b, gb])
    who = _assign(len(pair_a), len(teachers), r, rng)
    item = np.repeat(np.arange(len(pair_a)), r)
    oracle = ann.label_pairs("oracle", segments, ga, gb, seed=seed, timestamp=0.0).label.astype(np.float64)
    gold_label = np.concatenate([np.full(len(idx_a), np.nan), oracle])[item]
    ls = answer(teachers, segments, pair_a[item], pair_b[item], who.reshape(-1), seed,
                gold_label=gold_label, start_time=start_time)
    ls.meta = {"r": int(r), "n_pairs": int(len(idx_a)), "n_gold_pairs": int(len(ga)), "seed": int(seed),
               **(meta or {})}
    return ls
