"""Clips for the labelling page: camera views, WebM encoding, the clip cache, OXE cameras."""
from __future__ import annotations

import os

import numpy as np
import pytest

from rlhf_jax.labels import clips


@pytest.fixture(scope="module")
def episode(tiny_episodes):
    return tiny_episodes[0]


def test_views_are_different_cameras_of_the_same_scene(episode):
    from rlhf_jax.envs import render
    assert set(render.VIEWS) >= {"front", "side", "top"}
    frames = {v: clips.sim_frames(episode, 0, 3, view=v, size=48) for v in ("front", "side", "top")}
    for v, f in frames.items():
        assert f.shape == (3, 48, 48, 3) and f.dtype == np.uint8
    # Each pair of views differs on a large part of the image (not a recolouring of one view).
    for a, b in (("front", "side"), ("front", "top"), ("side", "top")):
        assert (frames[a] != frames[b]).any(-1).mean() > 0.2
    # The arm moves within the segment, so consecutive frames differ.
    assert (frames["front"][0] != frames["front"][2]).any()
    with pytest.raises(ValueError, match="view"):
        clips.sim_frames(episode, 0, 3, view="under", size=48)


def test_default_view_is_the_training_camera(episode):
    """render(..., view='front') is what the dataset's 64x64 images are made with."""
    from rlhf_jax.envs import render
    assert render.DEFAULT_VIEW == "front"
    np.testing.assert_array_equal(clips.sim_frames(episode, 0, 2, view="front", size=64),
                                  clips.sim_frames(episode, 0, 2, view=render.DEFAULT_VIEW, size=64))


def test_cache_encodes_once_and_clips_decode_to_every_frame(tmp_path, episode):
    cache = clips.ClipCache(str(tmp_path / "clips"), fps=8.0)
    calls = []

    def frames():
        calls.append(1)
        return clips.sim_frames(episode, 0, 8, view="side", size=64)

    parts = {"episode": "e0", "start": 0, "view": "side"}
    assert cache.cached(parts) is None
    name = cache.clip(parts, frames)
    assert cache.cached(parts) == name
    assert clips.CLIP_NAME.match(name)
    assert cache.clip(parts, frames) == name and len(calls) == 1  # cached: not rendered again
    path = cache.resolve(name)
    with open(path, "rb") as f:
        assert f.read(4) == b"\x1a\x45\xdf\xa3"  # EBML magic: a WebM/Matroska file
    assert clips.decode_frame_count(path) == 8
    other = cache.clip({**parts, "view": "front"}, frames)
    assert other != name and len(calls) == 2  # a key part changed: a new clip
    assert not [p for p in os.listdir(tmp_path / "clips") if p.startswith(".tmp-")]


def test_resolve_serves_only_cache_files(tmp_path):
    cache = clips.ClipCache(str(tmp_path / "clips"), fps=8.0)
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    link = "a" * 64 + ".webm"
    os.symlink(secret, tmp_path / "clips" / link)
    for name in ("../secret.txt", "..%2Fsecret.txt", "/etc/passwd", "b" * 64 + ".webm", link,
                 "A" * 64 + ".webm", "a" * 63 + ".webm"):
        assert cache.resolve(name) is None, name


def test_upscale_keeps_pixels_and_even_sizes():
    small = np.arange(2 * 3 * 5 * 3, dtype=np.uint8).reshape(2, 3, 5, 3)
    big = clips.upscale(small, 40)
    assert big.shape == (2, 24, 40, 3)
    assert big.shape[1] % 2 == 0 and big.shape[2] % 2 == 0
    np.testing.assert_array_equal(big[:, ::8, ::8], small)


def test_oxe_clips_use_every_rgb_camera(tmp_path):
    from tests import oxe_fixtures as fx
    path = fx.write_fixture("berkeley_autolab_ur5", str(tmp_path), n_episodes=2, length=6)
    cams, per_episode = clips.oxe_cameras("berkeley_autolab_ur5", path)
    # image_with_depth is a 1-channel float camera: not a video.
    assert cams == ["hand_image", "image"]
    assert len(per_episode) == 2 and per_episode[0]["image"].shape == (6, 8, 8, 3)
    frames = clips.oxe_frames(per_episode[1]["hand_image"], 2, 4, size=64)
    assert frames.shape == (4, 64, 64, 3)
    np.testing.assert_array_equal(frames[:, ::8, ::8], per_episode[1]["hand_image"][2:6])
    with pytest.raises(ValueError, match="start"):
        clips.oxe_frames(per_episode[1]["hand_image"], 4, 4, size=64)
