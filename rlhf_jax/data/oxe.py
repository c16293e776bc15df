"""Open X-Embodiment datasets read into our RLDS schema (Octo's three layers).

Layer 1 (metadata) and layer 2 (standardize functions) live in `oxe_registry.REGISTRY`. This
module is layer 3: one generic loader that

  1. resolves the source: a local TFDS directory, or `gs://gresearch/robotics/<name>/<version>`
     (`dataset_path`; reading gs:// needs network and TF's GCS filesystem, tests never do);
  2. checks the stored feature spec against the keys the standardize function reads, before
     decoding anything (missing key, wrong shape or dtype -> SchemaError listing every step
     feature the dataset actually has);
  3. decodes each episode, standardizes it and checks the output ("trajectory is missing keys
     ...") with `rlds.validate_episode`, so OXE episodes and embedded simulator episodes reach
     `make_preference_data` in the same schema.

Standardized episode (what `load_oxe` returns; the schema of `rlds.py` with dof = 7):
  steps/observation: state [T, 14] = (q [7], qd [7]) joint positions zero-padded to 7 (zeros
      where the dataset records no joints) and their finite differences; eef_pos [T, 3];
      eef_vel [T, 3] (finite differences at the control frequency); gripper [T, 1];
      goal [T, 3], obstacle [T, 4], box [T, 6] zeros (simulator-only context, not recorded);
      proprio [T, P] the dataset's raw proprio vector; optional image [T, 64, 64, 3] uint8
      (primary camera, nearest-neighbour resized).
  steps/action [T, 7] end-effector delta (xyz, rotation) + gripper; encoding in the registry.
  steps/reward [T]; steps/reward_components [T, 2] = (reward, progress) where progress_t =
      d_t − d_{t+1}, d = distance of the end effector (joints where no EEF is recorded) to its
      final position: the gold signals a simulated teacher can use on real episodes.
  episode_metadata: episode_id '<name>/<split>/<i>', embodiment, embodiment_id (index in
      oxe_registry.EMBODIMENTS), task = the instruction, task_id (index of the instruction among
      the loaded episodes' sorted distinct instructions), source 'real', policy 'demonstration',
      seed 0, dof 7, dataset, has_eef.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from rlhf_jax.data import rlds
from rlhf_jax.errors import ConfigError, SchemaError, describe
from rlhf_jax.data.oxe_registry import EMBODIMENTS, GCS_ROOT, REGISTRY, OXEDataset

COMPONENT_NAMES = ("reward", "progress")
ACTION_DIM = 7
IMAGE_SIZE = rlds.IMAGE_SHAPE[:2]
_STD_KEYS = ("q", "eef_pos", "gripper", "proprio", "action", "instruction", "image", "reward")


class UnknownDatasetError(ConfigError):
    """An OXE dataset name that is not registered."""


def registered() -> tuple[str, ...]:
    return tuple(sorted(REGISTRY))


def get_dataset(name: str) -> OXEDataset:
    """Registry entry of `name`; UnknownDatasetError lists the registered names."""
    if name not in REGISTRY:
        raise UnknownDatasetError(describe("oxe registry", "name",
                                           f"one of {list(registered())}", repr(name)))
    return REGISTRY[name]


def dataset_path(name: str, data_dir: str | None = None) -> str:
    """Where `name` is read from: `<data_dir>/<name>/<version>` (local) or its public gs:// path.

    data_dir=None gives `gs://gresearch/robotics/<name>/<version>`; a data_dir starting with gs://
    is treated as a bucket root laid out the same way.
    """
    ds = get_dataset(name)
    if data_dir is None:
        return ds.gcs_path
    if str(data_dir).startswith("gs://"):
        return f"{str(data_dir).rstrip('/')}/{name}/{ds.version}"
    return os.path.join(os.fspath(data_dir), name, ds.version)


# ----------------------------------------------------------------------------- feature checks

def flatten_features(features) -> dict[str, tuple[tuple, str]]:
    """Step features of a TFDS FeaturesDict: 'observation/image' -> (shape, dtype name)."""
    if "steps" not in features.keys():
        raise SchemaError(describe("features", "steps", "an RLDS 'steps' dataset feature",
                                   f"keys {sorted(features.keys())}"))
    out: dict[str, tuple[tuple, str]] = {}

    def walk(feat, prefix):
        if hasattr(feat, "keys"):
            for k in feat.keys():
                walk(feat[k], f"{prefix}{k}/")
        else:
            dtype = np.dtype(feat.np_dtype) if feat.np_dtype is not None else None
            name = "string" if dtype is None or dtype.kind in "OSU" else dtype.name
            out[prefix[:-1]] = (tuple(feat.shape), name)

    walk(features["steps"].feature, "")
    return out


def _shape_ok(got: tuple, want: tuple) -> bool:
    return len(got) == len(want) and all(w is None or g == w for g, w in zip(got, want))


def check_features(ds: OXEDataset, flat: Mapping[str, tuple], where: str) -> None:
    """Every key `ds.standardize` reads is present with its published shape and dtype."""
    have = ", ".join(f"{k} {s} {d}" for k, (s, d) in sorted(flat.items()))
    for path, (shape, dtype) in ds.features.items():
        if path not in flat:
            raise SchemaError(describe(where, f"steps/{path}", f"present ({dtype} {shape})",
                                       f"missing; the dataset has: {have}"))
        got_shape, got_dtype = flat[path]
        if got_dtype != dtype or not _shape_ok(got_shape, shape):
            raise SchemaError(describe(where, f"steps/{path}", f"{dtype} shape {shape}",
                                       f"{got_dtype} shape {got_shape}; the dataset has: {have}"))


# ----------------------------------------------------------------------------- standardize

def _resize(img: np.ndarray, size=IMAGE_SIZE) -> np.ndarray:
    """Nearest-neighbour resize of [T, H, W, C] uint8 to [T, h, w, C]."""
    h, w = img.shape[1:3]
    rows = (np.arange(size[0]) * h // size[0]).clip(0, h - 1)
    cols = (np.arange(size[1]) * w // size[1]).clip(0, w - 1)
    return np.ascontiguousarray(img[:, rows][:, :, cols])


def _rate(x: np.ndarray, dt: float) -> np.ndarray:
    """Finite difference per second [T, D]; the last step repeats the previous one."""
    if len(x) < 2:
        return np.zeros_like(x)
    d = np.diff(x, axis=0) / dt
    return np.concatenate([d, d[-1:]], 0).astype(np.float32)


def progress(x: np.ndarray) -> np.ndarray:
    """progress_t = d_t − d_{t+1}, d_t = |x_t − x_{T−1}| (0 on the last step); x [T, D]."""
    d = np.linalg.norm(x - x[-1:], axis=-1)
    return np.append(d[:-1] - d[1:], 0.0).astype(np.float32)


def standardize(ds: OXEDataset, traj: Mapping[str, Any], episode_id: str,
                include_image: bool = False) -> dict:
    """One decoded trajectory (numpy, leading axis T) -> episode in our schema (module doc)."""
    where = f"{ds.name}: standardize({episode_id!r})"
    out = ds.standardize(dict(traj))
    missing = [k for k in _STD_KEYS if k not in out]
    if missing:
        raise SchemaError(describe(where, "output", f"keys {list(_STD_KEYS)}",
                                   f"trajectory is missing keys {missing}"))
    act = out["action"]
    t = len(act)
    if act.shape != (t, ACTION_DIM):
        raise SchemaError(describe(where, "action", f"shape ({t}, {ACTION_DIM})", act.shape))
    dt = 1.0 / ds.control_hz
    q = np.zeros((t, ACTION_DIM), np.float32)
    nq = min(out["q"].shape[1], ACTION_DIM)
    q[:, :nq] = out["q"][:, :nq]
    eef = out["eef_pos"]
    prog = progress(eef if out["has_eef"] else out["proprio"])
    obs = {"state": np.concatenate([q, _rate(q, dt)], 1), "eef_pos": eef,
           "eef_vel": _rate(eef, dt), "gripper": out["gripper"],
           "goal": np.zeros((t, 3), np.float32), "obstacle": np.zeros((t, 4), np.float32),
           "box": np.zeros((t, 6), np.float32), "proprio": out["proprio"]}
    if include_image:
        obs["image"] = _resize(np.asarray(out["image"], np.uint8))
    instr = out["instruction"]
    steps = {"observation": obs, "action": act, "reward": out["reward"],
             "discount": np.ones(t, np.float32),
             "is_first": np.asarray(traj["is_first"], bool),
             "is_last": np.asarray(traj["is_last"], bool),
             "is_terminal": np.asarray(traj["is_terminal"], bool),
             "language_instruction": instr,
             "reward_components": np.stack([out["reward"], prog], 1)}
    meta = {"episode_id": episode_id, "embodiment": ds.embodiment,
            "embodiment_id": ds.embodiment_id, "task": str(instr[0]) if t else "",
            "task_id": -1, "source": "real", "policy": "demonstration", "seed": 0,
            "dof": ACTION_DIM, "dataset": ds.name, "has_eef": bool(out["has_eef"])}
    return {"steps": steps, "episode_metadata": meta}


def assign_task_ids(episodes: Sequence[dict], vocabulary: Sequence[str] | None = None) -> list:
    """Sets task_id = index of the episode's instruction in `vocabulary` (default: the sorted
    distinct instructions of `episodes`); returns the vocabulary."""
    vocab = sorted({ep["episode_metadata"]["task"] for ep in episodes}) if vocabulary is None \
        else list(vocabulary)
    index = {v: i for i, v in enumerate(vocab)}
    for ep in episodes:
        task = ep["episode_metadata"]["task"]
        if task not in index:
            raise SchemaError(describe(ep["episode_metadata"]["episode_id"], "task",
                                       "an instruction of the vocabulary", repr(task)))
        ep["episode_metadata"]["task_id"] = index[task]
    return vocab


# ----------------------------------------------------------------------------- loader

def load_oxe(name: str, path: str | None = None, *, split: str = "train",
             max_episodes: int | None = None, include_image: bool = False,
             validate: bool = True) -> list[dict]:
    """Reads OXE dataset `name` through `tfds.builder_from_directory` into our schema.

    path: a local builder dir (or a directory above it), a gs:// builder path, or None for the
      public `gs://gresearch/robotics/<name>/<version>`.
    Raises UnknownDatasetError, SchemaError (missing key / wrong shape or dtype, listing what the
    dataset has; bad standardized output) or NonFiniteError.
    """
    ds = get_dataset(name)
    path = ds.gcs_path if path is None else os.fspath(path)
    builder_dir = path if path.startswith("gs://") else rlds.find_builder_dir(path)
    _, tfds = rlds.import_tf()
    builder = tfds.builder_from_directory(builder_dir)
    where = f"{builder_dir} ({name})"
    check_features(ds, flatten_features(builder.info.features), where)
    data = rlds.dense_episodes(builder, split, where, max_episodes)
    episodes = []
    for i, traj in enumerate(tfds.as_numpy(data)):
        ep = standardize(ds, traj["steps"], f"{name}/{split}/{i}", include_image)
        episodes.append(ep)
    assign_task_ids(episodes)
    if validate:
        for ep in episodes:
            rlds.validate_episode(ep, where, n_components=len(COMPONENT_NAMES))
    return episodes


def describe_registry() -> list[dict]:
    """One JSON-safe row per registered dataset (for docs and notebooks)."""
    return [{"name": d.name, "version": d.version, "robot": d.robot, "embodiment": d.embodiment,
             "control_hz": d.control_hz, "primary_image": d.primary_image,
             "state_encoding": d.state_encoding, "action_encoding": d.action_encoding,
             "gripper_action": d.gripper_action, "gcs_path": d.gcs_path}
            for d in (REGISTRY[n] for n in registered())]


__all__ = ["COMPONENT_NAMES", "EMBODIMENTS", "GCS_ROOT", "REGISTRY", "UnknownDatasetError",
           "assign_task_ids", "check_features", "dataset_path", "describe_registry",
           "flatten_features", "get_dataset", "load_oxe", "progress", "registered", "standardize"]


# ----------------------------------------------------------------------------- preferences

def real_teacher(name: str = "oracle", **kw):
    """A simulated teacher over a real dataset's gold signal; its labels carry source='real'."""
    from rlhf_jax.preferences import annotators  # pylint: disable=g-import-not-at-top
    base = annotators.resolve_teachers(name)[0]
    return base.replace(source="real", annotator_id=f"sim-on-real/{base.name}", **kw)


def make_real_preference_data(episodes: Sequence[dict], *, segment_length: int, n_train: int,
                              n_val: int, n_test: int, teacher: Any = None,
                              gold_weights: Sequence[float] = (1.0, 1.0),
                              feature_kind: str = "eef", control_hz: float | None = None,
                              **kw):
    """Segment pairs from standardized OXE episodes with the same instruction (task_id), labelled
    by a simulated teacher over the gold components (reward, progress); provenance source='real'.

    Human labels instead: `labels.load_label_file(path, episodes, component_names=
    COMPONENT_NAMES)` reads a label file keyed by these episodes' episode_ids.
    """
    from rlhf_jax.preferences import segments as preferences  # pylint: disable=g-import-not-at-top
    if control_hz is None:
        control_hz = get_dataset(episodes[0]["episode_metadata"]["dataset"]).control_hz
    return preferences.make_preference_data(
        episodes, segment_length=segment_length, n_train=n_train, n_val=n_val, n_test=n_test,
        teacher=real_teacher() if teacher is None else teacher, feature_kind=feature_kind,
        component_names=COMPONENT_NAMES, gold_weights=np.asarray(gold_weights, np.float32),
        dt=1.0 / control_hz, **kw)
