"""RLDS dataset: build via make_dataset, read back via tfds.builder_from_directory, validation."""
from __future__ import annotations

import copy
import glob
import hashlib
import json
import os

import numpy as np
import pytest

from rlhf_jax.data import dataset, rlds, variants
from rlhf_jax.errors import ConfigError, DataError, NonFiniteError, SchemaError

_TINY = variants.dataset_config("tiny")
TINY_EPISODES = (len(_TINY.embodiments) * len(_TINY.tasks) * len(_TINY.policies)
                 * _TINY.episodes_per_combo)


def _digest(builder_dir):
    """sha256 of every record file of a TFDS dataset, in name order."""
    h = hashlib.sha256()
    for f in sorted(glob.glob(os.path.join(builder_dir, "*.tfrecord*"))):
        h.update(open(f, "rb").read())
    return h.hexdigest()


def test_builder_from_directory_reads_rlds_schema(tiny_dataset_dir):
    _, tfds = rlds.import_tf()
    builder = tfds.builder_from_directory(tiny_dataset_dir)
    feats = builder.info.features
    assert isinstance(feats["steps"], tfds.features.Dataset)
    step_keys = set(feats["steps"].feature.keys())
    assert set(rlds.STEP_KEYS) <= step_keys
    assert set(rlds.OBS_SHAPES) <= set(feats["steps"].feature["observation"].keys())
    assert set(rlds.METADATA_KEYS) <= set(feats["episode_metadata"].keys())
    # Variable-size joint vectors are stored unpadded: shape (None,).
    assert feats["steps"].feature["action"].shape == (None,)
    assert builder.info.splits["train"].num_examples == TINY_EPISODES
    meta = rlds.load_metadata(tiny_dataset_dir)
    assert meta["reward_component_names"][0] == "progress" and "gold_rubric" in meta


def test_episodes_round_trip_with_per_embodiment_sizes(tiny_episodes):
    assert len(tiny_episodes) == TINY_EPISODES
    dofs = {}
    for ep in tiny_episodes:
        m, s = ep["episode_metadata"], ep["steps"]
        dofs[m["embodiment"]] = s["action"].shape[1]
        assert s["observation"]["state"].shape == (20, 2 * m["dof"])
        assert s["action"].shape == (20, m["dof"]) and s["action"].dtype == np.float32
        assert s["is_first"][0] and s["is_last"][-1] and not s["is_terminal"].any()
        assert m["source"] == "sim" and s["language_instruction"][0].startswith("Move")
        assert s["reward_components"].shape == (20, 9)
    assert dofs == {"panda": 7, "ur5": 6}  # never truncated or padded on disk


def test_reward_is_gold_total_of_components(tiny_dataset_dir, tiny_episodes):
    meta = rlds.load_metadata(tiny_dataset_dir)
    w = np.array([meta["gold_rubric"][n] for n in meta["reward_component_names"]], np.float32)
    for ep in tiny_episodes[:8]:
        s = ep["steps"]
        np.testing.assert_allclose(s["reward"], s["reward_components"] @ w, rtol=1e-5, atol=1e-5)


def test_make_dataset_cli_is_deterministic_and_cached(tmp_path, tiny_dataset_dir, capsys):
    from experiments import make_dataset
    assert make_dataset.main(["make_dataset", "--config", "configs/dataset.py:tiny",
                              "--data_dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    out = json.loads(text[text.rindex("{", 0, text.index('"builder_dir"')):])  # after TFDS prints
    assert out["episodes"] == TINY_EPISODES
    assert _digest(out["builder_dir"]) == _digest(tiny_dataset_dir)  # same config+seed
    before = os.path.getmtime(os.path.join(out["builder_dir"], "dataset_info.json"))
    assert dataset.ensure_dataset("tiny", str(tmp_path)) == out["builder_dir"]  # reused
    assert os.path.getmtime(os.path.join(out["builder_dir"], "dataset_info.json")) == before


def test_other_seed_gives_other_dataset(tmp_path, tiny_dataset_dir):
    cfg = variants.dataset_config("tiny")
    cfg.seed = 1
    path = dataset.ensure_dataset("tiny", str(tmp_path), config=cfg)
    assert path != tiny_dataset_dir and _digest(path) != _digest(tiny_dataset_dir)


def test_incomplete_build_is_rebuilt_not_read(tmp_path, tiny_dataset_dir, monkeypatch):
    cfg = variants.dataset_config("tiny")
    half = tmp_path / f"tiny-{dataset.config_hash(cfg)}"
    (half / "rlhf_sim").mkdir(parents=True)  # a crashed build without COMPLETE.json
    calls = []
    real = dataset.build_dataset
    monkeypatch.setattr(dataset, "build_dataset", lambda c, o: calls.append(o) or real(c, o))
    path = dataset.ensure_dataset("tiny", str(tmp_path))
    assert calls == [str(half)] and os.path.isfile(half / dataset.MARKER)
    assert _digest(path) == _digest(tiny_dataset_dir)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]


def test_data_dir_env_var(monkeypatch, tmp_path):
    monkeypatch.setenv(dataset.ENV_VAR, str(tmp_path))
    assert dataset.default_data_dir() == str(tmp_path)
    monkeypatch.delenv(dataset.ENV_VAR)
    assert dataset.default_data_dir().endswith(os.path.join(".cache", "rlhf_jax"))


def test_unknown_variant_lists_variants(capsys):
    with pytest.raises(ConfigError, match=r"tiny.*default.*large.*'huge'"):
        variants.dataset_config("huge")
    from experiments import make_dataset
    assert make_dataset.main(["make_dataset", "--config", "configs/dataset.py:huge"]) == 2
    assert "expected one of 'tiny', 'default', 'large', 'pixels_tiny', 'pixels', got 'huge'" in capsys.readouterr().err


# --------------------------------------------------------------------------- bad episodes

@pytest.fixture(scope="module")
def good(tiny_episodes):
    return [copy.deepcopy(tiny_episodes[0]), copy.deepcopy(tiny_episodes[-1])]


def test_missing_step_key_in_episode(good):
    ep = copy.deepcopy(good[0])
    del ep["steps"]["discount"]
    with pytest.raises(SchemaError, match=r"ep0.*'steps/discount'.*missing"):
        rlds.validate_episode(ep, "ep0")


def test_missing_step_key_in_stored_dataset(tmp_path, good):
    eps = copy.deepcopy(good)
    for ep in eps:
        del ep["steps"]["discount"]
    feats = rlds.episode_features_spec(9, image=False)
    _, tfds = rlds.import_tf()
    step = dict(feats["steps"].feature.items())
    del step["discount"]
    feats = tfds.features.FeaturesDict({"steps": tfds.features.Dataset(step),
                                        "episode_metadata": feats["episode_metadata"]})
    path = rlds.write_rlds(eps, str(tmp_path), validate=False, features=feats)
    with pytest.raises(SchemaError, match=r"features\.json.*'steps/discount'.*missing"):
        rlds.load_rlds(path)


@pytest.mark.parametrize("field,value,err", [
    ("eef_pos", lambda x: x[:, :2], r"'steps/observation/eef_pos'.*shape \(20, 3\).*\(20, 2\)"),
    ("action", lambda x: x.astype(np.int32), r"'steps/action'.*dtype float.*int32"),
    ("action", lambda x: x[:, :5], r"'steps/action'.*shape \(20, 7\).*\(20, 5\)"),
    ("is_first", lambda x: x.astype(np.float32), r"'steps/is_first'.*dtype bool"),
])
def test_wrong_dtype_or_shape(good, field, value, err):
    ep = copy.deepcopy(good[0])
    tree = ep["steps"]["observation"] if field in rlds.OBS_SHAPES else ep["steps"]
    tree[field] = value(tree[field])
    with pytest.raises(SchemaError, match=err):
        rlds.validate_episode(ep, "somefile")


def test_wrong_feature_shape_in_stored_dataset(tmp_path, good):
    eps = copy.deepcopy(good)
    for ep in eps:
        ep["steps"]["observation"]["goal"] = np.zeros((20, 4), np.float32)
    _, tfds = rlds.import_tf()
    feats = rlds.episode_features_spec(9, image=False)
    step = dict(feats["steps"].feature.items())
    obs = dict(step["observation"].items())
    obs["goal"] = tfds.features.Tensor(shape=(4,), dtype=np.float32)
    step["observation"] = tfds.features.FeaturesDict(obs)
    feats = tfds.features.FeaturesDict({"steps": tfds.features.Dataset(step),
                                        "episode_metadata": feats["episode_metadata"]})
    path = rlds.write_rlds(eps, str(tmp_path), validate=False, features=feats)
    with pytest.raises(SchemaError,
                       match=r"'steps/observation/goal'.*float32 shape \(3,\).*\(4,\)"):
        rlds.load_rlds(path)


@pytest.mark.parametrize("where,bad", [("observation/state", np.nan), ("action", np.inf)])
def test_nonfinite_rejected_on_write_and_read(tmp_path, good, where, bad):
    eps = copy.deepcopy(good)
    s = eps[1]["steps"]
    arr = s["observation"]["state"] if where.startswith("observation") else s["action"]
    arr[3, 1] = bad
    eid = eps[1]["episode_metadata"]["episode_id"]
    with pytest.raises(NonFiniteError, match=rf"{eid}.*'steps/{where}'.*finite.*\(3, 1\)"):
        rlds.write_rlds(eps, str(tmp_path / "w"))
    path = rlds.write_rlds(eps, str(tmp_path / "r"), validate=False)
    with pytest.raises(NonFiniteError, match=rf"tfrecord.*episode 1.*{eid}.*'steps/{where}'"):
        rlds.load_rlds(path)


def test_missing_metadata_and_duplicate_ids(tmp_path, good):
    ep = copy.deepcopy(good[0])
    del ep["episode_metadata"]["policy"]
    with pytest.raises(SchemaError, match="'episode_metadata/policy'"):
        rlds.validate_episode(ep, "x")
    with pytest.raises(SchemaError, match="duplicate"):
        rlds.write_rlds([good[0], good[0]], str(tmp_path))


def test_errors_are_one_family():
    for cls in (SchemaError, NonFiniteError, ConfigError):
        assert issubclass(cls, DataError) and issubclass(cls, ValueError)


def test_not_a_dataset_dir(tmp_path):
    with pytest.raises(SchemaError, match="dataset_info.json"):
        rlds.load_rlds(str(tmp_path))


def test_image_observations_round_trip(tmp_path, good):
    from rlhf_jax.preferences import segments as preferences
    eps = copy.deepcopy(good)
    rng = np.random.default_rng(0)
    for ep in eps:
        ep["steps"]["observation"]["image"] = rng.integers(0, 255, (20,) + rlds.IMAGE_SHAPE,
                                                           dtype=np.uint8)
    back = rlds.load_rlds(rlds.write_rlds(eps, str(tmp_path)))
    for a, b in zip(eps, back):
        np.testing.assert_array_equal(a["steps"]["observation"]["image"],
                                      b["steps"]["observation"]["image"])  # PNG is lossless
    seg = preferences.build_segment_table(back, 8, stride=6, include_image=True)
    assert seg.image.shape == (len(seg), 8) + rlds.IMAGE_SHAPE and seg.image.dtype == np.uint8
    with pytest.raises(SchemaError, match="'steps/observation/image'.*all episodes or in none"):
        rlds.write_rlds([eps[0], good[1]], str(tmp_path / "mixed"))


def test_cache_key_follows_config_and_simulator(monkeypatch):
    cfg = variants.dataset_config("tiny")
    key = dataset.config_hash(cfg)
    assert dataset.config_hash(variants.dataset_config("tiny")) == key
    cfg.horizon = 21
    assert dataset.config_hash(cfg) != key
    monkeypatch.setattr(dataset, "simulator_fingerprint", lambda: "edited-simulator")
    assert dataset.config_hash(variants.dataset_config("tiny")) != key
