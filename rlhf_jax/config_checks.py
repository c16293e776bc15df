"""Declarative field checks of a config before anything runs: each failure is one ConfigError
line naming the config file, the field's dotted path, what was expected and what was found.

    c = FieldChecker(config, "configs/x.py")
    c.integer("seed", lo=0); c.real("optimizer.learning_rate", 0.0, open_lo=True)
    c.choice("optimizer.schedule", ("cosine", "constant"))

``rlhf_jax.config_schema`` runs these checks from a declarative table of fields.
"""
from __future__ import annotations

import math
import numbers

from rlhf_jax.errors import ConfigError, describe

_MISSING = object()


class FieldChecker:
    """Field checks against one config; each failure raises at once (the first bad field wins)."""

    def __init__(self, config, config_file: str):
        self.config, self.file = config, config_file

    def fail(self, field: str, expected: str, got) -> None:
        raise ConfigError(describe(self.file, field, expected, got))

    def get(self, field: str, default=_MISSING):
        node = self.config
        for part in field.split("."):
            if part not in node:
                if default is not _MISSING:
                    return default
                self.fail(field, "a value", "no such field")
            node = node[part]
        return node

    def integer(self, field: str, lo: int = 1) -> int:
        v = self.get(field)
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
            self.fail(field, "a positive integer" if lo == 1 else f"an integer >= {lo}", repr(v))
        return int(v)

    def real(self, field: str, lo: float = -math.inf, hi: float = math.inf, *, open_lo: bool = False,
             open_hi: bool = False) -> float:
        v = self.get(field)
        ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
        if not ok or v < lo or v > hi or (open_lo and v == lo) or (open_hi and v == hi):
            bounds = [f"> {lo}" if open_lo else f">= {lo}"] if lo > -math.inf else []
            bounds += [f"< {hi}" if open_hi else f"<= {hi}"] if hi < math.inf else []
            self.fail(field, "a finite number" + (" " + " and ".join(bounds) if bounds else ""), repr(v))
        return float(v)

    def choice(self, field: str, options) -> str:
        v = self.get(field)
        if v not in options:
            self.fail(field, "one of " + ", ".join(map(repr, options)), repr(v))
        return v

    def widths(self, field: str) -> None:
        v = self.get(field)
        if not isinstance(v, (list, tuple)) or not all(
                isinstance(w, numbers.Integral) and not isinstance(w, bool) and w > 0 for w in v):
            self.fail(field, "a sequence of positive integers", repr(v))

    def boolean(self, field: str) -> bool:
        v = self.get(field)
        if not isinstance(v, bool):
            self.fail(field, "True or False", repr(v))
        return v

    def string(self, field: str) -> str:
        v = self.get(field)
        if not isinstance(v, str):
            self.fail(field, "a string", repr(v))
        return v

    def sequence(self, field: str, item_ok, items: str, nonempty: bool = False) -> tuple:
        """A list or tuple whose every item passes ``item_ok``; ``items`` names them for the message."""
        v = self.get(field)
        if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple)) or not all(map(item_ok, v)) \
                or (nonempty and not v):
            self.fail(field, ("a non-empty sequence of " if nonempty else "a sequence of ") + items, repr(v))
        return tuple(v)
