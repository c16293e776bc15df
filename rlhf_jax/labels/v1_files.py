"""Preference-label files: JSONL (always) and Parquet (when pyarrow is installed).

One record per labelled pair, keyed by the RLDS episode_id and step range of both segments:

  {"episode_id_a": str, "start_a": int, "length_a": int,
   "episode_id_b": str, "start_b": int, "length_b": int,
   "label": 0 | 0.5 | 1            (1 = segment a preferred, 0.5 = equally good),
   "annotator_id": str, "timestamp": float (unix seconds; ISO-8601 strings are accepted),
   "interface_version": str, "source": "sim" | "real", "confidence": float in [0, 1],
   "teacher": {...} | null         (teacher parameters of simulated annotators; optional)}

Files are read by `label_files` (JSON / Arrow only: nothing is ever unpickled or evaluated, and
NaN / Infinity are not JSON). Every record is validated; errors name the file, the line (JSONL)
or row (Parquet, 1-based), the field, what was expected and what was found.
"""
from __future__ import annotations

import datetime
import json
import math
import os
from typing import Any, Mapping, Sequence

import numpy as np

from rlhf_jax.errors import LabelFileError, SegmentError, UnknownEpisodeError, describe
from rlhf_jax.labels import label_files

FIELDS: dict[str, type] = {
    "episode_id_a": str, "start_a": int, "length_a": int,
    "episode_id_b": str, "start_b": int, "length_b": int,
    "label": float, "annotator_id": str, "timestamp": float, "interface_version": str,
    "source": str, "confidence": float,
}
OPTIONAL_FIELDS = ("teacher",)
LABEL_VALUES = (0.0, 0.5, 1.0)
SOURCES = ("sim", "real")


def validate_record(rec: Any, where: str) -> dict:
    """Checks one record; returns it normalised (python ints/floats, timestamp as float)."""
    if not isinstance(rec, Mapping):
        raise LabelFileError(describe(where, "record", "a JSON object", type(rec).__name__))
    unknown = sorted(set(rec) - set(FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        raise LabelFileError(describe(where, unknown[0], f"only fields {sorted(FIELDS)} + "
                                      f"{list(OPTIONAL_FIELDS)}", "an unknown field"))
    out: dict[str, Any] = {}
    for key, typ in FIELDS.items():
        if key not in rec or rec[key] is None:
            raise LabelFileError(describe(where, key, f"a {typ.__name__}", "missing"))
        val = rec[key]
        if key == "timestamp" and isinstance(val, str):
            try:
                val = datetime.datetime.fromisoformat(val).timestamp()
            except ValueError as e:
                raise LabelFileError(describe(where, key, "unix seconds or an ISO-8601 string",
                                              repr(rec[key]))) from e
        if typ is str:
            ok = isinstance(val, str)
        elif typ is int:
            ok = isinstance(val, (int, np.integer)) and not isinstance(val, bool)
        else:
            ok = (isinstance(val, (int, float, np.integer, np.floating))
                  and not isinstance(val, bool))
        if not ok:
            raise LabelFileError(describe(where, key, f"a {typ.__name__}", repr(val)))
        out[key] = typ(val)
    if out["label"] not in LABEL_VALUES:
        raise LabelFileError(describe(where, "label", "one of 0, 0.5, 1", repr(rec["label"])))
    if not 0.0 <= out["confidence"] <= 1.0:
        raise LabelFileError(describe(where, "confidence", "a number in [0, 1]",
                                      repr(rec["confidence"])))
    if not math.isfinite(out["timestamp"]):
        raise LabelFileError(describe(where, "timestamp", "a finite number",
                                      repr(rec["timestamp"])))
    if out["source"] not in SOURCES:
        raise LabelFileError(describe(where, "source", f"one of {SOURCES}", repr(out["source"])))
    for side in "ab":
        if out[f"start_{side}"] < 0:
            raise LabelFileError(describe(where, f"start_{side}", ">= 0", out[f"start_{side}"]))
        if out[f"length_{side}"] < 1:
            raise LabelFileError(describe(where, f"length_{side}", ">= 1", out[f"length_{side}"]))
    if out["length_a"] != out["length_b"]:
        raise LabelFileError(describe(where, "length_b", f"equal to length_a ({out['length_a']})",
                                      out["length_b"]))
    teacher = rec.get("teacher")
    if isinstance(teacher, str):  # Parquet stores the teacher dict as a JSON string
        teacher = label_files.parse_json(teacher, where, "teacher", "a JSON object")
    if teacher is not None and not isinstance(teacher, Mapping):
        raise LabelFileError(describe(where, "teacher", "an object or null", repr(teacher)))
    out["teacher"] = dict(teacher) if teacher is not None else None
    return out


def read_labels(path: str) -> list[dict]:
    """Reads and validates a label file (.jsonl or .parquet) through `label_files`."""
    path, kind = label_files.open_label_file(path)
    if kind == "jsonl":
        records = [validate_record(rec, f"{path}:{line_no}")
                   for line_no, rec in label_files.iter_jsonl(path)]
    else:
        rows = label_files.read_parquet(path).to_pylist()
        records = [validate_record(r, f"{path}:row {i}") for i, r in enumerate(rows, 1)]
    if not records:
        raise LabelFileError(describe(path, "records", "at least one labelled pair", "none"))
    return records


def write_labels(path: str, records: Sequence[Mapping[str, Any]]) -> str:
    """Validates and writes records as JSONL or Parquet (by suffix); returns path."""
    path = os.fspath(path)
    kind = label_files.file_kind(path)
    clean = [validate_record(r, f"{path} (record {i})") for i, r in enumerate(records)]
    from rlhf_jax.checkpoint import atomic_write_text  # pylint: disable=g-import-not-at-top

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # Either way, never a half-written label file under the final name.
    if kind == "jsonl":
        atomic_write_text(path, "".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in clean))
        return path
    import pyarrow as pa  # pylint: disable=g-import-not-at-top
    import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
    rows = [{**r, "teacher": None if r["teacher"] is None else json.dumps(r["teacher"], sort_keys=True)}
            for r in clean]
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        pq.write_table(pa.Table.from_pylist(rows), tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def pairs_to_records(segments, pairs) -> list[dict]:
    """SegmentTable + PreferencePairs -> label records (one per pair)."""
    ids = segments.episode_ids
    length = int(segments.length)
    out = []
    ep, st = segments.episode_index, segments.start
    for p in range(len(pairs)):
        a, b = int(pairs.idx_a[p]), int(pairs.idx_b[p])
        prov = pairs.provenance[int(pairs.annotator[p])]
        out.append({
            "episode_id_a": ids[ep[a]], "start_a": int(st[a]), "length_a": length,
            "episode_id_b": ids[ep[b]], "start_b": int(st[b]), "length_b": length,
            "label": float(pairs.label[p]), "annotator_id": prov["annotator_id"],
            "timestamp": float(pairs.timestamp[p]), "interface_version": prov["interface_version"],
            "source": prov["source"], "confidence": float(pairs.confidence[p]),
            "teacher": prov.get("teacher"),
        })
    return out


def records_to_preferences(records: Sequence[Mapping[str, Any]], episodes: Sequence[Mapping],
                           *, path: str = "<records>", feature_kind: str = "joint",
                           component_names: Sequence[str] = (), gold_weights=None,
                           dt: float = 0.05):
    """Label records + the episodes they refer to -> (SegmentTable, PreferencePairs).

    The table holds exactly the distinct segments the records name. Raises UnknownEpisodeError
    for an episode_id not in `episodes`, SegmentError for a range past its episode's end, and
    LabelFileError if the records mix segment lengths.
    """
    from rlhf_jax.preferences import segments as P  # pylint: disable=g-import-not-at-top
    index = {ep["episode_metadata"]["episode_id"]: i for i, ep in enumerate(episodes)}
    lengths = [len(ep["steps"]["reward"]) for ep in episodes]
    seg_rows: dict[tuple[int, int], int] = {}
    ann_rows: dict[str, int] = {}
    provenance: list[dict] = []
    idx = np.empty((len(records), 2), np.int64)
    ann = np.empty(len(records), np.int32)
    seg_len = int(records[0]["length_a"]) if records else 0
    for i, r in enumerate(records):
        where = f"{path}: record {i + 1}"
        for j, side in enumerate("ab"):
            eid = r[f"episode_id_{side}"]
            start, n = int(r[f"start_{side}"]), int(r[f"length_{side}"])
            if eid not in index:
                raise UnknownEpisodeError(describe(where, f"episode_id_{side}",
                                                   "an episode_id of the dataset", repr(eid)))
            if n != seg_len:
                raise LabelFileError(describe(where, f"length_{side}",
                                              f"the file's segment length {seg_len}", n))
            if start + n > lengths[index[eid]]:
                raise SegmentError(describe(where, f"start_{side}/length_{side}",
                                            f"a range inside episode {eid!r} "
                                            f"({lengths[index[eid]]} steps)",
                                            f"steps [{start}, {start + n})"))
            idx[i, j] = seg_rows.setdefault((index[eid], start), len(seg_rows))
        key = json.dumps([r["annotator_id"], r["interface_version"], r["source"], r.get("teacher")],
                         sort_keys=True)
        if key not in ann_rows:
            ann_rows[key] = len(provenance)
            provenance.append({"annotator_id": r["annotator_id"],
                               "interface_version": r["interface_version"], "source": r["source"],
                               "teacher": r.get("teacher")})
        ann[i] = ann_rows[key]
    table = P.build_segment_table(episodes, seg_len, feature_kind=feature_kind,
                                  ranges=list(seg_rows), component_names=component_names,
                                  gold_weights=gold_weights, dt=dt)
    pairs = P.PreferencePairs(
        idx_a=idx[:, 0].astype(np.int32), idx_b=idx[:, 1].astype(np.int32),
        label=np.array([r["label"] for r in records], np.float32),
        weight=np.ones(len(records), np.float32), annotator=ann, provenance=provenance,
        confidence=np.array([r["confidence"] for r in records], np.float32),
        timestamp=np.array([r["timestamp"] for r in records], np.float64))
    return table, pairs


def load_label_file(path: str, episodes: Sequence[Mapping], **kw):
    """read_labels + records_to_preferences (errors name the file and line)."""
    return records_to_preferences(read_labels(path), episodes, path=os.fspath(path), **kw)
