"""Holding back the process's stderr (file descriptor 2) while noisy native code runs.

Orbax restores read through tensorstore, whose threads print straight to file descriptor 2; a
Python-level redirect does not catch them. ``stderr_dropped_if`` holds the descriptor in a
temporary file and replays or drops what was written, once the writers have gone quiet.
"""
from __future__ import annotations

import contextlib
import gc
import os
import sys
import tempfile
import time
from typing import Callable


@contextlib.contextmanager
def stderr_dropped_if(failed: Callable[[], bool], quiet_s: float = 0.5, max_wait_s: float = 10.0):
    """Holds back the process's stderr while orbax restores run; replays it unless ``failed()``.

    When a corrupted step's first read fails, tensorstore's other reads (one per array) are
    still in flight, and each prints an "Event loop is closed" traceback from its own thread —
    hundreds of interleaved lines — and later, when collected, logs its unretrieved exception. The failure is reported as one warning instead, so after a
    failure the held output is dropped once it has stopped growing for ``quiet_s`` (those reads
    have finished), waiting at most ``max_wait_s``.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            drop = failed()
            if drop:
                _wait_until_quiet(held.fileno(), quiet_s, max_wait_s)
                # The failed reads' asyncio tasks log "Task exception was never retrieved" when
                # they are garbage-collected: collect them now, while the output is still held.
                gc.collect()
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if not drop:
                held.seek(0)
                text = held.read().decode("utf-8", "replace")
                if text:
                    sys.stderr.write(text)
                    sys.stderr.flush()


def _wait_until_quiet(fd: int, quiet_s: float, max_wait_s: float) -> None:
    """Returns once the file behind ``fd`` has not grown for ``quiet_s`` (or after ``max_wait_s``)."""
    step = quiet_s / 4
    deadline = time.monotonic() + max_wait_s
    size, still_since = os.fstat(fd).st_size, time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(step)
        now = os.fstat(fd).st_size
        if now != size:
            size, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet_s:
            return
