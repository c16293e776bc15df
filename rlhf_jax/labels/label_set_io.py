"""Versioned label-set files: a `LabelSet` written as JSONL or Parquet and read back losslessly.

Format "rlhf_jax.label_set/2" ("/1" files are read as they are). JSONL: a header line {"format",
"length", "annotators", "meta", optional "lerobot": {"repo_id", "revision"}} (labels of a LeRobot
dataset: its rows also carry episode_index_a/b and frame_index_a/b, written from episode_id and
start, and checked against them on read; the reader keeps the header's "lerobot" in meta),
then one line per answer in the `LabelSet.records()` layout (a skip has label "skip"). Parquet:
the rows as a table (`label` float64, null when skipped, next to a bool `skip` column; `rubric`
a JSON string), the header JSON in the Arrow schema metadata under b"rlhf_jax.label_set".
`seconds` (0), `gold` (false), `gold_label` and `rubric` (null) may be left out of a row. The
reader's bookkeeping, meta "path" and "lines" (1-based JSONL line / Parquet row of each row), is
never written. v1 files of `rlhf_jax.labels.v1_files` (no header) are read too: each annotator_id
becomes one annotators entry {"source", "kind": "human", "teacher"}; seconds 0, gold false.

Files are opened and parsed by `label_files` (the JSONL and Parquet readers the v1 format shares).
Everything is validated before anything is built or written, by `label_set_checks` (errors name
file:line and field; conflicting duplicate rows are refused, identical ones collapsed).
"""
from __future__ import annotations

import json
import math
import os
import pathlib
import tempfile
from typing import Any, Callable, Mapping

import numpy as np

from rlhf_jax.labels import label_files
from rlhf_jax.labels import label_sets as LS
from rlhf_jax.labels import v1_files as V1
from rlhf_jax.errors import SegmentError, UnknownEpisodeError
from rlhf_jax.labels.label_set_checks import (
    FORMAT, HEADER_FIELDS, TYPED_FIELDS, check_label_scale, collapse_duplicates, field_error,
    LEROBOT_ROW, is_number, lerobot_keys, validate_header, validate_rows)

PARQUET_KEY = b"rlhf_jax.label_set"
READER_META = ("path", "lines")


def _from_v1(objs: list, wheres: list[str]) -> tuple[list[dict], dict, list[int]]:
    """v1 records -> (rows in records() layout, annotators table, kept rows)."""
    check_label_scale([o.get("label") if isinstance(o, Mapping) else None for o in objs], wheres)
    recs = [V1.validate_record(o, w) for o, w in zip(objs, wheres)]
    length, annotators, first, rows = recs[0]["length_a"], {}, {}, []
    for r, where in zip(recs, wheres):
        if r["length_a"] != length:
            raise field_error(where, "length_a",
                              f"the file's segment length {length} (as in {wheres[0]})", r["length_a"])
        aid, prov = r["annotator_id"], {"source": r["source"], "kind": "human", "teacher": r["teacher"]}
        if aid in annotators and annotators[aid] != prov:
            f = "source" if annotators[aid]["source"] != prov["source"] else "teacher"
            raise field_error(where, f, f"{annotators[aid][f]!r} as in {first[aid]} (one provenance per "
                              f"annotator_id {aid!r})", repr(prov[f]))
        annotators.setdefault(aid, prov)
        first.setdefault(aid, where)
        rows.append({k: r[k] for k in TYPED_FIELDS if k != "seconds"} |
                    {"label": r["label"], "seconds": 0.0, "gold": False, "gold_label": None,
                     "rubric": None})
    return rows, annotators, collapse_duplicates(rows, wheres)


def _read_parquet(path: str) -> tuple[dict | None, list]:
    """(validated header or None for a v1 file, rows in the records() layout) of a Parquet file."""
    table = label_files.read_parquet(path)
    text, rows = (table.schema.metadata or {}).get(PARQUET_KEY), table.to_pylist()
    if text is None:
        return None, rows
    header = label_files.parse_json(text, f"{path}:header", "header", "a JSON object")
    header = validate_header(header, f"{path}:header")
    return header, [_parquet_row(r, f"{path}:{n}") for n, r in enumerate(rows, 1)]


def _parquet_row(r: Any, where: str) -> Any:
    """A Parquet row -> the records() layout ("skip" label, rubric decoded from JSON)."""
    if not isinstance(r, Mapping):
        return r
    r = dict(r)
    if "skip" in r:
        skip = r.pop("skip")
        if not isinstance(skip, (bool, np.bool_)):
            raise field_error(where, "skip", "a bool", repr(skip))
        if skip:
            if r.get("label") is not None and not (is_number(r["label"]) and math.isnan(r["label"])):
                raise field_error(where, "label", "null on a skipped row", repr(r["label"]))
            r["label"] = "skip"
    if isinstance(r.get("rubric"), str):
        r["rubric"] = label_files.parse_json(r["rubric"], where, "rubric", "a JSON object")
    return r


def read_label_set(path) -> LS.LabelSet:
    """Reads and validates a label-set file (.jsonl / .parquet; v2, or v1 converted)."""
    path, kind = label_files.open_label_file(path)
    header = None
    if kind == "jsonl":
        objs, lines = label_files.read_jsonl(path)
        first = objs[0] if objs and isinstance(objs[0], Mapping) else {}
        # A v1 file has no header; a header missing "format" is still recognised as one.
        if "format" in first or ("episode_id_a" not in first and set(first) & set(HEADER_FIELDS)):
            header = validate_header(objs[0], f"{path}:{lines[0]}")
            objs, lines = objs[1:], lines[1:]
    else:
        header, objs = _read_parquet(path)
        lines = list(range(1, len(objs) + 1))
    if not objs:
        raise field_error(path, "rows", "at least one labelled pair", "none")
    wheres = [f"{path}:{n}" for n in lines]
    if header is None:
        rows, annotators, keep = _from_v1(objs, wheres)
        meta = {}
    else:
        keep = validate_rows(objs, wheres, header)
        rows, annotators, meta = objs, header["annotators"], header["meta"]
        if "lerobot" in header:
            meta = {**meta, "lerobot": header["lerobot"]}
    meta = {**meta, "path": path, "lines": [lines[i] for i in keep]}
    return LS.from_records([rows[i] for i in keep], annotators, meta)


def _header_text(ls: LS.LabelSet, where: str) -> str:
    """The header as canonical JSON; refuses values JSON would not give back unchanged."""
    header = {"format": FORMAT, "length": int(ls.length), "annotators": ls.annotators,
              "meta": {k: v for k, v in ls.meta.items() if k not in READER_META + ("lerobot",)}}
    if ls.meta.get("lerobot"):
        header["lerobot"] = ls.meta["lerobot"]
    for field in [f for f in ("annotators", "meta", "lerobot") if f in header]:
        try:
            got = json.loads(json.dumps(header[field], allow_nan=False)) != header[field]
        except (TypeError, ValueError) as e:
            got = f"{type(e).__name__}: {e}"
        if got:
            raise field_error(where, field, "JSON values that read back unchanged (str keys, "
                              "finite numbers, lists not tuples)",
                              "values JSON would change" if got is True else got)
    return json.dumps(header, sort_keys=True, allow_nan=False)


def _atomic_write(path: str, write: Callable[[str], None]) -> None:
    """write(tmp) then rename: never a half-written file under the final name."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_parquet(tmp: str, rows: list[dict], header_text: str) -> None:
    import pyarrow as pa  # pylint: disable=g-import-not-at-top
    import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
    s, i, f, b = pa.string(), pa.int64(), pa.float64(), pa.bool_()
    schema = pa.schema([
        ("episode_id_a", s), ("start_a", i), ("length_a", i), ("episode_id_b", s),
        ("start_b", i), ("length_b", i), ("label", f), ("skip", b), ("annotator_id", s),
        ("confidence", f), ("timestamp", f), ("seconds", f), ("interface_version", s),
        ("gold", b), ("gold_label", f), ("rubric", s)]
        + ([(k, i) for k in LEROBOT_ROW] if rows and LEROBOT_ROW.keys() <= rows[0].keys() else []),
        metadata={PARQUET_KEY: header_text.encode()})
    out = [{**r, "label": None if r["label"] == "skip" else r["label"], "skip": r["label"] == "skip",
            "rubric": None if r["rubric"] is None else json.dumps(r["rubric"], sort_keys=True,
                                                                  allow_nan=False)}
           for r in rows]
    pq.write_table(pa.Table.from_pylist(out, schema=schema), tmp)


def write_label_set(path, ls: LS.LabelSet) -> str:
    """Validates `ls` like the reader would and writes it (.jsonl / .parquet); returns path."""
    path = os.fspath(path)
    kind = label_files.file_kind(path)
    header_text = _header_text(ls, f"{path} (header)")
    header = validate_header(json.loads(header_text), f"{path} (header)")
    rows = ls.records()
    if not rows:
        raise field_error(path, "rows", "at least one labelled pair", "none")
    wheres = [f"{path} (row {n})" for n in range(1, len(rows) + 1)]
    if header.get("lerobot"):
        rows = [{**r, **lerobot_keys(r, w)} for r, w in zip(rows, wheres)]
    keep = validate_rows(rows, wheres, header)
    rows = [rows[i] for i in keep]
    if header.get("lerobot"):  # validation normalised the rows: the keys go back on for writing
        rows = [{**r, **lerobot_keys(r, path)} for r in rows]
    if kind == "jsonl":
        text = "".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in rows)
        _atomic_write(path, lambda tmp: pathlib.Path(tmp).write_text(header_text + "\n" + text,
                                                                     encoding="utf-8"))
    else:
        _atomic_write(path, lambda tmp: _write_parquet(tmp, rows, header_text))
    return path


def _starts_summary(starts: list[int]) -> str:
    if len(starts) <= 5:
        return f"its segments start at {starts}" if starts else "it has no segments"
    step = starts[1] - starts[0]
    every = all(y - x == step for x, y in zip(starts, starts[1:]))
    return (f"its {len(starts)} segments start at {starts[0]}, {starts[1]}, ..., {starts[-1]}"
            + (f" (every {step} steps)" if every else ""))


def check_pairs_exist(ls: LS.LabelSet, segments) -> None:
    """Raises unless both segments of every row are segments of the SegmentTable `segments`.

    UnknownEpisodeError for an episode_id not in the table; SegmentError for a start that is no
    segment's start in that episode (off the grid, past the end) or a different segment length.
    Rows are named by file and line when `ls` was read from a file (meta "path" / "lines").
    """
    path, lines = ls.meta.get("path", "label set"), ls.meta.get("lines")
    named = lines is not None and len(lines) == len(ls)
    where = lambda i: f"{path}:{lines[i]}" if named else f"{path} (row {i + 1})"
    ids = [str(e) for e in segments.episode_ids]
    starts: dict[str, set] = {e: set() for e in ids}
    for (e, s) in LS.segment_keys(segments):
        starts[str(e)].add(s)
    if len(ls) and int(segments.length) != ls.length:
        raise field_error(where(0), "length_a", f"the dataset's segment length {int(segments.length)}",
                          ls.length, SegmentError)
    for i in range(len(ls)):
        for side in "ab":
            eid, start = str(getattr(ls, f"episode_{side}")[i]), int(getattr(ls, f"start_{side}")[i])
            if eid not in starts:
                raise field_error(where(i), f"episode_id_{side}", f"an episode_id of the dataset "
                                  f"({len(ids)} episodes)", repr(eid), UnknownEpisodeError)
            if start not in starts[eid]:
                raise field_error(where(i), f"start_{side}", f"the start of a segment of episode {eid!r} "
                                  f"({_starts_summary(sorted(starts[eid]))})", start, SegmentError)
