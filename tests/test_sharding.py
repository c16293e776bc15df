"""Mesh and data-parallel helpers of rlhf_jax.sharding.

On the device(s) of this process: the meshes span every device, the shardings name the right
axes, placing a tree keeps its values, and the jitted data-parallel and sweep-parallel updates
equal plain ``jax.jit`` of the same update. Splits that need several devices (uneven batches
refused, one sweep point per device group, an 8-device update equal to a 1-device one) run in
child processes with 8 forced CPU devices (``multidevice``), since JAX fixes its device count
when it starts.
"""
from __future__ import annotations

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from rlhf_jax.sharding import (batch_sharded, data_mesh, data_parallel, init_replicated, replicate, replicated,
                               shard_batch, shard_leading, sweep_mesh, sweep_parallel, sweep_points, to_host)
from tests.subprocess_utils import python_script, run_checked, subprocess_env

N_DEVICES = len(jax.devices())


def regression_update(state, batch):
    """One SGD step of least squares: state {"w" [D], "b" []}, batch {"x" [B, D], "y" [B]}."""
    def loss_fn(params):
        return jnp.mean((batch["x"] @ params["w"] + params["b"] - batch["y"]) ** 2)

    loss, grads = jax.value_and_grad(loss_fn)(state)
    return jax.tree.map(lambda p, g: p - 0.1 * g, state, grads), {"loss": loss}


def regression_problem(seed: int, batch_size: int = 8, dim: int = 3):
    """(state, batch) of ``regression_update`` drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    state = {"w": rng.normal(size=dim).astype(np.float32), "b": np.float32(rng.normal())}
    batch = {"x": rng.normal(size=(batch_size, dim)).astype(np.float32),
             "y": rng.normal(size=batch_size).astype(np.float32)}
    return state, batch


def assert_trees_close(got, want, rtol=1e-6, atol=1e-6):
    """Leaf-by-leaf allclose of two pytrees of the same structure."""
    jax.tree.map(lambda u, v: np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=atol),
                 got, want)


def test_data_mesh_spans_all_or_the_given_devices():
    mesh = data_mesh()
    assert mesh.axis_names == ("data",) and mesh.shape["data"] == N_DEVICES
    assert data_mesh(jax.devices()[:1]).shape["data"] == 1


def test_shardings_name_their_axes():
    mesh = data_mesh()
    assert replicated(mesh).spec == P()
    assert batch_sharded(mesh).spec == P("data")
    assert batch_sharded(mesh, axis=2).spec == P(None, None, "data")
    assert sweep_points(sweep_mesh()).spec == P("ensemble")


@pytest.mark.parametrize("axis", [0, 1])
def test_shard_batch_keeps_values_and_splits_the_axis(axis):
    mesh, n = data_mesh(), 2 * N_DEVICES
    shapes = {0: [(n, 3), (n, 2, 4)], 1: [(3, n), (2, n, 4)]}[axis]
    batch = {"x": np.arange(np.prod(shapes[0]), dtype=np.float32).reshape(shapes[0]),
             "y": {"z": np.arange(np.prod(shapes[1]), dtype=np.int32).reshape(shapes[1])}}
    placed = shard_batch(batch, mesh, axis=axis)
    for got, want in zip(jax.tree.leaves(placed), jax.tree.leaves(batch)):
        np.testing.assert_array_equal(np.asarray(got), want)
        assert got.sharding.spec == batch_sharded(mesh, axis).spec


@pytest.mark.parametrize("seed", [0, 1])
def test_data_parallel_equals_jit(seed):
    state, batch = regression_problem(seed)
    mesh = data_mesh()
    step = data_parallel(regression_update, mesh, donate=False)
    got_state, got_metrics = step(state, shard_batch(batch, mesh))
    want_state, want_metrics = jax.jit(regression_update)(state, batch)
    assert_trees_close(got_state, want_state)
    assert_trees_close(got_metrics, want_metrics)
    assert all(leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(got_state))


def test_init_replicated_equals_plain_init():
    def init(key):
        k1, k2 = jax.random.split(key)
        return {"w": jax.random.normal(k1, (4, 3)), "b": jax.random.uniform(k2, (3,))}

    key = jax.random.PRNGKey(7)
    created = init_replicated(init, data_mesh(), key)
    assert_trees_close(created, init(key), rtol=0, atol=0)
    assert all(leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(created))


def test_sweep_mesh_shape_and_refusals():
    assert dict(sweep_mesh().shape) == {"ensemble": N_DEVICES, "data": 1}
    assert dict(sweep_mesh(data=N_DEVICES).shape) == {"ensemble": 1, "data": N_DEVICES}
    for bad in (0, N_DEVICES + 1):
        with pytest.raises(ValueError, match=f"groups of data={bad}"):
            sweep_mesh(data=bad)


@pytest.mark.parametrize("seed", [0, 1])
def test_sweep_parallel_equals_vmapped_jit(seed):
    points = [regression_problem(seed * 10 + i)[0] for i in range(2 * N_DEVICES)]
    state = jax.tree.map(lambda *xs: np.stack(xs), *points)  # leading axis: sweep points
    _, batch = regression_problem(seed)
    update = jax.vmap(regression_update, in_axes=(0, None))
    mesh = sweep_mesh()
    got_state, got_metrics = sweep_parallel(update, mesh, donate=False)(shard_leading(state, mesh),
                                                                        shard_batch(batch, mesh))
    want_state, want_metrics = jax.jit(update)(state, batch)
    assert_trees_close(got_state, want_state)
    assert_trees_close(got_metrics, want_metrics)
    assert got_state["w"].sharding.spec == P("ensemble")


def test_placement_round_trips_through_to_host():
    tree = {"a": np.arange(2 * N_DEVICES * 3, dtype=np.float32).reshape(2 * N_DEVICES, 3),
            "b": np.arange(N_DEVICES, dtype=np.int32)}
    mesh = sweep_mesh()
    leading, copies = shard_leading(tree, mesh), replicate(tree, data_mesh())
    assert leading["a"].sharding.spec == P("ensemble")
    assert all(leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(copies))
    for placed in (leading, copies):
        back = to_host(placed)
        for got, want in zip(jax.tree.leaves(back), jax.tree.leaves(tree)):
            assert isinstance(got, np.ndarray) and got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------------------- 8 forced devices

EIGHT_DEVICE_SPLITS = textwrap.dedent("""
    import jax, numpy as np, pytest
    from rlhf_jax.sharding import data_mesh, shard_batch, shard_leading, sweep_mesh, to_host

    assert len(jax.devices()) == 8, jax.devices()
    mesh = data_mesh()
    with pytest.raises(ValueError, match=r"batch field \\['y'\\]\\['z'\\]: size 12 on axis 0 .* 8 devices"):
        shard_batch({"x": np.zeros((16, 2)), "y": {"z": np.zeros((12, 2))}}, mesh)
    placed = shard_batch({"x": np.arange(32.0).reshape(16, 2)}, mesh)["x"]
    assert sorted(s.data.shape for s in placed.addressable_shards) == [(2, 2)] * 8
    on_axis1 = shard_batch({"x": np.zeros((3, 16))}, mesh, axis=1)["x"]
    assert {s.data.shape for s in on_axis1.addressable_shards} == {(3, 2)}

    grid = sweep_mesh(data=4)
    assert dict(grid.shape) == {"ensemble": 2, "data": 4}
    with pytest.raises(ValueError, match="8 devices do not split into groups of data=3"):
        sweep_mesh(data=3)
    points = np.arange(2 * 5, dtype=np.float32).reshape(2, 5)
    spread = shard_leading(points, grid)
    # one sweep point per group of 4 devices, each device holding its group's whole point
    assert {s.data.shape for s in spread.addressable_shards} == {(1, 5)}
    np.testing.assert_array_equal(to_host(spread), points)
    print("OK")
""")

REWARD_STEPS = textwrap.dedent("""
    import sys
    import jax, numpy as np
    from rlhf_jax.sharding import data_mesh, data_parallel, shard_batch
    from tests.reward_fixtures import random_reward_batch, reward_problem

    assert len(jax.devices()) == int(sys.argv[2]), jax.devices()
    batch = random_reward_batch()
    update, state = reward_problem(batch)
    mesh = data_mesh()
    step = data_parallel(update, mesh)
    for _ in range(3):
        state, metrics = step(state, shard_batch(batch, mesh))
    flat = jax.tree.leaves(state.params)
    np.savez(sys.argv[1], *[np.asarray(x) for x in flat], loss=np.asarray(metrics["loss"]),
             grad_norm=np.asarray(metrics["grad_norm"]))
""")


def run_reward_steps(tmp_path, devices: int):
    """Parameters and last metrics after 3 data-parallel reward steps on ``devices`` CPU devices."""
    out = str(tmp_path / f"d{devices}.npz")
    run_checked(python_script(REWARD_STEPS, out, str(devices)), subprocess_env(devices), timeout=300)
    return np.load(out)


@pytest.mark.multidevice
def test_splits_on_8_devices():
    proc = run_checked(python_script(EIGHT_DEVICE_SPLITS), subprocess_env(8), timeout=300)
    assert proc.stdout.strip().endswith("OK"), proc.stdout[-2000:]


@pytest.mark.multidevice
def test_reward_update_on_8_devices_equals_1_device(tmp_path):
    one, eight = run_reward_steps(tmp_path, 1), run_reward_steps(tmp_path, 8)
    assert set(one.files) == set(eight.files)
    for name in one.files:
        np.testing.assert_allclose(eight[name], one[name], rtol=1e-5, atol=1e-5, err_msg=name)
