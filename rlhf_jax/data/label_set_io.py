"""Versioned label-set files: a `LabelSet` written as JSONL or Parquet and read back losslessly.

Format "rlhf_jax.label_set/1". JSONL: a header line {"format", "length", "annotators", "meta"},
then one line per answer in the `LabelSet.records()` layout (a skip has label "skip"). Parquet:
the rows as a table (`label` float64, null when skipped, next to a bool `skip` column; `rubric`
a JSON string), the header JSON in the Arrow schema metadata under b"rlhf_jax.label_set".
`seconds` (0), `gold` (false), `gold_label` and `rubric` (null) may be left out of a row. The
reader's bookkeeping, meta "path" and "lines" (1-based JSONL line / Parquet row of each row), is
never written. v1 files of `rlhf_jax.data.labels` (no header) are read too: each annotator_id
becomes one annotators entry {"source", "kind": "human", "teacher"}; seconds 0, gold false.

Everything is validated before anything is built or written; errors are `LabelFileError`s
reading `describe(f"{path}:{line}", field, expected, got)` (Parquet: the row number, "header"
for the metadata; the writer says "<path> (row n)"). Besides field types and values they catch
labels on another scale than 0/0.5/1 (signed, percent, letters) or mixing scales, annotator ids
missing from the provenance table, gold flags without a gold answer, and conflicting duplicates.
Rows for the same unordered pair (a (b, a) row's answers flipped, x -> 1 - x) by the same
annotator_id must give the same answer (label, confidence, gold, gold_label, rubric), and are
then collapsed to the first, so appending the same answers again is idempotent; the writer does
the same, so what it writes is what the reader returns. Nothing is ever unpickled or evaluated.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import pathlib
import tempfile
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from rlhf_jax.data import label_sets as LS
from rlhf_jax.data import labels as V1
from rlhf_jax.data.errors import LabelFileError, SegmentError, UnknownEpisodeError, describe

FORMAT = "rlhf_jax.label_set/1"
PARQUET_KEY = b"rlhf_jax.label_set"
HEADER_FIELDS = ("format", "length", "annotators", "meta")
READER_META = ("path", "lines")
SOURCES = V1.SOURCES
_TYPED = {"episode_id_a": str, "start_a": int, "length_a": int, "episode_id_b": str,
          "start_b": int, "length_b": int, "annotator_id": str, "confidence": float,
          "timestamp": float, "seconds": float, "interface_version": str}
_OPTIONAL = {"seconds": 0.0, "gold": False, "gold_label": None, "rubric": None}
_ANSWER = ("label", "confidence", "gold", "gold_label", "rubric")
_FLIPPED = ("label", "gold_label", "rubric")  # answers that name a side, so flip with (a, b)
SCALES = ("unit (0/0.5/1)", "signed (-1/0/1)", "percent (0-100)",
          "letters (a/b/left/right/equal)")
LETTERS = frozenset({"a", "b", "left", "right", "equal", "tie", "same", "both", "neither"})
_LABELS = "one of 0, 0.5, 1 or 'skip'"


def _err(where: str, field: str, expected: Any, got: Any, cls=LabelFileError) -> Exception:
    return cls(describe(where, field, expected, got))


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_num(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _unit(v) -> bool:
    return _is_num(v) and float(v) in LS.LABEL_VALUES


def _scales_of(label) -> frozenset | None:
    """Indices into SCALES that `label` fits; None for values on no scale (a field error later)."""
    if isinstance(label, str):
        return frozenset({3}) if label.strip().lower() in LETTERS else None
    if not _is_num(label) or not math.isfinite(label):
        return None
    fits = {0.0: {0, 1, 2}, 1.0: {0, 1, 2}, 0.5: {0, 2}, -1.0: {1}}.get(float(label))
    return frozenset(fits or ({2} if 1 < label <= 100 else ())) or None


def check_label_scale(labels: Sequence, wheres: Sequence[str]) -> None:
    """Raises unless every label is on the unit scale (0, 0.5, 1; "skip" fits any scale).

    The whole file is looked at before naming a scale: 0 and 1 fit the signed and percent scales
    too, so a {-1, 0, 1} file is reported as signed, not as "unit, then mixed".
    """
    common, seen = frozenset(range(len(SCALES))), []
    for i, lab in enumerate(labels):
        fits = _scales_of(lab)
        if fits is None:
            continue
        if not common & fits:
            j = next(j for j, other in seen if not other & fits)
            raise _err(wheres[i], "label", f"one label scale per file, that of {wheres[j]} "
                       f"({labels[j]!r}, the {SCALES[min(common)]} scale)",
                       f"{lab!r}, the {SCALES[min(fits)]} scale: mixed label scales")
        common &= fits
        seen.append((i, fits))
    if 0 not in common:
        i = next(i for i, fits in seen if 0 not in fits)
        raise _err(wheres[i], "label", f"the unit label scale: {_LABELS}",
                   f"{labels[i]!r}: this file uses the {SCALES[min(common)]} label scale")


def _typed(rec: Mapping, key: str, typ: type, where: str):
    val = rec[key]
    if key == "timestamp" and isinstance(val, str):
        try:
            val = datetime.datetime.fromisoformat(val).timestamp()
        except ValueError as e:
            raise _err(where, key, "unix seconds or an ISO-8601 string", repr(val)) from e
    ok = (isinstance(val, str) if typ is str else _is_int(val) if typ is int else _is_num(val))
    if not ok:
        raise _err(where, key, f"a {typ.__name__}", repr(val))
    return typ(val)


def _rubric(val, where: str):
    if val is None:
        return None
    if not isinstance(val, Mapping):
        raise _err(where, "rubric", "an object {question: 0 | 0.5 | 1} or null", repr(val))
    for q, v in val.items():
        # Python int/float only: numpy scalars would not survive the JSON writer unchanged.
        if not (isinstance(q, str) and isinstance(v, (int, float)) and _unit(v)):
            raise _err(where, f"rubric[{q!r}]", "one of 0, 0.5, 1 under a str key", repr(v))
    return dict(val)


def validate_row(rec: Any, where: str, length: int) -> dict:
    """Checks one row (records() layout); returns it normalised, optional fields filled in."""
    if not isinstance(rec, Mapping):
        raise _err(where, "record", "a JSON object", type(rec).__name__)
    unknown = sorted(set(rec) - set(_TYPED) - {"label", "gold", "gold_label", "rubric"})
    if unknown:
        raise _err(where, unknown[0], f"only the fields of a label-set row {list(_TYPED)} + "
                   f"{['label', 'gold', 'gold_label', 'rubric']}", "an unknown field")
    rec = {k: v for k, v in rec.items() if not (k in _OPTIONAL and v is None)}
    out: dict[str, Any] = {}
    for key, typ in _TYPED.items():
        if rec.get(key) is None:
            if key not in _OPTIONAL:
                raise _err(where, key, f"a {typ.__name__}", "missing")
            out[key] = _OPTIONAL[key]
        else:
            out[key] = _typed(rec, key, typ, where)
    label = rec.get("label")
    if label is None:
        raise _err(where, "label", _LABELS, "missing")
    if label != "skip" and not _unit(label):
        raise _err(where, "label", _LABELS, repr(label))
    out["label"] = label if label == "skip" else float(label)
    for key, ok, expected in (
            ("confidence", 0.0 <= out["confidence"] <= 1.0, "a number in [0, 1]"),
            ("timestamp", math.isfinite(out["timestamp"]), "a finite number"),
            ("seconds", 0.0 <= out["seconds"] < math.inf, "a finite number >= 0"),
            ("start_a", out["start_a"] >= 0, ">= 0"), ("start_b", out["start_b"] >= 0, ">= 0"),
            ("length_a", out["length_a"] == length, f"the header length {length}"),
            ("length_b", out["length_b"] == length, f"the header length {length}")):
        if not ok:
            raise _err(where, key, expected, repr(rec.get(key, out[key])))
    gold, gold_label = rec.get("gold", False), rec.get("gold_label")
    if not isinstance(gold, (bool, np.bool_)):
        raise _err(where, "gold", "a bool", repr(gold))
    if gold_label is not None and not _unit(gold_label):
        raise _err(where, "gold_label", "one of 0, 0.5, 1 or null", repr(gold_label))
    if bool(gold) != (gold_label is not None):
        raise _err(where, "gold_label", "the gold answer (0, 0.5 or 1) of a gold row" if gold
                   else "null on a row that is not gold", repr(gold_label))
    out["gold"] = bool(gold)
    out["gold_label"] = None if gold_label is None else float(gold_label)
    out["rubric"] = _rubric(rec.get("rubric"), where)
    return out


def _flip(key: str, val):
    if val is None or val == "skip":
        return val
    if key == "rubric":
        return {q: 1 - v for q, v in val.items()}
    return 1 - val


def collapse_duplicates(rows: Sequence[Mapping], wheres: Sequence[str]) -> list[int]:
    """Indices of the rows to keep: the first of each (unordered pair, annotator) (see module)."""
    first: dict[tuple, tuple[int, bool]] = {}
    keep = []
    for i, r in enumerate(rows):
        a, b = (r["episode_id_a"], r["start_a"]), (r["episode_id_b"], r["start_b"])
        key = (min(a, b), max(a, b), r["annotator_id"])
        if key not in first:
            first[key] = (i, b < a)
            keep.append(i)
            continue
        j, flipped_j = first[key]
        same_side = flipped_j == (b < a)
        for f in _ANSWER:
            theirs = rows[j][f] if same_side or f not in _FLIPPED else _flip(f, rows[j][f])
            if theirs != r[f]:
                raise _err(wheres[i], f, f"{theirs!r} as given by {wheres[j]} (same pair, same "
                           f"annotator {r['annotator_id']!r}): conflicting duplicate rows", repr(r[f]))
    return keep


def validate_header(h: Any, where: str) -> dict:
    """Checks a header object; returns {"length", "annotators", "meta"}."""
    if not isinstance(h, Mapping):
        raise _err(where, "header", "a JSON object", type(h).__name__)
    if h.get("format") != FORMAT:
        raise _err(where, "format", repr(FORMAT), repr(h["format"]) if "format" in h else "missing")
    unknown = sorted(set(h) - set(HEADER_FIELDS))
    if unknown:
        raise _err(where, unknown[0], f"only header fields {list(HEADER_FIELDS)}", "an unknown field")
    length = h.get("length")
    if not (_is_int(length) and length >= 1):
        raise _err(where, "length", "the segment length, an int >= 1",
                   "missing" if length is None else repr(length))
    ann = h.get("annotators")
    if not isinstance(ann, Mapping):
        raise _err(where, "annotators", "an object {annotator_id: provenance}",
                   "missing" if ann is None else type(ann).__name__)
    for aid, prov in ann.items():
        field = f"annotators[{aid!r}]"
        if not isinstance(prov, Mapping):
            raise _err(where, field, "an object with 'source' and 'kind'", type(prov).__name__)
        for key, allowed in (("source", SOURCES), ("kind", LS.ANNOTATOR_KINDS)):
            if prov.get(key) not in allowed:
                raise _err(where, f"{field}.{key}", f"one of {allowed}",
                           repr(prov[key]) if key in prov else "missing")
    meta = h.get("meta", {})
    if not isinstance(meta, Mapping):
        raise _err(where, "meta", "an object", type(meta).__name__)
    return {"length": int(length), "annotators": {k: dict(v) for k, v in ann.items()},
            "meta": dict(meta)}


def _validate_rows(raw: Sequence, wheres: Sequence[str], header: Mapping) -> list[int]:
    """Validates v2 rows in place (scale first, then fields, ids, duplicates); returns kept rows."""
    check_label_scale([r.get("label") if isinstance(r, Mapping) else None for r in raw], wheres)
    for i, where in enumerate(wheres):
        raw[i] = validate_row(raw[i], where, header["length"])
        aid = raw[i]["annotator_id"]
        if aid not in header["annotators"]:
            raise _err(where, "annotator_id", f"an id of the header's annotators table "
                       f"{sorted(header['annotators'])[:5]}", repr(aid))
    return collapse_duplicates(raw, wheres)


def _from_v1(objs: list, wheres: list[str]) -> tuple[list[dict], dict, list[int]]:
    """v1 records -> (rows in records() layout, annotators table, kept rows)."""
    check_label_scale([o.get("label") if isinstance(o, Mapping) else None for o in objs], wheres)
    recs = [V1.validate_record(o, w) for o, w in zip(objs, wheres)]
    length, annotators, first, rows = recs[0]["length_a"], {}, {}, []
    for r, where in zip(recs, wheres):
        if r["length_a"] != length:
            raise _err(where, "length_a", f"the file's segment length {length} (as in {wheres[0]})",
                       r["length_a"])
        aid, prov = r["annotator_id"], {"source": r["source"], "kind": "human", "teacher": r["teacher"]}
        if aid in annotators and annotators[aid] != prov:
            f = "source" if annotators[aid]["source"] != prov["source"] else "teacher"
            raise _err(where, f, f"{annotators[aid][f]!r} as in {first[aid]} (one provenance per "
                       f"annotator_id {aid!r})", repr(prov[f]))
        annotators.setdefault(aid, prov)
        first.setdefault(aid, where)
        rows.append({k: r[k] for k in _TYPED if k != "seconds"} |
                    {"label": r["label"], "seconds": 0.0, "gold": False, "gold_label": None,
                     "rubric": None})
    return rows, annotators, collapse_duplicates(rows, wheres)


def _no_constant(name: str):
    raise ValueError(f"non-standard JSON constant {name}")


def _read_jsonl(path: str) -> tuple[list, list[int]]:
    objs, lines = [], []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            where = f"{path}:{n}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise _err(where, "record", "UTF-8 JSON text", f"undecodable bytes ({e.reason})") from e
            if not line.strip():
                continue
            try:
                objs.append(json.loads(line, parse_constant=_no_constant))
            except ValueError as e:
                raise _err(where, "record", "one JSON object per line", f"invalid JSON ({e})") from e
            lines.append(n)
    return objs, lines


def _read_parquet(path: str) -> tuple[dict | None, list]:
    """(validated header or None for a v1 file, rows in the records() layout) of a Parquet file."""
    try:
        import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
        table = pq.read_table(path)
    except ImportError as e:
        raise _err(path, "file", "pyarrow installed to read Parquet", "ImportError") from e
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise _err(path, "file", "a Parquet file", f"{type(e).__name__}: {e}") from e
    text, rows = (table.schema.metadata or {}).get(PARQUET_KEY), table.to_pylist()
    if text is None:
        return None, rows
    try:
        header = json.loads(text, parse_constant=_no_constant)
    except ValueError as e:
        raise _err(f"{path}:header", "header", "a JSON object", f"invalid JSON ({e})") from e
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
            raise _err(where, "skip", "a bool", repr(skip))
        if skip:
            if r.get("label") is not None and not (_is_num(r["label"]) and math.isnan(r["label"])):
                raise _err(where, "label", "null on a skipped row", repr(r["label"]))
            r["label"] = "skip"
    if isinstance(r.get("rubric"), str):
        try:
            r["rubric"] = json.loads(r["rubric"], parse_constant=_no_constant)
        except ValueError as e:
            raise _err(where, "rubric", "a JSON object", repr(r["rubric"])) from e
    return r


def read_label_set(path) -> LS.LabelSet:
    """Reads and validates a label-set file (.jsonl / .parquet; v2, or v1 converted)."""
    path = os.fspath(path)
    kind = V1._fmt(path)  # pylint: disable=protected-access
    if not os.path.isfile(path):
        raise _err(path, "file", "an existing label file", "no such file")
    header = None
    if kind == "jsonl":
        objs, lines = _read_jsonl(path)
        first = objs[0] if objs and isinstance(objs[0], Mapping) else {}
        # A v1 file has no header; a header missing "format" is still recognised as one.
        if "format" in first or ("episode_id_a" not in first and set(first) & set(HEADER_FIELDS)):
            header = validate_header(objs[0], f"{path}:{lines[0]}")
            objs, lines = objs[1:], lines[1:]
    else:
        header, objs = _read_parquet(path)
        lines = list(range(1, len(objs) + 1))
    if not objs:
        raise _err(path, "rows", "at least one labelled pair", "none")
    wheres = [f"{path}:{n}" for n in lines]
    if header is None:
        rows, annotators, keep = _from_v1(objs, wheres)
        meta = {}
    else:
        keep = _validate_rows(objs, wheres, header)
        rows, annotators, meta = objs, header["annotators"], header["meta"]
    meta = {**meta, "path": path, "lines": [lines[i] for i in keep]}
    return LS.from_records([rows[i] for i in keep], annotators, meta)


def _header_text(ls: LS.LabelSet, where: str) -> str:
    """The header as canonical JSON; refuses values JSON would not give back unchanged."""
    header = {"format": FORMAT, "length": int(ls.length), "annotators": ls.annotators,
              "meta": {k: v for k, v in ls.meta.items() if k not in READER_META}}
    for field in ("annotators", "meta"):
        try:
            got = json.loads(json.dumps(header[field], allow_nan=False)) != header[field]
        except (TypeError, ValueError) as e:
            got = f"{type(e).__name__}: {e}"
        if got:
            raise _err(where, field, "JSON values that read back unchanged (str keys, finite "
                       "numbers, lists not tuples)", "values JSON would change" if got is True else got)
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
        ("gold", b), ("gold_label", f), ("rubric", s)], metadata={PARQUET_KEY: header_text.encode()})
    out = [{**r, "label": None if r["label"] == "skip" else r["label"], "skip": r["label"] == "skip",
            "rubric": None if r["rubric"] is None else json.dumps(r["rubric"], sort_keys=True,
                                                                  allow_nan=False)}
           for r in rows]
    pq.write_table(pa.Table.from_pylist(out, schema=schema), tmp)


def write_label_set(path, ls: LS.LabelSet) -> str:
    """Validates `ls` like the reader would and writes it (.jsonl / .parquet); returns path."""
    path = os.fspath(path)
    kind = V1._fmt(path)  # pylint: disable=protected-access
    header_text = _header_text(ls, f"{path} (header)")
    header = validate_header(json.loads(header_text), f"{path} (header)")
    rows = ls.records()
    if not rows:
        raise _err(path, "rows", "at least one labelled pair", "none")
    keep = _validate_rows(rows, [f"{path} (row {n})" for n in range(1, len(rows) + 1)], header)
    rows = [rows[i] for i in keep]
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
        raise _err(where(0), "length_a", f"the dataset's segment length {int(segments.length)}",
                   ls.length, SegmentError)
    for i in range(len(ls)):
        for side in "ab":
            eid, start = str(getattr(ls, f"episode_{side}")[i]), int(getattr(ls, f"start_{side}")[i])
            if eid not in starts:
                raise _err(where(i), f"episode_id_{side}", f"an episode_id of the dataset "
                           f"({len(ids)} episodes)", repr(eid), UnknownEpisodeError)
            if start not in starts[eid]:
                raise _err(where(i), f"start_{side}", f"the start of a segment of episode {eid!r} "
                           f"({_starts_summary(sorted(starts[eid]))})", start, SegmentError)
