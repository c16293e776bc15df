"""Label-set row and header checks (rlhf_jax.labels.label_set_checks), called directly: a row
failing each check, label scales, duplicate collapsing, headers and the order checks run in."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rlhf_jax.errors import LabelFileError, SegmentError
from rlhf_jax.labels import label_set_checks as checks

W = "f.jsonl:7"
ANNOTATORS = {"alice": {"source": "real", "kind": "human"}, "bot": {"source": "sim", "kind": "ai"}}
HEADER = {"length": 8, "annotators": ANNOTATORS, "meta": {}}


def row(**kw):
    r = {"episode_id_a": "ep-0", "start_a": 0, "length_a": 8, "episode_id_b": "ep-1", "start_b": 4,
         "length_b": 8, "label": 1.0, "annotator_id": "alice", "confidence": 0.9,
         "timestamp": 1767323045.25, "seconds": 3.5, "interface_version": "web-2",
         "gold": False, "gold_label": None, "rubric": None}
    r.update(kw)
    return r


def without(*fields):
    return {k: v for k, v in row().items() if k not in fields}


def test_a_good_row_is_normalised_and_optional_fields_filled_in():
    out = checks.validate_row(row(start_a=np.int64(4), confidence=np.float32(0.5), label=1,
                                  timestamp="2026-01-02T03:04:05+00:00"), W, 8)
    assert out["start_a"] == 4 and type(out["start_a"]) is int
    assert type(out["confidence"]) is float and type(out["label"]) is float
    assert out["timestamp"] == 1767323045.0
    bare = checks.validate_row(without(*checks.OPTIONAL_DEFAULTS), W, 8)
    assert {k: bare[k] for k in checks.OPTIONAL_DEFAULTS} == checks.OPTIONAL_DEFAULTS
    nulls = checks.validate_row(row(**{k: None for k in checks.OPTIONAL_DEFAULTS}), W, 8)
    assert nulls == bare
    assert checks.validate_row(row(label="skip"), W, 8)["label"] == "skip"
    gold = checks.validate_row(row(gold=np.bool_(True), gold_label=0, rubric={"q": 0.5}), W, 8)
    assert gold["gold"] is True and gold["gold_label"] == 0.0 and gold["rubric"] == {"q": 0.5}


@pytest.mark.parametrize("rec,field,match", [
    ([1, 2], "record", "expected a JSON object, got list"),
    (row(color="red"), "color", "expected only the fields of a label-set row"),
    (without("episode_id_a"), "episode_id_a", "expected a str, got missing"),
    (row(annotator_id=None), "annotator_id", "expected a str, got missing"),
    (row(start_a=4.0), "start_a", "expected a int, got 4.0"),
    (row(start_b=True), "start_b", "expected a int, got True"),
    (row(confidence="high"), "confidence", "expected a float, got 'high'"),
    (row(timestamp="yesterday"), "timestamp", "expected unix seconds or an ISO-8601 string"),
    (row(interface_version=2), "interface_version", "expected a str, got 2"),
    (without("label"), "label", "expected one of 0, 0.5, 1 or 'skip', got missing"),
    (row(label=0.3), "label", "expected one of 0, 0.5, 1 or 'skip', got 0.3"),
    (row(label=True), "label", "got True"),
    (row(confidence=1.5), "confidence", r"expected a number in \[0, 1\], got 1.5"),
    (row(confidence=-0.1), "confidence", r"expected a number in \[0, 1\]"),
    (row(timestamp=math.inf), "timestamp", "expected a finite number, got inf"),
    (row(seconds=-1.0), "seconds", "expected a finite number >= 0, got -1.0"),
    (row(seconds=math.inf), "seconds", "expected a finite number >= 0, got inf"),
    (row(start_a=-1), "start_a", "expected >= 0, got -1"),
    (row(start_b=-4), "start_b", "expected >= 0, got -4"),
    (row(length_a=4), "length_a", "expected the header length 8, got 4"),
    (row(length_b=16), "length_b", "expected the header length 8, got 16"),
    (row(gold="yes"), "gold", "expected a bool, got 'yes'"),
    (row(gold=True, gold_label=2), "gold_label", "expected one of 0, 0.5, 1 or null, got 2"),
    (row(gold=True), "gold_label", "expected the gold answer .* of a gold row, got None"),
    (row(gold_label=1), "gold_label", "expected null on a row that is not gold, got 1"),
    (row(rubric="good"), "rubric", "expected an object"),
    (row(rubric={"q": 0.3}), r"rubric\['q'\]", "expected one of 0, 0.5, 1 under a str key"),
    (row(rubric={"q": np.float32(1.0)}), r"rubric\['q'\]", "got np.float32"),
])
def test_a_row_failing_each_check(rec, field, match):
    with pytest.raises(LabelFileError, match=rf"^f\.jsonl:7: field '{field}': .*{match}"):
        checks.validate_row(rec, W, 8)


@pytest.mark.parametrize("labels,bad,match", [
    ([1, 0, -1, 0], 2, r"expected the unit label scale.*got -1: this file uses the signed "
                       r"\(-1/0/1\) label scale"),
    ([75, 0, 100], 0, r"got 75: this file uses the percent \(0-100\) label scale"),
    (["a", "b", "equal"], 0, r"got 'a': this file uses the letters"),
    ([1, 0.5, 1, -1], 3, r"expected one label scale per file, that of row 1 \(0\.5, the unit "
                         r"\(0/0\.5/1\) scale\), got -1, the signed \(-1/0/1\) scale: mixed label scales"),
    ([1, "left"], 1, r"that of row 0 \(1, the unit.*got 'left', the letters.*mixed label scales"),
])
def test_label_scales(labels, bad, match):
    wheres = [f"row {i}" for i in range(len(labels))]
    with pytest.raises(LabelFileError, match=rf"^row {bad}: field 'label': .*{match}"):
        checks.check_label_scale(labels, wheres)


def test_unit_labels_pass_and_skips_or_unscaled_values_are_left_to_the_row_check():
    checks.check_label_scale([0, 0.5, 1.0, "skip", None, 0.3, math.nan], ["w"] * 7)
    with pytest.raises(LabelFileError, match="signed"):
        checks.check_label_scale([1, "skip", -1], ["w"] * 3)


def test_duplicates_collapse_to_the_first_also_when_flipped():
    flipped = row(episode_id_a="ep-1", start_a=4, episode_id_b="ep-0", start_b=0, label=0.0,
                  gold=True, gold_label=1.0, rubric={"q": 0.0})
    first = row(gold=True, gold_label=0.0, rubric={"q": 1.0})
    other_annotator = row(annotator_id="bot", label=0.0)
    other_pair = row(start_b=8, label=0.5)
    rows = [first, other_annotator, dict(first), flipped, other_pair]
    assert checks.collapse_duplicates(rows, [f"w{i}" for i in range(5)]) == [0, 1, 4]


@pytest.mark.parametrize("change,field", [
    ({"label": 0.0}, "label"), ({"confidence": 0.5}, "confidence"),
    ({"gold": True, "gold_label": 1.0}, "gold"), ({"rubric": {"q": 1.0}}, "rubric"),
])
def test_conflicting_duplicates_name_both_rows(change, field):
    rows = [row(), row(label="skip", annotator_id="bot"), row(**change)]
    with pytest.raises(LabelFileError, match=rf"^w2: field '{field}': expected .* as given by w0 "
                                             r"\(same pair, same annotator 'alice'\): conflicting"):
        checks.collapse_duplicates(rows, ["w0", "w1", "w2"])
    # The same answer given for (b, a) is a duplicate; the same label read from the other side
    # is a conflict.
    mirror = row(episode_id_a="ep-1", start_a=4, episode_id_b="ep-0", start_b=0)
    with pytest.raises(LabelFileError, match=r"w1: field 'label': expected 0\.0 as given by w0"):
        checks.collapse_duplicates([row(), mirror], ["w0", "w1"])


def test_a_good_header_is_normalised():
    h = checks.validate_header({"format": checks.FORMAT, **HEADER, "length": np.int64(8)}, W)
    assert h == HEADER and type(h["length"]) is int
    assert checks.validate_header({"format": checks.FORMAT, "length": 8, "annotators": {}}, W)["meta"] == {}


@pytest.mark.parametrize("change,match", [
    ({"format": None}, r"field 'format': expected 'rlhf_jax\.label_set/1' or 'rlhf_jax\.label_set/2', got missing"),
    ({"format": "rlhf_jax.label_set/9"}, r"field 'format': .*got 'rlhf_jax\.label_set/9'"),
    ({"extra": 1}, r"field 'extra': expected only header fields"),
    ({"length": None}, r"field 'length': expected the segment length, an int >= 1, got missing"),
    ({"length": 0}, r"field 'length': .*got 0"),
    ({"length": True}, r"field 'length': .*got True"),
    ({"annotators": ["alice"]}, r"field 'annotators': expected an object.*got list"),
    ({"annotators": {"alice": "human"}}, r"field 'annotators\['alice'\]': expected an object"),
    ({"annotators": {"alice": {"source": "robot", "kind": "human"}}},
     r"field 'annotators\['alice'\]\.source': expected one of \('sim', 'real'\), got 'robot'"),
    ({"annotators": {"alice": {"source": "real"}}},
     r"field 'annotators\['alice'\]\.kind': expected one of .*'ai'\), got missing"),
    ({"meta": [1]}, r"field 'meta': expected an object, got list"),
])
def test_bad_headers(change, match):
    header = {k: v for k, v in {"format": checks.FORMAT, **HEADER, **change}.items() if v is not None}
    with pytest.raises(LabelFileError, match=rf"^f\.jsonl:7: {match}"):
        checks.validate_header(header, W)
    with pytest.raises(LabelFileError, match=r"field 'header': expected a JSON object, got list"):
        checks.validate_header([HEADER], W)


def test_validate_rows_checks_the_scale_first_then_fields_then_annotators():
    wheres = ["w0", "w1", "w2"]
    # Row 1's bad confidence comes first in the file, but a wrong scale says more about the file.
    with pytest.raises(LabelFileError, match=r"^w2: field 'label': .*signed"):
        checks.validate_rows([row(), row(confidence=2.0), row(start_b=8, label=-1)], wheres, HEADER)
    with pytest.raises(LabelFileError, match=r"^w1: field 'confidence'"):
        checks.validate_rows([row(), row(confidence=2.0), row(start_b=8)], wheres, HEADER)
    with pytest.raises(LabelFileError, match=r"^w1: field 'annotator_id': expected an id of the "
                                             r"header's annotators table \['alice', 'bot'\], got 'eve'"):
        checks.validate_rows([row(), row(annotator_id="eve")], wheres[:2], HEADER)
    raw = [row(start_a=np.int64(0)), row(annotator_id="bot", label="skip"), row()]
    assert checks.validate_rows(raw, wheres, HEADER) == [0, 1]
    assert type(raw[0]["start_a"]) is int  # validated in place


def test_number_test_and_error_factory():
    assert all(checks.is_number(v) for v in (1, 1.5, np.int32(2), np.float32(0.5), math.nan))
    assert not any(checks.is_number(v) for v in (True, np.bool_(False), "1", None))
    err = checks.field_error("p:3", "start_a", ">= 0", -1, SegmentError)
    assert isinstance(err, SegmentError) and str(err) == "p:3: field 'start_a': expected >= 0, got -1"
    assert type(checks.field_error("p", "f", "x", "y")) is LabelFileError
