"""Validation of label-set rows and headers (`label_set_io` reads and writes the files).

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
import math
from typing import Any, Mapping, Sequence

import numpy as np

from rlhf_jax.labels import label_sets as LS
from rlhf_jax.labels import v1_files as V1
from rlhf_jax.errors import LabelFileError, describe

FORMAT = "rlhf_jax.label_set/2"
# /1 is read as it is; /2 adds the optional header field "lerobot" {"repo_id", "revision"} (labels
# of a LeRobot dataset), whose rows also name episodes by episode_index and frames by frame_index.
READ_FORMATS = ("rlhf_jax.label_set/1", FORMAT)
HEADER_FIELDS = ("format", "length", "annotators", "meta", "lerobot")
LEROBOT_HEADER = ("repo_id", "revision")
LEROBOT_ROW = {"episode_index_a": "episode_id_a", "frame_index_a": "start_a",
               "episode_index_b": "episode_id_b", "frame_index_b": "start_b"}
SOURCES = V1.SOURCES
# Row fields with their types (besides label, gold, gold_label, rubric, which have their own rules).
TYPED_FIELDS = {"episode_id_a": str, "start_a": int, "length_a": int, "episode_id_b": str,
                "start_b": int, "length_b": int, "annotator_id": str, "confidence": float,
                "timestamp": float, "seconds": float, "interface_version": str}
# Fields a row may leave out (or give as null), with the value the reader fills in.
OPTIONAL_DEFAULTS = {"seconds": 0.0, "gold": False, "gold_label": None, "rubric": None}
_ANSWER = ("label", "confidence", "gold", "gold_label", "rubric")
_FLIPPED = ("label", "gold_label", "rubric")  # answers that name a side, so flip with (a, b)
SCALES = ("unit (0/0.5/1)", "signed (-1/0/1)", "percent (0-100)",
          "letters (a/b/left/right/equal)")
LETTERS = frozenset({"a", "b", "left", "right", "equal", "tie", "same", "both", "neither"})
_LABELS = "one of 0, 0.5, 1 or 'skip'"


def field_error(where: str, field: str, expected: Any, got: Any, cls=LabelFileError) -> Exception:
    """The exception (`cls`, a LabelFileError by default) for a bad field, as `describe` words it."""
    return cls(describe(where, field, expected, got))


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_number(v) -> bool:
    """True for Python / numpy ints and floats, bools excluded (True is no label or confidence)."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _unit(v) -> bool:
    return is_number(v) and float(v) in LS.LABEL_VALUES


def _scales_of(label) -> frozenset | None:
    """Indices into SCALES that `label` fits; None for values on no scale (a field error later)."""
    if isinstance(label, str):
        return frozenset({3}) if label.strip().lower() in LETTERS else None
    if not is_number(label) or not math.isfinite(label):
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
            raise field_error(wheres[i], "label", f"one label scale per file, that of {wheres[j]} "
                              f"({labels[j]!r}, the {SCALES[min(common)]} scale)",
                              f"{lab!r}, the {SCALES[min(fits)]} scale: mixed label scales")
        common &= fits
        seen.append((i, fits))
    if 0 not in common:
        i = next(i for i, fits in seen if 0 not in fits)
        raise field_error(wheres[i], "label", f"the unit label scale: {_LABELS}",
                          f"{labels[i]!r}: this file uses the {SCALES[min(common)]} label scale")


def _typed(rec: Mapping, key: str, typ: type, where: str):
    val = rec[key]
    if key == "timestamp" and isinstance(val, str):
        try:
            val = datetime.datetime.fromisoformat(val).timestamp()
        except ValueError as e:
            raise field_error(where, key, "unix seconds or an ISO-8601 string", repr(val)) from e
    ok = (isinstance(val, str) if typ is str else _is_int(val) if typ is int else is_number(val))
    if not ok:
        raise field_error(where, key, f"a {typ.__name__}", repr(val))
    return typ(val)


def _rubric(val, where: str):
    if val is None:
        return None
    if not isinstance(val, Mapping):
        raise field_error(where, "rubric", "an object {question: 0 | 0.5 | 1} or null", repr(val))
    for q, v in val.items():
        # Python int/float only: numpy scalars would not survive the JSON writer unchanged.
        if not (isinstance(q, str) and isinstance(v, (int, float)) and _unit(v)):
            raise field_error(where, f"rubric[{q!r}]", "one of 0, 0.5, 1 under a str key", repr(v))
    return dict(val)


def validate_row(rec: Any, where: str, length: int) -> dict:
    """Checks one row (records() layout); returns it normalised, optional fields filled in."""
    if not isinstance(rec, Mapping):
        raise field_error(where, "record", "a JSON object", type(rec).__name__)
    unknown = sorted(set(rec) - set(TYPED_FIELDS) - set(LEROBOT_ROW) - {"label", "gold", "gold_label", "rubric"})
    if unknown:
        raise field_error(where, unknown[0], f"only the fields of a label-set row {list(TYPED_FIELDS)} + "
                          f"{['label', 'gold', 'gold_label', 'rubric']}", "an unknown field")
    rec = {k: v for k, v in rec.items() if not (k in OPTIONAL_DEFAULTS and v is None)}
    out: dict[str, Any] = {}
    for key, typ in TYPED_FIELDS.items():
        if rec.get(key) is None:
            if key not in OPTIONAL_DEFAULTS:
                raise field_error(where, key, f"a {typ.__name__}", "missing")
            out[key] = OPTIONAL_DEFAULTS[key]
        else:
            out[key] = _typed(rec, key, typ, where)
    label = rec.get("label")
    if label is None:
        raise field_error(where, "label", _LABELS, "missing")
    if label != "skip" and not _unit(label):
        raise field_error(where, "label", _LABELS, repr(label))
    out["label"] = label if label == "skip" else float(label)
    for key, ok, expected in (
            ("confidence", 0.0 <= out["confidence"] <= 1.0, "a number in [0, 1]"),
            ("timestamp", math.isfinite(out["timestamp"]), "a finite number"),
            ("seconds", 0.0 <= out["seconds"] < math.inf, "a finite number >= 0"),
            ("start_a", out["start_a"] >= 0, ">= 0"), ("start_b", out["start_b"] >= 0, ">= 0"),
            ("length_a", out["length_a"] == length, f"the header length {length}"),
            ("length_b", out["length_b"] == length, f"the header length {length}")):
        if not ok:
            raise field_error(where, key, expected, repr(rec.get(key, out[key])))
    gold, gold_label = rec.get("gold", False), rec.get("gold_label")
    if not isinstance(gold, (bool, np.bool_)):
        raise field_error(where, "gold", "a bool", repr(gold))
    if gold_label is not None and not _unit(gold_label):
        raise field_error(where, "gold_label", "one of 0, 0.5, 1 or null", repr(gold_label))
    if bool(gold) != (gold_label is not None):
        raise field_error(where, "gold_label", "the gold answer (0, 0.5 or 1) of a gold row" if gold
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
                raise field_error(wheres[i], f, f"{theirs!r} as given by {wheres[j]} (same pair, same "
                                  f"annotator {r['annotator_id']!r}): conflicting duplicate rows", repr(r[f]))
    return keep


def validate_header(h: Any, where: str) -> dict:
    """Checks a header object; returns {"length", "annotators", "meta"}."""
    if not isinstance(h, Mapping):
        raise field_error(where, "header", "a JSON object", type(h).__name__)
    if h.get("format") not in READ_FORMATS:
        raise field_error(where, "format", " or ".join(map(repr, READ_FORMATS)),
                          repr(h["format"]) if "format" in h else "missing")
    unknown = sorted(set(h) - set(HEADER_FIELDS))
    if unknown:
        raise field_error(where, unknown[0], f"only header fields {list(HEADER_FIELDS)}", "an unknown field")
    length = h.get("length")
    if not (_is_int(length) and length >= 1):
        raise field_error(where, "length", "the segment length, an int >= 1",
                          "missing" if length is None else repr(length))
    ann = h.get("annotators")
    if not isinstance(ann, Mapping):
        raise field_error(where, "annotators", "an object {annotator_id: provenance}",
                          "missing" if ann is None else type(ann).__name__)
    for aid, prov in ann.items():
        field = f"annotators[{aid!r}]"
        if not isinstance(prov, Mapping):
            raise field_error(where, field, "an object with 'source' and 'kind'", type(prov).__name__)
        for key, allowed in (("source", SOURCES), ("kind", LS.ANNOTATOR_KINDS)):
            if prov.get(key) not in allowed:
                raise field_error(where, f"{field}.{key}", f"one of {allowed}",
                                  repr(prov[key]) if key in prov else "missing")
    meta = h.get("meta", {})
    if not isinstance(meta, Mapping):
        raise field_error(where, "meta", "an object", type(meta).__name__)
    out = {"length": int(length), "annotators": {k: dict(v) for k, v in ann.items()}, "meta": dict(meta)}
    if "lerobot" in h:
        lr = h["lerobot"]
        if h["format"] != FORMAT:
            raise field_error(where, "lerobot", f"no such field in a {h['format']!r} file", "present")
        if not isinstance(lr, Mapping) or not all(isinstance(lr.get(k), str) and lr[k] for k in LEROBOT_HEADER):
            raise field_error(where, "lerobot", f"an object with string fields {list(LEROBOT_HEADER)}", repr(lr))
        out["lerobot"] = dict(lr)
    return out


def lerobot_keys(row: Mapping[str, Any], where: str) -> dict:
    """A row's LeRobot keys: episode_index (its episode_id as an integer) and frame_index (its start)."""
    out = {}
    for key, source in LEROBOT_ROW.items():
        val = row[source]
        if source.startswith("episode_id"):
            if not (isinstance(val, str) and val.isdigit()):
                raise field_error(where, source, "a LeRobot episode_index as text (e.g. '12')", repr(val))
            val = int(val)
        out[key] = int(val)
    return out


def check_lerobot_row(row: Mapping[str, Any], where: str, header: Mapping) -> None:
    """In a file whose header names a LeRobot dataset, every row carries episode_index_a/b and
    frame_index_a/b agreeing with its episode_id and start; elsewhere no row carries them."""
    given = [k for k in LEROBOT_ROW if k in row]
    if not header.get("lerobot"):
        if given:
            raise field_error(where, given[0], "no LeRobot keys: the header names no LeRobot dataset", "present")
        return
    want = lerobot_keys(row, where)
    for key, val in want.items():
        if key not in row:
            raise field_error(where, key, f"{val} (rows of a LeRobot dataset's labels carry it)", "missing")
        if not _is_int(row[key]) or int(row[key]) != val:
            raise field_error(where, key, f"{val}, as {LEROBOT_ROW[key]} says", repr(row[key]))


def validate_rows(raw: Sequence, wheres: Sequence[str], header: Mapping) -> list[int]:
    """Validates v2 rows in place (scale first, then fields, ids, duplicates); returns kept rows."""
    check_label_scale([r.get("label") if isinstance(r, Mapping) else None for r in raw], wheres)
    for i, where in enumerate(wheres):
        if isinstance(raw[i], Mapping):
            check_lerobot_row(raw[i], where, header)
        raw[i] = validate_row(raw[i], where, header["length"])
        aid = raw[i]["annotator_id"]
        if aid not in header["annotators"]:
            raise field_error(where, "annotator_id", f"an id of the header's annotators table "
                              f"{sorted(header['annotators'])[:5]}", repr(aid))
    return collapse_duplicates(raw, wheres)
