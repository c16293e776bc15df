"""Label aggregation over a multi-annotator `LabelSet`: one label per item by weighted majority,
confidence-weighted vote or Dawid–Skene EM (written here: its only packaged implementation,
crowd-kit, pulls in transformers). Conventions as in `rlhf_jax.labels.qc`.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from rlhf_jax.errors import ConfigError, describe
from rlhf_jax.labels.label_sets import LABEL_VALUES, answer_table, label_codes

K = len(LABEL_VALUES)  # classes 0, 0.5, 1 -> codes 0, 1, 2
AGGREGATE_METHODS = ("majority", "confidence", "dawid_skene")
_DS_SMOOTHING, _DS_ITERS, _DS_TOL = 0.01, 50, 1e-6


def _vote(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label [I], confidence [I]) from vote weights [I, 3] over (0, 0.5, 1).

    0.5 wins only with a strict plurality; otherwise the heavier of 0 and 1, and a 0-vs-1 tie
    gives 0.5. confidence = largest vote share (0.5 for an even 0-vs-1 split); NaN with no votes.
    """
    total = votes.sum(1)
    v0, vt, v1 = votes.T
    tol = 1e-9 * total  # weighted sums: 0.1 + 0.2 must tie with 0.3
    label = np.where(vt > np.maximum(v0, v1) + tol, 0.5,
                     np.where(v1 > v0 + tol, 1.0, np.where(v0 > v1 + tol, 0.0, 0.5)))
    has = total > 0
    conf = np.divide(votes.max(1), total, out=np.full(len(total), np.nan), where=has)
    return np.where(has, label, np.nan), conf


def _dawid_skene(item, ann, code, w, votes, n_ann) -> tuple[np.ndarray, np.ndarray]:
    """(label [I], posterior max [I]): Dawid & Skene (1979) EM over the classes (0, 0.5, 1).

    Hand-written (no light library). Model: true class t_i ~ p; annotator j answers l with
    probability π_j[t, l]. M-step: p_k ∝ s + Σ_i T_ik, π_j[k, l] ∝ s + Σ_{answers (i, j, l)} w_j T_ik
    (additive smoothing s keeps every log finite). E-step: log T_ik = log p_k + Σ_j w_j log
    π_j[k, l_ij] + const (w_j = 1 is plain DS; 0 drops j). Starts from the hard majority vote,
    so no randomness and no label switching; ≤ 50 iterations, stops when max |ΔT| < 1e-6.
    """
    n_items, s = len(votes), _DS_SMOOTHING
    has = votes.sum(1) > 0
    start, _ = _vote(votes)
    T = np.full((n_items, K), 1.0 / K)
    T[has] = np.eye(K)[label_codes(start[has])]
    onehot = np.eye(K)[code]                                                    # [M, K]
    for _ in range(_DS_ITERS):
        prior = (T[has].sum(0) + s) / (has.sum() + K * s)
        pi = np.full((n_ann, K, K), s)
        np.add.at(pi, ann, w[:, None, None] * T[item][:, :, None] * onehot[:, None, :])
        pi /= pi.sum(2, keepdims=True)
        log_t = np.tile(np.log(prior), (n_items, 1))
        np.add.at(log_t, item, w[:, None] * np.log(pi[ann, :, code]))
        log_t -= log_t.max(1, keepdims=True)
        new = np.exp(log_t)
        new /= new.sum(1, keepdims=True)
        delta, T = float(np.abs(new - T).max()), new
        if delta < _DS_TOL:
            break
    label = np.asarray(LABEL_VALUES)[T.argmax(1)]
    return np.where(has, label, np.nan), np.where(has, T.max(1), np.nan)


def aggregate(ls, method: str = "majority", weights: Mapping[str, float] | None = None,
              seed: int = 0) -> dict:
    """One label per item from its non-gold answers (reliability-matrix answers).

    Returns {"keys": item keys [I], "label" [I] float (0, 0.5, 1; NaN with no usable answer),
    "confidence" [I], "n_labels" [I] int (usable answers), "unanimous" [I] bool (≥ 1 usable
    answer and all equal)}. An answer's vote weight is weights[annotator] (default 1, also for ids
    missing from `weights`); "confidence" multiplies it by the row's reported confidence (clipped
    to [0, 1], NaN read as 1). Usable = vote weight > 0.
      majority / confidence: weighted vote (`_vote`); confidence = winning share.
      dawid_skene: `_dawid_skene`; confidence = posterior of the chosen class.
    Every method is deterministic; `seed` is accepted for interface symmetry and unused.
    """
    del seed
    if method not in AGGREGATE_METHODS:
        raise ConfigError(describe("aggregate", "method", " | ".join(AGGREGATE_METHODS), repr(method)))
    ans = answer_table(ls, include_gold=False)
    w_ann = np.array([1.0 if weights is None else float(weights.get(a, 1.0)) for a in ans["ids"]])
    if not np.all(np.isfinite(w_ann) & (w_ann >= 0)):
        raise ConfigError(describe("aggregate", "weights", "finite values ≥ 0", w_ann.tolist()))
    w = w_ann[ans["ann"]]
    if method == "confidence":
        w = w * np.clip(np.nan_to_num(ans["conf"], nan=1.0), 0.0, 1.0)
    use = w > 0
    item, a, code, w = ans["item"][use], ans["ann"][use], label_codes(ans["label"][use]), w[use]
    n_items = len(ans["keys"])
    votes = np.zeros((n_items, K))
    np.add.at(votes, (item, code), w)
    counts = np.zeros((n_items, K), np.int64)
    np.add.at(counts, (item, code), 1)
    if method == "dawid_skene":
        label, conf = _dawid_skene(item, a, code, w, votes, len(ans["ids"]))
    else:
        label, conf = _vote(votes)
    n_labels = counts.sum(1)
    return {"keys": ans["keys"], "label": label, "confidence": conf, "n_labels": n_labels,
            "unanimous": (n_labels >= 1) & ((counts > 0).sum(1) == 1)}


def label_error(labels, gold) -> float:
    """Fraction of answered labels that differ from gold: #(label ≠ gold) / #answered.

    labels, gold: [n] in {0, 0.5, 1, NaN}; a position counts when both are non-NaN. NaN if none.
    """
    labels, gold = np.asarray(labels, np.float64), np.asarray(gold, np.float64)
    if labels.shape != gold.shape:
        raise ValueError(describe("label_error", "gold", f"shape {labels.shape}", gold.shape))
    ok = ~np.isnan(labels) & ~np.isnan(gold)
    return float(np.mean(labels[ok] != gold[ok])) if ok.any() else math.nan
