"""The numbers of a QC report: per-annotator quality, pool agreement, and each QC policy's effect.

Label error is measured against the oracle (the gold rubric's returns of the two segments), which
is known for every pair of a simulated dataset — for a human label file too, as long as its pairs
are segments of such a dataset. Gold questions measure the same thing on the gold pool only, as a
team would without an oracle. A dataset without gold (a foreign LeRobot dataset: no gold reward
components) has no oracle: every oracle label is NaN and each label error is None.
"""
from __future__ import annotations

import numpy as np
from statsmodels.stats.proportion import proportion_confint

from rlhf_jax.preferences import annotators as ann
from rlhf_jax.labels import costs, label_sets, qc
from rlhf_jax.labels.qc_sources import PoolSource, apply_policy, pair_labels


def has_gold(segments) -> bool:
    """Whether the segments carry gold reward components (an oracle exists)."""
    return np.asarray(segments.gold_components).shape[-1] > 0


def oracle_row_labels(ls: label_sets.LabelSet, segments) -> np.ndarray:
    """[L] the oracle's answer to each row's pair in the row's own orientation (NaN: unknown,
    everywhere for a dataset without gold)."""
    ra, rb = label_sets.segment_rows(ls, segments)
    ok = (ra >= 0) & (rb >= 0) & has_gold(segments)
    out = np.full(len(ls), np.nan)
    if ok.any():
        out[ok] = ann.label_pairs("oracle", segments, ra[ok], rb[ok], seed=0, timestamp=0.0).label
    return out


def error_with_interval(wrong: np.ndarray) -> dict:
    """Fraction wrong among answered rows, with its Wilson 95% interval."""
    wrong = np.asarray(wrong, bool)
    n, k = int(wrong.size), int(wrong.sum())
    if n == 0:
        return {"value": float("nan"), "ci": [float("nan")] * 2, "n": 0}
    lo, hi = proportion_confint(k, n, method="wilson")
    return {"value": k / n, "ci": [float(lo), float(hi)], "n": n}


def answer_error(ls: label_sets.LabelSet, oracle: np.ndarray, rows=None) -> dict:
    """Error of individual training answers (not gold, not skipped) against the oracle."""
    sel = ~ls.gold & ~ls.skipped & ~np.isnan(oracle)
    if rows is not None:
        sel &= rows
    return error_with_interval(ls.label[sel] != oracle[sel])


def annotator_report(ls: label_sets.LabelSet, oracle: np.ndarray | None, *, threshold: float,
                     min_gold: int, z: float) -> dict[str, dict]:
    """Per annotator: gold accuracy with its Wilson interval, behaviour, error against the oracle,
    and `flagged` with reasons (gold accuracy below `threshold`, or a robust-z outlier)."""
    acc = qc.gold_accuracy(ls)
    beh = qc.behaviour(ls)
    outliers = qc.robust_outliers(beh, z=z)
    out = {}
    for a in sorted(ls.annotators):
        g = acc.get(a, {})
        reasons = list(outliers.get(a, []))
        if g.get("n_gold", 0) >= min_gold and g["accuracy"] < threshold:
            reasons.insert(0, f"gold accuracy {g['accuracy']:.2f} < {threshold:.2f} "
                              f"(Wilson 95% [{g['ci_low']:.2f}, {g['ci_high']:.2f}], n={g['n_gold']})")
        row = {"kind": ls.annotators[a].get("kind", "human"), **g, **beh.get(a, {}),
               "flagged": bool(reasons), "reasons": reasons}
        if oracle is not None:
            row["oracle_error"] = answer_error(ls, oracle, ls.annotator_id == a)["value"]
        out[a] = row
    return out


def agreement(ls: label_sets.LabelSet, *, level: str, min_overlap: int, exclude=()) -> dict:
    """Fleiss' kappa (items with all r answers), Krippendorff's alpha (both levels), Cohen's kappa
    matrix, on the training answers of every annotator not in `exclude`."""
    keep = ls.subset(~np.isin(ls.annotator_id.astype(str), list(exclude))) if exclude else ls
    other = "nominal" if level == "ordinal" else "ordinal"
    matrix, ids = qc.cohen_kappa_matrix(keep, min_overlap=min_overlap)
    return {"fleiss_kappa": qc.fleiss_kappa(keep), "krippendorff_alpha": qc.krippendorff_alpha(keep, level),
            f"krippendorff_alpha_{other}": qc.krippendorff_alpha(keep, other),
            "cohen_kappa": {"annotators": list(ids), "matrix": np.asarray(matrix).tolist()},
            "annotators": sorted(set(keep.annotator_id.astype(str)))}


def _result(label, keep, cost: dict, oracle) -> dict:
    """Label error of one label per pair against the oracle, and what its answers cost."""
    keep = np.asarray(keep, bool)
    n = max(int(keep.sum()), 1)
    known = keep & ~np.isnan(oracle)
    return {"label_error": error_with_interval(np.asarray(label)[known] != oracle[known])
            if not np.isnan(oracle).all() else None,
            "pairs_labelled": int(keep.sum()), "answers": cost["answers"], "gold_answers": cost["gold_answers"],
            "dollars": cost["dollars"], "answers_per_pair": cost["answers"] / n,
            "dollars_per_pair": cost["dollars"] / n, "by_kind": cost["by_kind"]}


def _oracle(segments, idx_a, idx_b) -> np.ndarray:
    if not has_gold(segments):
        return np.full(len(idx_a), np.nan)
    return ann.label_pairs("oracle", segments, idx_a, idx_b, seed=0, timestamp=0.0).label


def preset_policies(policies, segments, idx_a, idx_b, *, pool: str, size: int, pool_seed: int,
                    gold_rate: float, threshold: float, seed: int, cost_model) -> dict:
    """Each QC policy run by the same simulated team on the same pairs (each at its own r)."""
    oracle, out = _oracle(segments, idx_a, idx_b), {}
    for policy in policies:
        src = PoolSource(pool=pool, policy=policy, size=size, pool_seed=pool_seed, gold_rate=gold_rate,
                         threshold=threshold, cost_model=cost_model)
        lab = src.label(segments, idx_a, idx_b, seed)
        out[policy] = {"r": int(src.r), **_result(lab.label, lab.keep, lab.cost, oracle),
                       "label_set_hash": lab.label_set.content_hash()}
    return _with_multiplier(out)


def file_policies(policies, ls, segments, *, threshold: float, seed: int, cost_model) -> dict:
    """The policies a file supports (no new answers can be bought) on the file's own pairs."""
    _, keys, _ = ls.subset(~ls.gold).items()
    where = label_sets.segment_keys(segments)
    idx_a = np.array([where[k[0]] for k in keys], np.int64)
    idx_b = np.array([where[k[1]] for k in keys], np.int64)
    oracle, out = _oracle(segments, idx_a, idx_b), {}
    for policy in policies:
        if policy == "adjudicated":
            continue  # needs a senior annotator's new answers: not in a file
        bought, agg = apply_policy(ls, policy, threshold=threshold, seed=seed)
        label, keep, _ = pair_labels(agg, segments, idx_a, idx_b)
        out[policy] = _result(label, keep, costs.label_cost(bought, cost_model), oracle)
    return _with_multiplier(out)


def _with_multiplier(out: dict) -> dict:
    base = out.get("raw", {}).get("dollars_per_pair")
    for v in out.values():
        v["cost_multiplier_vs_raw"] = (v["dollars_per_pair"] / base) if base else float("nan")
    return out
