"""rlhf_jax.distributed: two CPU processes on 127.0.0.1 train like one.

Two processes join through ``rlhf_jax.distributed.initialize`` (env vars, gloo CPU collectives),
each loads only its half of a 32-pair batch, and ``host_local_to_global`` stitches the halves
into one global batch for the data-parallel reward update. After three steps both processes'
parameters must equal a single-process run on the whole batch (≤ 1e-5). They also split five
"sweep points" and gather them on process 0 with no duplicates. The spec parsing and splitting
rules are checked in-process.
"""
import json
import os
import socket
import subprocess
import textwrap

import numpy as np
import pytest

from rlhf_jax import distributed
from tests.results_compare import assert_same_results, read_rows
from tests.subprocess_utils import ROOT, python_script, run_checked, subprocess_env, tiny_sweep_cmd

SCRIPT = textwrap.dedent("""
    import json, sys
    from rlhf_jax import distributed
    spec = distributed.initialize()          # from RLHF_JAX_* env vars; None for the reference run
    import jax, numpy as np
    from rlhf_jax.sharding import data_mesh, data_parallel, replicate
    from tests.reward_fixtures import SHAPES, random_reward_batch, reward_problem

    batch = random_reward_batch()
    B = SHAPES["B"]
    n_proc, pid = jax.process_count(), jax.process_index()
    local = {k: v[pid * B // n_proc:(pid + 1) * B // n_proc] for k, v in batch.items()}  # this host's rows
    update, state = reward_problem(batch)
    mesh = data_mesh()                        # every process's devices
    step = data_parallel(update, mesh)
    state = replicate(state, mesh)
    global_batch = distributed.host_local_to_global(local, mesh)
    assert global_batch["obs_a"].shape == batch["obs_a"].shape, global_batch["obs_a"].shape
    for _ in range(3):
        state, metrics = step(state, global_batch)
    flat = [distributed.local_value(x) for x in jax.tree.leaves(state.params)]
    np.savez(sys.argv[1], *flat, loss=distributed.local_value(metrics["loss"]))

    mine = distributed.split_indices(5)
    rows = distributed.gather_rows([(i, {"point": i, "by": pid}) for i in mine] + [(0, {"point": 0, "by": pid})])
    with open(sys.argv[1] + ".json", "w") as f:
        json.dump({"devices": jax.device_count(), "processes": n_proc, "mine": list(mine), "rows": rows}, f)
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_pair(argv, timeout: int = 600) -> list[str]:
    """Runs argv as processes 0 and 1 of a 2-process job on 127.0.0.1; returns their logs."""
    coordinator = f"127.0.0.1:{_free_port()}"
    procs = [subprocess.Popen(argv(pid), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=subprocess_env(RLHF_JAX_COORDINATOR=coordinator, RLHF_JAX_NUM_PROCESSES="2",
                                                 RLHF_JAX_PROCESS_ID=str(pid)))
             for pid in range(2)]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    return logs


def _load(out):
    with open(out + ".json") as f:
        return np.load(out), json.load(f)


@pytest.mark.slow
@pytest.mark.multidevice
def test_two_processes_equal_one_process(tmp_path):
    ref_out = str(tmp_path / "single.npz")
    run_checked(python_script(SCRIPT, ref_out), timeout=300)
    outs = [str(tmp_path / f"proc{pid}.npz") for pid in range(2)]
    _run_pair(lambda pid: python_script(SCRIPT, outs[pid]), timeout=300)

    single, single_info = _load(ref_out)
    assert single_info["devices"] == 1 and single_info["rows"] == [{"point": i, "by": 0} for i in range(5)]
    for pid, out in enumerate(outs):
        got, info = _load(out)
        assert info["devices"] == 2 and info["processes"] == 2
        assert info["mine"] == ([0, 1, 2] if pid == 0 else [3, 4])
        assert set(got.files) == set(single.files)
        for name in single.files:
            np.testing.assert_allclose(got[name], single[name], rtol=1e-5, atol=1e-5, err_msg=f"process {pid}: {name}")
        if pid == 0:  # every point once; point 0 (reported by both) kept from process 0
            assert info["rows"] == [{"point": i, "by": 0 if i < 3 else 1} for i in range(5)]
        else:
            assert info["rows"] is None


def test_initialize_is_a_no_op_without_settings(monkeypatch):
    for name in (distributed.ENV_COORDINATOR, distributed.ENV_NUM_PROCESSES, distributed.ENV_PROCESS_ID):
        monkeypatch.delenv(name, raising=False)
    assert distributed.spec_from(None, environ={}) is None
    assert distributed.initialize() is None and distributed.initialize({"num_processes": ""}) is None


def test_spec_from_env_and_config():
    env = {distributed.ENV_COORDINATOR: "10.0.0.1:1234", distributed.ENV_NUM_PROCESSES: "4",
           distributed.ENV_PROCESS_ID: "3"}
    assert distributed.spec_from(None, env) == distributed.DistributedSpec("10.0.0.1:1234", 4, 3)
    assert distributed.spec_from(env, environ={}) == distributed.DistributedSpec("10.0.0.1:1234", 4, 3)
    # a config field wins over its environment variable; a `distributed` sub-config is read first
    cfg = {"distributed": {"process_id": 1}}
    assert distributed.spec_from(cfg, env).process_id == 1
    assert distributed.spec_from({"coordinator_address": "h:1", "num_processes": 2, "process_id": 0},
                                 environ={}) == distributed.DistributedSpec("h:1", 2, 0)


@pytest.mark.parametrize("given, message", [
    ({"coordinator_address": "h:1"}, "num_processes, process_id not set"),
    ({"coordinator_address": "h:1", "num_processes": 2, "process_id": 2}, "not in [0, num_processes=2)"),
    ({"coordinator_address": "nohost", "num_processes": 2, "process_id": 0}, "must be host:port"),
])
def test_bad_specs_are_refused(given, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        distributed.spec_from(given, environ={})


def test_split_indices_cover_every_item_once():
    for n in (0, 1, 5, 96):
        for n_proc in (1, 2, 3, 8):
            parts = [list(distributed.split_indices(n, p, n_proc)) for p in range(n_proc)]
            assert sum(parts, []) == list(range(n))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_gather_rows_single_process_dedups_and_sorts():
    assert distributed.gather_rows([(2, "c"), (0, "a"), (2, "dup"), (1, "b")]) == ["a", "b", "c"]


@pytest.mark.slow
@pytest.mark.multidevice
def test_two_process_sweep_equals_one_process(tmp_path, tiny_sweep_reference, tiny_data_root):
    workdir = str(tmp_path / "two")
    logs = _run_pair(lambda pid: tiny_sweep_cmd(tiny_data_root, workdir))
    assert "step 40/40" in logs[0] and "step 40/40" not in logs[1]  # process 0 alone reports
    assert "do not split evenly" not in logs[0]
    assert "8 sweep points spread over 2 devices" in logs[0]
    assert len(tiny_sweep_reference) == 8 * 3
    assert_same_results(tiny_sweep_reference, read_rows(os.path.join(workdir, "results.csv")))
