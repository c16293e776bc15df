"""Shared command-line helpers for experiment entry points."""
from __future__ import annotations

import importlib.util
import os


def load_config(spec: str):
    """'path/to/config.py:arg' -> that file's get_config(arg) (the ml_collections convention)."""
    path, _, arg = spec.partition(":")
    if not os.path.isfile(path):
        raise SystemExit(f"--config: file {path!r} not found (expected <config file>:<variant>)")
    module_spec = importlib.util.spec_from_file_location(f"_config_{os.path.basename(path)[:-3]}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg or None)
