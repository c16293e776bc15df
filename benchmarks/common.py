"""Shared benchmark helpers: the compilation cache, machine/version info, matmul peak, timing,
JSON output.

Every benchmark calls ``use_compilation_cache()`` first: JAX's persistent compilation cache under
the data dir, as the experiments use it (``RLHF_JAX_COMPILATION_CACHE=0`` switches it off). A
compile time measured with the cache on is a read from it when the program was cached earlier, so
``write_json`` records whether the cache was on and what it did in the run (hits, entries written);
for cold compile figures run a benchmark with the cache off. It also records each accelerator's
memory as JAX counts it (the process's peak and the device's limit), so a figure measured on one
GPU says whether its program would fit a smaller one; a CPU keeps no such count (null).
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
import time

_CACHE: dict = {"dir": None, "events": None}

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "scipy", "tensorflow-cpu",
            "tensorflow", "tensorflow-datasets", "ml-collections", "pyarrow")


def package_versions(names) -> dict:
    """{package: installed version, or None when it is not installed}."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine_info() -> dict:
    """Platform, CPU count, load average, accelerator and package versions."""
    import jax

    versions = {k: v for k, v in package_versions(PACKAGES).items() if v is not None}
    return {"platform": platform.platform(), "processor": platform.processor(),
            "python": sys.version.split()[0], "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "devices": [str(d) for d in jax.devices()],
            # str(device) is "cuda:0" on a GPU; the kind ("NVIDIA H200") says which chip it was.
            "device_kinds": sorted({getattr(d, "device_kind", d.platform) for d in jax.devices()}),
            "load_average": os.getloadavg(),
            "packages": versions}


def use_compilation_cache() -> str | None:
    """JAX's persistent compilation cache under <data dir>/jax_cache (None when switched off by
    $RLHF_JAX_COMPILATION_CACHE=0), and its events counted from here on for the JSON."""
    from rlhf_jax.compile_cache import CompileEvents
    from rlhf_jax.data.dataset import enable_compilation_cache

    _CACHE["dir"] = enable_compilation_cache()
    if _CACHE["events"] is None:
        _CACHE["events"] = CompileEvents().__enter__()  # open for the rest of the process
    return _CACHE["dir"]


def child_cache_env(env: dict) -> dict:
    """``env`` for a benchmark's child process, with this process's compilation cache (if on)."""
    if _CACHE["dir"]:
        env = dict(env, JAX_COMPILATION_CACHE_DIR=_CACHE["dir"])
    return env


def compilation_cache_record() -> dict:
    """The cache as this process used it: on or off, programs compiled or read back, cache hits
    and entries written (this process only, not its children). The directory is left out: it
    is a path on the machine that ran the benchmark."""
    events = _CACHE["events"]
    counts = {"compiles": events.compiles, "cache_hits": events.cache_hits,
              "cache_writes": events.cache_writes} if events else {}
    return {"enabled": bool(_CACHE["dir"]), **counts}


def time_call(fn, *args, repeats: int = 3, block=None) -> float:
    """Best wall time over ``repeats`` calls of an already-compiled ``fn`` (seconds)."""
    import jax

    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn(*args)
        jax.block_until_ready(out if block is None else block(out))
        best = min(best, time.perf_counter() - t)
    return best


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Measured f32 n×n matmul rate of the default device, in GFLOP/s."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    jax.block_until_ready(f(a))
    return 2 * n**3 / time_call(f, a, repeats=repeats) / 1e9


def device_memory() -> list[dict] | None:
    """Per accelerator: the peak bytes this process held, the bytes held now and the device's limit
    (``Device.memory_stats``); None on a CPU or in a process that never started JAX."""
    if "jax" not in sys.modules:  # starting a backend only to ask would hold GPU memory for nothing
        return None
    import jax

    out = []
    for device in jax.local_devices():
        stats = device.memory_stats() or {}
        kept = {k: int(stats[k]) for k in ("peak_bytes_in_use", "bytes_in_use", "bytes_limit") if k in stats}
        if kept:
            out.append({"device": str(device), **kept})
    return out or None


def write_json(path: str, payload: dict) -> None:
    from rlhf_jax.strict_json import strict_json

    payload = {**payload, "compilation_cache": payload.get("compilation_cache", compilation_cache_record())}
    payload.setdefault("device_memory", device_memory())
    payload = strict_json(json.loads(json.dumps(payload)))  # no bare NaN: strict JSON, as every file we write
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, sort_keys=True, allow_nan=False)
    os.replace(tmp, path)
    print(json.dumps(payload, indent=2, sort_keys=True))


def dense_macs(params) -> int:
    """Multiply-accumulates of one forward pass per input row through every Dense kernel of a
    parameter tree (kernels [in, out], or [K, in, out] for a stacked ensemble: K·in·out).

    This is the model's FLOP count (2 × MACs per row) for MLPs applied row-wise; embedding
    tables are lookups and are not counted.
    """
    import jax

    leaves = jax.tree_util.tree_leaves_with_path(params)
    return int(sum(leaf.size for path, leaf in leaves
                   if getattr(path[-1], "key", None) == "kernel" and leaf.ndim >= 2))
