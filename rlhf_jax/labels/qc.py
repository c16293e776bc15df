"""Label quality control over a multi-annotator `LabelSet`: agreement, annotator behaviour,
outlier flags, gold-question weights; label aggregation is in `qc_aggregate` (re-exported here).

Labels are on the ordered scale {0, 0.5, 1} (b preferred, tie, a preferred); NaN is a skip.
Statistics come from the field's libraries (statsmodels: Fleiss' kappa, Wilson intervals;
scikit-learn: Cohen's kappa; `krippendorff`: alpha); Dawid–Skene EM is written here because its
only packaged implementation (crowd-kit) pulls in transformers.

Conventions: an item is an unordered pair (`LabelSet.item_labels`) and agreement uses labels in
the item's orientation. The reliability matrix keeps one answer per (annotator, item): the latest
non-skip one (timestamp, then row order), the annotator's final word. Annotator ids are the
provenance table's ids plus any id found in the rows, sorted. Gold questions are left out of
agreement and aggregation unless `include_gold`: they are picked to be easy and would inflate it.
"""
from __future__ import annotations

import math
import warnings
from typing import Mapping, Sequence

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats import inter_rater
from statsmodels.stats.proportion import proportion_confint

from rlhf_jax.errors import ConfigError, DataError, describe
from rlhf_jax.labels.label_sets import LABEL_VALUES, LabelSet, annotator_ids, answer_table, label_codes

K = len(LABEL_VALUES)  # classes 0, 0.5, 1 -> codes 0, 1, 2
OUTLIER_FEATURES = ("left_rate", "tie_rate", "skip_rate", "majority_agreement", "median_seconds")
# Features flagged on one side only: high agreement with the pool is never a problem.
_OUTLIER_SIDES = {"majority_agreement": "low"}
# Smallest deviation from the pool median worth flagging, besides the robust z: without it a 2σ
# rule flags ~5% of careful annotators per feature by sampling noise alone (robust z is
# scale-free, so more answers per annotator do not help). Rates: absolute; seconds: a fraction
# of the pool median.
MIN_GAP = {"left_rate": 0.10, "tie_rate": 0.10, "skip_rate": 0.10, "majority_agreement": 0.10}
MIN_GAP_RELATIVE = {"median_seconds": 0.5}
_MAD_TO_SIGMA = 1.4826             # 1 / Φ⁻¹(3/4): MAD -> σ for normal data
_MEAN_AD_TO_SIGMA = math.sqrt(math.pi / 2)  # mean absolute deviation -> σ for normal data


def _quiet(fn, *args, **kwargs):
    # Degenerate inputs (every label identical) give 0/0: NaN is the right answer, not a warning.
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def gold_accuracy(ls: LabelSet, alpha: float = 0.05) -> dict[str, dict]:
    """Per annotator accuracy on its gold rows (`ls.gold`), with a Wilson interval.

    {annotator_id: {"n_gold", "n_gold_skipped", "correct", "accuracy", "ci_low", "ci_high"}} for
    every annotator (also those with no gold answers). n_gold counts answered (non-skip) gold
    rows; correct = #(label == gold_label), exact, so a tie is right only against a gold tie;
    accuracy = correct / n_gold; (ci_low, ci_high) = Wilson (1 − alpha) interval. All three are
    NaN when n_gold = 0. Labels are compared in the row's own orientation, as gold_label is.
    """
    if not 0.0 < alpha < 1.0:
        raise ConfigError(describe("gold_accuracy", "alpha", "a value in (0, 1)", alpha))
    if np.isnan(ls.gold_label[ls.gold]).any():
        raise DataError(describe("label set", "gold_label", "a label on every gold row", "NaN"))
    ann = np.array([str(a) for a in ls.annotator_id], object)
    out = {}
    for a in annotator_ids(ls):
        rows = (ann == a) & ls.gold
        lab, gold = ls.label[rows], ls.gold_label[rows]
        answered = ~np.isnan(lab)
        n, correct = int(answered.sum()), int((lab[answered] == gold[answered]).sum())
        lo, hi = (proportion_confint(correct, n, alpha=alpha, method="wilson") if n
                  else (math.nan, math.nan))
        out[a] = {"n_gold": n, "n_gold_skipped": int((~answered).sum()), "correct": correct,
                  "accuracy": correct / n if n else math.nan,
                  "ci_low": float(lo), "ci_high": float(hi)}
    return out


def reliability_matrix(ls: LabelSet, include_gold: bool = False
                       ) -> tuple[np.ndarray, list[str], list[tuple]]:
    """(matrix [A, I] float64, annotator_ids [A], item keys [I]).

    matrix[a, i] = annotator a's label on item i in the item's orientation (`item_labels`),
    NaN where a did not answer or skipped; the Krippendorff `reliability_data` layout.
    """
    ans = answer_table(ls, include_gold)
    m = np.full((len(ans["ids"]), len(ans["keys"])), np.nan)
    m[ans["ann"], ans["item"]] = ans["label"]
    return m, ans["ids"], ans["keys"]


def fleiss_kappa(ls: LabelSet, r: int | None = None, include_gold: bool = False) -> dict:
    """Fleiss' kappa over the items with exactly r non-skip answers; categories {0, 0.5, 1} nominal.

    κ = (P̄ − P̄ₑ) / (1 − P̄ₑ), P̄ = mean over items of Σ_k n_ik(n_ik − 1) / (r(r − 1)),
    P̄ₑ = Σ_k p_k², p_k = share of all answers in category k (statsmodels `fleiss_kappa` on the
    `aggregate_raters` table [n, 3]). The formula assumes the same number of raters per item, so
    other items are left out; r defaults to the most common answer count among items with ≥ 2
    answers (the larger one on a tie). Returns {"value", "n_items", "raters_per_item", "note"};
    value is NaN with fewer than 2 items, or when every answer is in one category.
    """
    m, _, keys = reliability_matrix(ls, include_gold)
    counts = np.sum(~np.isnan(m), axis=0)
    if r is None:
        cand = counts[counts >= 2]
        vals, freq = np.unique(cand, return_counts=True)
        r = int(vals[freq == freq.max()].max()) if cand.size else 0
    elif int(r) < 2:
        raise ConfigError(describe("fleiss_kappa", "r", "at least 2 raters per item", r))
    r = int(r)
    used = np.flatnonzero(counts == r) if r >= 2 else np.array([], np.int64)
    value = math.nan
    if len(used) >= 2:
        data = np.stack([label_codes(m[~np.isnan(m[:, i]), i]) for i in used])  # [n, r]
        table, _ = inter_rater.aggregate_raters(data, n_cat=K)
        value = float(_quiet(inter_rater.fleiss_kappa, table, method="fleiss"))
    note = (f"{len(used)} of {len(keys)} items used: those with exactly {r} non-skip answers; "
            f"{len(keys) - len(used)} items with another answer count left out")
    return {"value": value, "n_items": int(len(used)), "raters_per_item": r, "note": note}


def krippendorff_alpha(ls: LabelSet, level: str = "ordinal", include_gold: bool = False) -> dict:
    """Krippendorff's alpha on the reliability matrix (missing answers and skips are NaN).

    α = 1 − D_o / D_e over pairable values (items with ≥ 2 answers). level "ordinal": a tie is
    the middle of the ordered scale 0 < 0.5 < 1 (0 vs 1 disagrees more than 0 vs tie);
    "nominal": a tie is a category of its own. Returns {"value", "level", "value_domain",
    "n_items"}; n_items = pairable items; value NaN when none, or when all answers agree on one
    value (D_e = 0).
    """
    if level not in ("ordinal", "nominal"):
        raise ConfigError(describe("krippendorff_alpha", "level", "'ordinal' or 'nominal'",
                                   repr(level)))
    m, _, _ = reliability_matrix(ls, include_gold)
    n_items = int(np.sum(np.sum(~np.isnan(m), axis=0) >= 2))
    value = math.nan
    if n_items:
        value = float(_quiet(krippendorff.alpha, reliability_data=m,
                             value_domain=list(LABEL_VALUES), level_of_measurement=level))
    return {"value": value, "level": level, "value_domain": list(LABEL_VALUES),
            "n_items": n_items}


def cohen_kappa_matrix(ls: LabelSet, min_overlap: int = 10, include_gold: bool = False
                       ) -> tuple[np.ndarray, list[str]]:
    """(kappa [A, A] float64, annotator_ids [A]): pairwise Cohen's kappa, symmetric, diagonal 1.

    kappa[a, b] = scikit-learn `cohen_kappa_score` with labels {0, 0.5, 1} on the items both a
    and b answered (non-skip), κ = (p_o − p_e) / (1 − p_e); NaN where fewer than min_overlap
    such items, or where it is undefined (both constant on the same label, p_e = 1).
    """
    if int(min_overlap) < 1:
        raise ConfigError(describe("cohen_kappa_matrix", "min_overlap", "at least 1", min_overlap))
    m, ids, _ = reliability_matrix(ls, include_gold)
    code = label_codes(m)
    out = np.full((len(ids), len(ids)), np.nan)
    np.fill_diagonal(out, 1.0)
    for a in range(len(ids)):
        for b in range(a + 1, len(ids)):
            both = (code[a] >= 0) & (code[b] >= 0)
            if both.sum() >= min_overlap:
                out[a, b] = out[b, a] = _quiet(cohen_kappa_score, code[a, both], code[b, both],
                                               labels=list(range(K)))
    return out, ids


def _majority_agreement(m: np.ndarray) -> np.ndarray:
    """[A]: share of a's answers, on items with ≥ 3 answers, equal to the others' plurality label.

    Items where the other annotators' plurality is tied are left out; NaN with no such item.
    """
    code = label_codes(m)
    counts = np.stack([(code == k).sum(0) for k in range(K)], axis=1)  # [I, K]
    a, i = np.nonzero(code >= 0)
    c = code[a, i]
    others = counts[i] - np.eye(K, dtype=np.int64)[c]                  # [M, K]
    clear = (counts[i].sum(1) >= 3) & ((others == others.max(1, keepdims=True)).sum(1) == 1)
    hit = clear & (others.argmax(1) == c)
    tot = np.bincount(a[clear], minlength=len(m))
    hits = np.bincount(a[hit], minlength=len(m))
    return np.where(tot > 0, hits / np.maximum(tot, 1), np.nan)


def behaviour(ls: LabelSet, include_gold: bool = True) -> dict[str, dict]:
    """Per annotator answering habits: {id: {"n_labels", "n_answered", "left_rate", "tie_rate",
    "skip_rate", "majority_agreement", "median_seconds"}}.

    n_labels = rows (skips included); n_answered = non-skip rows; left_rate = #(label == 1) /
    n_answered in the row's displayed orientation (a position bias: 'always the first one'),
    ties count as not-left; tie_rate = #(label == 0.5) / n_answered; skip_rate = skips / n_labels;
    majority_agreement = share of its answers on items with ≥ 3 answers matching the plurality of
    the other annotators (reliability-matrix answers, in item orientation; tied pluralities left
    out); median_seconds = median time over its rows. NaN where the denominator is 0.
    """
    sub = ls if include_gold else ls.subset(~ls.gold)
    m, ids, _ = reliability_matrix(ls, include_gold)
    agree = _majority_agreement(m)
    ann = np.array([str(a) for a in sub.annotator_id], object)
    out = {}
    for j, a in enumerate(ids):
        rows = ann == a
        lab, secs = sub.label[rows], sub.seconds[rows]
        ans = lab[~np.isnan(lab)]
        n, na = int(rows.sum()), len(ans)
        out[a] = {"n_labels": n, "n_answered": na,
                  "left_rate": float(np.mean(ans == 1.0)) if na else math.nan,
                  "tie_rate": float(np.mean(ans == 0.5)) if na else math.nan,
                  "skip_rate": (n - na) / n if n else math.nan,
                  "majority_agreement": float(agree[j]),
                  "median_seconds": (float(np.nanmedian(secs)) if np.isfinite(secs).any()
                                     else math.nan)}
    return out


def _robust_z(x: np.ndarray) -> tuple[np.ndarray | None, float]:
    """(z [n], median): z = (x − median) / σ̂ with σ̂ = 1.4826·MAD over the finite values.

    When σ̂ falls below floor = 1e-3·max(1, |median|) (more than half the pool identical), the
    fallback is √(π/2)·mean absolute deviation from the median (the normal-consistent constant for
    that statistic), itself floored, so a pool of identical annotators flags nobody for float
    noise while a lone deviant among identical ones is still flagged. None with < 3 finite values.
    """
    ok = np.isfinite(x)
    if ok.sum() < 3:
        return None, math.nan
    med = float(np.median(x[ok]))
    dev = np.abs(x[ok] - med)
    floor = 1e-3 * max(1.0, abs(med))
    scale = _MAD_TO_SIGMA * float(np.median(dev))
    if scale < floor:
        scale = max(_MEAN_AD_TO_SIGMA * float(dev.mean()), floor)
    return (x - med) / scale, med


def robust_outliers(values: Mapping[str, Mapping], features: Sequence[str] = OUTLIER_FEATURES,
                    z: float = 2.0, min_gap: bool = True) -> dict[str, list[str]]:
    """{annotator_id: [reason, ...]} (empty list when nothing stands out), from `behaviour` output.

    Per feature, robust z = (x − median) / (1.4826·MAD) across annotators (NaN-aware; see
    `_robust_z` for the MAD = 0 fallback); median and MAD, unlike mean and std, are not dragged
    by the outliers themselves, so several alike outliers cannot mask each other. Flags |z| > z,
    except majority_agreement, flagged only below the pool. A feature with < 3 finite values is
    skipped. With min_gap, a flag also needs |x − median| ≥ MIN_GAP (or MIN_GAP_RELATIVE·median).
    Reason: "left_rate 0.98 is 7.1 robust σ above the pool median 0.50".
    """
    if not z > 0:
        raise ConfigError(describe("robust_outliers", "z", "a positive threshold", z))
    ids = list(values)
    reasons: dict[str, list[str]] = {a: [] for a in ids}
    for f in features:
        x = np.array([float(values[a].get(f, math.nan)) for a in ids], np.float64)
        zs, med = _robust_z(x)
        if zs is None:
            continue
        side = _OUTLIER_SIDES.get(f, "both")
        gap = (MIN_GAP.get(f, 0.0) + MIN_GAP_RELATIVE.get(f, 0.0) * abs(med)) if min_gap else 0.0
        for a, xi, zi in zip(ids, x, zs):
            if abs(xi - med) < gap:
                continue
            if (zi > z and side != "low") or (zi < -z and side != "high"):
                where = "above" if zi > 0 else "below"
                reasons[a].append(f"{f} {xi:.2f} is {abs(zi):.1f} robust σ {where} "
                                  f"the pool median {med:.2f}")
    return reasons


def filter_weights(accuracy: Mapping[str, Mapping], threshold: float = 0.8,
                   mode: str = "remove", min_gold: int = 5) -> dict[str, float]:
    """{annotator_id: weight in [0, 1]} from `gold_accuracy` output.

    mode "remove": weight = 0 if accuracy < threshold else 1. mode "downweight": weight =
    clip((accuracy − 0.5) / (threshold − 0.5), 0, 1) below threshold (chance level 0.5 -> 0),
    1 at or above. An annotator with fewer than min_gold answered gold questions keeps weight 1:
    a handful of gold answers is not enough evidence to drop anyone.
    """
    if mode not in ("remove", "downweight"):
        raise ConfigError(describe("filter_weights", "mode", "'remove' or 'downweight'", repr(mode)))
    lo = 0.5 if mode == "downweight" else 0.0
    if not lo < threshold <= 1.0:
        raise ConfigError(describe("filter_weights", "threshold", f"a value in ({lo}, 1]", threshold))
    if int(min_gold) < 0:
        raise ConfigError(describe("filter_weights", "min_gold", "a count ≥ 0", min_gold))
    out = {}
    for a, s in accuracy.items():
        acc, n = float(s["accuracy"]), int(s["n_gold"])
        if n < min_gold or not math.isfinite(acc) or acc >= threshold:
            out[a] = 1.0
        elif mode == "remove":
            out[a] = 0.0
        else:
            out[a] = float(np.clip((acc - 0.5) / (threshold - 0.5), 0.0, 1.0))
    return out


# Aggregation lives in its own module; it is part of this module's interface.
from rlhf_jax.labels.qc_aggregate import AGGREGATE_METHODS, aggregate, label_error  # noqa: E402,F401  pylint: disable=wrong-import-position
