"""Label files: JSONL/Parquet round trip and validation errors naming file, line and field."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from rlhf_jax.labels import v1_files as L
from rlhf_jax.errors import DataError, LabelFileError, SegmentError, UnknownEpisodeError


@pytest.fixture(scope="module")
def records(tiny_preference_data):
    d = tiny_preference_data
    return L.pairs_to_records(d.segments, d.train.subset(np.arange(40)))


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_round_trip(tmp_path, records, tiny_episodes, tiny_preference_data, suffix):
    if suffix == "parquet":
        pytest.importorskip("pyarrow")
    path = L.write_labels(tmp_path / f"labels.{suffix}", records)
    back = L.read_labels(path)
    assert back == records
    table, pairs = L.load_label_file(path, tiny_episodes)
    d = tiny_preference_data
    sub = d.train.subset(np.arange(40))
    for side in ("a", "b"):
        mine, theirs = getattr(pairs, f"idx_{side}"), getattr(sub, f"idx_{side}")
        np.testing.assert_array_equal(table.start[mine], d.segments.start[theirs])
        np.testing.assert_array_equal(table.obs[mine], d.segments.obs[theirs])
        assert [table.episode_ids[i] for i in table.episode_index[mine]] == \
               [d.segments.episode_ids[i] for i in d.segments.episode_index[theirs]]
    np.testing.assert_array_equal(pairs.label, sub.label)
    np.testing.assert_array_equal(pairs.confidence, sub.confidence)
    assert pairs.provenance[0]["annotator_id"] == sub.provenance[0]["annotator_id"]
    assert pairs.provenance[0]["teacher"]["beta"] == "inf"
    # ... and written back unchanged.
    again = L.write_labels(tmp_path / f"again.{suffix}", L.pairs_to_records(table, pairs))
    assert L.read_labels(again) == records


def write_lines(path, recs):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return str(path)


@pytest.mark.parametrize("field,value,match", [
    ("label", 0.3, r"labels\.jsonl:2: field 'label': expected one of 0, 0\.5, 1, got 0\.3"),
    ("label", True, r":2: field 'label': expected a float"),
    ("confidence", 1.5, r":2: field 'confidence': expected a number in \[0, 1\]"),
    ("source", "robot", r":2: field 'source': expected one of \('sim', 'real'\)"),
    ("start_a", -1, r":2: field 'start_a': expected >= 0"),
    ("length_b", 3, r":2: field 'length_b': expected equal to length_a \(8\), got 3"),
    ("timestamp", "yesterday", r":2: field 'timestamp': expected unix seconds or an ISO"),
    ("color", "red", r":2: field 'color': expected only fields"),
])
def test_bad_field_values(tmp_path, records, field, value, match):
    bad = dict(records[1], **{field: value})
    path = write_lines(tmp_path / "labels.jsonl", [records[0], bad])
    with pytest.raises(LabelFileError, match=match):
        L.read_labels(path)


def test_missing_field_and_bad_json(tmp_path, records):
    bad = dict(records[0])
    del bad["annotator_id"]
    with pytest.raises(LabelFileError,
                       match=r":1: field 'annotator_id': expected a str, got missing"):
        L.read_labels(write_lines(tmp_path / "a.jsonl", [bad]))
    p = tmp_path / "b.jsonl"
    p.write_text(json.dumps(records[0]) + "\n{not json\n")
    with pytest.raises(LabelFileError, match=r"b\.jsonl:2: field 'record'.*invalid JSON"):
        L.read_labels(str(p))


def test_iso_timestamp_accepted(tmp_path, records):
    rec = dict(records[0], timestamp="2026-01-02T03:04:05+00:00")
    assert L.read_labels(write_lines(tmp_path / "t.jsonl", [rec]))[0]["timestamp"] == 1767323045.0


def test_unknown_episode_id(tmp_path, records, tiny_episodes):
    bad = dict(records[2], episode_id_b="panda-reach-nobody-00000")
    path = write_lines(tmp_path / "labels.jsonl", records[:2] + [bad])
    with pytest.raises(UnknownEpisodeError, match=r"labels\.jsonl: record 3: field 'episode_id_b'"
                                                  r".*'panda-reach-nobody-00000'"):
        L.load_label_file(path, tiny_episodes)


def test_segment_past_episode_end(tmp_path, records, tiny_episodes):
    bad = dict(records[0], start_a=15)  # 15 + 8 > 20 steps
    path = write_lines(tmp_path / "labels.jsonl", [bad])
    with pytest.raises(SegmentError,
                       match=r"record 1: field 'start_a/length_a'.*20 steps.*\[15, 23\)"):
        L.load_label_file(path, tiny_episodes)


def test_mixed_lengths_rejected(tmp_path, records, tiny_episodes):
    other = dict(records[1], length_a=4, length_b=4)
    path = write_lines(tmp_path / "labels.jsonl", [records[0], other])
    with pytest.raises(LabelFileError, match=r"record 2: field 'length_a'.*segment length 8"):
        L.load_label_file(path, tiny_episodes)


def test_never_unpickled(tmp_path, records):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))
    for name in ("evil.jsonl", "evil.parquet"):
        p = tmp_path / name
        p.write_bytes(pickle.dumps(Boom()))
        with pytest.raises(LabelFileError):
            L.read_labels(str(p))


def test_bad_suffix_and_empty_file(tmp_path):
    with pytest.raises(LabelFileError, match=r"file name.*\.jsonl or \.parquet.*'\.pkl'"):
        L.read_labels(str(tmp_path / "labels.pkl"))
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(LabelFileError, match="at least one labelled pair"):
        L.read_labels(str(tmp_path / "e.jsonl"))
    assert issubclass(LabelFileError, DataError)
