"""Hand-built multi-annotator label sets for the QC and aggregation tests: item i is the pair of
segments (ep<i>, 0) and (ep<i>, 10); each row is one answer, shown in either orientation."""
from __future__ import annotations

import math

import numpy as np

from rlhf_jax.labels import label_sets

nan = math.nan


def row(item, ann, label, flip=False, gold=False, gold_label=nan, seconds=1.0, conf=1.0):
    """One answer on item `item` (segments (ep<item>, 0) vs (ep<item>, 10)); `label` is in the
    displayed orientation, which `flip` reverses relative to the item key."""
    return dict(item=item, ann=ann, label=label, flip=flip, gold=gold, gold_label=gold_label,
                seconds=seconds, conf=conf)


def make(rows, annotators=()):
    """LabelSet of `row` dicts; `annotators` adds ids that gave no answer to its table."""
    ids = sorted({r["ann"] for r in rows} | set(annotators))
    first = [(f"ep{r['item']}", 10 if r["flip"] else 0) for r in rows]
    second = [(f"ep{r['item']}", 0 if r["flip"] else 10) for r in rows]
    col = lambda k: [r[k] for r in rows]
    return label_sets.LabelSet(
        episode_a=[e for e, _ in first], start_a=[s for _, s in first],
        episode_b=[e for e, _ in second], start_b=[s for _, s in second], length=10,
        label=col("label"), annotator_id=col("ann"), confidence=col("conf"),
        timestamp=np.arange(len(rows), dtype=float), seconds=col("seconds"),
        interface_version=["v1"] * len(rows), gold=col("gold"), gold_label=col("gold_label"),
        rubric=None, annotators={a: {"source": "sim", "kind": "human"} for a in ids})


def key(i):
    """The item key of item i (its segments in sorted order), as `answer_table` names items."""
    return ((f"ep{i}", 0), (f"ep{i}", 10))
