"""JSON without bare NaN/Infinity tokens, and back: every JSON file the project writes is strict
(strict parsers, browsers' ``JSON.parse`` and ``jq`` refuse ``NaN``), and readers get NaN back.

A non-finite number becomes null, and the dict entry holding it gets the reason beside it,
``"<key>_null_reason": "not finite (nan)"`` (for a list with null entries, one reason for the
list). ``from_strict_json`` undoes exactly that; a null without a reason stays None. Written by
hand: the standard library only offers ``allow_nan=False``, which refuses instead of converting.
No JAX import, so benchmarks that run without the rest of the stack use it too.
"""
from __future__ import annotations

import json
import math
from typing import Any


def _non_finite(x) -> bool:
    return isinstance(x, float) and not math.isfinite(x)


def _any_non_finite(items: list) -> bool:
    return any(_any_non_finite(x) if isinstance(x, list) else _non_finite(x) for x in items)


def strict_json(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None, and each such dict entry's reason
    beside it (``<key>_null_reason``); lists keep their length."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out[k] = strict_json(v)
            if _non_finite(v):
                out[f"{k}_null_reason"] = f"not finite ({v})"
            elif isinstance(v, list) and _any_non_finite(v):
                out[f"{k}_null_reason"] = "its null entries were not finite (no data for them)"
        return out
    if isinstance(obj, list):
        return [strict_json(v) for v in obj]
    return None if _non_finite(obj) else obj


def from_strict_json(obj: Any) -> Any:
    """The inverse of ``strict_json``: a null value with its ``<key>_null_reason`` beside it becomes
    the number the reason names (nan, inf, -inf), a list's null entries under a reason become NaN,
    and the reasons are dropped; a file written before JSON was strict (bare NaN tokens) reads the
    same."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if isinstance(k, str) and k.endswith("_null_reason") and k[:-len("_null_reason")] in obj:
                continue
            v = from_strict_json(v)
            reason = obj.get(f"{k}_null_reason")
            if v is None and isinstance(reason, str) and reason.startswith("not finite ("):
                v = float(reason[len("not finite ("):-1])  # nan, inf or -inf, as written
            elif reason is not None:
                v = _nulls_to_nan(v)
            out[k] = v
        return out
    if isinstance(obj, list):
        return [from_strict_json(v) for v in obj]
    return obj


def _nulls_to_nan(v: Any) -> Any:
    if v is None:
        return math.nan
    if isinstance(v, list):
        return [_nulls_to_nan(x) for x in v]
    return v


def read_json(path: str) -> Any:
    """A JSON file we wrote, with its non-finite numbers as NaN again (older files with bare NaN
    tokens read the same)."""
    with open(path, encoding="utf-8") as f:
        return from_strict_json(json.load(f))
