"""A label file that grows one answer at a time and loses none: append, flush, fsync.

    appender = LabelAppender(path, length=8, annotators={"me": {"source": "real", "kind": "human"}},
                             meta={"interface_version": "label-server/1"})
    appender.rows()          # the rows already in the file (a restart resumes from them)
    appender.append(row)     # validated, then written as one line and fsynced before it returns

The file is the `label_set_io` JSONL format ("rlhf_jax.label_set/2"): a header line, then one
row per line in the `LabelSet.records()` layout, so `read_label_set`, the QC report and a sweep's
`file:` condition read it as it is. The header is written once, when the file is created (and
the directory entry fsynced); reopening checks that the segment length and the annotators are
the ones the file was started with.

Each row is checked by `label_set_checks.validate_row` before it is written, then written with a
single O_APPEND write loop under an exclusive `flock` and a process-wide lock, and fsynced: two
writers (threads or processes) never interleave partial lines, and `append` returning means the
line is on disk. A crash can leave at most one unacknowledged partial last line (no newline).
Reopening never deletes a row: a last line that parses (a complete row whose newline an editor or
`cat a b` dropped) gets its newline and is read like the others, where the row checks still apply;
one that does not parse is moved to `<file>.torn` and reported (`dropped_partial`), so the file is
always readable. The rest is read back through `label_files`, the reader of every label file
(errors name file:line).
"""
from __future__ import annotations

import fcntl
import json
import os
import sys
import threading
from typing import Any, Mapping

from rlhf_jax.labels import label_files
from rlhf_jax.labels import label_set_checks as checks
from rlhf_jax.errors import LabelFileError, describe

_PROCESS_LOCK = threading.Lock()
TORN_SUFFIX = ".torn"


def _parses_as_object(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line.decode("utf-8")), dict)
    except (UnicodeDecodeError, ValueError):
        return False


def _fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def row_line(row: Mapping[str, Any]) -> bytes:
    """The exact bytes one row takes in the file."""
    return (json.dumps(row, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


class LabelAppender:
    """Durable append-only writer of one label file (see the module docstring)."""

    def __init__(self, path: str, *, length: int, annotators: Mapping[str, Mapping],
                 meta: Mapping[str, Any] | None = None, lerobot: Mapping[str, str] | None = None):
        """lerobot: {"repo_id", "revision"} of the LeRobot dataset the pairs come from (its rows
        then also carry episode_index_a/b and frame_index_a/b)."""
        self.path = os.path.abspath(path)
        self.header = checks.validate_header(
            {"format": checks.FORMAT, "length": int(length),
             "annotators": {k: dict(v) for k, v in annotators.items()}, "meta": dict(meta or {}),
             **({"lerobot": dict(lerobot)} if lerobot else {})},
            f"{path} (header)")
        self.dropped_partial = b""       # a torn last line moved to <file>.torn on reopening
        self.completed_last_line = False  # a parsing last row whose missing newline was added
        self._rows: list[dict] = []
        if not os.path.isfile(self.path) or os.path.getsize(self.path) == 0:
            self._create()
        else:
            self._reopen()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def _create(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        text = json.dumps({"format": checks.FORMAT, **self.header}, sort_keys=True, allow_nan=False)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, (text + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(self.path)

    def _reopen(self) -> None:
        with open(self.path, "rb") as f:
            data = f.read()
        keep = data.rfind(b"\n") + 1
        if keep < len(data):
            self._settle_last_line(data[keep:], keep)
        # What is left is read back like any label file: parse errors name file:line.
        parsed = label_files.iter_jsonl(self.path)
        line_no, first = next(parsed, (1, None))
        where = f"{self.path}:{line_no}"
        if first is None:
            raise LabelFileError(describe(where, "header", "the label-set header line",
                                          "no JSON line"))
        old = checks.validate_header(first, where)
        if old["length"] != self.header["length"]:
            raise LabelFileError(describe(where, "length", f"the configured segment length "
                                          f"{self.header['length']}", old["length"]))
        missing = sorted(set(self.header["annotators"]) - set(old["annotators"]))
        changed = sorted(a for a in self.header["annotators"]
                         if a in old["annotators"] and old["annotators"][a] != self.header["annotators"][a])
        if missing or changed:
            raise LabelFileError(describe(where, "annotators", "the annotators this file was started "
                                          f"with ({sorted(old['annotators'])})",
                                          f"new or changed annotators {missing or changed}"))
        if old.get("lerobot") != self.header.get("lerobot"):
            raise LabelFileError(describe(where, "lerobot", f"the LeRobot dataset this file was started with "
                                          f"({old.get('lerobot')})", self.header.get("lerobot")))
        self.header = old
        for n, row in parsed:
            self._rows.append(self._check(row, f"{self.path}:{n}"))

    def _settle_last_line(self, tail: bytes, keep: int) -> None:
        """A last line without its newline. A row that parses is kept (an editor or ``cat a b``
        leaves complete rows so; it may be a real label) by writing the newline; one that does
        not (a torn, never-acknowledged write) is moved to ``<file>.torn`` and reported, so no
        bytes are lost either way. The file is then fsynced, so it is always readable."""
        if _parses_as_object(tail):
            with open(self.path, "ab") as f:
                f.write(b"\n")
                os.fsync(f.fileno())
            self.completed_last_line = True
            return
        self.dropped_partial = tail
        with open(self.path + TORN_SUFFIX, "ab") as side:
            side.write(tail + b"\n")
            os.fsync(side.fileno())
        with open(self.path, "r+b") as f:
            f.truncate(keep)
            os.fsync(f.fileno())
        sys.stderr.write(f"{self.path}: moved a torn last line ({len(tail)} bytes, no newline, "
                         f"not JSON) to {self.path + TORN_SUFFIX}\n")

    def _check(self, row: Any, where: str) -> dict:
        if isinstance(row, Mapping):
            checks.check_lerobot_row(row, where, self.header)
        row = checks.validate_row(row, where, self.header["length"])
        if row["annotator_id"] not in self.header["annotators"]:
            raise LabelFileError(describe(where, "annotator_id", "an annotator of the file's header "
                                          f"{sorted(self.header['annotators'])}", repr(row["annotator_id"])))
        return row

    def rows(self) -> list[dict]:
        """Every row written so far, by this writer or found in the file when it was opened."""
        return list(self._rows)

    def append(self, row: Mapping[str, Any]) -> bytes:
        """Validates and durably appends one row; returns the line written."""
        where = f"{self.path} (new row)"
        row = dict(row)
        if self.header.get("lerobot"):
            row.update(checks.lerobot_keys(row, where))
        row = self._check(row, where)
        line = row_line({**row, **checks.lerobot_keys(row, where)} if self.header.get("lerobot") else row)
        with _PROCESS_LOCK:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                view = memoryview(line)
                while view:  # os.write may write less than asked; the lock keeps the line whole
                    view = view[os.write(self._fd, view):]
                os.fsync(self._fd)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._rows.append(row)
        return line

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
