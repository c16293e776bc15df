"""Opening label files: the one JSONL reader and the one Parquet reader of every label format.

The v1 per-pair files (`v1_files`), the versioned label sets (`label_set_io`) and the durable
appender reopening its file (`label_appender`) all read through here, so a file is recognised,
opened and parsed the same way whichever format it holds. Parsing is JSON / Arrow only: nothing is
ever unpickled or evaluated, and JSON's non-standard constants (NaN, Infinity) are refused, as the
writers never produce them (`allow_nan=False`). Errors are `LabelFileError`s naming the file, and
for JSONL the 1-based line, as `describe(f"{path}:{line}", "record", expected, got)`.
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterator

from rlhf_jax.errors import LabelFileError, describe

SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


def file_kind(path: str) -> str:
    """"jsonl" or "parquet" from the file name's suffix; LabelFileError for any other suffix."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in SUFFIXES:
        raise LabelFileError(describe(path, "file name", "a .jsonl or .parquet suffix", repr(ext)))
    return SUFFIXES[ext]


def open_label_file(path) -> tuple[str, str]:
    """(path as str, its kind) of an existing label file; LabelFileError otherwise.

    The suffix is checked first, so a wrong suffix is reported even when the file is missing.
    """
    path = os.fspath(path)
    kind = file_kind(path)
    if not os.path.isfile(path):
        raise LabelFileError(describe(path, "file", "an existing label file", "no such file"))
    return path, kind


def _refuse_constant(name: str):
    raise ValueError(f"non-standard JSON constant {name}")


def parse_json(text: str | bytes, where: str, field: str, expected: str) -> Any:
    """One JSON value; invalid JSON (NaN and Infinity included) raises LabelFileError naming
    `where` and `field`, with `expected` as what was expected."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError as e:  # json.JSONDecodeError is a ValueError
        raise LabelFileError(describe(where, field, expected, f"invalid JSON ({e})")) from e


def iter_jsonl(path: str) -> Iterator[tuple[int, Any]]:
    """(1-based line number, parsed JSON value) of each non-blank line of a JSONL file, in order.

    Lazy, so a caller validating each value as it comes reports the first bad line of either kind
    (unparseable or invalid) first. Lines are split on b"\\n" only; each must be UTF-8.
    """
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            where = f"{path}:{line_no}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise LabelFileError(describe(where, "record", "UTF-8 JSON text",
                                              f"undecodable bytes ({e.reason})")) from e
            if line.strip():
                yield line_no, parse_json(line, where, "record", "one JSON object per line")


def read_jsonl(path: str) -> tuple[list, list[int]]:
    """(parsed values, their 1-based line numbers) of every non-blank line (see `iter_jsonl`)."""
    values, lines = [], []
    for line_no, value in iter_jsonl(path):
        values.append(value)
        lines.append(line_no)
    return values, lines


def read_parquet(path: str):
    """The `pyarrow.Table` of a Parquet file; LabelFileError without pyarrow or for a file that
    is not Parquet (pyarrow raises several exception types for corrupt files)."""
    try:
        import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
    except ImportError as e:
        raise LabelFileError(describe(path, "file", "pyarrow installed to read Parquet",
                                      "ImportError")) from e
    try:
        return pq.read_table(path)
    except Exception as e:  # pylint: disable=broad-except
        raise LabelFileError(describe(path, "file", "a Parquet file",
                                      f"{type(e).__name__}: {e}")) from e
