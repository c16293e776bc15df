"""JAX's persistent compilation cache: switched on by the entry points, counted by the tests.

    cache_dir = enable(os.path.join(data_dir, "jax_cache"))   # None when switched off
    with CompileEvents() as events:
        ...
    events.compiles, events.cache_hits, events.cache_writes

Nothing here runs at import: the library never turns the cache on by itself. The command line
(``experiments/cli.py``) and the benchmarks call ``enable`` before they compile anything, so a
second process running the same program reads the compiled program back instead of compiling it.
``RLHF_JAX_COMPILATION_CACHE=0`` switches it off for every entry point.
"""
from __future__ import annotations

import os

ENV_VAR = "RLHF_JAX_COMPILATION_CACHE"
OFF_VALUES = ("0", "false", "no", "off")
# Programs that compile faster than this are not written: reading an entry back costs a few
# milliseconds plus the disk it takes, which tiny programs do not repay.
MIN_COMPILE_TIME_S = 1.0

# jax.monitoring event names (stable across the JAX versions the project supports).
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"
CACHE_WRITE_EVENT = "/jax/compilation_cache/cache_misses"  # recorded when a new entry is written


def switched_off_by_env() -> bool:
    """True when $RLHF_JAX_COMPILATION_CACHE says 0 / false / no / off."""
    return os.environ.get(ENV_VAR, "").strip().lower() in OFF_VALUES


def enable(cache_dir: str, min_compile_time_s: float = MIN_COMPILE_TIME_S) -> str | None:
    """Points JAX's persistent compilation cache at ``cache_dir``; returns the directory in use.

    A directory configured already (``JAX_COMPILATION_CACHE_DIR`` or an earlier call) is kept:
    the first one a process compiles with is the one JAX uses. Returns None, and changes
    nothing, when $RLHF_JAX_COMPILATION_CACHE switches the cache off.
    """
    import jax  # pylint: disable=g-import-not-at-top

    if switched_off_by_env():
        return None
    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(cache_dir))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
    return jax.config.jax_compilation_cache_dir


class CompileEvents:
    """Counts, while open, the programs XLA is asked to compile (``compiles``: each one is a
    compile or a read from the persistent cache; ``compiled_names`` says which), the
    persistent-cache hits and the entries written to it, through ``jax.monitoring`` listeners."""

    def __init__(self):
        self.compiles = 0
        self.compiled_names: list[str] = []
        self.cache_hits = 0
        self.cache_writes = 0

    def _on_event(self, event: str, **_):
        if event == CACHE_HIT_EVENT:
            self.cache_hits += 1
        elif event == CACHE_WRITE_EVENT:
            self.cache_writes += 1

    def _on_duration(self, event: str, _duration: float, **kwargs):
        if event == BACKEND_COMPILE_EVENT:
            self.compiles += 1
            self.compiled_names.append(str(kwargs.get("fun_name", "?")))

    def __enter__(self) -> "CompileEvents":
        from jax import monitoring  # pylint: disable=g-import-not-at-top

        monitoring.register_event_listener(self._on_event)
        monitoring.register_event_duration_secs_listener(self._on_duration)
        return self

    def __exit__(self, *exc) -> None:
        from jax import monitoring  # pylint: disable=g-import-not-at-top

        monitoring.unregister_event_listener(self._on_event)
        monitoring.unregister_event_duration_listener(self._on_duration)
