"""stderr_dropped_if: output written to file descriptor 2 (as native threads write it) is replayed
after a success and dropped after a failure."""
import os

import pytest

from rlhf_jax.held_stderr import stderr_dropped_if


@pytest.mark.parametrize("failed", [False, True])
def test_descriptor_writes_are_replayed_unless_failed(capfd, failed):
    with stderr_dropped_if(lambda: failed, quiet_s=0.05, max_wait_s=1.0):
        os.write(2, b"native noise\n")
    err = capfd.readouterr().err
    assert ("native noise" in err) is (not failed)
    os.write(2, b"after\n")  # the descriptor is restored either way
    assert capfd.readouterr().err == "after\n"
