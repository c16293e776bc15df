"""Atomic result files, Checkpointer round trips and retention, policy checkpoints, run dirs."""
import csv
import json
import math
import os
import shutil
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhf_jax.checkpoint import (Checkpointer, atomic_write_csv, atomic_write_json, atomic_write_npz,
                                 atomic_write_text, prepare_run_dir, read_artifact_meta, restore_policy,
                                 save_policy)
from rlhf_jax.errors import ArtifactError, DataError
from rlhf_jax.strict_json import read_json


def _no_temp_files(directory):
    return not [f for f in os.listdir(directory) if f.startswith(".tmp-")]


def test_atomic_write_text_round_trips_and_replaces(tmp_path):
    path = tmp_path / "out.txt"
    atomic_write_text(str(path), "first\n")
    atomic_write_text(str(path), "ünïcode second\n")
    assert path.read_text(encoding="utf-8") == "ünïcode second\n"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_write_text_failure_keeps_old_file_and_no_temp(tmp_path):
    path = tmp_path / "out.txt"
    atomic_write_text(str(path), "kept")
    with pytest.raises(TypeError):
        atomic_write_text(str(path), 123)  # fails while writing the temp file
    assert path.read_text() == "kept"
    assert _no_temp_files(tmp_path)


def test_atomic_write_json_serialises_numpy_sorted(tmp_path):
    path = tmp_path / "r.json"
    atomic_write_json(str(path), {"b": np.float32(0.5), "a": np.arange(3), "c": np.int64(7)})
    text = path.read_text()
    assert json.loads(text) == {"a": [0, 1, 2], "b": 0.5, "c": 7}
    assert text.index('"a"') < text.index('"b"') < text.index('"c"') and text.endswith("\n")
    with pytest.raises(TypeError, match="not JSON serialisable"):
        atomic_write_json(str(tmp_path / "bad.json"), {"x": object()})
    assert sorted(os.listdir(tmp_path)) == ["r.json"]


def test_atomic_write_npz_round_trip_at_the_exact_path(tmp_path):
    arrays = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "k": np.array([True, False])}
    path = tmp_path / "arrays.bin"  # no .npz suffix: the file still lands exactly at path
    atomic_write_npz(str(path), arrays)
    assert os.listdir(tmp_path) == ["arrays.bin"]
    with np.load(str(path)) as f:
        assert sorted(f.files) == ["k", "x"]
        np.testing.assert_array_equal(f["x"], arrays["x"])
        assert f["x"].dtype == np.float32
        np.testing.assert_array_equal(f["k"], arrays["k"])


def test_atomic_write_csv_column_order_with_extra_keys(tmp_path):
    path = tmp_path / "results.csv"
    rows = [{"n": 10, "err": 0.3}, {"err": 0.2, "n": 20, "seed": 1}, {"note": "x", "n": 40}]
    atomic_write_csv(str(path), rows)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["n", "err", "seed", "note"]  # first row's keys, then new ones
        got = list(reader)
    assert got == [{"n": "10", "err": "0.3", "seed": "", "note": ""},
                   {"n": "20", "err": "0.2", "seed": "1", "note": ""},
                   {"n": "40", "err": "", "seed": "", "note": "x"}]
    assert _no_temp_files(tmp_path)


def _state(scale=1.0):
    return {"params": {"w": jnp.arange(6.0).reshape(2, 3) * scale, "b": jnp.full((3,), scale)},
            "key": jax.random.key(int(scale)),
            "step": np.asarray(int(scale), np.int32),  # 0-d numpy array
            "lr": np.float32(0.5 * scale)}  # numpy scalar


def _assert_state_equal(got, want):
    np.testing.assert_array_equal(got["params"]["w"], want["params"]["w"])
    np.testing.assert_array_equal(got["params"]["b"], want["params"]["b"])
    assert jax.dtypes.issubdtype(got["key"].dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(jax.random.key_data(got["key"]), jax.random.key_data(want["key"]))
    assert np.shape(got["step"]) == () and int(got["step"]) == int(want["step"])
    np.testing.assert_allclose(float(got["lr"]), float(want["lr"]))


def test_checkpointer_round_trip_typed_key_and_scalars(tmp_path):
    ckpt = Checkpointer(str(tmp_path / "ckpt"))
    state = _state(3.0)
    ckpt.save(5, state, {"chunk": 5, "note": "ok"})
    out = ckpt.restore(_state(1.0))  # the template gives structure only
    ckpt.close()
    step, restored, meta = out
    assert step == 5 and meta == {"chunk": 5, "note": "ok", "artifact": "train_state", "format_version": 1}
    _assert_state_equal(restored, state)
    # the restored key draws the same numbers as the saved one
    np.testing.assert_array_equal(jax.random.normal(restored["key"], (4,)), jax.random.normal(state["key"], (4,)))


def test_checkpointer_keeps_latest_and_restores_newest(tmp_path):
    ckpt = Checkpointer(str(tmp_path / "ckpt"), max_to_keep=2)
    for step in (1, 2, 3):
        ckpt.save(step, _state(float(step)), {"step": step})
    assert ckpt.steps() == [2, 3]
    step, restored, meta = ckpt.restore(_state())
    ckpt.close()
    assert step == 3 and meta["step"] == 3
    _assert_state_equal(restored, _state(3.0))
    # a new Checkpointer on the same directory sees the same steps
    again = Checkpointer(str(tmp_path / "ckpt"))
    assert again.steps() == [2, 3]
    again.close()


def test_restore_of_empty_dir_is_none(tmp_path):
    ckpt = Checkpointer(str(tmp_path / "empty"))
    assert ckpt.steps() == []
    assert ckpt.restore(_state()) is None
    ckpt.close()


def test_save_and_restore_policy_without_template(tmp_path):
    variables = {"params": {"dense": {"kernel": np.arange(12, dtype=np.float32).reshape(3, 4),
                                      "bias": np.zeros(4, np.float32)}},
                 "norm": {"mean": np.array([1.0, -2.0], np.float32), "count": np.asarray(9, np.int32)}}
    meta = {"model": {"hidden": [32, 32], "kind": "mlp"}, "action_clip": 1.5, "ids": ["panda"]}
    directory = save_policy(str(tmp_path / "policy"), variables, meta, step=7)
    assert os.path.isabs(directory) and os.path.isdir(directory)
    got, got_meta = restore_policy(directory)
    assert got_meta == dict(meta, artifact="policy", format_version=1)
    assert set(got) == {"params", "norm"}
    flat_got = jax.tree_util.tree_leaves_with_path(got)
    flat_want = jax.tree_util.tree_leaves_with_path(variables)
    assert [p for p, _ in flat_got] == [p for p, _ in flat_want]
    for (_, g), (_, w) in zip(flat_got, flat_want):
        assert isinstance(g, jax.Array) and g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


def test_restore_policy_of_missing_checkpoint_raises(tmp_path):
    with pytest.raises(ArtifactError, match="expected a policy checkpoint.*found no such directory"):
        restore_policy(str(tmp_path / "nothing"))


def test_prepare_run_dir_writes_config_and_checks_it_on_resume(tmp_path):
    workdir = tmp_path / "run"
    config = json.dumps({"lr": 0.001, "n": [10, 20]})
    prepare_run_dir(str(workdir), config, resume=False)
    assert json.loads((workdir / "config.json").read_text()) == json.loads(config)
    assert sorted(os.listdir(workdir)) == ["config.json"]  # the write probe is removed
    # the same config (even formatted differently) resumes
    prepare_run_dir(str(workdir), json.dumps({"n": [10, 20], "lr": 0.001}, indent=4), resume=True)

    class MyError(Exception):
        pass

    other = json.dumps({"lr": 0.01, "n": [10, 20]})
    with pytest.raises(MyError, match="differs from the given config"):
        prepare_run_dir(str(workdir), other, resume=True, error=MyError)
    assert json.loads((workdir / "config.json").read_text()) == json.loads(config)  # untouched
    prepare_run_dir(str(workdir), other, resume=False)  # a fresh start overwrites it
    assert json.loads((workdir / "config.json").read_text()) == json.loads(other)


def test_prepare_run_dir_resume_without_saved_config_writes_it(tmp_path):
    prepare_run_dir(str(tmp_path / "new"), '{"a": 1}', resume=True)
    assert json.loads((tmp_path / "new" / "config.json").read_text()) == {"a": 1}


def test_prepare_run_dir_reports_unusable_workdir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match="is not usable"):
        prepare_run_dir(str(blocker / "run"), "{}", resume=False)


def _drop_kind_record(directory):
    """Rewrites the newest step's meta as checkpoints saved before the kind record had it."""
    step = max(int(d) for d in os.listdir(directory) if d.isdigit())
    path = os.path.join(directory, str(step), "meta", "metadata")
    with open(path, encoding="utf-8") as f:
        meta = json.load(f)
    meta.pop("artifact"), meta.pop("format_version")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(meta, f)


_POLICY_META = {"model": {"kind": "mlp"}, "action_clip": 0.9}


def test_every_loader_refuses_another_kind_in_one_line(tmp_path):
    policy = save_policy(str(tmp_path / "policy"), {"params": {"w": np.ones(2, np.float32)}}, _POLICY_META)
    state_dir = str(tmp_path / "state")
    ckpt = Checkpointer(state_dir)
    ckpt.save(1, _state(), {"chunk": 1})
    ckpt.close()
    with pytest.raises(ArtifactError) as err:
        restore_policy(state_dir)
    assert str(err.value) == (f"{state_dir}: expected a policy checkpoint (save_policy; train_sft writes "
                              "checkpoints/sft), found a train_state checkpoint")
    assert isinstance(err.value, DataError)  # entry points turn it into one line and exit code 2
    for kind in ("train_state", "reward_model"):
        with pytest.raises(ArtifactError, match=f"found a policy checkpoint") as err:
            Checkpointer(policy, kind=kind).restore(None)
        assert err.value.path == policy and "\n" not in str(err.value)
    assert read_artifact_meta(policy, "policy")["action_clip"] == 0.9


@pytest.mark.parametrize("what", ["missing", "empty", "file", "no step"])
def test_loaders_name_the_path_and_what_was_expected(tmp_path, what):
    path = tmp_path / "ckpt"
    found = {"missing": "no such directory", "empty": "an empty directory", "file": "a file, not a directory",
             "no step": "no checkpoint step among ['notes.txt']"}[what]
    if what == "file":
        path.write_text("x")
    elif what != "missing":
        path.mkdir()
        if what == "no step":
            (path / "notes.txt").write_text("x")
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(ArtifactError) as err:
        restore_policy(str(path))
    assert err.value.found == found and err.value.path == str(path)
    assert sorted(os.listdir(tmp_path)) == before  # a refused load creates nothing


def test_restore_refuses_other_shapes_naming_the_leaves_and_restores_nothing(tmp_path):
    ckpt = Checkpointer(str(tmp_path / "ckpt"))
    ckpt.save(1, {"w": np.zeros((10, 2), np.float32), "b": np.zeros(3, np.float32)}, {"chunk": 1})
    ckpt.save(2, {"w": np.zeros((10, 2), np.float32), "b": np.zeros(3, np.float32)}, {"chunk": 2})
    like = {"w": jnp.zeros((10, 3)), "b": jnp.zeros(3)}
    with pytest.raises(ArtifactError, match=r"step 2: w \(stored \(10, 2\), requested \(10, 3\)\)") as err:
        ckpt.restore(like)
    assert "b (" not in str(err.value)  # only the leaves that differ are named
    # The matching template still restores; the refused call changed nothing on disk.
    step, state, _ = ckpt.restore({"w": jnp.ones((10, 2)), "b": jnp.ones(3)})
    ckpt.close()
    assert step == 2 and float(np.abs(state["w"]).sum()) == 0.0


def test_checkpoint_without_kind_record_is_read_with_one_warning_line(tmp_path, capsys):
    variables = {"params": {"w": np.arange(3, dtype=np.float32)}}
    policy = save_policy(str(tmp_path / "old"), variables, _POLICY_META)
    _drop_kind_record(policy)
    got, meta = restore_policy(policy)
    np.testing.assert_array_equal(got["params"]["w"], variables["params"]["w"])
    assert meta == _POLICY_META
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"warning: {policy}: saved before checkpoints recorded their kind; read as a policy, "
                     "format version 1"]
    # An old checkpoint of another kind is still told apart by its fields.
    state_dir = str(tmp_path / "old_state")
    ckpt = Checkpointer(state_dir)
    ckpt.save(1, _state(), {"chunk": 1})
    ckpt.close()
    _drop_kind_record(state_dir)
    with pytest.raises(ArtifactError, match="found a train_state checkpoint"):
        restore_policy(state_dir)


def test_a_newer_format_version_is_refused(tmp_path):
    policy = save_policy(str(tmp_path / "p"), {"params": {"w": np.ones(2, np.float32)}}, _POLICY_META)
    path = os.path.join(policy, "0", "meta", "metadata")
    with open(path, encoding="utf-8") as f:
        meta = json.load(f)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(dict(meta, format_version=meta["format_version"] + 1), f)
    with pytest.raises(ArtifactError, match="format_version at most 1"):
        restore_policy(policy)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # tensorstore's late reads
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # tensorstore's late reads
@pytest.mark.parametrize("lost", ["meta", "state"])
def test_a_step_missing_a_file_is_refused_naming_the_path(tmp_path, lost):
    policy = save_policy(str(tmp_path / "p"), {"params": {"w": np.ones(2, np.float32)}}, _POLICY_META)
    target = os.path.join(policy, "0", lost)
    for name in os.listdir(target):  # every file of the item, as a partial copy leaves it
        path = os.path.join(target, name)
        if os.path.isfile(path) and (lost == "meta" or not name.startswith("_")):
            os.remove(path)
    with pytest.raises(ArtifactError) as err:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            restore_policy(policy)
    assert err.value.path == policy and "expected a policy checkpoint" in str(err.value)
    assert ("unreadable meta record at step 0" if lost == "meta" else "no readable checkpoint step") in str(err.value)


def test_strict_json_writes_null_with_the_reason_and_no_bare_nan(tmp_path):
    path = tmp_path / "s.json"
    atomic_write_json(str(path), {"x": float("nan"), "m": [[1.0, float("inf")]], "ok": 2.0})
    got = json.loads(path.read_text(), parse_constant=lambda t: pytest.fail(f"bare {t}"))
    assert got == {"x": None, "x_null_reason": "not finite (nan)", "m": [[1.0, None]],
                   "m_null_reason": "its null entries were not finite (no data for them)", "ok": 2.0}


def test_restore_refuses_when_every_step_is_unreadable(tmp_path):
    """A resume must not start over (and overwrite the run's files) when all its steps are broken;
    with one readable step left it falls back to it instead."""
    directory = str(tmp_path / "ckpt")
    ckpt = Checkpointer(directory, max_to_keep=2)
    for step in (1, 2):
        ckpt.save(step, _state(float(step)), {"step": step})
    ckpt.close()

    def corrupt(step):
        state_dir = os.path.join(directory, str(step), "state")
        for name in os.listdir(state_dir):
            if name == "d" or name.startswith(("manifest", "ocdbt")):
                path = os.path.join(state_dir, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)

    corrupt(2)
    with pytest.warns(UserWarning, match="checkpoint step 2 .*falling back to step 1$"):
        step, _, _ = Checkpointer(directory).restore(_state())
    assert step == 1
    corrupt(1)
    with pytest.raises(ArtifactError, match=r"2 unreadable step\(s\), the newest 2 .*nothing was overwritten"):
        Checkpointer(directory).restore(_state())


def test_every_json_we_write_is_strict_and_reads_back_as_written(tmp_path):
    obj = {"fit": {"alpha": float("nan"), "ci": [0.1, float("inf")], "n": 3}, "e": float("-inf"), "none": None}
    path = str(tmp_path / "fit.json")
    atomic_write_json(path, obj)  # strict by default
    with open(path) as f:
        json.loads(f.read(), parse_constant=lambda t: pytest.fail(f"bare {t}"))
    got = read_json(path)
    assert math.isnan(got["fit"]["alpha"]) and got["fit"]["ci"][0] == 0.1 and math.isnan(got["fit"]["ci"][1])
    assert got["e"] == -math.inf and got["none"] is None and got["fit"]["n"] == 3
    assert set(got["fit"]) == {"alpha", "ci", "n"}  # the reasons are dropped
    old = tmp_path / "old.json"  # written before files were strict: bare NaN reads the same
    old.write_text('{"alpha": NaN, "n": 3}')
    assert math.isnan(read_json(str(old))["alpha"])
