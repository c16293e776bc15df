"""Shared benchmark helpers: machine/version info, matmul peak, timing, JSON output."""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
import time

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


def write_json(path: str, payload: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
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
