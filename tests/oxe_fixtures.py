"""Small OXE fixture datasets written with each dataset's published TFDS feature spec.

PUBLISHED holds the step features of each dataset as its TFDS catalog page prints them
(`tfds.robotics.rtx`, version 0.1.0; language_table 0.0.1): the dataset's own key names,
nesting, shapes and dtypes, including keys our loader never reads. It is written out here
independently of `rlhf_jax.data.oxe_registry`, so reading a fixture through the loader checks the
registry against the published spec rather than against itself. Images are shrunk to 8×8
(the loader accepts any image size); everything else keeps its published shape.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np

F32, I32, BOOL, U8 = np.float32, np.int32, np.bool_, np.uint8
IMG = ("image", (8, 8, 3), U8)  # published sizes are 224×224 … 480×640; shrunk for speed
TEXT = ("text",)
EMB = ("tensor", (512,), F32)


def tensor(*shape, dtype=F32):
    """Spec of a tensor feature of ``shape`` (as the TFDS catalog prints it)."""
    return ("tensor", shape, dtype)


def scalar(dtype=F32):
    """Spec of a scalar feature."""
    return ("scalar", dtype)


_FLAGS = {"is_first": scalar(BOOL), "is_last": scalar(BOOL), "is_terminal": scalar(BOOL), "reward": scalar()}
_RT1_ACT = {"rotation_delta": tensor(3), "terminate_episode": scalar(), "world_vector": tensor(3)}

PUBLISHED: dict[str, dict] = {
    "fractal20220817_data": {**_FLAGS, "action": {
        "base_displacement_vector": tensor(2), "base_displacement_vertical_rotation": tensor(1),
        "gripper_closedness_action": tensor(1), "rotation_delta": tensor(3),
        "terminate_episode": tensor(3, dtype=I32), "world_vector": tensor(3)},
        "observation": {
            "base_pose_tool_reached": tensor(7), "gripper_closed": tensor(1),
            "gripper_closedness_commanded": tensor(1), "height_to_bottom": tensor(1), "image": IMG,
            "natural_language_embedding": EMB, "natural_language_instruction": TEXT,
            "orientation_box": tensor(2, 3), "orientation_start": tensor(4),
            "robot_orientation_positions_box": tensor(3, 3), "rotation_delta_to_go": tensor(3),
            "src_rotation": tensor(4), "vector_to_go": tensor(3), "workspace_bounds": tensor(3, 3)}},
    "bridge": {**_FLAGS, "action": {"open_gripper": scalar(BOOL), **_RT1_ACT},
               "observation": {"image": IMG, "natural_language_embedding": EMB,
                               "natural_language_instruction": TEXT, "state": tensor(7)}},
    "taco_play": {**_FLAGS, "action": {
        "actions": tensor(7), "rel_actions_gripper": tensor(7), "rel_actions_world": tensor(7),
        "terminate_episode": scalar()},
        "observation": {"depth_gripper": tensor(84, 84), "depth_static": tensor(150, 200),
                        "natural_language_embedding": EMB, "natural_language_instruction": TEXT,
                        "rgb_gripper": IMG, "rgb_static": IMG, "robot_obs": tensor(15),
                        "structured_language_instruction": TEXT}},
    "jaco_play": {**_FLAGS, "action": {
        "gripper_closedness_action": tensor(1), "terminate_episode": tensor(3, dtype=I32),
        "world_vector": tensor(3)},
        "observation": {"end_effector_cartesian_pos": tensor(7),
                        "end_effector_cartesian_velocity": tensor(6), "image": IMG,
                        "image_wrist": IMG, "joint_pos": tensor(8),
                        "natural_language_embedding": EMB, "natural_language_instruction": TEXT}},
    "berkeley_autolab_ur5": {**_FLAGS, "action": {"gripper_closedness_action": scalar(), **_RT1_ACT},
                             "observation": {"hand_image": IMG, "image": IMG,
                                             "image_with_depth": ("image", (8, 8, 1), F32),
                                             "natural_language_embedding": EMB,
                                             "natural_language_instruction": TEXT,
                                             "robot_state": tensor(15)}},
    "viola": {**_FLAGS, "action": {"gripper_closedness_action": scalar(), **_RT1_ACT},
              "observation": {"agentview_rgb": IMG, "ee_states": tensor(16), "eye_in_hand_rgb": IMG,
                              "gripper_states": tensor(1), "joint_states": tensor(7),
                              "natural_language_embedding": EMB,
                              "natural_language_instruction": TEXT}},
    "toto": {**_FLAGS, "action": {"open_gripper": scalar(BOOL), **_RT1_ACT},
             "observation": {"image": IMG, "natural_language_embedding": EMB,
                             "natural_language_instruction": TEXT, "state": tensor(7)}},
    "language_table": {**_FLAGS, "action": tensor(2),
                       "observation": {"effector_target_translation": tensor(2),
                                       "effector_translation": tensor(2),
                                       "instruction": tensor(512, dtype=I32), "rgb": IMG}},
}
VERSIONS = {name: "0.1.0" for name in PUBLISHED}
VERSIONS["language_table"] = "0.0.1"
INSTRUCTIONS = ("pick up the red block", "push the cup to the left")


def _features(spec: dict):
    from rlhf_jax.data import rlds
    _, tfds = rlds.import_tf()
    f = tfds.features

    def build(node):
        if isinstance(node, dict):
            return f.FeaturesDict({k: build(v) for k, v in node.items()})
        kind = node[0]
        if kind == "tensor":
            return f.Tensor(shape=node[1], dtype=node[2])
        if kind == "image":
            return f.Image(shape=node[1], dtype=node[2])
        if kind == "scalar":
            return f.Scalar(dtype=node[1])
        return f.Text()

    return f.FeaturesDict({"steps": f.Dataset(build(spec))})


def _values(node, t: int, rng, instruction: str):
    """Random per-step values [T, ...] for one spec node (flags fixed up by the caller)."""
    if isinstance(node, dict):
        return {k: (_instruction_bytes(instruction, t) if k == "instruction" else
                    _values(v, t, rng, instruction)) for k, v in node.items()}
    kind = node[0]
    if kind == "text":
        return [instruction] * t
    shape, dtype = ((), node[1]) if kind == "scalar" else (node[1], node[2])
    if dtype == U8:
        return rng.integers(0, 256, (t,) + tuple(shape), dtype=np.uint8)
    if dtype == BOOL:
        return rng.random((t,) + tuple(shape)) < 0.5
    if dtype == I32:
        return rng.integers(-1, 2, (t,) + tuple(shape)).astype(np.int32)
    return rng.normal(size=(t,) + tuple(shape)).astype(np.float32)


def _instruction_bytes(text: str, t: int) -> np.ndarray:
    """language_table's instruction: UTF-8 bytes as int32, zero padded to 512."""
    row = np.zeros(512, np.int32)
    b = np.frombuffer(text.encode(), np.uint8)
    row[: len(b)] = b
    return np.tile(row, (t, 1))


def fixture_episodes(name: str, n_episodes: int = 4, length: int = 6, seed: int = 0,
                     spec: dict | None = None) -> list[dict]:
    """n_episodes random episodes in `name`'s published step spec (instructions alternate)."""
    spec = PUBLISHED[name] if spec is None else spec
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_episodes):
        steps = _values(spec, length, rng, INSTRUCTIONS[i % len(INSTRUCTIONS)])
        steps["is_first"] = np.arange(length) == 0
        steps["is_last"] = np.arange(length) == length - 1
        steps["is_terminal"] = np.arange(length) == length - 1
        steps["reward"] = (np.arange(length) == length - 1).astype(np.float32) * (i % 2)
        out.append({"steps": steps})
    return out


def write_fixture(name: str, data_dir: str, *, spec: dict | None = None, n_episodes: int = 4,
                  length: int = 6, seed: int = 0) -> str:
    """Writes a fixture dataset as TFDS `<data_dir>/<name>/<version>`; returns that directory.

    spec: a (possibly broken) copy of PUBLISHED[name] for bad-input tests.
    """
    from rlhf_jax.data import rlds
    spec = PUBLISHED[name] if spec is None else spec
    eps = fixture_episodes(name, n_episodes, length, seed, spec)
    builder = rlds.make_builder(
        _features(spec), ((f"ep{i}", ep) for i, ep in enumerate(eps)), {}, data_dir, name,
        VERSIONS[name], description=f"fixture in the published spec of {name}")
    _, tfds = rlds.import_tf()
    tfds.disable_progress_bar()
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return str(builder.data_dir)


def broken_spec(name: str, path: str, new: Any = None) -> dict:
    """Copy of PUBLISHED[name] with `path` ('observation/state') removed (new=None) or replaced."""
    spec = copy.deepcopy(PUBLISHED[name])
    *parents, leaf = path.split("/")
    node = spec
    for p in parents:
        node = node[p]
    if new is None:
        del node[leaf]
    else:
        node[leaf] = new
    return spec
