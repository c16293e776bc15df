"""Compile once: a second process reads its programs from the persistent compilation cache, the
command line turns the cache on (and off when asked), and the chunks of a chunked run after the
first compile nothing."""
import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import cli
from rlhf_jax.compile_cache import ENV_VAR, CompileEvents
from tests.subprocess_utils import python_script, run_checked, subprocess_env

# A fresh process: the cache at argv[1] with no minimum compile time (the program is tiny), one
# jitted program compiled and run, and what the cache did.
TINY_PROGRAM = """
import json, sys
from rlhf_jax import compile_cache
compile_cache.enable(sys.argv[1], min_compile_time_s=0.0)
with compile_cache.CompileEvents() as events:
    import jax, jax.numpy as jnp
    jax.block_until_ready(jax.jit(lambda x: jnp.tanh(x @ x.T).sum())(jnp.ones((8, 4))))
print(json.dumps({"hits": events.cache_hits, "writes": events.cache_writes, "compiles": events.compiles}))
"""


def _run_tiny_program(cache_dir: str) -> dict:
    env = subprocess_env()
    env.pop("JAX_COMPILATION_CACHE_DIR")  # the test's own directory, not the machine's cache
    proc = run_checked(python_script(TINY_PROGRAM, cache_dir), env=env)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _files(directory: str) -> set[str]:
    return {os.path.join(root, f) for root, _, files in os.walk(directory) for f in files}


def test_a_second_fresh_process_reads_the_program_from_the_cache(tmp_path):
    cache_dir = str(tmp_path / "jax_cache")
    first = _run_tiny_program(cache_dir)
    written = _files(cache_dir)
    assert first["hits"] == 0 and first["writes"] >= 1 and written
    second = _run_tiny_program(cache_dir)
    assert second["hits"] == first["writes"] and second["writes"] == 0
    assert second["compiles"] == first["compiles"]  # the same programs, read back instead of compiled
    assert _files(cache_dir) == written


@pytest.fixture
def unset_cache_dir(monkeypatch, tmp_path):
    """No compilation cache configured while the test runs (the one before is restored after), the
    default data dir in tmp_path and no off switch inherited from the environment."""
    before = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", None)
    monkeypatch.setenv("RLHF_JAX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv(ENV_VAR, raising=False)
    yield
    jax.config.update("jax_compilation_cache_dir", before)


def _cache_dir_seen_by_the_job(argv_tail: list[str]) -> str | None:
    seen = []
    argv = ["job", "--config=configs/ppo.py:quick", "--workdir=unused", *argv_tail]
    assert cli.run_main(argv, body=lambda inv: seen.append(jax.config.jax_compilation_cache_dir)) == 0
    return seen[0]


def test_the_command_line_turns_the_cache_on_under_the_data_dir(unset_cache_dir, tmp_path):
    assert _cache_dir_seen_by_the_job([]) == str(tmp_path / "data" / "jax_cache")


@pytest.mark.parametrize("switch", ["flag", "environment"])
def test_the_off_switch_leaves_the_cache_unset(unset_cache_dir, monkeypatch, switch):
    if switch == "environment":
        monkeypatch.setenv(ENV_VAR, "0")
    assert _cache_dir_seen_by_the_job(["--nocompilation_cache"] if switch == "flag" else []) is None


def test_the_cache_follows_the_data_dir_of_the_config():
    def data_dir_of(spec, *overrides):
        return cli.cache_data_dir(cli.parse(["job", f"--config={spec}", "--workdir=unused", *overrides]))

    assert data_dir_of("configs/scaling_sweep.py:tiny", "--config.data_dir=here") == "here"
    assert data_dir_of("configs/rlhf_pipeline.py:quick", "--config.sft.dataset.data_dir=there") == "there"
    assert data_dir_of("configs/ppo.py:quick") is None  # no data_dir field: the default data dir


def _compiles_per_chunk(train) -> list[int]:
    """Programs compiled up to the end of each chunk, from the one before (the first count holds
    the set-up too): ``train(log)`` logs the chunk runner's "<name> step s/total" line per chunk."""
    counts = []
    with CompileEvents() as events:
        train(lambda line: counts.append(events.compiles) if re.search(r" step \d+/\d+ ", line) else None)
    return [b - a for a, b in zip([0] + counts, counts)]


def test_scaling_sweep_chunks_after_the_first_compile_nothing(tmp_path):
    from benchmarks.rm_sweep import identity_norm, synthetic_data
    from configs.scaling_sweep import get_config
    from experiments.stages import sweep as sweep_stage
    from rlhf_jax.models.reward import make_reward_model
    from rlhf_jax.train import sweep
    from rlhf_jax.train.state import make_optimizer
    from rlhf_jax.train.sweep_data import SweepInputs

    config = get_config("tiny")
    config.n_values, config.seeds, config.members, config.n_val, config.n_train_pool = (20, 40), (0,), 2, 20, 60
    config.total_steps, config.chunk_steps, config.eval_every, config.batch_size = 30, 10, 5, 8
    data = synthetic_data(config, n_segments=80)
    grid = sweep.SweepGrid(tuple(config.conditions), tuple(config.n_values), tuple(config.seeds), config.members)
    empty = np.zeros((0,), np.int32)
    inputs = SweepInputs(grid=grid, data=data, norm=identity_norm(39, 7), test_rows=empty, test_a=empty,
                         test_b=empty, test_label=empty, test_gold_return=empty, usable={}, label_stats={})
    model = make_reward_model("markovian", num_tasks=4, num_embodiments=3, hidden=(8,))
    tx = make_optimizer(config.optimizer, total_steps=config.total_steps)
    counts = _compiles_per_chunk(lambda log: sweep_stage.train_points(config, inputs, model, tx, log=log,
                                                                      ckpt_dir=str(tmp_path / "ckpt")))
    assert len(counts) == 3 and counts[0] >= 1  # the first chunk compiles its program (and the test sees it)
    assert counts[1:] == [0, 0]


@pytest.mark.slow
def test_ppo_points_chunks_after_the_first_compile_nothing(tmp_path):
    from experiments.stages import ppo_points as PP
    from rlhf_jax import features as F
    from rlhf_jax.checkpoint import save_policy
    from rlhf_jax.envs.robots import EMBODIMENTS
    from rlhf_jax.envs.tasks import TASKS
    from rlhf_jax.models.policy import make_policy
    from rlhf_jax.models.reward import make_reward_model
    from rlhf_jax.reward_artifact import feature_spec, save_reward_model
    from rlhf_jax.train.sft import init_policy_variables
    from tests.test_ppo_from_sft import SFT_MODEL
    from tests.test_ppo_points import RM_CONFIG
    from tests.test_ppo_update import tiny_config

    config = tiny_config()
    config.ppo.num_updates = config.kl.total_updates = 3
    ref = init_policy_variables(make_policy(SFT_MODEL, len(TASKS), len(EMBODIMENTS)), jax.random.PRNGKey(1),
                                F.feature_dim("joint"))
    config.ref_checkpoint, config.log_every = save_policy(str(tmp_path / "sft"), ref, {"model": SFT_MODEL}), 1
    rm = make_reward_model("markovian", num_tasks=len(TASKS), num_embodiments=len(EMBODIMENTS), hidden=(8,),
                           context_dim=4)
    sample = (jnp.zeros((1, 1, F.feature_dim("joint"))), jnp.zeros((1, 1, F.action_dim("joint"))),
              jnp.zeros((1,), jnp.int32), jnp.zeros((1,), jnp.int32))
    members = [rm.init(key, *sample) for key in jax.random.split(jax.random.PRNGKey(2), 2)]
    variables = {"params": jax.tree.map(lambda *x: jnp.stack(x), *[v["params"] for v in members]),
                 "norm": members[0]["norm"]}
    meta = {"features": feature_spec("joint", len(TASKS))}
    path = save_reward_model(str(tmp_path / "rm"), RM_CONFIG, variables, meta)
    points = [PP.Point(path, 0), PP.Point("gold", 1)]
    train = lambda c: lambda log: PP.train_points(c, points, "mean", 0, str(tmp_path / "ppo"), log=log)
    counts = _compiles_per_chunk(train(config))
    assert len(counts) == 3 and counts[0] >= 1
    assert counts[1:] == [0, 0]
    # Resumed from a checkpoint, the state comes from the disk, not from the program: the chunk
    # after the first one still finds the program compiled for it.
    longer = config.copy_and_resolve_references()
    longer.ppo.num_updates = longer.kl.total_updates = 5
    counts = _compiles_per_chunk(train(longer))
    assert len(counts) == 2 and counts[0] >= 1
    assert counts[1] == 0
