"""The scaling sweep with its points spread over 8 forced CPU devices gives the results of the
same sweep on 1 device.

JAX fixes its device count when it starts, so the 8-device run is a child process with
XLA_FLAGS set before import; the 1-device reference is the ``tiny_sweep_reference`` fixture.
(The data-parallel helpers on 8 devices are tested in test_sharding.)
"""
import os

import pytest

from tests.results_compare import assert_same_results, read_rows
from tests.subprocess_utils import run_checked, subprocess_env, tiny_sweep_cmd


@pytest.mark.slow
@pytest.mark.multidevice
def test_sweep_points_spread_over_8_devices_equal_1_device(tmp_path, tiny_sweep_reference, tiny_data_root):
    workdir = str(tmp_path / "sweep8")
    proc = run_checked(tiny_sweep_cmd(tiny_data_root, workdir), subprocess_env(8))
    assert "8 sweep points spread over 8 devices" in proc.stdout, proc.stdout[-2000:]
    assert len(tiny_sweep_reference) == 8 * 3
    assert_same_results(tiny_sweep_reference, read_rows(os.path.join(workdir, "results.csv")))
