"""Label-set files: lossless JSONL/Parquet round trip, v1 files, and errors naming file:line."""
from __future__ import annotations

import json
import os
import pickle
import random
import types

import numpy as np
import pytest

from rlhf_jax.labels import label_set_io as IO
from rlhf_jax.labels.label_set_checks import FORMAT, OPTIONAL_DEFAULTS
from rlhf_jax.labels import label_sets as LS
from rlhf_jax.labels import v1_files as V1
from rlhf_jax.errors import LabelFileError, SegmentError, UnknownEpisodeError

ANNOTATORS = {
    "alice": {"source": "real", "kind": "human", "teacher": None},
    "bot-ü": {"source": "sim", "kind": "ai", "teacher": {"beta": "inf", "noise": [0.1, 0.2]}},
    "专家": {"source": "real", "kind": "expert", "teacher": None, "note": "ok"},
}


def row(ea="ep-0", sa=0, eb="ep-1", sb=4, label=1.0, aid="alice", **kw):
    r = {"episode_id_a": ea, "start_a": sa, "length_a": 8, "episode_id_b": eb, "start_b": sb,
         "length_b": 8, "label": label, "annotator_id": aid, "confidence": 0.9,
         "timestamp": 1767323045.25, "seconds": 3.5, "interface_version": "web-2",
         "gold": False, "gold_label": None, "rubric": None}
    r.update(kw)
    return r


ROWS = [
    row(),
    row(label="skip", aid="bot-ü", seconds=0.0),
    row("ep-1", 0, "ep-2", 8, 0.5, "专家", gold=True, gold_label=0.5),
    row("ep-2", 4, "ep-0", 8, 0.0, rubric={"safety": 1.0, "speed": 0.5}),
    row("ep-1", 4, "ep-0", 0, 0.0, "专家", confidence=0.25),  # (a, b) reversed vs ROWS[0]
    row("ep-2", 0, "ep-1", 8, 1.0, "专家", gold=True, gold_label=0.0, rubric={"q": 0.0}),
]
HEADER = {"format": FORMAT, "length": 8, "annotators": ANNOTATORS, "meta": {}}


def label_set(rows=ROWS, annotators=ANNOTATORS, meta=None):
    return LS.from_records(rows, annotators, {"run": "pilot-3", "n": [1, 2]} if meta is None else meta)


def write_jsonl(path, rows, header=HEADER):
    lines = ([] if header is None else [header]) + list(rows)
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return str(path)


def assert_same(a: LS.LabelSet, b: LS.LabelSet):
    assert a.length == b.length
    for f in LS.ROW_FIELDS:
        if f == "rubric":
            assert a.rubric == b.rubric
        else:
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
            assert getattr(a, f).dtype == getattr(b, f).dtype, f
    assert a.annotators == b.annotators
    strip = lambda m: {k: v for k, v in m.items() if k not in IO.READER_META}
    assert strip(a.meta) == strip(b.meta)
    assert a.content_hash() == b.content_hash()


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_round_trip(tmp_path, suffix):
    ls = label_set()
    path = IO.write_label_set(tmp_path / "sub" / f"set.{suffix}", ls)
    back = IO.read_label_set(path)
    assert_same(ls, back)
    assert np.isnan(back.label[1]) and back.skipped.sum() == 1
    assert back.meta["path"] == path
    assert back.meta["lines"] == (list(range(2, 8)) if suffix == "jsonl" else list(range(1, 7)))
    assert [f for f in os.listdir(tmp_path / "sub")] == [f"set.{suffix}"]  # no temp files left
    again = IO.write_label_set(tmp_path / f"again.{suffix}", back)  # reader meta is not written
    assert_same(ls, IO.read_label_set(again))
    if suffix == "jsonl":
        assert open(path, "rb").read() == open(again, "rb").read()
        header = json.loads(open(path).readline())
        assert header == {**HEADER, "meta": {"run": "pilot-3", "n": [1, 2]}}


def test_parquet_layout(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    table = pq.read_table(IO.write_label_set(tmp_path / "s.parquet", label_set()))
    assert json.loads(table.schema.metadata[IO.PARQUET_KEY])["annotators"] == ANNOTATORS
    assert table.column("skip").to_pylist()[:2] == [False, True]
    assert table.column("label").to_pylist()[1] is None
    assert json.loads(table.column("rubric").to_pylist()[3]) == {"safety": 1.0, "speed": 0.5}


def test_hash_ignores_row_order_and_sees_labels(tmp_path):
    shuffled = list(ROWS)
    random.Random(0).shuffle(shuffled)
    a = IO.read_label_set(write_jsonl(tmp_path / "a.jsonl", ROWS))
    b = IO.read_label_set(write_jsonl(tmp_path / "b.jsonl", shuffled))
    assert a.content_hash() == b.content_hash() == label_set().content_hash()
    changed = [dict(ROWS[0], label=0.5)] + ROWS[1:]
    assert IO.read_label_set(write_jsonl(tmp_path / "c.jsonl", changed)).content_hash() != a.content_hash()


def test_optional_fields_and_iso_timestamp(tmp_path):
    r = {k: v for k, v in row(timestamp="2026-01-02T03:04:05+00:00").items()
         if k not in OPTIONAL_DEFAULTS}
    ls = IO.read_label_set(write_jsonl(tmp_path / "t.jsonl", [r]))
    assert ls.timestamp[0] == 1767323045.0 and ls.seconds[0] == 0.0 and not ls.gold[0]
    assert ls.rubric == [None] and np.isnan(ls.gold_label[0])


def test_exact_duplicates_collapse(tmp_path):
    # The same answer again (also written as (b, a) with the label flipped): kept once.
    dup = dict(ROWS[0], episode_id_a="ep-1", start_a=4, episode_id_b="ep-0", start_b=0, label=0.0)
    ls = IO.read_label_set(write_jsonl(tmp_path / "d.jsonl", ROWS + [dict(ROWS[3]), dup]))
    assert len(ls) == len(ROWS) and ls.meta["lines"] == list(range(2, 8))
    assert ls.content_hash() == label_set().content_hash()
    written = IO.read_label_set(IO.write_label_set(tmp_path / "w.jsonl", LS.concat([label_set()] * 2)))
    assert len(written) == len(ROWS)


def test_v1_files_converted(tmp_path):
    teacher = {"beta": "inf", "eps": 0.0}
    v1 = [{k: v for k, v in row(label=lab, aid=aid).items() if k in V1.FIELDS}
          | {"source": src, "teacher": t}
          for lab, aid, src, t in [(1.0, "sim-0", "sim", teacher), (0.5, "bob", "real", None),
                                   (0.0, "sim-0", "sim", teacher)]]
    v1[2].update(episode_id_a="ep-2")
    for suffix in ("jsonl", "parquet"):
        ls = IO.read_label_set(V1.write_labels(tmp_path / f"v1.{suffix}", v1))
        assert ls.annotators == {"sim-0": {"source": "sim", "kind": "human", "teacher": teacher},
                                 "bob": {"source": "real", "kind": "human", "teacher": None}}
        np.testing.assert_array_equal(ls.label, [1.0, 0.5, 0.0])
        assert list(ls.annotator_id) == ["sim-0", "bob", "sim-0"] and ls.length == 8
        assert not ls.gold.any() and (ls.seconds == 0).all() and ls.meta["lines"] == [1, 2, 3]
        back = IO.read_label_set(IO.write_label_set(tmp_path / f"v2.{suffix}", ls))
        assert back.content_hash() == ls.content_hash()
    bad = dict(v1[2], source="real")
    with pytest.raises(LabelFileError, match=r"v1\.jsonl:2: field 'source': expected 'sim' as in "
                                             r".*v1\.jsonl:1 \(one provenance per annotator_id 'sim-0'\)"):
        IO.read_label_set(write_jsonl(tmp_path / "v1.jsonl", [v1[0], bad], header=None))


@pytest.mark.parametrize("field,value,match", [
    ("label", 0.3, r"f\.jsonl:3: field 'label': expected one of 0, 0\.5, 1 or 'skip', got 0\.3"),
    ("label", True, r":3: field 'label': expected one of 0, 0\.5, 1 or 'skip', got True"),
    ("confidence", 1.5, r":3: field 'confidence': expected a number in \[0, 1\], got 1\.5"),
    ("timestamp", "yesterday", r":3: field 'timestamp': expected unix seconds or an ISO"),
    ("seconds", -1.0, r":3: field 'seconds': expected a finite number >= 0, got -1\.0"),
    ("start_b", -4, r":3: field 'start_b': expected >= 0, got -4"),
    ("start_a", 4.0, r":3: field 'start_a': expected a int, got 4\.0"),
    ("length_b", 4, r":3: field 'length_b': expected the header length 8, got 4"),
    ("gold", "yes", r":3: field 'gold': expected a bool, got 'yes'"),
    ("gold_label", 2, r":3: field 'gold_label': expected one of 0, 0\.5, 1 or null, got 2"),
    ("rubric", {"q": 0.3}, r":3: field 'rubric\['q'\]': expected one of 0, 0\.5, 1"),
    ("rubric", "good", r":3: field 'rubric': expected an object"),
    ("annotator_id", None, r":3: field 'annotator_id': expected a str, got missing"),
    ("color", "red", r":3: field 'color': expected only the fields"),
])
def test_bad_field_values(tmp_path, field, value, match):
    bad = dict(ROWS[1], **{field: value})
    with pytest.raises(LabelFileError, match=match):
        IO.read_label_set(write_jsonl(tmp_path / "f.jsonl", [ROWS[0], bad]))


def test_label_scale_checked_in_both_formats(tmp_path):
    # The scale rules themselves are tested in test_label_set_checks; here: both readers run them.
    v2 = [row(sa=4 * i, label=lab) for i, lab in enumerate([1, 0, -1])]
    v1 = [{k: v for k, v in r.items() if k in V1.FIELDS} | {"source": "real", "teacher": None}
          for r in v2]
    for rows, header, line in ((v2, HEADER, 4), (v1, None, 3)):
        with pytest.raises(LabelFileError, match=rf"s\.jsonl:{line}: field 'label': .*got -1: this "
                                                 r"file uses the signed \(-1/0/1\) label scale"):
            IO.read_label_set(write_jsonl(tmp_path / "s.jsonl", rows, header=header))


def test_conflicting_duplicates(tmp_path):
    flipped_same = dict(ROWS[0], episode_id_a="ep-1", start_a=4, episode_id_b="ep-0", start_b=0)
    with pytest.raises(LabelFileError, match=r"c\.jsonl:4: field 'label': expected 0\.0 as given by "
                                             r".*c\.jsonl:2 \(same pair, same annotator 'alice'\): "
                                             r"conflicting duplicate rows, got 1\.0"):
        IO.read_label_set(write_jsonl(tmp_path / "c.jsonl", [ROWS[0], ROWS[1], flipped_same]))
    with pytest.raises(LabelFileError, match=r":3: field 'confidence': expected 0\.9 as given by .*:2"):
        IO.read_label_set(write_jsonl(tmp_path / "c.jsonl", [ROWS[0], dict(ROWS[0], confidence=0.5)]))


def test_annotators_and_gold(tmp_path):
    with pytest.raises(LabelFileError, match=r"a\.jsonl:3: field 'annotator_id': expected an id of "
                                             r"the header's annotators table .*got 'mallory'"):
        IO.read_label_set(write_jsonl(tmp_path / "a.jsonl", [ROWS[0], dict(ROWS[1], annotator_id="mallory")]))
    with pytest.raises(LabelFileError, match=r"g\.jsonl:2: field 'gold_label': expected the gold "
                                             r"answer .* of a gold row, got None"):
        IO.read_label_set(write_jsonl(tmp_path / "g.jsonl", [dict(ROWS[2], gold_label=None)]))
    with pytest.raises(LabelFileError, match=r"g\.jsonl:2: field 'gold_label': expected null on a "
                                             r"row that is not gold, got 1"):
        IO.read_label_set(write_jsonl(tmp_path / "g.jsonl", [dict(ROWS[0], gold_label=1)]))


@pytest.mark.parametrize("change,match", [  # every header check: test_label_set_checks
    ({"format": None}, r"h\.jsonl:1: field 'format': expected 'rlhf_jax\.label_set/1' or 'rlhf_jax\.label_set/2', got missing"),
    ({"annotators": {"alice": {"source": "robot", "kind": "human"}}},
     r":1: field 'annotators\['alice'\]\.source': expected one of \('sim', 'real'\), got 'robot'"),
])
def test_bad_headers(tmp_path, change, match):
    header = {k: v for k, v in {**HEADER, **change}.items() if v is not None}
    with pytest.raises(LabelFileError, match=match):
        IO.read_label_set(write_jsonl(tmp_path / "h.jsonl", [ROWS[0]], header=header))


def test_empty_files_and_garbage(tmp_path):
    for rows, header in (([], HEADER), ([], None)):
        with pytest.raises(LabelFileError, match=r"e\.jsonl: field 'rows': expected at least one"):
            IO.read_label_set(write_jsonl(tmp_path / "e.jsonl", rows, header=header))
    (tmp_path / "n.jsonl").write_text(json.dumps(HEADER) + "\n" + json.dumps(dict(ROWS[0]))[:-1]
                                      .replace("0.9", "NaN") + "}\n")
    with pytest.raises(LabelFileError, match=r"n\.jsonl:2: field 'record'.*invalid JSON"):
        IO.read_label_set(str(tmp_path / "n.jsonl"))

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))
    for name in ("evil.jsonl", "evil.parquet"):
        (tmp_path / name).write_bytes(pickle.dumps(Boom()))
        with pytest.raises(LabelFileError):
            IO.read_label_set(str(tmp_path / name))


def test_bad_parquet_row_named(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = IO.write_label_set(tmp_path / "p.parquet", label_set())
    table = pq.read_table(path)
    labels = table.column("label").to_pylist()
    labels[2] = 0.3
    table = table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels))
    pq.write_table(table, path)
    with pytest.raises(LabelFileError, match=r"p\.parquet:3: field 'label': expected one of 0, 0\.5"):
        IO.read_label_set(path)


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_writer_validates_and_leaves_no_file(tmp_path, suffix):
    cases = [
        (label_set(annotators={k: v for k, v in ANNOTATORS.items() if k != "专家"}),
         r"\(row 3\): field 'annotator_id': .*got '专家'"),
        (label_set([row(label=-1.0), row(sa=8, label=0.0)]), r"\(row 1\): field 'label'.*signed"),
        (label_set([ROWS[0], dict(ROWS[0], label=0.0)]), r"\(row 2\): field 'label'.*conflicting"),
        (label_set(meta={"when": (1, 2)}), r"\(header\): field 'meta': expected JSON values"),
        (label_set(annotators={**ANNOTATORS, "x": {"source": "sim", "kind": "ai", "w": np.int64(3)}}),
         r"\(header\): field 'annotators': expected JSON values.*TypeError"),
    ]
    for ls, match in cases:
        with pytest.raises(LabelFileError, match=match):
            IO.write_label_set(tmp_path / f"out.{suffix}", ls)
    assert os.listdir(tmp_path) == []


def fake_segments(length=8):
    # Three 20-step episodes cut every 4 steps: starts 0, 4, 8, 12 (ep-2 is shorter: 0, 4, 8).
    starts = [(0, s) for s in range(0, 13, 4)] + [(1, s) for s in range(0, 13, 4)] + [(2, s) for s in (0, 4, 8)]
    return types.SimpleNamespace(episode_ids=["ep-0", "ep-1", "ep-2"],
                                 episode_index=np.array([e for e, _ in starts]),
                                 start=np.array([s for _, s in starts]), length=length)


def test_check_pairs_exist(tmp_path):
    def check(rows, name="k.jsonl", segments=None):
        IO.check_pairs_exist(IO.read_label_set(write_jsonl(tmp_path / name, rows)),
                             segments or fake_segments())
    check(ROWS)
    with pytest.raises(UnknownEpisodeError, match=r"k\.jsonl:3: field 'episode_id_b': expected an "
                                                  r"episode_id of the dataset \(3 episodes\), got 'ep-9'"):
        check([ROWS[0], dict(ROWS[1], episode_id_b="ep-9")])
    with pytest.raises(SegmentError, match=r"k\.jsonl:2: field 'start_a': expected the start of a "
                                           r"segment of episode 'ep-0' \(its segments start at "
                                           r"\[0, 4, 8, 12\]\), got 3"):
        check([dict(ROWS[0], start_a=3)])
    with pytest.raises(SegmentError, match=r":3: field 'start_b': .*'ep-2'.*\[0, 4, 8\]\), got 12"):
        check([ROWS[0], row("ep-0", 0, "ep-2", 12, 1.0)])
    with pytest.raises(SegmentError, match=r"k\.jsonl:2: field 'length_a': expected the dataset's "
                                           r"segment length 4, got 8"):
        check(ROWS, segments=fake_segments(length=4))
    with pytest.raises(SegmentError, match=r"label set \(row 1\): field 'start_a'"):
        IO.check_pairs_exist(LS.from_records([dict(ROWS[0], start_a=1)], ANNOTATORS), fake_segments())


def test_lerobot_header_and_row_keys_round_trip_and_are_checked(tmp_path):
    import json as _json
    from rlhf_jax.errors import LabelFileError
    from rlhf_jax.labels import label_sets as LS
    rows = [{"episode_id_a": "3", "start_a": 4, "length_a": 8, "episode_id_b": "7", "start_b": 0, "length_b": 8,
             "label": 1.0, "annotator_id": "me", "confidence": 1.0, "timestamp": 1.0, "seconds": 2.0,
             "interface_version": "t", "gold": False, "gold_label": None, "rubric": None}]
    ls = LS.from_records(rows, {"me": {"source": "real", "kind": "human"}},
                         {"lerobot": {"repo_id": "lab/so100_pick", "revision": "v3.0"}})
    for suffix in ("jsonl", "parquet"):
        path = IO.write_label_set(tmp_path / f"l.{suffix}", ls)
        back = IO.read_label_set(path)
        assert back.meta["lerobot"] == {"repo_id": "lab/so100_pick", "revision": "v3.0"}
        assert back.content_hash() == ls.content_hash()
    lines = (tmp_path / "l.jsonl").read_text().splitlines()
    assert _json.loads(lines[0])["lerobot"]["repo_id"] == "lab/so100_pick"
    row = _json.loads(lines[1])
    assert (row["episode_index_a"], row["frame_index_a"], row["episode_index_b"], row["frame_index_b"]) == (3, 4, 7, 0)
    row["frame_index_b"] = 5  # disagrees with start_b
    (tmp_path / "bad.jsonl").write_text(lines[0] + "\n" + _json.dumps(row) + "\n")
    with pytest.raises(LabelFileError, match=r"bad.jsonl:2: field 'frame_index_b': expected 0, as start_b says"):
        IO.read_label_set(tmp_path / "bad.jsonl")
    v1 = _json.loads(lines[0])
    v1["format"] = "rlhf_jax.label_set/1"
    (tmp_path / "v1.jsonl").write_text(_json.dumps(v1) + "\n" + lines[1] + "\n")
    with pytest.raises(LabelFileError, match=r"v1.jsonl:1: field 'lerobot': expected no such field"):
        IO.read_label_set(tmp_path / "v1.jsonl")
