"""LeRobot registry: per-dataset metadata and standardize functions (layers 1 and 2, as for OXE).

An entry says which columns of a LeRobot dataset are the state, the action and the cameras, what
the embodiment is, where the language comes from, and whether there is a gold reward. Entries
are found by the dataset's `robot_type` (info.json); a dataset with none of the registered types
is read by the `generic` entry (`observation.state`, `action`, every camera).

A standardize function maps one episode's columns (numpy, leading axis T; vector features
[T, D]) and the episode's metadata to

  q [T, J]            joint positions (the arm's state vector; J <= MAX_DOF)
  action [T, A]       the dataset's action vector (A <= MAX_DOF)
  gripper [T, 1]      gripper state (zeros where not recorded)
  eef_pos [T, 3]      end-effector position (zeros where not recorded)
  reward [T]          a recorded reward, else zeros
  components [T, C]   gold reward components; C = 0 for foreign data (no gold: labels come from
                      people or a label file, never from a simulated oracle)
  observation {key: [T, ...]} observation entries restored as they are (our own export only)
  metadata {key: value} episode metadata restored as it is (our own export only; its episode_id
                      as original_episode_id, since episode_id is the episode_index)
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import numpy as np

SIM_PREFIX = "rlhf_sim/"            # episodes-table columns holding our episode metadata
SIM_COMPONENTS = "rlhf_sim.reward_components"
SIM_OBS = ("eef_pos", "eef_vel", "gripper", "goal", "obstacle", "box")
SO100_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")


@dataclasses.dataclass(frozen=True)
class LeRobotEntry:
    """Metadata of one kind of LeRobot dataset (layer 1) and its standardize function (layer 2).

    robot_types: info.json `robot_type` values read by this entry. image_keys: camera features
    (() = every video or image feature). bgr_keys: cameras stored with blue and red swapped (some
    OXE conversions), swapped back on read. language: 'task' (the episode's task string).
    gold: whether the dataset carries gold reward components (our own export does).
    """
    name: str
    robot_types: tuple[str, ...]
    embodiment: str
    standardize: Callable[[Mapping[str, np.ndarray], Mapping], dict]
    state_key: str = "observation.state"
    action_key: str = "action"
    image_keys: tuple[str, ...] = ()
    bgr_keys: tuple[str, ...] = ()
    language: str = "task"
    gold: bool = False
    notes: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.state_key, self.action_key)


def _f(x) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x.reshape(len(x), -1)


def _std_generic(cols: Mapping[str, np.ndarray], episode: Mapping) -> dict:
    """State = joints, the action as recorded, no gripper, EEF or gold."""
    q, act = _f(cols["observation.state"]), _f(cols["action"])
    t = len(q)
    return {"q": q, "action": act, "gripper": np.zeros((t, 1), np.float32),
            "eef_pos": np.zeros((t, 3), np.float32), "reward": np.zeros(t, np.float32),
            "components": np.zeros((t, 0), np.float32), "observation": {}, "metadata": {}}


def _std_so100(cols: Mapping[str, np.ndarray], episode: Mapping) -> dict:
    """SO-100 arm: 6 state values (5 joints + gripper, in degrees), 6 target values as action."""
    out = _std_generic(cols, episode)
    out["gripper"] = out["q"][:, -1:]
    return out


def _std_rlhf_sim(cols: Mapping[str, np.ndarray], episode: Mapping) -> dict:
    """Our own export: state = (q, qd) padded to MAX_DOF each, cut back to the episode's dof;
    the other observations, gold components and metadata restored exactly."""
    dof = int(episode[SIM_PREFIX + "dof"])
    state, act = _f(cols["observation.state"]), _f(cols["action"])
    half = state.shape[1] // 2
    obs = {k: _f(cols[f"observation.{k}"]) for k in SIM_OBS}
    obs["state"] = np.concatenate([state[:, :dof], state[:, half:half + dof]], 1)
    meta = {k[len(SIM_PREFIX):]: v for k, v in episode.items() if k.startswith(SIM_PREFIX)}
    # episode_id stays the episode_index (what label files key LeRobot episodes by); ours is kept.
    meta["original_episode_id"] = meta.pop("episode_id")
    return {"q": state[:, :dof], "action": act[:, :dof], "gripper": obs["gripper"], "eef_pos": obs["eef_pos"],
            "reward": _f(cols["next.reward"])[:, 0], "components": _f(cols[SIM_COMPONENTS]),
            "observation": obs, "metadata": meta}


REGISTRY: dict[str, LeRobotEntry] = {e.name: e for e in (
    LeRobotEntry("rlhf_sim", ("rlhf_sim",), "rlhf_sim", _std_rlhf_sim, gold=True,
                 notes="this project's embedded dataset exported by experiments.export_lerobot"),
    LeRobotEntry("so100", ("so100", "so100_follower", "so101_follower"), "so100", _std_so100,
                 notes="SO-100/SO-101 arm (LeRobot's low-cost arm): 6 joint positions incl. gripper"),
    LeRobotEntry("generic", (), "generic", _std_generic,
                 notes="any dataset with observation.state and action; no gripper, EEF or gold"),
)}


def entry_for(robot_type: str | None, name: str | None = None) -> LeRobotEntry:
    """The entry called `name`, else the one reading `robot_type`, else `generic`."""
    if name:
        return REGISTRY[name]
    for entry in REGISTRY.values():
        if robot_type in entry.robot_types:
            return entry
    return REGISTRY["generic"]
