"""What labels cost: one cost model for every labelling policy (QC, active selection, AI routing).

Dollars per answer by annotator kind. Defaults and where they come from:

  human   $1.00  a crowd/vendor label of a pair of robot videos; the seed quotes $0.50–2.00 per
                 video preference label, and we take the lower-middle of that range
  expert  $2.00  a senior annotator (adjudication, gold authoring): the top of the seed's range
  ai      $0.03  a vision-language-model call on two short clips ("a few cents")

Every answer bought is counted — skips, gold questions and adjudications included — because each
one was paid for. The seed's claim for double annotation with adjudication is a cost of
×1.8–2.2 over single annotation (`SEED_DOUBLE_ANNOTATION_MULTIPLIER`); our QC report measures the
multiplier from the answers actually bought and states it beside that range.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from rlhf_jax.errors import ConfigError, describe

SEED_DOUBLE_ANNOTATION_MULTIPLIER = (1.8, 2.2)
SEED_HUMAN_PRICE_RANGE = (0.50, 2.00)
KINDS = ("human", "expert", "ai")


@dataclasses.dataclass(frozen=True)
class CostModel:
    """Dollars per answer of each annotator kind."""
    human: float = 1.00
    expert: float = 2.00
    ai: float = 0.03

    def __post_init__(self):
        for k in KINDS:
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and v >= 0):
                raise ConfigError(describe("CostModel", k, "a price in dollars >= 0", v))

    def price(self, kind: str) -> float:
        if kind not in KINDS:
            raise ConfigError(describe("CostModel", "kind", f"one of {KINDS}", repr(kind)))
        return float(getattr(self, kind))


def label_cost(label_set, model: CostModel = CostModel()) -> dict:
    """Answers and dollars of a LabelSet, by annotator kind and by role (training vs gold).

    Returns {"answers", "gold_answers", "dollars", "gold_dollars", "by_kind": {kind: {"answers",
    "dollars"}}}. An annotator's kind comes from the provenance table (default "human").
    """
    kinds = np.array([label_set.annotators.get(a, {}).get("kind", "human")
                      for a in label_set.annotator_id], object)
    prices = np.array([model.price(k) for k in kinds], np.float64) if len(kinds) else np.zeros(0)
    gold = np.asarray(label_set.gold, bool)
    by_kind = {k: {"answers": int(np.sum(kinds == k)), "dollars": float(prices[kinds == k].sum())}
               for k in KINDS if np.any(kinds == k)}
    return {"answers": int(len(kinds)), "gold_answers": int(gold.sum()),
            "dollars": float(prices.sum()), "gold_dollars": float(prices[gold].sum()),
            "by_kind": by_kind}


def add_costs(*costs: dict) -> dict:
    """Sum of label_cost dicts (e.g. the train and validation labels of one condition)."""
    out = {"answers": 0, "gold_answers": 0, "dollars": 0.0, "gold_dollars": 0.0, "by_kind": {}}
    for c in costs:
        for k in ("answers", "gold_answers", "dollars", "gold_dollars"):
            out[k] += c[k]
        for kind, v in c["by_kind"].items():
            slot = out["by_kind"].setdefault(kind, {"answers": 0, "dollars": 0.0})
            slot["answers"] += v["answers"]
            slot["dollars"] += v["dollars"]
    return out


def per_pair(cost: dict, n_pairs: int) -> dict:
    """Answers and dollars per distinct training pair (N counts distinct pairs)."""
    n = max(int(n_pairs), 1)
    return {"answers_per_pair": cost["answers"] / n, "dollars_per_pair": cost["dollars"] / n}
