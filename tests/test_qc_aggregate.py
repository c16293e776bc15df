"""Label aggregation (rlhf_jax.labels.qc_aggregate): weighted majority and confidence votes on
hand-built votes, Dawid-Skene on planted annotators, and the label error."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rlhf_jax.errors import ConfigError
from rlhf_jax.labels.qc_aggregate import aggregate, label_error
from tests.qc_fixtures import key, make, nan, row


def test_aggregate_majority_hand_case():
    rows = [row(0, "a", 1), row(0, "b", 0, flip=True), row(0, "c", 0),      # 1,1,0 -> 1
            row(1, "a", 1), row(1, "b", 0),                                  # 0-vs-1 tie -> 0.5
            row(2, "a", 0.5), row(2, "b", 0.5, flip=True), row(2, "c", 1),  # tie plurality
            row(3, "a", 0.5), row(3, "b", 1), row(3, "c", 1), row(3, "d", 0.5),  # 0.5 = 1 -> 1
            row(4, "a", 0), row(4, "b", 0.5), row(4, "c", 1),               # all equal -> 0.5
            row(5, "a", nan), row(5, "b", nan),                             # no answer
            row(6, "a", 1, flip=True), row(6, "b", 1, flip=True),
            row(7, "a", 1, gold=True, gold_label=1)]
    out = aggregate(make(rows))
    assert out["keys"] == [key(i) for i in range(7)]
    np.testing.assert_array_equal(out["label"], [1, 0.5, 0.5, 1, 0.5, nan, 0])
    np.testing.assert_allclose(out["confidence"], [2 / 3, 0.5, 2 / 3, 0.5, 1 / 3, nan, 1])
    np.testing.assert_array_equal(out["n_labels"], [3, 2, 3, 4, 3, 0, 2])
    np.testing.assert_array_equal(out["unanimous"], [0, 0, 0, 0, 0, 0, 1])
    removed = aggregate(make(rows), weights={"a": 0.0})
    # 0.5 needs a strict plurality: one tie vote against one 1 gives 1 (items 2 and 4)
    np.testing.assert_array_equal(removed["label"], [0.5, 0, 1, 1, 1, nan, 0])
    np.testing.assert_array_equal(removed["n_labels"], [2, 1, 2, 3, 2, 0, 1])
    assert removed["unanimous"][1] and removed["unanimous"][6]
    with pytest.raises(ConfigError):
        aggregate(make(rows), method="mode")


def test_aggregate_confidence_weighting_flips_a_vote():
    rows = [row(0, "a", 1, conf=0.9), row(0, "b", 0, conf=0.3), row(0, "c", 0, conf=0.4),
            row(1, "a", 1, conf=0.9), row(1, "b", 0, conf=0.6), row(1, "c", 0, conf=0.4)]
    ls = make(rows)
    np.testing.assert_array_equal(aggregate(ls)["label"], [0, 0])
    out = aggregate(ls, method="confidence")
    np.testing.assert_array_equal(out["label"], [1, 0])       # 0.9 > 0.3 + 0.4; 0.9 < 0.6 + 0.4
    np.testing.assert_allclose(out["confidence"], [0.9 / 1.6, 1.0 / 1.9])
    out_w = aggregate(ls, method="confidence", weights={"a": 0.5})
    np.testing.assert_array_equal(out_w["label"], [0, 0])       # 0.45 < 0.7


def _synthetic(accuracies, n_items, classes, seed):
    """Known-truth set: annotator j copies the truth with probability accuracies[j], else answers
    1 − truth; each answer shown in a random orientation."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(classes, n_items)
    rows = []
    for i, t in enumerate(truth):
        for j, acc in enumerate(accuracies):
            lab = t if rng.random() < acc else 1.0 - t
            flip = bool(rng.random() < 0.5)
            rows.append(row(i, f"w{j}", 1.0 - lab if flip else lab, flip=flip))
    return make(rows), truth


def test_dawid_skene_beats_majority_with_adversaries():
    ls, truth = _synthetic([0.85, 0.85, 0.85, 0.0, 0.0], 200, [0.0, 1.0], seed=0)
    maj = aggregate(ls, "majority")
    ds = aggregate(ls, "dawid_skene")
    assert maj["keys"] == ds["keys"] == [key(i) for i in range(200)]
    err_maj, err_ds = label_error(maj["label"], truth), label_error(ds["label"], truth)
    assert err_maj > 0.25 and err_ds < 0.05
    assert np.all((ds["confidence"] >= 1 / 3) & (ds["confidence"] <= 1))
    again = aggregate(ls, "dawid_skene", seed=123)
    np.testing.assert_array_equal(again["label"], ds["label"])


def test_dawid_skene_equals_majority_with_perfect_annotators():
    ls, truth = _synthetic([1.0] * 5, 60, [0.0, 0.5, 1.0], seed=1)
    ds, maj = aggregate(ls, "dawid_skene"), aggregate(ls, "majority")
    np.testing.assert_array_equal(ds["label"], maj["label"])
    np.testing.assert_array_equal(ds["label"], truth)
    assert ds["unanimous"].all()


def test_label_error():
    assert label_error([1, 0, 0.5, nan, 1], [1, 1, 0.5, 0, 0]) == 0.5
    assert math.isnan(label_error([nan, nan], [1, 0]))
    with pytest.raises(ValueError):
        label_error([1, 0], [1])


def test_weighted_votes_that_sum_to_a_tie_give_a_tie():
    # 0.1 + 0.2 for "1" against 0.3 for "0": equal in exact arithmetic, not in floating point.
    rows = [row(0, "a", 1), row(0, "b", 1), row(0, "c", 0)]
    out = aggregate(make(rows), weights={"a": 0.1, "b": 0.2, "c": 0.3})
    assert out["label"][0] == 0.5 and out["confidence"][0] == pytest.approx(0.5)


def test_aggregate_is_invariant_to_the_orientation_answers_were_shown_in():
    rng = np.random.default_rng(3)
    rows = [row(i, f"w{j}", float(rng.choice([0.0, 0.5, 1.0])), conf=float(rng.uniform(0.2, 1.0)))
            for i in range(30) for j in range(4)]
    mirrored = [dict(r, flip=True, label=1.0 - r["label"]) for r in rows]
    for method in ("majority", "confidence", "dawid_skene"):
        a, b = aggregate(make(rows), method), aggregate(make(mirrored), method)
        assert a["keys"] == b["keys"]
        np.testing.assert_array_equal(a["label"], b["label"], err_msg=method)
        np.testing.assert_allclose(a["confidence"], b["confidence"], err_msg=method)


def test_weights_missing_ids_count_once_and_bad_weights_are_refused():
    rows = [row(0, "a", 1), row(0, "b", 0), row(0, "c", 0)]
    assert aggregate(make(rows), weights={"a": 3.0})["label"][0] == 1.0  # 3 > 1 + 1
    for bad in (-1.0, math.inf, nan):
        with pytest.raises(ConfigError, match="weights"):
            aggregate(make(rows), weights={"b": bad})


def _known_accuracy_labels(ls, accuracies) -> tuple[list, np.ndarray]:
    """(keys, labels) of the Bayes-optimal vote for two classes when the accuracies are known:
    each answer counts log(acc / (1 - acc)) towards the side it picked (negative: it is read
    backwards)."""
    item, keys, lab = ls.item_labels()
    logodds = {f"w{j}": math.log(a / (1 - a)) for j, a in enumerate(accuracies)}
    score = np.zeros(len(keys))
    np.add.at(score, item, [logodds[a] * (1 if y == 1 else -1) for a, y in zip(ls.annotator_id, lab)])
    return keys, (score > 0).astype(float)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dawid_skene_recovers_planted_annotator_accuracies(seed):
    planted = [0.95, 0.8, 0.65, 0.55, 0.2]
    ls, truth = _synthetic(planted, 400, [0.0, 1.0], seed=seed)
    ds, maj = aggregate(ls, "dawid_skene"), aggregate(ls, "majority")
    keys, best = _known_accuracy_labels(ls, planted)
    assert keys == ds["keys"]
    # Without being told the accuracies, DS is within 2 points of the vote that knows them.
    assert label_error(ds["label"], truth) <= label_error(best, truth) + 0.02
    assert label_error(ds["label"], truth) < label_error(maj["label"], truth)
    # Each annotator's agreement with the Dawid-Skene labels estimates its planted accuracy.
    labels = dict(zip(ds["keys"], ds["label"]))
    for j, acc in enumerate(planted):
        mine = ls.subset(ls.annotator_id == f"w{j}")
        item, keys, lab = mine.item_labels()
        agree = np.mean([lab[r] == labels[keys[item[r]]] for r in range(len(mine))])
        assert abs(agree - acc) < 0.08, (j, agree, acc)
