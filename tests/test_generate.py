"""Episode generation: determinism in the seed, per-batch keys, counts, RLDS schema, fingerprint."""
import os
import shutil

import numpy as np
import pytest

import rlhf_jax.envs
from rlhf_jax.data import dataset, generate, variants
from rlhf_jax.errors import ConfigError
from rlhf_jax.data.rlds_schema import OBS_SHAPES, STEP_KEYS, validate_episode
from rlhf_jax.envs import REWARD_COMPONENTS, ROBOTS

EPISODES, HORIZON = 2, 5


def _config(**overrides):
    c = variants.dataset_config("tiny")
    c.episodes_per_combo, c.horizon = EPISODES, HORIZON
    c.policies = ("expert", "random")
    for k, v in overrides.items():
        setattr(c, k, v)
    return c


@pytest.fixture(scope="module")
def episodes():
    dataset.enable_compilation_cache()
    return generate.generate_episodes(_config())


def _flat(ep):
    steps = dict(ep["steps"])
    obs = steps.pop("observation")
    return {**steps, **{f"observation/{k}": v for k, v in obs.items()}}


def _assert_same(ep1, ep2):
    assert ep1["episode_metadata"] == ep2["episode_metadata"]
    f1, f2 = _flat(ep1), _flat(ep2)
    assert f1.keys() == f2.keys()
    for k in f1:
        np.testing.assert_array_equal(f1[k], f2[k], err_msg=k)


def test_counts_and_order_follow_the_config(episodes):
    c = _config()
    assert len(episodes) == len(c.embodiments) * len(c.tasks) * len(c.policies) * EPISODES
    expected = [(e, t, p, i) for e in c.embodiments for t in c.tasks for p in c.policies for i in range(EPISODES)]
    got = [(m["embodiment"], m["task"], m["policy"], int(m["episode_id"][-5:]))
           for m in (ep["episode_metadata"] for ep in episodes)]
    assert got == expected
    ids = [ep["episode_metadata"]["episode_id"] for ep in episodes]
    assert len(set(ids)) == len(ids) and ids[0] == f"{c.embodiments[0]}-{c.tasks[0]}-{c.policies[0]}-00000"


def test_steps_follow_the_rlds_schema(episodes):
    n_comp = len(REWARD_COMPONENTS)
    for ep in episodes:
        meta = ep["episode_metadata"]
        assert validate_episode(ep, "generated", n_components=n_comp) == HORIZON
        assert meta["source"] == "sim" and meta["seed"] == 0
        dof = meta["dof"]
        robot = ROBOTS[meta["embodiment"]]
        assert dof == robot.dof and meta["embodiment_id"] == robot.embodiment_id
        steps = ep["steps"]
        assert set(steps) == set(STEP_KEYS)
        assert steps["action"].shape == (HORIZON, dof) and steps["action"].dtype == np.float32
        assert steps["reward"].shape == (HORIZON,) and steps["reward"].dtype == np.float32
        assert steps["reward_components"].shape == (HORIZON, n_comp)
        assert steps["reward_components"].dtype == np.float32
        for k in ("is_first", "is_last", "is_terminal"):
            assert steps[k].dtype == np.bool_ and steps[k].shape == (HORIZON,)
        assert steps["is_first"].tolist() == [True] + [False] * (HORIZON - 1)
        assert steps["is_last"].tolist() == [False] * (HORIZON - 1) + [True]
        assert set(steps["observation"]) == set(OBS_SHAPES)
        assert steps["observation"]["state"].shape == (HORIZON, 2 * dof)
        assert all(v.dtype == np.float32 for v in steps["observation"].values())
        assert len(set(steps["language_instruction"].tolist())) == 1  # one instruction per episode
    dofs = {ep["episode_metadata"]["embodiment"]: ep["episode_metadata"]["dof"] for ep in episodes}
    assert dofs == {"panda": 7, "ur5": 6}


def test_same_seed_same_episodes_other_seed_differs(episodes):
    again = generate.generate_episodes(_config())
    assert len(again) == len(episodes)
    for a, b in zip(episodes, again):
        _assert_same(a, b)
    other = generate.generate_episodes(_config(seed=1))
    assert [ep["episode_metadata"]["seed"] for ep in other] == [1] * len(other)
    differs = [not np.array_equal(a["steps"]["action"], b["steps"]["action"]) for a, b in zip(episodes, other)]
    assert all(differs)


def test_episodes_within_a_batch_differ(episodes):
    first, second = episodes[0], episodes[1]  # same (embodiment, task, policy), indices 0 and 1
    assert first["episode_metadata"]["policy"] == second["episode_metadata"]["policy"]
    assert not np.array_equal(first["steps"]["observation"]["state"], second["steps"]["observation"]["state"])


def test_dropping_a_policy_leaves_other_batches_unchanged(episodes):
    only_random = generate.generate_episodes(_config(policies=("random",)))
    full_random = [ep for ep in episodes if ep["episode_metadata"]["policy"] == "random"]
    assert len(only_random) == len(full_random)
    for a, b in zip(only_random, full_random):
        _assert_same(a, b)


@pytest.mark.parametrize("field,value", [("embodiments", ("panda", "no_such_arm")), ("tasks", ()),
                                         ("policies", ("teleport",)), ("episodes_per_combo", 0)])
def test_bad_config_raises_config_error_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=f"'{field}'"):
        generate.generate_episodes(_config(**{field: value}))


def test_metadata_records_the_config():
    meta = generate.dataset_metadata(_config())
    assert meta["horizon"] == HORIZON and meta["episodes_per_combo"] == EPISODES
    assert meta["embodiments"] == ["panda", "ur5"] and meta["policies"] == ["expert", "random"]
    assert meta["reward_component_names"] == list(REWARD_COMPONENTS)
    assert meta["simulator_fingerprint"] == generate.simulator_fingerprint()


def test_simulator_fingerprint_tracks_source_bytes(tmp_path, monkeypatch):
    real = generate.simulator_fingerprint()
    src = os.path.dirname(rlhf_jax.envs.__file__)
    copy = tmp_path / "envs"
    copy.mkdir()
    for name in os.listdir(src):
        if name.endswith(".py"):
            shutil.copy(os.path.join(src, name), copy / name)
    monkeypatch.setattr(rlhf_jax.envs, "__file__", str(copy / "__init__.py"))
    assert generate.simulator_fingerprint() == real  # same names and bytes
    (copy / "notes.txt").write_text("not source")
    assert generate.simulator_fingerprint() == real  # only .py files count
    with open(copy / "tasks.py", "ab") as f:
        f.write(b"\n")
    changed = generate.simulator_fingerprint()
    assert changed != real and len(changed) == 16
    (copy / "tasks.py").write_bytes(open(os.path.join(src, "tasks.py"), "rb").read())
    assert generate.simulator_fingerprint() == real
    shutil.move(copy / "tasks.py", copy / "tasks2.py")  # a renamed file changes it too
    assert generate.simulator_fingerprint() != real
