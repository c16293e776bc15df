"""One declarative description of a config's fields, checked generically before a job runs.

Each ``configs/<job>.py`` holds ``FIELDS``: a tuple of ``Field`` records (dotted path, kind,
domain, a one-line meaning). ``validate(config, config_file, FIELDS)`` runs every field through
``rlhf_jax.config_checks.FieldChecker`` and raises the first failure as one ``ConfigError`` line
(``<config file>: field '<path>': expected <domain>, got <value> (<meaning>)``);
``help_text(FIELDS)`` lists the same records for ``--describe_fields``, and ``out_of_domain``
gives, for each record, values it must refuse (the generated test feeds them to every job).

    FIELDS = (integer("ppo.num_envs", "parallel environments"),
              real("ppo.gamma", "discount factor", 0.0, 1.0),
              choice("kl.schedule", "how beta moves", "rlhf_jax.losses.kl:KL_SCHEDULES"),
              *prefixed("sft.", sft.FIELDS))

Why plain dataclasses over ml_collections rather than pydantic or attrs validators: the config is
already an ml_collections ``ConfigDict`` tree that absl's ``config_flags`` parses and overrides
field by field; a pydantic model would describe that tree a second time (and its errors are
multi-line, one per failing field), attrs would need the config rebuilt as classes. A record per
field keeps the tree as it is and adds only what the tree lacks: the domain and the meaning.

Paths may hold ``*`` for "every key of this group" (e.g. ``strategy_defs.*.human_fraction``).
Relations between fields (a divisor of another field, a length at most the horizon) stay small
procedural checks in the job's own validator, run after these.

Choice options may be given as ``"module:NAME"``, a library registry read when the field is
checked, so a config module names the registry without importing the library (and JAX).
"""
from __future__ import annotations

import dataclasses
import importlib
import math
import numbers
from typing import Iterable, Iterator

from rlhf_jax.config_checks import FieldChecker
from rlhf_jax.errors import ConfigError, describe

KINDS = ("integer", "real", "choice", "boolean", "string", "integers", "reals", "strings", "choices", "layers")


@dataclasses.dataclass(frozen=True)
class Field:
    """One config field: where it is, what it may hold, and what it means."""

    path: str                     # dotted; "*" matches every key of a group
    kind: str                     # one of KINDS; the plural kinds are sequences of that kind
    meaning: str                  # one line, for the error and --describe_fields
    lo: float = -math.inf
    hi: float = math.inf
    open_lo: bool = False
    open_hi: bool = False
    options: tuple | str = ()     # choice(s): the allowed values, or "module:NAME" of a registry
    optional: bool = False        # None (a placeholder) is allowed, and so is a missing field
    nonempty: bool = False        # sequences: at least one item
    length: int | None = None     # sequences: exactly this many items

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Field {self.path!r}: kind {self.kind!r} is not one of {KINDS}")


# --- Constructors: the tables read as one call per field -----------------------------------------

def integer(path, meaning, lo=1, hi=math.inf, optional=False) -> Field:
    return Field(path, "integer", meaning, lo=lo, hi=hi, optional=optional)


def seed(path, meaning="a random seed (NumPy refuses negative seeds)") -> Field:
    return Field(path, "integer", meaning, lo=0)


def real(path, meaning, lo=-math.inf, hi=math.inf, open_lo=False, open_hi=False, optional=False) -> Field:
    return Field(path, "real", meaning, lo=lo, hi=hi, open_lo=open_lo, open_hi=open_hi, optional=optional)


def choice(path, meaning, options) -> Field:
    return Field(path, "choice", meaning, options=options)


def boolean(path, meaning) -> Field:
    return Field(path, "boolean", meaning)


def string(path, meaning) -> Field:
    return Field(path, "string", meaning)


def integers(path, meaning, lo=1, nonempty=False, length=None) -> Field:
    return Field(path, "integers", meaning, lo=lo, nonempty=nonempty, length=length)


def widths(path, meaning) -> Field:
    """Layer widths of one MLP: a non-empty sequence of positive integers."""
    return Field(path, "integers", meaning, lo=1, nonempty=True)


def reals(path, meaning, lo=-math.inf, hi=math.inf, open_lo=False, open_hi=False, nonempty=False,
          length=None) -> Field:
    return Field(path, "reals", meaning, lo=lo, hi=hi, open_lo=open_lo, open_hi=open_hi, nonempty=nonempty,
                 length=length)


def strings(path, meaning, nonempty=False) -> Field:
    return Field(path, "strings", meaning, nonempty=nonempty)


def choices(path, meaning, options, nonempty=False) -> Field:
    return Field(path, "choices", meaning, options=options, nonempty=nonempty)


def layers(path, meaning) -> Field:
    """Several MLP sizes: a non-empty sequence of non-empty sequences of positive integers."""
    return Field(path, "layers", meaning, nonempty=True)


def prefixed(prefix: str, fields: Iterable[Field], exclude: Iterable[str] = ()) -> tuple[Field, ...]:
    """A stage's table under ``prefix`` (e.g. "ppo."), without the fields whose own path starts with
    one of ``exclude`` (a block the composite job replaces)."""
    exclude = tuple(exclude)
    return tuple(dataclasses.replace(f, path=prefix + f.path) for f in fields
                 if not any(f.path == e or f.path.startswith(e + ".") for e in exclude))


# --- Domains ------------------------------------------------------------------------------------

def options_of(field: Field) -> tuple:
    """The allowed values of a choice field, reading a "module:NAME" registry (dict keys or items)."""
    if not isinstance(field.options, str):
        return tuple(field.options)
    module, _, name = field.options.partition(":")
    return tuple(getattr(importlib.import_module(module), name))


def _bounds(field: Field) -> str:
    out = [f"> {field.lo}" if field.open_lo else f">= {field.lo}"] if field.lo > -math.inf else []
    out += [f"< {field.hi}" if field.open_hi else f"<= {field.hi}"] if field.hi < math.inf else []
    return " and ".join(out)


def _number_ok(field: Field, v) -> bool:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return False
    if field.kind in ("integer", "integers") and not isinstance(v, numbers.Integral):
        return False
    return (math.isfinite(v) and field.lo <= v <= field.hi and not (field.open_lo and v == field.lo)
            and not (field.open_hi and v == field.hi))


def _items(field: Field) -> str:
    """What each value (of a sequence: each item) may be, in the plural."""
    if field.kind in ("choice", "choices"):
        return "one of " + ", ".join(map(repr, options_of(field)))
    if field.kind in ("integer", "integers", "real", "reals"):
        if field.kind.startswith("integer") and field.lo == 1 and field.hi == math.inf:
            return "positive integers"
        noun = "integers" if field.kind.startswith("integer") else "finite numbers"
        return f"{noun} {_bounds(field)}".strip()
    return {"boolean": "True or False", "string": "strings", "strings": "strings",
            "layers": "non-empty sequences of positive integers (layer widths)"}[field.kind]


def domain(field: Field) -> str:
    """The domain in words, as the error's 'expected ...' says it."""
    items = _items(field)
    if field.kind in ("choice", "boolean"):
        return items
    if field.kind in ("integer", "real", "string"):   # the singular of the items
        return items.replace("positive integers", "a positive integer").replace("integers", "an integer") \
            .replace("finite numbers", "a finite number").replace("strings", "a string")
    if field.kind == "choices":
        items = "names, each " + items
    if field.length:
        return f"a sequence of {field.length} {items}"
    return ("a non-empty sequence of " if field.nonempty else "a sequence of ") + items


def _item_ok(field: Field, v) -> bool:
    if field.kind in ("integers", "reals"):
        return _number_ok(field, v)
    if field.kind == "strings":
        return isinstance(v, str)
    if field.kind == "choices":
        return v in options_of(field)
    return (isinstance(v, (list, tuple)) and bool(v)   # layers
            and all(isinstance(w, numbers.Integral) and not isinstance(w, bool) and w > 0 for w in v))


def in_domain(field: Field, v) -> bool:
    if field.optional and v is None:
        return True
    if field.kind in ("integer", "real"):
        return _number_ok(field, v)
    if field.kind == "choice":
        return v in options_of(field)
    if field.kind == "boolean":
        return isinstance(v, bool)
    if field.kind == "string":
        return isinstance(v, str)
    if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple)):
        return False
    if (field.nonempty and not v) or (field.length is not None and len(v) != field.length):
        return False
    return all(_item_ok(field, item) for item in v)


# --- Checking a config --------------------------------------------------------------------------

def paths(config, pattern: str) -> Iterator[str]:
    """The concrete dotted paths ``pattern`` names in ``config`` ("*" expands to every key present);
    a path that is not there is yielded as is (so its check reports it missing)."""
    head, _, rest = pattern.partition(".")
    if head == "*":
        keys = list(config.keys()) if hasattr(config, "keys") else []
    else:
        keys = [head]
    for key in keys:
        if not rest:
            yield key
        elif hasattr(config, "keys") and key in config and hasattr(config[key], "keys"):
            yield from (f"{key}.{p}" for p in paths(config[key], rest))
        elif head != "*":
            yield pattern


def matches(pattern: str, path: str) -> bool:
    """Whether ``path`` is one that ``pattern`` names."""
    a, b = pattern.split("."), path.split(".")
    return len(a) == len(b) and all(p in ("*", q) for p, q in zip(a, b))


_ABSENT = object()


def validate(config, config_file: str, fields: Iterable[Field], prefix: str = "") -> None:
    """Raises the first field's ConfigError (one line: file, field, expected, got, meaning).

    prefix: where ``config`` sits in the job's config (a stage's block, e.g. "sft."), for the
    field's name in the message."""
    checker = FieldChecker(config, config_file)
    for field in fields:
        for path in paths(config, field.path):
            value = checker.get(path, _ABSENT)
            if value is _ABSENT and not field.optional:
                expected, got = "a value", "no such field"
            elif value is _ABSENT or in_domain(field, value):
                continue
            else:
                expected, got = domain(field), repr(value)
            raise ConfigError(f"{describe(config_file, prefix + path, expected, got)} ({field.meaning})")


def out_of_domain(field: Field) -> list:
    """Values ``field`` must refuse: beyond each finite bound, a NaN for an unbounded number, an
    unknown name, a wrong type, an empty or wrongly sized sequence."""
    if field.kind in ("integer", "real", "integers", "reals"):
        step = 1 if "integer" in field.kind else 1.0
        bad = ([field.lo if field.open_lo else field.lo - step] if field.lo > -math.inf else []) + \
              ([field.hi if field.open_hi else field.hi + step] if field.hi < math.inf else [])
        if not bad:
            bad = [math.nan] if field.kind.startswith("real") else [1.5]
        if field.kind in ("integer", "real"):
            return bad
        values = [(b,) * (field.length or 1) for b in bad]
    else:
        values = {"choice": ["no_such_option"], "boolean": ["maybe"], "string": [0],
                  "strings": [(0,)], "choices": [("no_such_option",)], "layers": [((0,),)]}[field.kind]
        if field.kind in ("choice", "boolean", "string"):
            return values
    return values + ([()] if field.nonempty or field.length else [])


def help_text(fields: Iterable[Field]) -> str:
    """One line per field: path, domain (and "or None"), meaning."""
    rows = [(f.path, domain(f) + (", or None" if f.optional else ""), f.meaning) for f in fields]
    width = max((len(p) for p, _, _ in rows), default=0)
    return "\n".join(f"{p:<{width}}  {m}. Expected {d}." for p, d, m in rows)
