"""Command-line overrides for config files: `file.py:variant,key=value,key=a+b`."""
from __future__ import annotations

import ml_collections

from rlhf_jax.data.errors import ConfigError


def split_arg(arg: str | None, default: str) -> tuple[str, list[str]]:
    """'variant,key=value,...' -> (variant, ['key=value', ...])."""
    variant, *overrides = (arg or default).split(",")
    return variant.strip(), [o.strip() for o in overrides if o.strip()]


def apply_overrides(c: ml_collections.ConfigDict, pairs: list[str], config_file: str) -> None:
    """Sets top-level fields from 'key=value' strings, parsed to the field's current type
    ('+' separates tuple items); unknown fields and malformed pairs name the config file."""
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"{config_file}: override {pair!r}: expected key=value")
        key, value = pair.split("=", 1)
        if key not in c:
            raise ConfigError(f"{config_file}: override {key!r}: no such field (fields: {sorted(c.keys())})")
        current = c[key]
        if isinstance(current, tuple):
            c[key] = tuple(type(current[0])(v) if current else v for v in value.split("+"))
        elif isinstance(current, bool):
            c[key] = value.lower() in ("1", "true", "yes")
        else:
            c[key] = type(current)(value)
