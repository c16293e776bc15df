"""LeRobot reader and writer on fixtures the tests write (tests/lerobot_fixtures.py)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from rlhf_jax.data import lerobot, lerobot_format, lerobot_video, lerobot_writer
from rlhf_jax.errors import DataError
from tests import lerobot_fixtures as F

LENGTHS = (12, 10, 14, 11)


@pytest.fixture(scope="module")
def so100_v3(tmp_path_factory):
    return F.write_so100(str(tmp_path_factory.mktemp("so100") / "v3"), lengths=LENGTHS)


@pytest.fixture(scope="module")
def so100_v21(tmp_path_factory):
    return F.write_so100(str(tmp_path_factory.mktemp("so100") / "v21"), version="v2.1", lengths=LENGTHS)


def test_v3_maps_episodes_to_two_parquet_files_and_one_shared_video(so100_v3):
    meta = lerobot_format.read_metadata(so100_v3)
    assert meta.version == "v3.0" and [e.length for e in meta.episodes] == list(LENGTHS)
    assert len({e.data_path for e in meta.episodes}) == 2
    spans = [e.videos[F.CAMERA] for e in meta.episodes]
    assert len({s.path for s in spans}) == 1
    # consecutive spans: each episode starts where the previous one ended
    assert np.allclose([s.from_timestamp for s in spans[1:]], [s.to_timestamp for s in spans[:-1]])
    assert meta.tasks == dict(enumerate(F.TASKS))
    assert meta.feature_names("observation.state") == F.SO100_NAMES


@pytest.mark.parametrize("fixture", ["so100_v3", "so100_v21"])
def test_reader_gives_columns_exactly_and_frames_by_timestamp(fixture, request):
    root = request.getfixturevalue(fixture)
    episodes = lerobot.load_lerobot(root, camera=True)
    assert [len(ep["steps"]["action"]) for ep in episodes] == list(LENGTHS)
    for e, ep in enumerate(episodes):
        cols = F.so100_columns(e, LENGTHS[e])
        obs, m = ep["steps"]["observation"], ep["episode_metadata"]
        np.testing.assert_array_equal(obs["state"][:, :6], cols["observation.state"])
        np.testing.assert_array_equal(ep["steps"]["action"], cols["action"])
        np.testing.assert_array_equal(obs["gripper"][:, 0], cols["observation.state"][:, -1])
        assert m["episode_id"] == str(e) and m["episode_index"] == e and m["embodiment"] == "so100"
        assert m["task"] == F.TASKS[e % 2] and m["task_id"] == sorted(F.TASKS).index(F.TASKS[e % 2])
        assert ep["steps"]["reward_components"].shape == (LENGTHS[e], 0)  # foreign: no gold
        meta = lerobot_format.read_metadata(root)
        frames = lerobot.camera_frames(meta, meta.episodes[e], F.CAMERA, np.arange(LENGTHS[e]) / meta.fps)
        assert np.abs(frames.astype(int) - F.frames_of(e, LENGTHS[e])).mean() < 8  # 32 px, chroma 4:2:0
        # a neighbouring frame is much further away than the requested one: frames are matched by time
        assert np.abs(frames[1:].astype(int) - frames[:-1]).mean() > 1


def test_v3_and_v21_of_the_same_data_read_the_same(so100_v3, so100_v21):
    a, b = lerobot.load_lerobot(so100_v3), lerobot.load_lerobot(so100_v21)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["steps"]["observation"]["state"], y["steps"]["observation"]["state"])
        assert x["episode_metadata"]["task"] == y["episode_metadata"]["task"]


def test_names_null_falls_back_to_indexed_names(so100_v3, tmp_path):
    import shutil
    root = str(tmp_path / "ds")
    shutil.copytree(so100_v3, root)
    path = os.path.join(root, "meta", "info.json")
    info = json.load(open(path, encoding="utf-8"))
    info["features"]["action"]["names"] = None
    json.dump(info, open(path, "w", encoding="utf-8"))
    meta = lerobot_format.read_metadata(root)
    assert meta.feature_names("action") == [f"action[{i}]" for i in range(6)]
    assert len(lerobot.load_lerobot(root)) == len(LENGTHS)


@pytest.mark.parametrize("codec", ["av1", "h264"])
def test_round_trip_write_then_read(codec, tmp_path):
    if codec == "av1" and not any(lerobot_video.has_encoder(e) for e in lerobot_video.AV1_ENCODERS):
        pytest.skip("this PyAV build has no AV1 encoder")
    episodes = F.sim_episodes(n=5, length=9)
    frames = {int(ep["episode_metadata"]["seed"]): F.frames_of(int(ep["episode_metadata"]["seed"]), 9, 64)
              for ep in episodes}
    root = str(tmp_path / "out")
    info = lerobot_writer.write_lerobot(
        episodes, root, fps=20.0, cameras={F.CAMERA: lambda ep: frames[int(ep["episode_metadata"]["seed"])]},
        component_names=("a", "b", "c"), episodes_per_file=2, codec=codec)
    assert info["features"][F.CAMERA]["info"]["video.codec"] == codec
    assert all(f["names"] for k, f in info["features"].items() if k not in lerobot_format.STANDARD_COLUMNS)
    assert len(os.listdir(os.path.join(root, "data", "chunk-000"))) == 3
    back = lerobot.load_lerobot(root, camera=F.CAMERA)
    meta = lerobot_format.read_metadata(root)
    for ep, got, entry in zip(episodes, back, meta.episodes):
        for key in ("state", "eef_pos", "goal", "box"):
            np.testing.assert_array_equal(got["steps"]["observation"][key], ep["steps"]["observation"][key])
        for key in ("action", "reward", "reward_components"):
            np.testing.assert_array_equal(got["steps"][key], ep["steps"][key])
        for key in ("embodiment", "embodiment_id", "task", "task_id", "policy", "dof", "source"):
            assert got["episode_metadata"][key] == ep["episode_metadata"][key]
        assert got["episode_metadata"]["original_episode_id"] == ep["episode_metadata"]["episode_id"]
        assert got["episode_metadata"]["episode_id"] == str(entry.episode_index)  # label files' key
        decoded = lerobot.camera_frames(meta, entry, F.CAMERA, np.arange(9) / 20.0)
        assert np.abs(decoded.astype(int) - frames[int(ep["episode_metadata"]["seed"])]).mean() <= 3.0
    assert lerobot.dataset_info(root)["reward_component_names"] == ["a", "b", "c"]


def _edit_info(root, **changes):
    path = os.path.join(root, "meta", "info.json")
    info = json.load(open(path, encoding="utf-8"))
    for k, v in changes.items():
        if v is None:
            info.pop(k)
        else:
            info[k] = v
    json.dump(info, open(path, "w", encoding="utf-8"))


def test_errors_name_file_and_field(so100_v3, tmp_path):
    import shutil
    cases = {}
    for name in ("missing", "version"):
        cases[name] = str(tmp_path / name)
        shutil.copytree(so100_v3, cases[name])
    _edit_info(cases["missing"], fps=None)
    _edit_info(cases["version"], codebase_version="v2.0")
    with pytest.raises(lerobot_format.LeRobotError, match=r"meta/info.json: field 'fps': expected present"):
        lerobot.load_lerobot(cases["missing"])
    with pytest.raises(lerobot_format.UnsupportedVersionError, match=r"codebase_version.*'v2.0'"):
        lerobot.load_lerobot(cases["version"])
    short = F.write_so100(str(tmp_path / "short"), lengths=LENGTHS, video_trim=3)
    with pytest.raises(lerobot_format.VideoTooShortError, match=r"file-000.mp4: field"):
        lerobot.load_lerobot(short, camera=True)
    meta = lerobot_format.read_metadata(so100_v3)
    with pytest.raises(lerobot_format.FrameTimestampError, match=r"file-000.mp4: field .*within 0.0001 s"):
        lerobot.camera_frames(meta, meta.episodes[1], F.CAMERA, np.arange(3) / meta.fps + 0.5 / meta.fps)
    for err in (lerobot_format.LeRobotError, lerobot_format.VideoTooShortError):
        assert issubclass(err, DataError)


def test_registry_picks_the_entry_by_robot_type():
    from rlhf_jax.data import lerobot_registry
    assert lerobot_registry.entry_for("so100_follower").name == "so100"
    assert lerobot_registry.entry_for("rlhf_sim").gold
    assert lerobot_registry.entry_for("some_new_arm").name == "generic"
    assert lerobot_registry.entry_for("so100_follower", "generic").name == "generic"
    assert not any(e.gold for n, e in lerobot_registry.REGISTRY.items() if n != "rlhf_sim")


def test_bgr_cameras_are_swapped_back(so100_v3):
    import dataclasses
    from rlhf_jax.data import lerobot_registry
    meta = lerobot_format.read_metadata(so100_v3)
    times = np.arange(5) / meta.fps
    rgb = lerobot.camera_frames(meta, meta.episodes[0], F.CAMERA, times)
    entry = dataclasses.replace(lerobot_registry.REGISTRY["so100"], bgr_keys=(F.CAMERA,))
    swapped = lerobot.camera_frames(meta, meta.episodes[0], F.CAMERA, times, entry=entry)
    np.testing.assert_array_equal(swapped, rgb[..., ::-1])


def test_camera_stats_pool_the_episodes(tmp_path):
    episodes = F.sim_episodes(n=3, length=9)
    frames = [F.frames_of(e, 9, 64) for e in range(3)]
    root = str(tmp_path / "out")
    lerobot_writer.write_lerobot(episodes, root, fps=20.0, codec="h264",
                                 cameras={F.CAMERA: lambda ep: frames[int(ep["episode_metadata"]["seed"])]})
    stats = json.load(open(os.path.join(root, "meta", "stats.json"), encoding="utf-8"))
    pixels = np.concatenate(frames).reshape(-1, 3) / 255.0
    np.testing.assert_allclose(np.ravel(stats[F.CAMERA]["mean"]), pixels.mean(0), rtol=1e-9)
    np.testing.assert_allclose(np.ravel(stats[F.CAMERA]["std"]), pixels.std(0), rtol=1e-6)
    state = np.concatenate([lerobot_writer.episode_columns(ep)["observation.state"] for ep in episodes])
    np.testing.assert_allclose(stats["observation.state"]["mean"], state.mean(0), rtol=1e-5, atol=1e-7)
