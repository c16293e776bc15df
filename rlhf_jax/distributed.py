"""Multi-host (multi-process) runs: start-up, global batches, splitting work, gathering results.

JAX runs multi-host programs multi-controller: every process runs the same script, owns its
local devices, and ``jax.distributed.initialize`` joins them so that ``jax.devices()`` lists all
processes' devices. The same ("data",) mesh and ``rlhf_jax.sharding.data_parallel`` then span
every host; XLA inserts the cross-host gradient all-reduce. What differs from one process:

* start-up: :func:`initialize` reads the coordinator address, process count and process id from
  a config or from ``RLHF_JAX_COORDINATOR`` / ``RLHF_JAX_NUM_PROCESSES`` / ``RLHF_JAX_PROCESS_ID``
  and is a no-op when none is set, so single-host scripts call it unconditionally;
* input: each process loads only its share of a batch; :func:`host_local_to_global` stitches
  the shares into one global array (process i's rows come i-th along the batch axis);
* replicated state must be a global array too (:func:`rlhf_jax.sharding.replicate`), not a
  process-local one;
* independent work (sweep points) is split with :func:`split_indices` and the per-process rows
  are collected on process 0 with :func:`gather_rows`, keyed by global index so that nothing is
  counted twice.

On CPU the cross-process collectives need an implementation; :func:`initialize` selects gloo
(shipped in jaxlib) unless one is configured, because the default has none and a cross-process
all-reduce would fail at run time.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import jax
import numpy as np
from jax.sharding import Mesh

from rlhf_jax.sharding import batch_sharded

ENV_COORDINATOR = "RLHF_JAX_COORDINATOR"
ENV_NUM_PROCESSES = "RLHF_JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "RLHF_JAX_PROCESS_ID"


@dataclass(frozen=True)
class DistributedSpec:
    """Where the coordinator listens ("host:port") and who this process is."""

    coordinator_address: str
    num_processes: int
    process_id: int


def _field(config: Any, name: str):
    if config is None:
        return None
    if isinstance(config, Mapping) or hasattr(config, "get"):
        value = config.get(name)
    else:
        value = getattr(config, name, None)
    return None if value in ("", None) else value


def spec_from(config: Any = None, environ: Mapping[str, str] | None = None) -> DistributedSpec | None:
    """The distributed spec from ``config`` fields, else the environment; None = single process.

    ``config`` may be a mapping of the ``RLHF_JAX_*`` variables (used as the environment), or a
    dict/ConfigDict with ``coordinator_address``, ``num_processes`` and
    ``process_id`` (a ``distributed`` sub-config is looked into first). A config field wins over
    its environment variable, so one launcher can export the coordinator and pass ids per process.
    A partial spec is an error naming what is missing, not a silent single-process run.
    """
    if isinstance(config, Mapping) and any(k in config for k in (ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID)):
        config, environ = None, config  # an environment mapping was passed in the config's place
    environ = os.environ if environ is None else environ
    sub = _field(config, "distributed")
    config = sub if sub is not None else config
    coordinator = _field(config, "coordinator_address") or environ.get(ENV_COORDINATOR) or None
    num = _field(config, "num_processes") or environ.get(ENV_NUM_PROCESSES) or None
    pid = _field(config, "process_id")
    if pid is None:
        pid = environ.get(ENV_PROCESS_ID) or None
    given = {"coordinator_address": coordinator, "num_processes": num, "process_id": pid}
    if all(v is None for v in given.values()):
        return None
    missing = [k for k, v in given.items() if v is None]
    if missing:
        raise ValueError(f"distributed run: {', '.join(missing)} not set (config fields or "
                         f"{ENV_COORDINATOR}/{ENV_NUM_PROCESSES}/{ENV_PROCESS_ID}); set all three or none")
    num, pid = int(num), int(pid)
    if num < 1 or not 0 <= pid < num:
        raise ValueError(f"distributed run: process_id {pid} is not in [0, num_processes={num})")
    if ":" not in str(coordinator):
        raise ValueError(f"distributed run: coordinator_address {coordinator!r} must be host:port")
    return DistributedSpec(str(coordinator), num, pid)


_INITIALIZED: DistributedSpec | None = None


def initialize(config_or_env: Any = None) -> DistributedSpec | None:
    """Joins the multi-process runtime described by ``config_or_env`` (see :func:`spec_from`).

    Returns the spec, or None (and does nothing) when no distributed setting is present. Must run
    before anything touches a JAX backend; calling it again with the same spec is harmless.
    """
    global _INITIALIZED
    spec = spec_from(config_or_env)
    if spec is None:
        return None
    if _INITIALIZED is not None:
        if _INITIALIZED != spec:
            raise RuntimeError(f"jax.distributed already initialised as {_INITIALIZED}, not {spec}")
        return spec
    if spec.num_processes > 1 and _cpu_only() and jax.config.jax_cpu_collectives_implementation in (None, "", "none"):
        # Without this, CPU collectives across processes are unimplemented and the first
        # cross-host all-reduce fails inside the compiled step.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(spec.coordinator_address, spec.num_processes, spec.process_id)
    _INITIALIZED = spec
    return spec


def _cpu_only() -> bool:
    # Decided from configuration, not jax.devices(): querying devices would start the backend
    # before jax.distributed.initialize, which then refuses to run.
    platforms = jax.config.jax_platforms or os.environ.get("JAX_PLATFORMS", "")
    return platforms.strip().lower() == "cpu"


def is_primary() -> bool:
    """True on the process that writes results and logs (process 0)."""
    return jax.process_index() == 0


def host_local_to_global(batch, mesh: Mesh, axis: int = 0):
    """One global array per leaf from each process's local rows, sharded over "data" on ``axis``.

    Process i's rows land i-th along ``axis`` (the mesh lists devices process by process), so
    the global batch is the concatenation of the local ones in process order. Each local share
    must split evenly over this process's devices; a share that does not is refused by name.
    """
    sharding = batch_sharded(mesh, axis)
    n_local = len([d for d in mesh.devices.flat if d.process_index == jax.process_index()])

    def place(path, x):
        x = np.asarray(x)
        if x.shape[axis] % n_local:
            raise ValueError(f"batch field {jax.tree_util.keystr(path)}: local size {x.shape[axis]} on axis "
                             f"{axis} is not divisible by this process's {n_local} devices")
        global_shape = x.shape[:axis] + (x.shape[axis] * jax.process_count(),) + x.shape[axis + 1:]
        return jax.make_array_from_process_local_data(sharding, x, global_shape)

    return jax.tree_util.tree_map_with_path(place, batch)


def local_value(x) -> np.ndarray:
    """A replicated global array's value as NumPy (this process's copy; no communication)."""
    return np.asarray(x.addressable_data(0))


def split_indices(n_items: int, process_id: int | None = None, num_processes: int | None = None) -> range:
    """The contiguous block of ``range(n_items)`` this process owns; blocks differ by ≤ 1 item.

    Contiguous rather than strided so that neighbouring sweep points (same condition, adjacent N)
    share a process and its compiled program shapes stay alike.
    """
    pid = jax.process_index() if process_id is None else process_id
    n_proc = jax.process_count() if num_processes is None else num_processes
    base, extra = divmod(n_items, n_proc)
    start = pid * base + min(pid, extra)
    return range(start, start + base + (1 if pid < extra else 0))


def gather_rows(indexed_rows: Iterable[tuple[int, Any]]) -> list[Any] | None:
    """Collects (global index, JSON-able row) pairs from every process onto process 0.

    Returns the rows sorted by index on process 0 and None elsewhere. A row reported by more than
    one process (e.g. work that was replicated) is kept once, from the lowest process id, so the
    merged result never double-counts. All processes must call this (it is a collective).
    """
    from jax.experimental import multihost_utils

    payload = np.frombuffer(json.dumps([[int(i), r] for i, r in indexed_rows]).encode(), np.uint8)
    if jax.process_count() == 1:
        chunks = [payload]
    else:
        # Fixed-shape collectives: share lengths first, then pad every payload to the longest.
        lengths = np.asarray(multihost_utils.process_allgather(np.asarray([payload.size], np.int64))).reshape(-1)
        padded = np.zeros((int(lengths.max()),), np.uint8)
        padded[:payload.size] = payload
        gathered = np.asarray(multihost_utils.process_allgather(padded))
        chunks = [gathered[p, :n] for p, n in enumerate(lengths)]
    if not is_primary():
        return None
    merged: dict[int, Any] = {}
    for chunk in chunks:  # process order: the first report of an index wins
        for i, row in json.loads(bytes(chunk).decode()):
            merged.setdefault(i, row)
    return [merged[i] for i in sorted(merged)]
