"""Label QC statistics (rlhf_jax.labels.qc) against their libraries, textbook values and hand
cases; aggregation is tested in test_qc_aggregate."""
from __future__ import annotations

import math
import warnings

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats import inter_rater
from statsmodels.stats.proportion import proportion_confint

from rlhf_jax.labels import qc
from rlhf_jax.errors import ConfigError
from tests.qc_fixtures import key, make, row

nan = math.nan


def from_matrix(m, ids, flip_every=3):
    """LabelSet whose reliability matrix is m [A, I] (item orientation); every flip_every-th
    answer is shown reversed, its stored label 1 − v."""
    rows, n = [], 0
    for a, name in enumerate(ids):
        for i, v in enumerate(m[a]):
            if not np.isnan(v):
                flip = n % flip_every == 0
                rows.append(row(i, name, 1.0 - v if flip else v, flip=flip))
                n += 1
    return make(rows, ids)


def test_reliability_matrix_orientation_duplicates_and_gold():
    ls = make([row(0, "a", 1.0), row(0, "b", 1.0, flip=True), row(1, "a", 0.5, flip=True),
               row(1, "b", 0.0), row(1, "b", 1.0), row(1, "b", nan),  # latest non-skip counts
               row(2, "a", nan), row(3, "a", 1.0, gold=True, gold_label=1.0)])
    m, ids, keys = qc.reliability_matrix(ls)
    assert ids == ["a", "b"] and keys == [key(0), key(1), key(2)]
    np.testing.assert_array_equal(m, [[1.0, 0.5, nan], [0.0, 1.0, nan]])
    m_g, _, keys_g = qc.reliability_matrix(ls, include_gold=True)
    assert keys_g[-1] == key(3) and m_g[0, -1] == 1.0 and m_g.shape == (2, 4)


WIKI_FLEISS = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
               [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
               [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]


def test_fleiss_textbook_value():
    # Fleiss (1971) as on Wikipedia: 10 subjects, 14 raters, 5 categories, κ = 0.210.
    assert inter_rater.fleiss_kappa(np.array(WIKI_FLEISS), method="fleiss") == pytest.approx(0.210, abs=5e-4)


def test_fleiss_uses_only_items_with_r_answers():
    v = [0.0, 0.5, 1.0]
    # Full items: 4 answers each from annotators drawn from 6; counts per category (0, 0.5, 1).
    full = [[4, 0, 0], [0, 1, 3], [1, 2, 1], [0, 0, 4], [2, 0, 2], [3, 1, 0], [0, 3, 1]]
    rows, n = [], 0
    for i, cnt in enumerate(full):
        labs = [v[k] for k in range(3) for _ in range(cnt[k])]
        for j, lab in enumerate(labs):
            flip = n % 2 == 1
            rows.append(row(i, f"r{(i + j) % 6}", 1.0 - lab if flip else lab, flip=flip))
            n += 1
    # Short items (2 or 3 answers, or 4 rows with a skip) must be left out.
    rows += [row(10, "r0", 1.0), row(10, "r1", 0.0),
             row(11, "r0", 1.0), row(11, "r2", 1.0), row(11, "r3", 0.5),
             row(12, "r0", 0.0), row(12, "r1", 0.0), row(12, "r2", 1.0), row(12, "r3", nan),
             row(13, "r4", 1.0), row(13, "r5", 1.0), row(13, "r0", 0.0)]
    out = qc.fleiss_kappa(make(rows))
    expected = inter_rater.fleiss_kappa(np.array(full), method="fleiss")
    assert out["value"] == pytest.approx(expected, abs=1e-12)
    assert out["n_items"] == len(full) and out["raters_per_item"] == 4
    assert f"{len(full)} of {len(full) + 4} items" in out["note"]
    r3 = qc.fleiss_kappa(make(rows), r=3)
    table3 = np.array([[0, 1, 2], [2, 0, 1], [1, 0, 2]])  # items 11, 12, 13
    assert r3["n_items"] == 3
    assert r3["value"] == pytest.approx(inter_rater.fleiss_kappa(table3), abs=1e-12)
    with pytest.raises(ConfigError):
        qc.fleiss_kappa(make(rows), r=1)


def test_fleiss_fewer_than_two_items_is_nan():
    out = qc.fleiss_kappa(make([row(0, "a", 1.0), row(0, "b", 0.0), row(1, "a", 1.0)]))
    assert math.isnan(out["value"]) and out["n_items"] == 1


KRIPP_2011 = [[1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
              [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
              [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
              [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan]]


def test_krippendorff_textbook_value():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 coders x 12 units.
    alpha = krippendorff.alpha(reliability_data=KRIPP_2011, level_of_measurement="nominal")
    assert round(alpha, 3) == 0.743


def test_krippendorff_matches_library_on_label_set():
    m = np.array([[1, 1, 0.5, 0, 0, 1, 0.5, nan, 1, 0, 1],
                  [1, 0.5, 0.5, 0, 0.5, 1, 0, 1, nan, 0, nan],
                  [nan, 1, 0.5, 0, 0, 0.5, 0.5, 1, 1, 1, nan],
                  [1, 1, 0, nan, 0, 1, 0.5, 0.5, 1, 0, nan]])
    ids = ["c1", "c2", "c3", "c4"]
    ls = from_matrix(m, ids)
    values = {}
    for level in ("ordinal", "nominal"):
        out = qc.krippendorff_alpha(ls, level=level)
        expected = krippendorff.alpha(reliability_data=m, value_domain=[0, 0.5, 1],
                                      level_of_measurement=level)
        assert out["value"] == pytest.approx(expected, abs=1e-12)
        assert out["n_items"] == 10 and out["level"] == level and out["value_domain"] == [0, 0.5, 1]
        values[level] = out["value"]
    assert abs(values["ordinal"] - values["nominal"]) > 0.01  # ties sit between 0 and 1
    with pytest.raises(ConfigError):
        qc.krippendorff_alpha(ls, level="interval")


def test_cohen_matrix_equals_sklearn_on_overlaps():
    rng = np.random.default_rng(3)
    vals = np.array([0.0, 0.5, 1.0])
    m = np.full((3, 20), nan)
    m[0, :] = vals[rng.integers(0, 3, 20)]
    m[1, :14] = np.where(rng.random(14) < 0.7, m[0, :14], vals[rng.integers(0, 3, 14)])
    m[2, 12:] = vals[rng.integers(0, 3, 8)]       # 8 items shared with a, 2 with b
    m[1, 3] = nan                                  # b's overlap with a: 13 items
    ls = from_matrix(m, ["a", "b", "c"])
    kappa, ids = qc.cohen_kappa_matrix(ls, min_overlap=10)
    assert ids == ["a", "b", "c"]
    names = {0.0: "b-pref", 0.5: "tie", 1.0: "a-pref"}
    both = ~np.isnan(m[0]) & ~np.isnan(m[1])
    assert both.sum() == 13
    expected = cohen_kappa_score([names[x] for x in m[0, both]], [names[x] for x in m[1, both]],
                                 labels=["b-pref", "tie", "a-pref"])
    assert kappa[0, 1] == pytest.approx(expected, abs=1e-12) and kappa[1, 0] == kappa[0, 1]
    assert np.isnan(kappa[0, 2]) and np.isnan(kappa[1, 2])        # 8 and 2 < 10 shared items
    np.testing.assert_array_equal(np.diag(kappa), 1.0)
    np.testing.assert_array_equal(kappa, kappa.T)
    k8, _ = qc.cohen_kappa_matrix(ls, min_overlap=8)
    exp8 = cohen_kappa_score([names[x] for x in m[0, 12:]], [names[x] for x in m[2, 12:]],
                             labels=["b-pref", "tie", "a-pref"])
    assert k8[0, 2] == pytest.approx(exp8, abs=1e-12) and np.isnan(k8[1, 2])


def test_cohen_constant_raters_give_nan_without_warning():
    # both answer "a preferred" on every item (in item orientation), so p_e = 1
    ls = make([row(i, a, 0.0 if (i + k) % 2 else 1.0, flip=bool((i + k) % 2))
               for i in range(12) for k, a in enumerate(("a", "b"))])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kappa, _ = qc.cohen_kappa_matrix(ls)
    assert np.isnan(kappa[0, 1])


def test_gold_accuracy_counts_and_wilson():
    rows = [row(i, "g1", lab, gold=True, gold_label=g) for i, (lab, g) in enumerate(
        [(1, 1), (0, 0), (0.5, 0.5), (1, 1), (0, 0), (1, 1), (0.5, 1), (1, 0), (nan, 1), (nan, 0)])]
    # g2 skipped its only gold question; g3 (provenance table only) answered nothing
    rows += [row(20, "g1", 1.0), row(20, "g2", 0.0), row(21, "g2", nan, gold=True, gold_label=0.0)]
    out = qc.gold_accuracy(make(rows, annotators=["g3"]))
    assert set(out) == {"g1", "g2", "g3"}
    g1 = out["g1"]
    assert (g1["n_gold"], g1["n_gold_skipped"], g1["correct"]) == (8, 2, 6)
    assert g1["accuracy"] == 0.75
    lo, hi = proportion_confint(6, 8, alpha=0.05, method="wilson")
    assert (g1["ci_low"], g1["ci_high"]) == pytest.approx((lo, hi), abs=1e-12)
    lo90, _ = proportion_confint(6, 8, alpha=0.1, method="wilson")
    assert qc.gold_accuracy(make(rows), alpha=0.1)["g1"]["ci_low"] == pytest.approx(lo90)
    for a, skipped in (("g2", 1), ("g3", 0)):
        assert out[a]["n_gold"] == 0 and out[a]["n_gold_skipped"] == skipped
        assert all(math.isnan(out[a][k]) for k in ("accuracy", "ci_low", "ci_high"))


def test_behaviour_rates_in_displayed_orientation():
    # "left" always picks the first shown segment; half its rows are shown reversed, so in the
    # item's orientation it would look balanced.
    rows = [row(i, "left", 1.0, flip=i % 2 == 1, seconds=2.0) for i in range(8)]
    mixed = [1, 1, 1, 0, 0, 0, 0.5, 0.5, nan, nan]
    rows += [row(i, "mixed", lab, flip=i % 3 == 0, seconds=float(i + 1)) for i, lab in enumerate(mixed)]
    b = qc.behaviour(make(rows))
    assert b["left"]["left_rate"] == 1.0 and b["left"]["tie_rate"] == 0.0
    assert b["left"]["n_labels"] == 8 and b["left"]["median_seconds"] == 2.0
    mx = b["mixed"]
    assert mx["n_labels"] == 10 and mx["n_answered"] == 8
    assert mx["left_rate"] == 3 / 8 and mx["tie_rate"] == 2 / 8 and mx["skip_rate"] == 0.2
    assert mx["median_seconds"] == 5.5


def test_behaviour_majority_agreement():
    rows = [row(0, "a", 1), row(0, "b", 1), row(0, "c", 0, flip=True), row(0, "d", 0),  # d dissents
            row(1, "a", 0), row(1, "b", 0), row(1, "c", 1), row(1, "d", 0),               # c dissents
            row(2, "a", 1), row(2, "b", 0), row(2, "d", 0.5),                             # all tied
            row(3, "a", 1), row(3, "d", 0)]                                               # < 3 answers
    b = qc.behaviour(make(rows))
    # a, b: item 0 and 1 agree; item 2 others tied -> left out; item 3 too small.
    assert b["a"]["majority_agreement"] == 1.0 and b["b"]["majority_agreement"] == 1.0
    assert b["c"]["majority_agreement"] == 0.5 and b["d"]["majority_agreement"] == 0.5


def _pool(n, **spread):
    base = {"left_rate": 0.5, "tie_rate": 0.1, "skip_rate": 0.05, "majority_agreement": 0.8,
            "median_seconds": 12.0}
    return {f"a{j}": {f: v + spread.get(f, 0.0) * (j - (n - 1) / 2) for f, v in base.items()}
            for j in range(n)}


def test_robust_outliers_flags_exactly_the_planted_one():
    pool = _pool(10, left_rate=0.005, tie_rate=0.003, skip_rate=0.002, majority_agreement=0.004,
                 median_seconds=0.3)
    pool["odd"] = dict(pool["a0"], left_rate=0.98)
    flags = qc.robust_outliers(pool)
    assert {a for a, r in flags.items() if r} == {"odd"}
    assert len(flags["odd"]) == 1
    assert flags["odd"][0].startswith("left_rate 0.98 is ")
    assert flags["odd"][0].endswith("robust σ above the pool median 0.50")


def test_robust_outliers_sides_and_identical_pool():
    same = {f"a{j}": {"left_rate": 0.5 + 1e-12 * j, "tie_rate": 0.1, "skip_rate": 0.0,
                      "majority_agreement": 0.8, "median_seconds": 10.0 - 1e-9 * j} for j in range(10)}
    assert all(r == [] for r in qc.robust_outliers(same).values())
    pool = _pool(10, majority_agreement=0.004, median_seconds=0.3)
    pool["keen"] = dict(pool["a0"], majority_agreement=0.99)   # high agreement is fine
    pool["sloppy"] = dict(pool["a0"], majority_agreement=0.3)
    pool["fast"] = dict(pool["a0"], median_seconds=1.0)
    pool["slow"] = dict(pool["a0"], median_seconds=60.0)
    flags = qc.robust_outliers(pool)
    assert flags["keen"] == [] and "below" in flags["sloppy"][0]
    assert flags["fast"][0].startswith("median_seconds") and "above" in flags["slow"][0]


def test_robust_outliers_need_a_practical_gap_besides_the_z():
    # A careful annotator 0.05 off the median of a tight pool is many robust σ out, but that is
    # sampling noise, not position bias: flagged only without the minimum gap.
    pool = _pool(10, left_rate=0.002)
    pool["near"] = dict(pool["a0"], left_rate=0.55)
    assert qc.robust_outliers(pool)["near"] == []
    assert qc.robust_outliers(pool, min_gap=False)["near"][0].startswith("left_rate 0.55")
    pool["far"] = dict(pool["a0"], left_rate=0.62)
    assert qc.robust_outliers(pool)["far"][0].startswith("left_rate 0.62")


def test_robust_outliers_resist_masking():
    pool = _pool(10, left_rate=0.005)
    for j in range(3):
        pool[f"bias{j}"] = dict(pool["a0"], left_rate=0.95)
    x = np.array([v["left_rate"] for v in pool.values()])
    assert np.abs((x - x.mean()) / x.std()).max() < 2.0       # mean/std: outliers mask themselves
    flagged = {a for a, r in qc.robust_outliers(pool, features=("left_rate",)).items() if r}
    assert flagged == {"bias0", "bias1", "bias2"}


def test_behaviour_then_outliers_on_a_label_set():
    # Six annotators label the truth, shown in one fixed orientation (left_rate exactly 0.5, so
    # MAD = 0 and the fallback scale applies); "left" always picks the first segment.
    rows = [row(i, f"h{j}", float(i % 2)) for i in range(40) for j in range(6)]
    rows += [row(i, "left", 1.0) for i in range(40)]
    flags = qc.robust_outliers(qc.behaviour(make(rows)))
    assert any(r.startswith("left_rate 1.00") for r in flags["left"])
    assert all(flags[f"h{j}"] == [] for j in range(6))


def test_filter_weights():
    acc = {"good": {"accuracy": 0.9, "n_gold": 10}, "meh": {"accuracy": 0.7, "n_gold": 10},
           "bad": {"accuracy": 0.4, "n_gold": 10}, "few": {"accuracy": 0.2, "n_gold": 3},
           "none": {"accuracy": nan, "n_gold": 0}, "edge": {"accuracy": 0.8, "n_gold": 5}}
    assert qc.filter_weights(acc) == {"good": 1.0, "meh": 0.0, "bad": 0.0, "few": 1.0,
                                      "none": 1.0, "edge": 1.0}
    w = qc.filter_weights(acc, mode="downweight")
    assert w["meh"] == pytest.approx(2 / 3) and w["bad"] == 0.0 and w["good"] == 1.0
    assert w["few"] == 1.0 and w["none"] == 1.0 and w["edge"] == 1.0
    assert qc.filter_weights(acc, min_gold=2)["few"] == 0.0
    for kw in ({"mode": "drop"}, {"threshold": 1.5}, {"mode": "downweight", "threshold": 0.5}):
        with pytest.raises(ConfigError):
            qc.filter_weights(acc, **kw)
