"""Data-parallel reward update: 8 forced CPU devices give the same step as 1 device.

JAX fixes its device count when it starts, so the 8-device run happens in a subprocess with
XLA_FLAGS set before import; it writes its results to a file the test compares.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.results_compare import assert_same_results, read_rows

SCRIPT = textwrap.dedent("""
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


def _run(tmp_path, devices):
    out = str(tmp_path / f"d{devices}.npz")
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", SCRIPT, out, str(devices)], check=True, env=env, cwd=root,
                   capture_output=True, timeout=300)
    return np.load(out)


@pytest.mark.multidevice
def test_reward_update_on_8_devices_equals_1_device(tmp_path):
    one, eight = _run(tmp_path, 1), _run(tmp_path, 8)
    assert set(one.files) == set(eight.files)
    for name in one.files:
        np.testing.assert_allclose(eight[name], one[name], rtol=1e-5, atol=1e-5, err_msg=name)


SWEEP_SCRIPT = textwrap.dedent("""
    import sys
    import jax
    from configs.scaling_sweep import get_config
    from rlhf_jax.train.sweep_runner import run_sweep

    assert len(jax.devices()) == int(sys.argv[3])
    c = get_config("tiny,n_values=25+50+100+200,total_steps=40,chunk_steps=20,eval_every=10")
    c.data_dir = sys.argv[2]
    messages = []
    run_sweep(c, sys.argv[1], log=messages.append)
    assert not any("do not split evenly" in m for m in messages), messages
""")


def _sweep(tmp_path, root, devices):
    workdir = str(tmp_path / f"sweep{devices}")
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    cwd = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", SWEEP_SCRIPT, workdir, root, str(devices)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return read_rows(os.path.join(workdir, "results.csv"))


@pytest.mark.multidevice
def test_sweep_points_spread_over_8_devices_equal_1_device(tmp_path, tiny_dataset_dir, tiny_data_root):
    one, eight = _sweep(tmp_path, tiny_data_root, 1), _sweep(tmp_path, tiny_data_root, 8)
    assert len(one) == 8 * 3
    assert_same_results(one, eight)
