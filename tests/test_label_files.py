"""The one reader of label files (rlhf_jax.labels.label_files): suffixes, JSONL lines with file:line
in every error, Parquet, and the three readers that use it agreeing on a file's errors."""
from __future__ import annotations

import json
import pickle

import pytest

from rlhf_jax.errors import LabelFileError
from rlhf_jax.labels import label_files, label_set_io, v1_files
from rlhf_jax.labels.label_appender import LabelAppender
from rlhf_jax.labels.label_set_checks import FORMAT

ANNOTATORS = {"me": {"source": "real", "kind": "human"}}


def v2_row(start_b=4):
    return {"episode_id_a": "ep-0", "start_a": 0, "length_a": 8, "episode_id_b": "ep-1",
            "start_b": start_b, "length_b": 8, "label": 1.0, "annotator_id": "me",
            "confidence": 1.0, "timestamp": 1.0, "seconds": 2.0, "interface_version": "t",
            "gold": False, "gold_label": None, "rubric": None}


def v2_file(path, rows, extra_text=""):
    header = {"format": FORMAT, "length": 8, "annotators": ANNOTATORS, "meta": {}}
    path.write_text("".join(json.dumps(x) + "\n" for x in [header, *rows]) + extra_text)
    return str(path)


@pytest.mark.parametrize("name,kind", [("a.jsonl", "jsonl"), ("a.JSON", "jsonl"),
                                       ("a.parquet", "parquet"), ("d/a.pq", "parquet")])
def test_file_kind_by_suffix(name, kind):
    assert label_files.file_kind(name) == kind


def test_open_label_file_checks_the_suffix_before_existence(tmp_path):
    with pytest.raises(LabelFileError, match=r"field 'file name': expected a \.jsonl or \.parquet "
                                             r"suffix, got '\.pkl'"):
        label_files.open_label_file(tmp_path / "missing.pkl")
    with pytest.raises(LabelFileError, match=r"missing\.jsonl: field 'file': expected an existing "
                                             r"label file, got no such file"):
        label_files.open_label_file(tmp_path / "missing.jsonl")
    (tmp_path / "there.jsonl").write_text("{}\n")
    assert label_files.open_label_file(tmp_path / "there.jsonl") == (str(tmp_path / "there.jsonl"),
                                                                      "jsonl")


def test_jsonl_lines_are_numbered_and_blank_lines_skipped(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_bytes(b'{"a": 1}\n\n  \n[2, "\xc3\xbc"]\r\n"s"')  # no final newline on the last line
    assert list(label_files.iter_jsonl(str(p))) == [(1, {"a": 1}), (4, [2, "ü"]), (5, "s")]
    assert label_files.read_jsonl(str(p)) == ([{"a": 1}, [2, "ü"], "s"], [1, 4, 5])


@pytest.mark.parametrize("bad,got", [
    (b"{not json", r"invalid JSON \(Expecting property name"),
    (b'{"c": NaN}', r"invalid JSON \(non-standard JSON constant NaN\)"),
    (b'{"c": -Infinity}', r"invalid JSON \(non-standard JSON constant -Infinity\)"),
    (b'{"a": "\xff"}', r"expected UTF-8 JSON text, got undecodable bytes \(invalid start byte\)"),
])
def test_every_jsonl_error_names_file_and_line(tmp_path, bad, got):
    p = tmp_path / "x.jsonl"
    p.write_bytes(b'{"a": 1}\n\n' + bad + b"\n{}\n")
    with pytest.raises(LabelFileError, match=rf"x\.jsonl:3: field 'record': .*{got}"):
        label_files.read_jsonl(str(p))
    # Lazily: the good line before is yielded before the error.
    it = label_files.iter_jsonl(str(p))
    assert next(it) == (1, {"a": 1})


def test_parquet_errors(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = str(tmp_path / "t.parquet")
    pq.write_table(pa.table({"x": [1, 2]}), path)
    assert label_files.read_parquet(path).to_pylist() == [{"x": 1}, {"x": 2}]

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))
    (tmp_path / "evil.parquet").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(LabelFileError, match=r"evil\.parquet: field 'file': expected a Parquet file"):
        label_files.read_parquet(str(tmp_path / "evil.parquet"))


def test_parse_json_names_where_and_field():
    assert label_files.parse_json(b'{"q": 0.5}', "w", "rubric", "an object") == {"q": 0.5}
    with pytest.raises(LabelFileError, match=r"^p:row 3: field 'teacher': expected a JSON object, "
                                             r"got invalid JSON"):
        label_files.parse_json('{"beta": Infinity}', "p:row 3", "teacher", "a JSON object")


def test_both_formats_and_the_appender_report_a_bad_line_alike(tmp_path):
    # The same unparseable third line, read as a label set, as a v1 file and by a resuming appender.
    path = v2_file(tmp_path / "l.jsonl", [v2_row()], extra_text='{"label": NaN}\n')
    expected = r"l\.jsonl:3: field 'record': expected one JSON object per line, got invalid JSON"
    with pytest.raises(LabelFileError, match=expected):
        label_set_io.read_label_set(path)
    with pytest.raises(LabelFileError, match=expected):
        LabelAppender(path, length=8, annotators=ANNOTATORS)
    v1 = {k: v for k, v in v2_row().items() if k in v1_files.FIELDS} | {"source": "real"}
    (tmp_path / "v1.jsonl").write_text(json.dumps(v1) + "\n\n" + '{"label": NaN}\n')
    with pytest.raises(LabelFileError, match=r"v1\.jsonl:3: field 'record': .*invalid JSON"):
        v1_files.read_labels(str(tmp_path / "v1.jsonl"))


def test_appender_resume_names_the_line_of_a_bad_row(tmp_path):
    path = v2_file(tmp_path / "l.jsonl", [v2_row(), dict(v2_row(8), confidence=3.0)])
    with pytest.raises(LabelFileError, match=r"l\.jsonl:3: field 'confidence': expected a number"):
        LabelAppender(path, length=8, annotators=ANNOTATORS)
    (tmp_path / "blank.jsonl").write_text("\n\n")
    with pytest.raises(LabelFileError, match=r"blank\.jsonl:1: field 'header': expected the "
                                             r"label-set header line, got no JSON line"):
        LabelAppender(str(tmp_path / "blank.jsonl"), length=8, annotators=ANNOTATORS)
    good = v2_file(tmp_path / "g.jsonl", [v2_row(), v2_row(8)])
    appender = LabelAppender(good, length=8, annotators=ANNOTATORS)
    assert [r["start_b"] for r in appender.rows()] == [4, 8]
    appender.close()


def test_appender_keeps_a_complete_last_row_that_lacks_its_newline(tmp_path, capsys):
    # An editor or `cat a b` leaves the last row without "\n": it is a label and must survive resume.
    rows = [v2_row(), v2_row(8)]
    path = v2_file(tmp_path / "l.jsonl", rows)
    with open(path, "rb+") as f:
        f.truncate(len(f.read()) - 1)
    appender = LabelAppender(path, length=8, annotators=ANNOTATORS)
    assert [r["start_b"] for r in appender.rows()] == [4, 8] and appender.completed_last_line
    assert appender.dropped_partial == b""
    appender.append(v2_row(12))
    appender.close()
    assert [int(r) for r in label_set_io.read_label_set(path).start_b] == [4, 8, 12]
    assert not (tmp_path / "l.jsonl.torn").exists()


def test_appender_moves_a_torn_last_line_aside_and_reports_it(tmp_path, capsys):
    path = v2_file(tmp_path / "l.jsonl", [v2_row()], extra_text='{"annotator_id": "me", "conf')
    appender = LabelAppender(path, length=8, annotators=ANNOTATORS)
    appender.close()
    assert appender.dropped_partial == b'{"annotator_id": "me", "conf'
    assert (tmp_path / "l.jsonl.torn").read_bytes() == b'{"annotator_id": "me", "conf\n'
    assert "moved a torn last line" in capsys.readouterr().err
    assert len(label_set_io.read_label_set(path)) == 1
