"""Shared assertions of the bad-input tests: a run refused in one line, with nothing written."""
from __future__ import annotations

import os


def snapshot(path: str) -> dict | None:
    """{relative path: bytes} of everything under ``path`` (None if it does not exist)."""
    if not os.path.exists(path):
        return None
    out = {}
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, path)] = f.read()
    return out


def fails_cleanly(capsys, main, argv, workdir, *needles) -> str:
    """Runs main(argv); asserts exit 2, one 'error:' line containing every needle, no traceback,
    and ``workdir`` (when given) exactly as before. Returns the error line."""
    before = snapshot(workdir) if workdir else None
    code = main(["prog", *argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err[-2000:]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    if workdir:
        assert snapshot(workdir) == before, "the workdir was changed"
    return lines[0]
