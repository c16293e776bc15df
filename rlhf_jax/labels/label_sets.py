"""Multi-annotator label sets: long format, one row per (pair, annotator) answer, content-hashed.

A `LabelSet` holds L answers. A pair is two equal-length segments keyed by RLDS episode_id and
start step (the segment length is one per set); the same pair can be answered by several
annotators, and a row is a gold question when `gold` is set (its oracle answer in `gold_label`).

Row fields ([L] arrays):
  episode_a, episode_b  str     RLDS episode_ids of the two segments
  start_a, start_b      int64   first step of each segment
  label                 float64 1 = a preferred, 0 = b preferred, 0.5 = equally good, NaN = skipped
  annotator_id          str     key into `annotators` (the provenance table)
  confidence            float64 the annotator's reported confidence in [0, 1]
  timestamp             float64 unix seconds when the answer was given
  seconds               float64 time the annotator spent on it
  interface_version     str     labelling interface that showed the pair
  gold                  bool    a gold question (not training data; counts in cost)
  gold_label            float64 the gold answer of a gold question, NaN elsewhere
  rubric                dict | None  optional rubric sub-answers {question: 0 | 0.5 | 1}

`annotators` maps annotator_id -> provenance ({"source": "sim" | "real", "kind": "human" |
"expert" | "ai", "teacher": simulated teacher parameters or None, ...}).

`content_hash()` covers pairs, answers and the provenance table; it is a hash of the sorted rows,
so reordering rows does not change it, and changing any one answer does.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any, Mapping, Sequence

import numpy as np

from rlhf_jax.errors import DataError, describe

ROW_FIELDS = ("episode_a", "start_a", "episode_b", "start_b", "label", "annotator_id",
              "confidence", "timestamp", "seconds", "interface_version", "gold", "gold_label",
              "rubric")
LABEL_VALUES = (0.0, 0.5, 1.0)
ANNOTATOR_KINDS = ("human", "expert", "ai")
HASH_PREFIX = "sha256:"


def _nan_or(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


@dataclasses.dataclass
class LabelSet:
    """L answers in long format (see the module docstring for the fields)."""
    episode_a: np.ndarray
    start_a: np.ndarray
    episode_b: np.ndarray
    start_b: np.ndarray
    length: int
    label: np.ndarray
    annotator_id: np.ndarray
    confidence: np.ndarray
    timestamp: np.ndarray
    seconds: np.ndarray
    interface_version: np.ndarray
    gold: np.ndarray
    gold_label: np.ndarray
    rubric: list
    annotators: dict = dataclasses.field(default_factory=dict)
    meta: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.episode_a = np.asarray(self.episode_a, object)
        self.episode_b = np.asarray(self.episode_b, object)
        self.start_a = np.asarray(self.start_a, np.int64)
        self.start_b = np.asarray(self.start_b, np.int64)
        self.length = int(self.length)
        for f in ("label", "confidence", "timestamp", "seconds", "gold_label"):
            setattr(self, f, np.asarray(getattr(self, f), np.float64))
        self.annotator_id = np.asarray(self.annotator_id, object)
        self.interface_version = np.asarray(self.interface_version, object)
        self.gold = np.asarray(self.gold, bool)
        self.rubric = list(self.rubric) if self.rubric is not None else [None] * len(self.label)

    def __len__(self) -> int:
        return len(self.label)

    @property
    def skipped(self) -> np.ndarray:
        """[L] bool: the annotator skipped the pair."""
        return np.isnan(self.label)

    def subset(self, rows) -> "LabelSet":
        """The rows `rows` (bool mask or indices), same provenance table."""
        rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, np.int64)
        kw = {f: getattr(self, f)[rows] for f in ROW_FIELDS if f != "rubric"}
        return LabelSet(**kw, rubric=[self.rubric[i] for i in rows], length=self.length,
                        annotators=dict(self.annotators), meta=dict(self.meta))

    def pair_keys(self) -> list[tuple]:
        """[L] unordered pair keys ((episode, start), (episode, start)), sorted within the pair."""
        return [tuple(sorted(((ea, int(sa)), (eb, int(sb)))))
                for ea, sa, eb, sb in zip(self.episode_a, self.start_a, self.episode_b, self.start_b)]

    def items(self) -> tuple[np.ndarray, list[tuple], np.ndarray]:
        """(item [L] int64, keys [I], flipped [L] bool): rows grouped by unordered pair.

        `flipped` marks rows whose (a, b) is the reverse of the item's key order; the label of
        such a row in the item's orientation is 1 − label.
        """
        keys = self.pair_keys()
        index: dict[tuple, int] = {}
        item = np.array([index.setdefault(k, len(index)) for k in keys], np.int64)
        flipped = np.array([(ea, int(sa)) != k[0] for ea, sa, k in
                            zip(self.episode_a, self.start_a, keys)], bool)
        return item, list(index), flipped

    def item_labels(self) -> tuple[np.ndarray, list[tuple], np.ndarray]:
        """(item [L], keys [I], label [L] in the item's orientation; NaN = skip)."""
        item, keys, flipped = self.items()
        return item, keys, np.where(flipped, 1.0 - self.label, self.label)

    def records(self) -> list[dict]:
        """One JSON-safe dict per row (file field names; a skip is label "skip")."""
        out = []
        for i in range(len(self)):
            lab = self.label[i]
            out.append({
                "episode_id_a": str(self.episode_a[i]), "start_a": int(self.start_a[i]),
                "length_a": self.length,
                "episode_id_b": str(self.episode_b[i]), "start_b": int(self.start_b[i]),
                "length_b": self.length,
                "label": "skip" if math.isnan(lab) else float(lab),
                "annotator_id": str(self.annotator_id[i]), "confidence": float(self.confidence[i]),
                "timestamp": float(self.timestamp[i]), "seconds": float(self.seconds[i]),
                "interface_version": str(self.interface_version[i]), "gold": bool(self.gold[i]),
                "gold_label": _nan_or(float(self.gold_label[i])),
                "rubric": None if self.rubric[i] is None else dict(self.rubric[i]),
            })
        return out

    def content_hash(self) -> str:
        """'sha256:<hex>' of the sorted rows and the provenance table (row order does not matter)."""
        rows = sorted(json.dumps(r, sort_keys=True, allow_nan=False) for r in self.records())
        h = hashlib.sha256()
        h.update(json.dumps({"length": self.length, "annotators": self.annotators},
                            sort_keys=True, allow_nan=False, default=str).encode())
        for r in rows:
            h.update(b"\n")
            h.update(r.encode())
        return HASH_PREFIX + h.hexdigest()


def from_records(records: Sequence[Mapping[str, Any]], annotators: Mapping[str, Mapping],
                 meta: Mapping | None = None) -> LabelSet:
    """Rows in the `records()` layout (already validated) -> LabelSet."""
    if not records:
        raise ValueError("from_records: no records")
    col = lambda k, d=None: [r.get(k, d) for r in records]
    label = [math.nan if r["label"] == "skip" or r["label"] is None else float(r["label"])
             for r in records]
    gold_label = [math.nan if g is None else float(g) for g in col("gold_label")]
    return LabelSet(
        episode_a=col("episode_id_a"), start_a=col("start_a"), episode_b=col("episode_id_b"),
        start_b=col("start_b"), length=int(records[0]["length_a"]), label=label,
        annotator_id=col("annotator_id"), confidence=col("confidence", 1.0),
        timestamp=col("timestamp", 0.0), seconds=col("seconds", 0.0),
        interface_version=col("interface_version", ""), gold=col("gold", False),
        gold_label=gold_label, rubric=col("rubric"),
        annotators={k: dict(v) for k, v in annotators.items()}, meta=dict(meta or {}))


def concat(sets: Sequence[LabelSet]) -> LabelSet:
    """Rows of every set in order; provenance tables merged (same id must mean the same annotator)."""
    if not sets:
        raise ValueError("concat: no label sets")
    lengths = {s.length for s in sets}
    if len(lengths) != 1:
        raise ValueError(f"concat: label sets of different segment lengths {sorted(lengths)}")
    ann: dict = {}
    for s in sets:
        for k, v in s.annotators.items():
            if k in ann and ann[k] != v:
                raise ValueError(f"concat: annotator {k!r} has two different provenance entries")
            ann[k] = v
    kw = {f: np.concatenate([getattr(s, f) for s in sets]) for f in ROW_FIELDS if f != "rubric"}
    return LabelSet(**kw, rubric=[r for s in sets for r in s.rubric], length=sets[0].length,
                    annotators=ann, meta=dict(sets[0].meta))


def segment_keys(segments) -> dict[tuple, int]:
    """(episode_id, start) -> row of a SegmentTable."""
    ids = segments.episode_ids
    return {(ids[int(e)], int(s)): i for i, (e, s) in
            enumerate(zip(segments.episode_index, segments.start))}


def from_pairs(segments, idx_a, idx_b, label, annotator_id, annotators: Mapping[str, Mapping], *,
               confidence=None, timestamp=None, seconds=None, interface_version="",
               gold=None, gold_label=None, rubric=None, meta=None) -> LabelSet:
    """A LabelSet over SegmentTable rows idx_a[l] vs idx_b[l] (scalars broadcast to [L])."""
    idx_a, idx_b = np.asarray(idx_a, np.int64), np.asarray(idx_b, np.int64)
    n = len(idx_a)
    full = lambda x, d, dt: np.full(n, d, dt) if x is None else np.broadcast_to(np.asarray(x, dt), (n,)).copy()
    ids = np.asarray(segments.episode_ids, object)
    ep = np.asarray(segments.episode_index, np.int64)
    st = np.asarray(segments.start, np.int64)
    return LabelSet(
        episode_a=ids[ep[idx_a]], start_a=st[idx_a], episode_b=ids[ep[idx_b]], start_b=st[idx_b],
        length=int(segments.length), label=np.asarray(label, np.float64),
        annotator_id=full(annotator_id, "", object), confidence=full(confidence, 1.0, np.float64),
        timestamp=full(timestamp, 0.0, np.float64), seconds=full(seconds, 0.0, np.float64),
        interface_version=full(interface_version, "", object), gold=full(gold, False, bool),
        gold_label=full(gold_label, math.nan, np.float64), rubric=rubric,
        annotators={k: dict(v) for k, v in annotators.items()}, meta=dict(meta or {}))


def segment_rows(label_set: LabelSet, segments, where: str = "label set") -> tuple[np.ndarray, np.ndarray]:
    """(row_a [L], row_b [L]) of each answer's segments in a SegmentTable; −1 where absent."""
    keys = segment_keys(segments)
    ra = np.array([keys.get((e, int(s)), -1) for e, s in zip(label_set.episode_a, label_set.start_a)], np.int64)
    rb = np.array([keys.get((e, int(s)), -1) for e, s in zip(label_set.episode_b, label_set.start_b)], np.int64)
    if label_set.length != int(segments.length):
        ra[:] = -1
        rb[:] = -1
    return ra, rb


# --- Answers as QC reads them (shared by `qc` and `qc_aggregate`) ---------------------------------


def annotator_ids(ls: LabelSet) -> list[str]:
    """Every annotator id of the provenance table and of the rows, sorted."""
    return sorted({str(a) for a in ls.annotators} | {str(a) for a in ls.annotator_id})


def label_codes(label: np.ndarray) -> np.ndarray:
    """Labels in {0, 0.5, 1, NaN} (any shape) -> codes 0, 1, 2 (−1 = NaN); scikit-learn reads 0.5
    as a continuous target and `aggregate_raters(n_cat=3)` wants categories 0..2."""
    label = np.asarray(label, np.float64)
    code = np.full(label.shape, -1, np.int64)
    for k, v in enumerate(LABEL_VALUES):
        code[label == v] = k
    bad = (code < 0) & ~np.isnan(label)
    if bad.any():
        raise DataError(describe("label set", "label", "0, 0.5, 1 or NaN (skip)",
                                 sorted(set(label[bad].tolist()))[:5]))
    return code


def answer_table(ls: LabelSet, include_gold: bool) -> dict:
    """One non-skip answer per (annotator, item), in the item's orientation.

    Returns {"ids": [A], "keys": [I], "ann" [M], "item" [M], "label" [M], "conf" [M]}.
    """
    sub = ls if include_gold else ls.subset(~ls.gold)
    item, keys, lab = sub.item_labels()
    label_codes(lab)  # validate before anything is computed on the labels
    ids = annotator_ids(ls)
    col = {a: j for j, a in enumerate(ids)}
    ann = np.array([col[str(a)] for a in sub.annotator_id], np.int64)
    keep: dict[tuple, int] = {}
    for r in np.lexsort((np.arange(len(sub)), sub.timestamp)):  # time, then row order
        if not np.isnan(lab[r]):
            keep[(ann[r], item[r])] = int(r)
    rows = np.array(sorted(keep.values()), np.int64)
    return {"ids": ids, "keys": keys, "ann": ann[rows], "item": item[rows], "label": lab[rows],
            "conf": sub.confidence[rows]}
