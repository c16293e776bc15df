"""Data-parallel reward update: 8 forced CPU devices give the same step as 1 device.

JAX fixes its device count when it starts, so the 8-device run happens in a subprocess with
XLA_FLAGS set before import; it writes its results to a file the test compares.
"""
import os
import textwrap

import numpy as np
import pytest

from tests.results_compare import assert_same_results, read_rows
from tests.subprocess_utils import python_script, run_checked, subprocess_env, tiny_sweep_cmd

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
    run_checked(python_script(SCRIPT, out, str(devices)), subprocess_env(devices), timeout=300)
    return np.load(out)


@pytest.mark.multidevice
def test_reward_update_on_8_devices_equals_1_device(tmp_path):
    one, eight = _run(tmp_path, 1), _run(tmp_path, 8)
    assert set(one.files) == set(eight.files)
    for name in one.files:
        np.testing.assert_allclose(eight[name], one[name], rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.slow
@pytest.mark.multidevice
def test_sweep_points_spread_over_8_devices_equal_1_device(tmp_path, tiny_sweep_reference, tiny_data_root):
    workdir = str(tmp_path / "sweep8")
    proc = run_checked(tiny_sweep_cmd(tiny_data_root, workdir), subprocess_env(8))
    assert "8 sweep points spread over 8 devices" in proc.stdout, proc.stdout[-2000:]
    assert len(tiny_sweep_reference) == 8 * 3
    assert_same_results(tiny_sweep_reference, read_rows(os.path.join(workdir, "results.csv")))
