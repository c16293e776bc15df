"""Write and read episodes as a real TFDS dataset in the RLDS schema.

In-memory episode (what `generate_episodes` makes, `write_rlds` takes and `load_rlds` returns):

  {"steps": {
      "observation": {"state" [T, 2*dof] f32 (q, qd), "eef_pos" [T, 3] f32, "eef_vel" [T, 3] f32,
                      "gripper" [T, 1] f32, "goal" [T, 3] f32, "obstacle" [T, 4] f32,
                      "box" [T, 6] f32, optional "image" [T, 64, 64, 3] uint8},
      "action" [T, dof] f32, "reward" [T] f32 (gold total), "discount" [T] f32,
      "is_first" / "is_last" / "is_terminal" [T] bool,
      "language_instruction" [T] str, "reward_components" [T, C] f32},
   "episode_metadata": {"episode_id" str, "embodiment" str, "embodiment_id" int, "task" str,
      "task_id" int, "source" "sim"|"real", "policy" str, "seed" int, "dof" int}}

Variable action/state sizes (6-DoF UR5 next to 7-DoF Panda/Gen3) are stored as TFDS tensors of
shape (None,) with `encoding="bytes"` (each step's tensor is serialised with its own shape), so
nothing is padded or truncated on disk; `episode_metadata/dof` records the size. Padding to
MAX_DOF happens only later, in the preference segment table.

Writing uses a `GeneratorBasedBuilder` with a local data_dir (works offline); reading always goes
through `tfds.builder_from_directory`, the path a real Open X-Embodiment RLDS dataset takes.
TensorFlow is imported lazily, only here, and hidden from accelerators.
"""
from __future__ import annotations

import glob
import itertools
import json
import logging
import os
from typing import Any, Iterable, Mapping

import numpy as np

from rlhf_jax.errors import SchemaError, describe
from rlhf_jax.data.rlds_schema import (  # noqa: F401  (the schema is part of this module's API)
    BOOL_STEP_KEYS, DATASET_NAME, DATASET_VERSION, IMAGE_SHAPE, METADATA_KEYS, OBS_SHAPES, SCHEMA_VERSION,
    STEP_KEYS, validate_episode)

class _BelowErrorFromTF(logging.Filter):
    """Drops absl log records below ERROR that TensorFlow or TFDS emit (deprecation notes),
    so that a user error on a data path is the one line on stderr."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "tensorflow" not in record.pathname


def import_tf():
    """Imports TensorFlow + TFDS with TF hidden from GPUs/TPUs (JAX owns the accelerators) and
    its logging below errors silenced (C++: TF_CPP_MIN_LOG_LEVEL, unless the user set it; Python:
    a filter on absl's logger), since a data path's output should be its progress and errors."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TF only reads and writes records here, so its oneDNN kernels buy nothing; turning them off
    # also drops the notice TF prints about them at import, whatever the log level.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    absl_logger = logging.getLogger("absl")
    if not any(isinstance(f, _BelowErrorFromTF) for f in absl_logger.filters):
        absl_logger.addFilter(_BelowErrorFromTF())
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    try:
        tf.config.set_visible_devices([], "GPU")
        tf.config.set_visible_devices([], "TPU")
    except (RuntimeError, ValueError):
        pass  # already initialised, or no such device type: nothing to hide
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    return tf, tfds


# ----------------------------------------------------------------------------- writing

def episode_features_spec(n_components: int, image: bool):
    """TFDS FeaturesDict of the RLDS schema (see module docstring)."""
    _, tfds = import_tf()
    f = tfds.features
    obs = {k: f.Tensor(shape=s, dtype=np.float32, encoding="bytes" if s == (None,) else "none")
           for k, s in OBS_SHAPES.items()}
    if image:
        obs["image"] = f.Image(shape=IMAGE_SHAPE, dtype=np.uint8, encoding_format="png")
    steps = f.Dataset({
        "observation": f.FeaturesDict(obs),
        "action": f.Tensor(shape=(None,), dtype=np.float32, encoding="bytes"),
        "reward": f.Scalar(dtype=np.float32),
        "discount": f.Scalar(dtype=np.float32),
        "is_first": f.Scalar(dtype=np.bool_),
        "is_last": f.Scalar(dtype=np.bool_),
        "is_terminal": f.Scalar(dtype=np.bool_),
        "language_instruction": f.Text(),
        "reward_components": f.Tensor(shape=(n_components,), dtype=np.float32),
    })
    meta = {k: (f.Text() if t is str else f.Scalar(dtype=np.int64))
            for k, t in METADATA_KEYS.items()}
    return f.FeaturesDict({"steps": steps, "episode_metadata": f.FeaturesDict(meta)})


def _to_example(ep: Mapping[str, Any]) -> dict:
    """Casts an episode to the exact numpy dtypes TFDS encodes (keys present are kept as is)."""
    s, m = ep["steps"], ep["episode_metadata"]
    steps: dict[str, Any] = {}
    for k, v in s.items():
        if k == "observation":
            steps[k] = {o: np.asarray(x, np.uint8 if o == "image" else np.float32)
                        for o, x in v.items()}
        elif k == "language_instruction":
            steps[k] = [str(x) for x in v]
        elif k in BOOL_STEP_KEYS:
            steps[k] = np.asarray(v, np.bool_)
        else:
            steps[k] = np.asarray(v, np.float32)
    meta = {k: (str(v) if isinstance(v, str) else int(v)) for k, v in m.items()}
    return {"steps": steps, "episode_metadata": meta}


def make_builder(features, examples: Iterable, metadata: Mapping[str, Any], data_dir: str,
                 name: str, version: str, description: str):
    """A local GeneratorBasedBuilder over an in-memory iterable of (key, example)."""
    _, tfds = import_tf()

    class _RLDSWriter(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        """Writes one `train` split of RLDS episodes."""
        VERSION = tfds.core.Version(version)
        # TFDS 4.9.10 resolves `code_path` through `importlib_resources`, which Python >= 3.9
        # installs lack; an ad-hoc builder has no code dir or checksums file, so opt out.
        code_path = None

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, description=description, features=features,
                                         metadata=tfds.core.MetadataDict(metadata),
                                         disable_shuffling=True)

        def _split_generators(self, dl_manager):
            del dl_manager
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            yield from examples

    _RLDSWriter.name = name
    return _RLDSWriter(data_dir=data_dir)


def write_rlds(episodes: Iterable[Mapping[str, Any]], data_dir: str, *,
               metadata: Mapping[str, Any] | None = None, name: str = DATASET_NAME,
               version: str = DATASET_VERSION, validate: bool = True,
               features=None) -> str:
    """Writes `episodes` as TFDS dataset `<data_dir>/<name>/<version>`; returns that directory.

    episodes: a list or any iterable (consumed once, streamed into the TFDS writer, so generation
      can overlap with encoding). The first episode fixes C and whether images are stored.
    metadata: JSON-serialisable dict saved as the dataset's metadata.json (reward component
      names, gold rubric, generation config...). Episodes are written in the given order
      (shuffling disabled) so identical inputs give byte-identical record files.
    validate=False / features=... exist so tests can write deliberately broken datasets.
    Raises SchemaError / NonFiniteError naming the episode and field; TFDS then removes its
    incomplete output.
    """
    it = iter(episodes)
    first = next(it, None)
    if first is None:
        raise SchemaError(describe(f"write_rlds({data_dir})", "episodes", "at least one episode",
                                   "none"))
    n_comp = int(np.asarray(first["steps"]["reward_components"]).shape[-1])
    image = "image" in first["steps"]["observation"]
    meta = dict(metadata or {})
    meta.setdefault("schema_version", SCHEMA_VERSION)
    json.dumps(meta)  # fail here, not inside TFDS, if it is not serialisable
    if features is None:
        features = episode_features_spec(n_comp, image)

    def examples():
        seen = set()
        for i, ep in enumerate(itertools.chain([first], it)):
            where = f"write_rlds({data_dir}) episode {i}"
            if validate:
                validate_episode(ep, where, n_components=n_comp)
                if ("image" in ep["steps"]["observation"]) != image:
                    raise SchemaError(describe(where, "steps/observation/image",
                                               "present in all episodes or in none", "mixed"))
            eid = ep["episode_metadata"]["episode_id"]
            if eid in seen:
                raise SchemaError(describe(where, "episode_metadata/episode_id", "unique ids",
                                           f"duplicate {eid!r}"))
            seen.add(eid)
            yield eid, _to_example(ep)

    builder = make_builder(features, examples(), meta, data_dir, name, version,
                           description="Simulated robot-arm episodes in the RLDS schema.")
    _, tfds = import_tf()
    tfds.disable_progress_bar()  # per-example progress bars only clutter logs at these sizes
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    try:  # TFDS creates an (unused) downloads/ dir next to the dataset; drop it if empty
        os.removedirs(os.path.join(data_dir, "downloads", "extracted"))
    except OSError:
        pass
    return os.fspath(builder.data_dir)


# ----------------------------------------------------------------------------- reading

def find_builder_dir(path: str) -> str:
    """Returns the TFDS builder dir (holding dataset_info.json) at `path` or one/two levels down."""
    path = os.fspath(path)
    if os.path.isfile(os.path.join(path, "dataset_info.json")):
        return path
    found = []
    for depth in ("*", os.path.join("*", "*")):
        found = sorted(glob.glob(os.path.join(path, depth, "dataset_info.json")))
        if found:
            break
    if len(found) != 1:
        raise SchemaError(describe(path, "dataset_info.json",
                                   "exactly one TFDS dataset directory",
                                   f"{len(found)} ({[os.path.dirname(f) for f in found]})"))
    return os.path.dirname(found[0])


def _check_features(features, where: str) -> None:
    """Checks a stored FeaturesDict against the RLDS schema before decoding anything."""
    _, tfds = import_tf()
    keys = features.keys() if hasattr(features, "keys") else []
    for top in ("steps", "episode_metadata"):
        if top not in keys:
            raise SchemaError(describe(where, top, "present",
                                       f"missing (features: {sorted(keys)})"))
    steps = features["steps"]
    if not isinstance(steps, tfds.features.Dataset):
        raise SchemaError(describe(where, "steps", "a tfds.features.Dataset",
                                   type(steps).__name__))
    step_feat = steps.feature
    step_keys = list(step_feat.keys())
    for key in STEP_KEYS:
        if key not in step_keys:
            raise SchemaError(describe(where, f"steps/{key}", "present", f"missing (step keys: "
                                       f"{sorted(step_keys)})"))
    obs = step_feat["observation"]
    want = dict(OBS_SHAPES)
    want_types = {k: np.float32 for k in OBS_SHAPES}
    if "image" in obs.keys():
        want["image"], want_types["image"] = IMAGE_SHAPE, np.uint8
    specs = [(f"steps/observation/{k}", obs[k] if k in obs.keys() else None, want[k], want_types[k])
             for k in want]
    specs += [("steps/action", step_feat["action"], (None,), np.float32),
              ("steps/reward", step_feat["reward"], (), np.float32),
              ("steps/discount", step_feat["discount"], (), np.float32),
              ("steps/reward_components", step_feat["reward_components"], (None,), np.float32)]
    specs += [(f"steps/{k}", step_feat[k], (), np.bool_) for k in BOOL_STEP_KEYS]
    for field, feat, shape, dtype in specs:
        if feat is None:
            raise SchemaError(describe(where, field, "present", "missing"))
        got_shape, got_dtype = tuple(feat.shape), np.dtype(feat.np_dtype)
        if got_dtype != np.dtype(dtype) or len(got_shape) != len(shape) or any(
            w is not None and g != w for g, w in zip(got_shape, shape)):
            raise SchemaError(describe(where, field, f"{np.dtype(dtype).name} shape {shape}",
                                       f"{got_dtype.name} shape {got_shape}"))
    meta = features["episode_metadata"]
    for key in METADATA_KEYS:
        if key not in meta.keys():
            raise SchemaError(describe(where, f"episode_metadata/{key}", "present", "missing"))


def _decode(ep: dict) -> dict:
    """numpy episode from tfds.as_numpy: bytes -> str, metadata scalars -> python types."""
    steps, meta = ep["steps"], ep["episode_metadata"]
    steps["language_instruction"] = np.array(
        [s.decode("utf-8") for s in steps["language_instruction"]])
    out_meta = {}
    for k, v in meta.items():
        t = METADATA_KEYS.get(k)
        out_meta[k] = v.decode("utf-8") if isinstance(v, bytes) else (int(v) if t is int else v)
    return {"steps": steps, "episode_metadata": out_meta}


def dense_episodes(builder, split: str, where: str, max_episodes: int | None = None):
    """tf.data of the episodes of ``split``, each episode's steps densified into one batch.

    ``steps.batch(big).get_single_element()`` runs inside the tf.data graph: one op per episode
    instead of one Python iteration per step. An unknown split names ``where`` and the splits.
    """
    tf, _ = import_tf()
    if split not in builder.info.splits:
        raise SchemaError(describe(where, "split", f"one of {list(builder.info.splits)}", repr(split)))
    ds = builder.as_dataset(split=split, shuffle_files=False)
    if max_episodes is not None:
        ds = ds.take(max_episodes)

    def densify(ep):
        ep = dict(ep)
        ep["steps"] = ep["steps"].batch(1 << 20).get_single_element()
        return ep

    return ds.map(densify, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def load_rlds(path: str, *, split: str = "train", validate: bool = True,
              max_episodes: int | None = None) -> list[dict]:
    """Reads an RLDS dataset through `tfds.builder_from_directory`; returns numpy episodes.

    path: the builder dir (`<data_dir>/<name>/<version>`) or a directory above it.
    Each episode's steps are densified with `steps.batch(big).get_single_element()` inside the
    tf.data graph (one op per episode instead of one Python iteration per step).
    Raises SchemaError / NonFiniteError naming the dataset dir, episode and field.
    """
    builder_dir = find_builder_dir(path)
    tf, tfds = import_tf()
    builder = tfds.builder_from_directory(builder_dir)
    where = os.path.join(builder_dir, "features.json")
    _check_features(builder.info.features, where)
    meta = dict(builder.info.metadata or {})
    n_comp = len(meta["reward_component_names"]) if "reward_component_names" in meta else None
    ds = dense_episodes(builder, split, builder_dir, max_episodes)
    shards = os.path.join(builder_dir, f"{builder.name}-{split}.tfrecord-*")
    episodes = []
    try:
        for i, ep in enumerate(tfds.as_numpy(ds)):
            ep = _decode(ep)
            if validate:
                validate_episode(ep, f"{shards} episode {i}", n_components=n_comp)
            episodes.append(ep)
    except tf.errors.OpError as err:  # a truncated or corrupted shard: name it, no TF trace
        reason = (err.message or type(err).__name__).strip().splitlines()[0]
        raise SchemaError(describe(shards, "tfrecord", "complete, readable records",
                                   f"{type(err).__name__} after {len(episodes)} episodes ({reason})")) from None
    return episodes


def load_metadata(path: str) -> dict:
    """The dataset-level metadata.json (reward component names, gold rubric, config), no TF."""
    builder_dir = find_builder_dir(path)
    meta_path = os.path.join(builder_dir, "metadata.json")
    if not os.path.isfile(meta_path):
        return {}
    with open(meta_path, encoding="utf-8") as f:
        return json.load(f)
