"""The type check of a config against its variant's defaults, before its FIELDS domains.

``config_flags`` parses an override's type, but it turns ``model_sizes=32`` into ``(32,)`` and
takes any tuple; ``check_types`` holds every field to the kind of the same field of the variant's
own default config: a bool stays a bool, an int an int (not a bool), a float takes any number, a
tuple's items the kind of the default's first item, and a record (a tuple of fields of different
kinds) is checked field by field. A default of None takes anything (the job validates it).
"""
from __future__ import annotations

import ml_collections

from rlhf_jax.errors import ConfigError, describe


def _is_record(value) -> bool:
    """A tuple of fields of different kinds, such as (name, number or None, number): a tuple of
    such records is checked field by field against its first record, not element by element."""
    kinds = {"number" if isinstance(v, (int, float)) and not isinstance(v, bool) else type(v) for v in value} \
        if isinstance(value, (tuple, list)) else set()
    return len(kinds) > 1


def _kind(value, plural: bool = False) -> str:
    """A readable type description of a default value, used in 'expected ...'."""
    names = {bool: "bool", int: "int", float: "number", str: "string"}
    if _is_record(value):
        fields = ", ".join("anything" if v is None else _kind(v) for v in value)
        return ("tuples" if plural else "a tuple") + f" ({fields})"
    if isinstance(value, (tuple, list)):
        inner = f" of {_kind(value[0], plural=True)}" if value else ""
        return ("tuples" if plural else "a tuple") + inner
    name = next((n for t, n in names.items() if isinstance(value, t)), type(value).__name__)
    return f"{name}s" if plural else f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _same_kind(value, default) -> bool:
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (tuple, list)):
        if not isinstance(value, (tuple, list)):
            return False
        if _is_record(default):  # field by field; a None field takes anything (the job validates it)
            return len(value) == len(default) and all(_same_kind(v, d) for v, d in zip(value, default))
        return not default or all(_same_kind(v, default[0]) for v in value)
    return True


def check_types(config, default, config_file: str, prefix: str = "") -> None:
    """Every field of ``config`` has the type of the same field of ``default`` (recursively)."""
    for key in default.keys():
        field, value, ref = prefix + key, config[key], default[key]
        if isinstance(ref, ml_collections.ConfigDict):
            if not isinstance(value, ml_collections.ConfigDict):
                raise ConfigError(describe(config_file, field, "a group of fields", repr(value)))
            check_types(value, ref, config_file, field + ".")
        elif not _same_kind(value, ref):
            raise ConfigError(describe(config_file, field, _kind(ref), repr(value)))
