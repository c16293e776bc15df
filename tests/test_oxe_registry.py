"""The OXE registry on its own: every entry's metadata agrees with its declared features, and
every standardize function, fed a trajectory holding exactly the declared features, reads all
of them (nothing undeclared) and returns the pieces of our schema with their documented shapes
and the published action mapping. (Reading published-spec fixtures through the loader is
test_oxe's.)"""
from __future__ import annotations

import math

import numpy as np
import pytest

from rlhf_jax.data.oxe_registry import EMBODIMENTS, GCS_ROOT, REGISTRY, OXEDataset

NAMES = sorted(REGISTRY)
T = 5
FLAGS = ("is_first", "is_last", "is_terminal")  # checked by the generic loader, not standardize
INSTRUCTION = "put the cube in the bowl"


class Recording(dict):
    """A nested dict that records the '/'-joined path of every key read from it."""

    def __init__(self, items, reads: set, prefix: str = ""):
        super().__init__(items)
        self.reads, self.prefix = reads, prefix

    def __getitem__(self, key):
        value = super().__getitem__(key)
        path = self.prefix + key
        if isinstance(value, dict):
            return Recording(value, self.reads, path + "/")
        self.reads.add(path)
        return value


def feature_value(path: str, shape, dtype: str, rng) -> np.ndarray:
    """[T, *shape] values of one declared feature (8x8 images; text as bytes)."""
    if dtype == "string":
        return np.array([INSTRUCTION.encode()] * T, dtype=object)
    if path == "observation/instruction":  # language_table: UTF-8 bytes as int32, zero padded
        codes = np.zeros((T, shape[0]), np.int32)
        codes[:, :len(INSTRUCTION)] = np.frombuffer(INSTRUCTION.encode(), np.uint8)
        return codes
    full = (T,) + tuple(8 if s is None else s for s in shape)
    if dtype == "uint8":
        return rng.integers(0, 256, full).astype(np.uint8)
    if dtype == "bool":
        return rng.random(full) < 0.5
    return rng.normal(size=full).astype(dtype)


def trajectory(ds: OXEDataset, seed: int = 0) -> dict:
    """A nested trajectory holding exactly ``ds.features`` (leading axis T)."""
    rng = np.random.default_rng(seed)
    traj = {}
    for path, (shape, dtype) in sorted(ds.features.items()):
        *parents, leaf = path.split("/")
        node = traj
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = feature_value(path, shape, dtype, rng)
    return traj


def standardized(name: str, seed: int = 0) -> tuple[dict, dict, set]:
    """(raw trajectory, standardize output, feature paths the function read)."""
    raw, reads = trajectory(REGISTRY[name], seed), set()
    return raw, REGISTRY[name].standardize(Recording(raw, reads)), reads


def test_registry_keys_are_names():
    assert all(ds.name == name for name, ds in REGISTRY.items())
    assert len(REGISTRY) >= 8


@pytest.mark.parametrize("name", NAMES)
def test_metadata_agrees_with_declared_features(name):
    ds = REGISTRY[name]
    assert ds.gcs_path == f"{GCS_ROOT}/{name}/{ds.version}"
    assert EMBODIMENTS[ds.embodiment_id] == ds.embodiment
    assert math.isfinite(ds.control_hz) and ds.control_hz > 0
    for flag in FLAGS + ("reward",):
        assert flag in ds.features, flag
    shape, dtype = ds.features[f"observation/{ds.primary_image}"]
    assert len(shape) == 3 and shape[-1] == 3 and dtype == "uint8"
    assert ds.wrist_image is None or ds.wrist_image != ds.primary_image
    assert ds.language_key.split(" ")[0] in ds.features
    for key in ds.state_keys:
        assert f"observation/{key}" in ds.features, key


@pytest.mark.parametrize("name", NAMES)
def test_standardize_reads_exactly_the_declared_features(name):
    _, _, reads = standardized(name)
    assert reads == set(REGISTRY[name].features) - set(FLAGS)


@pytest.mark.parametrize("name", NAMES)
def test_standardize_output_shapes(name):
    ds = REGISTRY[name]
    _, out, _ = standardized(name)
    assert out["action"].shape == (T, 7) and out["action"].dtype == np.float32
    assert out["eef_pos"].shape == (T, 3) and out["gripper"].shape == (T, 1)
    assert out["q"].ndim == 2 and out["q"].shape[0] == T
    assert out["reward"].shape == (T,)
    assert list(out["instruction"]) == [INSTRUCTION] * T
    assert out["image"].shape == (T, 8, 8, 3) and out["image"].dtype == np.uint8
    # The proprio vector is the state keys concatenated: its width is the sum of theirs.
    state_width = sum(math.prod(ds.features[f"observation/{k}"][0]) for k in ds.state_keys)
    assert out["proprio"].shape == (T, state_width)
    assert out["has_eef"] == (name != "toto")
    for key in ("q", "eef_pos", "gripper", "proprio", "action", "reward"):
        assert np.all(np.isfinite(out[key])), key


@pytest.mark.parametrize("name", [n for n in NAMES if "action/world_vector" in REGISTRY[n].features])
@pytest.mark.parametrize("seed", [0, 1])
def test_action_is_world_vector_then_rotation_then_gripper(name, seed):
    raw, out, _ = standardized(name, seed)
    act = raw["action"]
    np.testing.assert_array_equal(out["action"][:, :3], act["world_vector"])
    rotation = act.get("rotation_delta", np.zeros((T, 3), np.float32))  # Jaco: no rotation command
    np.testing.assert_array_equal(out["action"][:, 3:6], rotation)
    grip = act.get("gripper_closedness_action", act.get("open_gripper"))
    np.testing.assert_array_equal(out["action"][:, 6], np.asarray(grip, np.float32).reshape(T))


def test_taco_action_and_state_slices():
    raw, out, _ = standardized("taco_play")
    obs = raw["observation"]["robot_obs"]
    np.testing.assert_array_equal(out["action"], raw["action"]["rel_actions_world"])
    np.testing.assert_array_equal(out["eef_pos"], obs[:, :3])
    np.testing.assert_array_equal(out["gripper"], obs[:, 6:7])
    np.testing.assert_array_equal(out["q"], obs[:, 7:14])


def test_language_table_planar_action_and_decoded_instruction():
    raw, out, _ = standardized("language_table")
    np.testing.assert_array_equal(out["action"][:, :2], raw["action"])
    np.testing.assert_array_equal(out["action"][:, 2:6], 0.0)
    np.testing.assert_array_equal(out["action"][:, 6], 1.0)  # planar pushing: gripper "open"
    np.testing.assert_array_equal(out["eef_pos"][:, :2], raw["observation"]["effector_translation"])
    np.testing.assert_array_equal(out["eef_pos"][:, 2], 0.0)


def test_state_layouts_of_pose_datasets():
    raw, out, _ = standardized("viola")
    np.testing.assert_array_equal(out["eef_pos"], raw["observation"]["ee_states"][:, 12:15])  # column-major 4x4
    raw, out, _ = standardized("berkeley_autolab_ur5")
    state = raw["observation"]["robot_state"]
    np.testing.assert_array_equal(out["q"], state[:, :6])
    np.testing.assert_array_equal(out["eef_pos"], state[:, 6:9])
    np.testing.assert_array_equal(out["gripper"], state[:, 13:14])
    raw, out, _ = standardized("fractal20220817_data")
    pose = raw["observation"]["base_pose_tool_reached"]
    np.testing.assert_array_equal(out["eef_pos"], pose[:, :3])
    np.testing.assert_array_equal(out["proprio"][:, :7], pose)
    assert out["q"].shape == (T, 0)


def test_toto_records_no_end_effector():
    raw, out, _ = standardized("toto")
    np.testing.assert_array_equal(out["q"], raw["observation"]["state"])
    np.testing.assert_array_equal(out["eef_pos"], 0.0)
    assert not out["has_eef"]
