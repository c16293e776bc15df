"""OXE registry + generic loader: every registered dataset read from a fixture in its published
feature spec, and bad inputs (unknown name, missing key, wrong shape) give clear errors."""
from __future__ import annotations

import numpy as np
import pytest

from rlhf_jax.data import oxe, rlds
from rlhf_jax.errors import SchemaError
from tests import oxe_fixtures as fx

NAMES = sorted(fx.PUBLISHED)


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    """One data dir holding a 4-episode fixture of every registered dataset."""
    root = str(tmp_path_factory.mktemp("oxe"))
    for name in NAMES:
        fx.write_fixture(name, root)
    return root


@pytest.fixture(scope="module")
def loaded(fixture_root):
    return {name: oxe.load_oxe(name, oxe.dataset_path(name, fixture_root), include_image=True)
            for name in NAMES}


def test_every_registered_dataset_has_a_fixture():
    assert set(oxe.registered()) == set(fx.PUBLISHED)
    assert len(oxe.registered()) >= 8


@pytest.mark.parametrize("name", NAMES)
def test_fixture_reads_through_loader(loaded, name):
    eps = loaded[name]
    assert len(eps) == 4
    ds = oxe.get_dataset(name)
    for i, ep in enumerate(eps):
        s, m = ep["steps"], ep["episode_metadata"]
        t = len(s["reward"])
        assert t == 6
        assert s["action"].shape == (t, 7) and s["action"].dtype == np.float32
        assert s["observation"]["state"].shape == (t, 14)
        assert s["observation"]["image"].shape == (t, 64, 64, 3)
        assert s["reward_components"].shape == (t, 2)
        assert m["source"] == "real" and m["embodiment"] == ds.embodiment
        assert m["task"] == fx.INSTRUCTIONS[i % 2]
        assert m["episode_id"] == f"{name}/train/{i}"
        rlds.validate_episode(ep, name, n_components=2)
    # Same instruction -> same task id (pairs are drawn within a task).
    assert eps[0]["episode_metadata"]["task_id"] == eps[2]["episode_metadata"]["task_id"]
    assert eps[0]["episode_metadata"]["task_id"] != eps[1]["episode_metadata"]["task_id"]


def test_action_mapping_matches_published_keys(fixture_root, loaded):
    """Spot-check the standardize functions against the raw fixture values."""
    raw = fx.fixture_episodes("berkeley_autolab_ur5")[0]["steps"]
    ep = loaded["berkeley_autolab_ur5"][0]["steps"]
    np.testing.assert_allclose(ep["action"][:, :3], raw["action"]["world_vector"])
    np.testing.assert_allclose(ep["action"][:, 3:6], raw["action"]["rotation_delta"])
    np.testing.assert_allclose(ep["action"][:, 6], raw["action"]["gripper_closedness_action"])
    np.testing.assert_allclose(ep["observation"]["eef_pos"],
                               raw["observation"]["robot_state"][:, 6:9])
    np.testing.assert_allclose(ep["observation"]["state"][:, :6],
                               raw["observation"]["robot_state"][:, :6])
    lt = loaded["language_table"][0]["steps"]
    np.testing.assert_allclose(lt["action"][:, 6], 1.0)  # planar pushing: gripper "open"
    assert lt["language_instruction"][0] == fx.INSTRUCTIONS[0]
    toto = loaded["toto"][0]
    assert not toto["episode_metadata"]["has_eef"]
    assert np.all(toto["steps"]["observation"]["eef_pos"] == 0)


def test_progress_component():
    x = np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]], np.float32)
    np.testing.assert_allclose(oxe.progress(x), [1.0, 1.0, 0.0])


def test_paths():
    assert oxe.dataset_path("bridge") == "gs://gresearch/robotics/bridge/0.1.0"
    assert oxe.dataset_path("language_table") == "gs://gresearch/robotics/language_table/0.0.1"
    assert oxe.dataset_path("toto", "/data").endswith("/data/toto/0.1.0")
    assert {r["name"] for r in oxe.describe_registry()} == set(NAMES)


def test_unknown_name_lists_registered():
    with pytest.raises(oxe.UnknownDatasetError) as err:
        oxe.get_dataset("droid_v9")
    assert "droid_v9" in str(err.value) and "berkeley_autolab_ur5" in str(err.value)


def test_missing_key_lists_dataset_keys(tmp_path):
    spec = fx.broken_spec("berkeley_autolab_ur5", "observation/robot_state")
    path = fx.write_fixture("berkeley_autolab_ur5", str(tmp_path), spec=spec, n_episodes=1,
                            length=2)
    with pytest.raises(SchemaError) as err:
        oxe.load_oxe("berkeley_autolab_ur5", path)
    msg = str(err.value)
    assert "steps/observation/robot_state" in msg and "missing" in msg
    assert "observation/hand_image" in msg  # lists what the dataset actually has


def test_wrong_shape_names_field(tmp_path):
    spec = fx.broken_spec("toto", "observation/state", fx.tensor(6))
    path = fx.write_fixture("toto", str(tmp_path), spec=spec, n_episodes=1, length=2)
    with pytest.raises(SchemaError) as err:
        oxe.load_oxe("toto", path)
    msg = str(err.value)
    assert "steps/observation/state" in msg and "(7,)" in msg and "(6,)" in msg


def test_wrong_dtype_names_field(tmp_path):
    spec = fx.broken_spec("bridge", "action/open_gripper", fx.scalar(np.float32))
    path = fx.write_fixture("bridge", str(tmp_path), spec=spec, n_episodes=1, length=2)
    with pytest.raises(SchemaError, match="action/open_gripper.*bool"):
        oxe.load_oxe("bridge", path)


def test_bad_standardize_output_is_reported():
    ds = oxe.get_dataset("bridge")
    broken = type(ds)(**{**ds.__dict__, "standardize": lambda t: {"action": np.zeros((2, 7))}})
    traj = {"is_first": [True, False], "is_last": [False, True], "is_terminal": [False, True]}
    with pytest.raises(SchemaError, match="trajectory is missing keys"):
        oxe.standardize(broken, traj, "x")


# ----------------------------------------------------------------------------- real preferences

@pytest.fixture(scope="module")
def ur5_episodes(tmp_path_factory):
    """16 longer UR5-fixture episodes (two instructions) for pairs and statistics."""
    root = str(tmp_path_factory.mktemp("oxe_ur5"))
    path = fx.write_fixture("berkeley_autolab_ur5", root, n_episodes=16, length=12)
    return oxe.load_oxe("berkeley_autolab_ur5", path)


def test_real_preferences_same_instruction_and_provenance(ur5_episodes):
    pref = oxe.make_real_preference_data(ur5_episodes, segment_length=4, n_train=40, n_val=5,
                                         n_test=5, split_fractions=(0.5, 0.25, 0.25))
    seg = pref.segments
    for pairs in (pref.train, pref.val, pref.test):
        assert np.all(seg.task_id[pairs.idx_a] == seg.task_id[pairs.idx_b])
        assert {p["source"] for p in pairs.provenance} == {"real"}
    assert seg.component_names == oxe.COMPONENT_NAMES
    # Oracle labels follow reward + progress summed over each segment.
    ret = seg.gold_components.sum(1)
    a, b, y = pref.train.idx_a, pref.train.idx_b, pref.train.label
    decided = y != 0.5
    assert np.all((ret[a] > ret[b])[decided] == (y[decided] == 1))


def test_human_label_file_on_real_episodes(ur5_episodes, tmp_path):
    from rlhf_jax.labels import v1_files as labels
    ids = [ep["episode_metadata"]["episode_id"] for ep in ur5_episodes]
    rec = {"episode_id_a": ids[0], "start_a": 0, "length_a": 4, "episode_id_b": ids[2],
           "start_b": 4, "length_b": 4, "label": 1, "annotator_id": "human/ann1",
           "timestamp": 1.7e9, "interface_version": "web/2", "source": "real", "confidence": 0.9}
    path = labels.write_labels(str(tmp_path / "labels.jsonl"), [rec])
    table, pairs = labels.load_label_file(path, ur5_episodes, component_names=oxe.COMPONENT_NAMES,
                                          feature_kind="eef")
    assert len(pairs) == 1 and pairs.provenance[0]["source"] == "real" and len(table) == 2
