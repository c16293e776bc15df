"""Open X-Embodiment registry: per-dataset metadata and standardize functions (layers 1 and 2).

Each entry names the features a dataset's standardize function reads, with their published TFDS
shapes and dtypes (TFDS catalog pages of the `tfds.robotics.rtx` builders, version 0.1.0, and
Octo's `oxe_dataset_configs.py` / `oxe_standardization_transforms.py` for which key is the
primary camera, the proprio state and the action encoding). Only the keys a standardize function
reads are required; a dataset may hold more (e.g. `natural_language_embedding`).

A standardize function maps one decoded trajectory (numpy, leading axis T) to the pieces of our
RLDS schema (see `oxe.standardize`):

  q [T, J]          joint positions where recorded (J may be 0)
  eef_pos [T, 3]    end-effector position (zeros + has_eef=False where not recorded)
  gripper [T, 1]    gripper state as recorded (encoding in `gripper_state`)
  proprio [T, P]    the dataset's raw proprio vector (state keys concatenated)
  action [T, 7]     end-effector delta xyz (3) + rotation delta (3) + gripper (1)
  instruction [T]   str
  image [T, H, W, 3] uint8 primary camera (any H, W)

Image sizes are not checked (only rank, channels and dtype), so test fixtures may store 8×8
images in place of the published sizes.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import numpy as np

GCS_ROOT = "gs://gresearch/robotics"

# Embodiment vocabulary of the OXE entries (embodiment_id = index here).
EMBODIMENTS = ("google_robot", "widowx", "franka", "kinova_jaco", "ur5", "xarm")

_F32, _I32, _BOOL, _U8, _STR = "float32", "int32", "bool", "uint8", "string"
IMG = (None, None, 3)  # any height and width


@dataclasses.dataclass(frozen=True)
class OXEDataset:
    """Metadata of one OXE dataset (layer 1) and its standardize function (layer 2).

    features: step-feature path ('observation/image', 'action/world_vector', 'reward', ...) ->
      (shape, dtype) as published; None in a shape means any size. These are the keys
      `standardize` reads; the generic loader checks them before decoding anything.
    """
    name: str
    version: str
    robot: str
    embodiment: str
    control_hz: float
    features: Mapping[str, tuple]
    primary_image: str
    wrist_image: str | None
    state_keys: tuple[str, ...]
    state_encoding: str
    action_encoding: str
    gripper_action: str
    gripper_state: str
    language_key: str
    standardize: Callable[[dict], dict]
    notes: str = ""

    @property
    def gcs_path(self) -> str:
        """Public path of the dataset: gs://gresearch/robotics/<name>/<version>."""
        return f"{GCS_ROOT}/{self.name}/{self.version}"

    @property
    def embodiment_id(self) -> int:
        return EMBODIMENTS.index(self.embodiment)


def _f(x) -> np.ndarray:
    return np.asarray(x, np.float32)


def _col(x) -> np.ndarray:
    """[T] or [T, 1] -> [T, 1] float32."""
    return _f(x).reshape(len(x), -1)[:, :1]


def _text(x) -> np.ndarray:
    return np.array([s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in x])


def _action(world, rot, grip) -> np.ndarray:
    """7-D end-effector action: xyz delta, rotation delta, gripper."""
    return np.concatenate([_f(world), _f(rot), _col(grip)], 1)


def _out(t, *, q, eef_pos, gripper, proprio, action, instruction, image, has_eef=True) -> dict:
    n = len(action)
    return {"q": _f(q).reshape(n, -1), "eef_pos": _f(eef_pos).reshape(n, 3),
            "gripper": _col(gripper), "proprio": _f(proprio).reshape(n, -1),
            "action": _f(action), "instruction": _text(instruction), "image": image,
            "has_eef": has_eef, "reward": _f(t["reward"])}


def _std_fractal(t: dict) -> dict:
    o, a = t["observation"], t["action"]
    pose = _f(o["base_pose_tool_reached"])  # xyz + quaternion
    return _out(t, q=np.zeros((len(pose), 0)), eef_pos=pose[:, :3], gripper=o["gripper_closed"],
                proprio=np.concatenate([pose, _f(o["gripper_closed"])], 1),
                action=_action(a["world_vector"], a["rotation_delta"],
                               a["gripper_closedness_action"]),
                instruction=o["natural_language_instruction"], image=o["image"])


def _std_bridge(t: dict) -> dict:
    o, a = t["observation"], t["action"]
    s = _f(o["state"])  # xyz, roll-pitch-yaw, gripper
    return _out(t, q=np.zeros((len(s), 0)), eef_pos=s[:, :3], gripper=s[:, -1:], proprio=s,
                action=_action(a["world_vector"], a["rotation_delta"], a["open_gripper"]),
                instruction=o["natural_language_instruction"], image=o["image"])


def _std_taco(t: dict) -> dict:
    o = t["observation"]
    r = _f(o["robot_obs"])  # eef xyz (3), euler (3), gripper width (1), joints (7), grip action (1)
    rel = _f(t["action"]["rel_actions_world"])  # xyz, euler deltas, gripper (-1 open, 1 close)
    return _out(t, q=r[:, 7:14], eef_pos=r[:, :3], gripper=r[:, 6:7], proprio=r, action=rel,
                instruction=o["natural_language_instruction"], image=o["rgb_static"])


def _std_jaco(t: dict) -> dict:
    o, a = t["observation"], t["action"]
    p = _f(o["end_effector_cartesian_pos"])  # xyz + quaternion
    world = _f(a["world_vector"])
    # Jaco records no rotation command: the rotation delta is zero (as in Octo).
    return _out(t, q=_f(o["joint_pos"])[:, :6], eef_pos=p[:, :3], gripper=p[:, -1:],
                proprio=np.concatenate([p, _f(o["joint_pos"])], 1),
                action=_action(world, np.zeros_like(world), a["gripper_closedness_action"]),
                instruction=o["natural_language_instruction"], image=o["image"])


def _std_ur5(t: dict) -> dict:
    o, a = t["observation"], t["action"]
    r = _f(o["robot_state"])  # joints (6), eef xyz (3), eef quaternion (4), gripper (1), blocked (1)
    return _out(t, q=r[:, :6], eef_pos=r[:, 6:9], gripper=r[:, 13:14], proprio=r,
                action=_action(a["world_vector"], a["rotation_delta"],
                               a["gripper_closedness_action"]),
                instruction=o["natural_language_instruction"], image=o["image"])


def _std_viola(t: dict) -> dict:
    o, a = t["observation"], t["action"]
    ee = _f(o["ee_states"])  # 4x4 homogeneous pose, column-major: translation at 12:15
    return _out(t, q=o["joint_states"], eef_pos=ee[:, 12:15], gripper=o["gripper_states"],
                proprio=np.concatenate([_f(o["joint_states"]), _f(o["gripper_states"])], 1),
                action=_action(a["world_vector"], a["rotation_delta"],
                               a["gripper_closedness_action"]),
                instruction=o["natural_language_instruction"], image=o["agentview_rgb"])


def _std_toto(t: dict) -> dict:
    o, a = t["observation"], t["action"]
    q = _f(o["state"])  # absolute joint angles; TOTO records no end-effector pose
    return _out(t, q=q, eef_pos=np.zeros((len(q), 3)), gripper=np.zeros((len(q), 1)), proprio=q,
                action=_action(a["world_vector"], a["rotation_delta"], a["open_gripper"]),
                instruction=o["natural_language_instruction"], image=o["image"], has_eef=False)


def _std_language_table(t: dict) -> dict:
    o = t["observation"]
    xy = _f(o["effector_translation"])  # planar end-effector position
    act = _f(t["action"])  # planar xy delta
    n = len(act)
    # Planar pushing: z and rotation deltas are zero, gripper "open" (1), as in Octo.
    action = np.concatenate([act, np.zeros((n, 4), np.float32), np.ones((n, 1), np.float32)], 1)
    instr = [bytes(np.asarray(row, np.int64).clip(0, 255).astype(np.uint8)).split(b"\x00")[0]
             for row in o["instruction"]]
    return _out(t, q=np.zeros((n, 0)), eef_pos=np.concatenate([xy, np.zeros((n, 1))], 1),
                gripper=np.zeros((n, 1)), proprio=xy, action=action, instruction=instr,
                image=o["rgb"])


_RT1_ACTION = {"action/world_vector": ((3,), _F32), "action/rotation_delta": ((3,), _F32)}
_COMMON = {"reward": ((), _F32), "is_first": ((), _BOOL), "is_last": ((), _BOOL),
           "is_terminal": ((), _BOOL)}
_LANG = {"observation/natural_language_instruction": ((), _STR)}

REGISTRY: dict[str, OXEDataset] = {d.name: d for d in [
    OXEDataset(
        name="fractal20220817_data", version="0.1.0", robot="Google Robot (RT-1)",
        embodiment="google_robot", control_hz=3.0,
        features={**_COMMON, **_LANG, **_RT1_ACTION, "observation/image": (IMG, _U8),
                  "observation/base_pose_tool_reached": ((7,), _F32),
                  "observation/gripper_closed": ((1,), _F32),
                  "action/gripper_closedness_action": ((1,), _F32)},
        primary_image="image", wrist_image=None,
        state_keys=("base_pose_tool_reached", "gripper_closed"), state_encoding="pos_quat",
        action_encoding="eef_delta: world_vector xyz + rotation_delta rpy",
        gripper_action="gripper_closedness_action: relative closedness command (+1 close, "
                       "-1 open, 0 no change)",
        gripper_state="gripper_closed: 1 closed, 0 open",
        language_key="observation/natural_language_instruction", standardize=_std_fractal,
        notes="reward is 1 on the final step of successful episodes"),
    OXEDataset(
        name="bridge", version="0.1.0", robot="WidowX 250", embodiment="widowx", control_hz=5.0,
        features={**_COMMON, **_LANG, **_RT1_ACTION, "observation/image": (IMG, _U8),
                  "observation/state": ((7,), _F32), "action/open_gripper": ((), _BOOL)},
        primary_image="image", wrist_image=None, state_keys=("state",),
        state_encoding="pos_euler: xyz, rpy, gripper",
        action_encoding="eef_delta: world_vector xyz + rotation_delta rpy",
        gripper_action="open_gripper: bool, 1 = open", gripper_state="state[-1]",
        language_key="observation/natural_language_instruction", standardize=_std_bridge,
        notes="the OXE copy (gs://gresearch/robotics/bridge), not Octo's newer bridge_dataset"),
    OXEDataset(
        name="taco_play", version="0.1.0", robot="Franka Emika Panda", embodiment="franka",
        control_hz=15.0,
        features={**_COMMON, **_LANG, "observation/rgb_static": (IMG, _U8),
                  "observation/robot_obs": ((15,), _F32),
                  "action/rel_actions_world": ((7,), _F32)},
        primary_image="rgb_static", wrist_image="rgb_gripper", state_keys=("robot_obs",),
        state_encoding="robot_obs: eef xyz, euler, gripper width, 7 joints, gripper action",
        action_encoding="eef_delta: rel_actions_world xyz + euler (robot base frame)",
        gripper_action="rel_actions_world[-1]: -1 open, 1 close",
        gripper_state="robot_obs[6]: gripper width",
        language_key="observation/natural_language_instruction", standardize=_std_taco),
    OXEDataset(
        name="jaco_play", version="0.1.0", robot="Kinova Jaco 2", embodiment="kinova_jaco",
        control_hz=10.0,
        features={**_COMMON, **_LANG, "observation/image": (IMG, _U8),
                  "observation/end_effector_cartesian_pos": ((7,), _F32),
                  "observation/joint_pos": ((8,), _F32), "action/world_vector": ((3,), _F32),
                  "action/gripper_closedness_action": ((1,), _F32)},
        primary_image="image", wrist_image="image_wrist",
        state_keys=("end_effector_cartesian_pos", "joint_pos"), state_encoding="pos_quat",
        action_encoding="eef_delta: world_vector xyz; no rotation command (zeros)",
        gripper_action="gripper_closedness_action: relative command",
        gripper_state="end_effector_cartesian_pos[-1]",
        language_key="observation/natural_language_instruction", standardize=_std_jaco),
    OXEDataset(
        name="berkeley_autolab_ur5", version="0.1.0", robot="Universal Robots UR5",
        embodiment="ur5", control_hz=5.0,
        features={**_COMMON, **_LANG, **_RT1_ACTION, "observation/image": (IMG, _U8),
                  "observation/robot_state": ((15,), _F32),
                  "action/gripper_closedness_action": ((), _F32)},
        primary_image="image", wrist_image="hand_image", state_keys=("robot_state",),
        state_encoding="robot_state: 6 joints, eef xyz, eef quaternion, gripper, action blocked",
        action_encoding="eef_delta: world_vector xyz + rotation_delta rpy",
        gripper_action="gripper_closedness_action: 1 close, -1 open, 0 no change",
        gripper_state="robot_state[13]",
        language_key="observation/natural_language_instruction", standardize=_std_ur5),
    OXEDataset(
        name="viola", version="0.1.0", robot="Franka Emika Panda", embodiment="franka",
        control_hz=20.0,
        features={**_COMMON, **_LANG, **_RT1_ACTION, "observation/agentview_rgb": (IMG, _U8),
                  "observation/joint_states": ((7,), _F32),
                  "observation/gripper_states": ((1,), _F32),
                  "observation/ee_states": ((16,), _F32),
                  "action/gripper_closedness_action": ((), _F32)},
        primary_image="agentview_rgb", wrist_image="eye_in_hand_rgb",
        state_keys=("joint_states", "gripper_states"), state_encoding="joint",
        action_encoding="eef_delta: world_vector xyz + rotation_delta",
        gripper_action="gripper_closedness_action: absolute (Octo clips to [0, 1], inverts)",
        gripper_state="gripper_states: gripper width, 0 = closed",
        language_key="observation/natural_language_instruction", standardize=_std_viola,
        notes="Octo drops viola's instructions as uninformative; kept here for task grouping"),
    OXEDataset(
        name="toto", version="0.1.0", robot="Franka Emika Panda", embodiment="franka",
        control_hz=30.0,
        features={**_COMMON, **_LANG, **_RT1_ACTION, "observation/image": (IMG, _U8),
                  "observation/state": ((7,), _F32), "action/open_gripper": ((), _BOOL)},
        primary_image="image", wrist_image=None, state_keys=("state",), state_encoding="joint",
        action_encoding="eef_delta: world_vector xyz + rotation_delta",
        gripper_action="open_gripper: bool, 1 = open", gripper_state="not recorded (zeros)",
        language_key="observation/natural_language_instruction", standardize=_std_toto,
        notes="no end-effector pose recorded: eef_pos is zeros and episode has_eef is False"),
    OXEDataset(
        name="language_table", version="0.0.1", robot="xArm (planar pushing)",
        embodiment="xarm", control_hz=10.0,
        features={**_COMMON, "observation/rgb": (IMG, _U8),
                  "observation/effector_translation": ((2,), _F32),
                  "observation/instruction": ((512,), _I32), "action": ((2,), _F32)},
        primary_image="rgb", wrist_image=None, state_keys=("effector_translation",),
        state_encoding="planar eef xy",
        action_encoding="planar eef delta xy; z, rotation zeros",
        gripper_action="none (constant 1 = open)", gripper_state="none (zeros)",
        language_key="observation/instruction (UTF-8 bytes as int32, zero padded)",
        standardize=_std_language_table),
]}
