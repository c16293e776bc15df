"""Meshes and data-parallel jitting: batch sharded over ("data",), state replicated.

This is jax.jit + NamedSharding, the modern form of pmap: XLA inserts the gradient all-reduce
itself, so there is no explicit ``pmean`` anywhere (under ``shard_map`` a replicated
parameter's gradient is already summed, and a pmean there would be wrong by n×).
"""
from __future__ import annotations

from typing import Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def data_mesh(devices=None) -> Mesh:
    """A 1-D ("data",) mesh over all (or the given) devices, across every host."""
    devices = np.asarray(jax.devices() if devices is None else devices)
    return Mesh(devices.reshape(-1), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh, axis: int = 0) -> NamedSharding:
    """Shards dimension ``axis`` over "data" (axis=1 for batches with a leading stacked axis)."""
    spec = [None] * axis + ["data"]
    return NamedSharding(mesh, P(*spec))


def shard_batch(batch, mesh: Mesh, axis: int = 0):
    """Places every leaf of ``batch`` with its ``axis`` split over the data axis.

    The per-device slice must be even: a batch of 250 on 8 devices is refused with the field
    name rather than padded silently.
    """
    n = mesh.shape["data"]

    def place(path, x):
        if x.shape[axis] % n:
            name = jax.tree_util.keystr(path)
            raise ValueError(f"batch field {name}: size {x.shape[axis]} on axis {axis} is not divisible "
                             f"by the {n} devices of the data mesh")
        return jax.device_put(x, batch_sharded(mesh, axis))

    return jax.tree_util.tree_map_with_path(place, batch)


def data_parallel(update: Callable, mesh: Mesh, donate: bool = True, batch_axis: int = 0) -> Callable:
    """jit(update) with state replicated and the batch sharded along ``batch_axis``."""
    rep, shard = replicated(mesh), batch_sharded(mesh, batch_axis)
    return jax.jit(update, in_shardings=(rep, shard), out_shardings=(rep, rep),
                   donate_argnums=(0,) if donate else ())


def init_replicated(init_fn: Callable, mesh: Mesh, *args):
    """``init_fn(*args)`` under jit with every output replicated over ``mesh``.

    Each device computes the same values from the same key, so parameters and optimiser state
    are created in place on every device (of every host) instead of being built on one device
    and copied out.
    """
    return jax.jit(init_fn, out_shardings=replicated(mesh))(*args)


def sweep_mesh(devices=None, data: int = 1) -> Mesh:
    """An ("ensemble", "data") mesh: sweep points spread over "ensemble", batches over "data".

    With every device on "ensemble" (``data=1``, the default), each device trains its own slice
    of the sweep's points, which needs no communication inside a step; ``data=k`` puts groups of
    k devices on each slice, splitting that slice's batch k ways.
    """
    devices = np.asarray(jax.devices() if devices is None else devices).reshape(-1)
    if data < 1 or devices.size % data:
        raise ValueError(f"mesh: {devices.size} devices do not split into groups of data={data}")
    return Mesh(devices.reshape(-1, data), ("ensemble", "data"))


def sweep_points(mesh: Mesh) -> NamedSharding:
    """Leading (sweep point) axis split over "ensemble", the rest replicated."""
    return NamedSharding(mesh, P("ensemble"))


def sweep_parallel(update: Callable, mesh: Mesh, donate: bool = True, batch_axis: int = 0) -> Callable:
    """jit of a vmapped sweep update on an ("ensemble", "data") mesh.

    State and metrics (leading axis = sweep points) are split over "ensemble"; the batch, the same
    for every point, is split over "data" along ``batch_axis``. With one "ensemble" slice this is
    ``data_parallel``; with one device per slice each device trains its points alone.
    """
    points, shard = sweep_points(mesh), batch_sharded(mesh, batch_axis)
    return jax.jit(update, in_shardings=(points, shard), out_shardings=(points, points),
                   donate_argnums=(0,) if donate else ())


def shard_leading(tree, mesh: Mesh, axis_name: str = "ensemble"):
    """Places every leaf with its leading axis split over ``axis_name`` (others replicated).

    Leaves hold the full value on every process (same seed, same data), and each device takes
    its slice; this builds global arrays on one host or many alike.
    """
    return _place(tree, NamedSharding(mesh, P(axis_name)))


def replicate(tree, mesh: Mesh):
    """Every leaf replicated on all devices of ``mesh`` (of every process)."""
    return _place(tree, replicated(mesh))


def _place(tree, sharding):
    def one(x):
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(one, tree)


def to_host(tree):
    """NumPy copies of (possibly multi-process, sharded) arrays, gathered on every process."""
    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, tree)
    from jax.experimental import multihost_utils

    return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
