"""Video clips of trajectory segments for people to compare: frames, WebM/VP9 encoding, a cache.

    frames = sim_frames(episode, start, length, view="side", size=160)    # [T, H, W, 3] uint8
    frames = oxe_frames(cameras["image"], start, length, size=160)
    path = cache.clip(key_parts, lambda: frames)                         # <root>/<sha256>.webm

Simulated segments are rendered with the JAX camera (`rlhf_jax.envs.render`, any of its VIEWS)
at a size people can judge; OXE segments use the dataset's own camera frames, every RGB camera
it records (`oxe_cameras`), upscaled nearest-neighbour so small fixture images stay sharp.

Clips are WebM/VP9 (Chromium plays it; H.264 is not guaranteed there), encoded with the ffmpeg
binary that the `imageio-ffmpeg` package ships. A clip is cached under the sha256 of everything
it depends on (the caller's key parts plus the renderer's source and the encoder settings), so a
changed renderer or setting never serves a stale clip; files are written to a temporary name and
renamed, so a reader never sees a half-written clip.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import tempfile
import time
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np

CLIP_FORMAT = "clip/1"
CLIP_NAME = re.compile(r"^[0-9a-f]{64}\.webm$")
# Realtime VP9 at constant quality: a 25-frame 160x160 clip encodes in well under a second.
VP9_PARAMS = ("-b:v", "0", "-crf", "34", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1")


class SimScene(NamedTuple):
    """What `rlhf_jax.envs.render.render` reads of an EnvState, one step per row."""
    q: Any
    goal: Any
    obstacle: Any
    box: Any


@functools.lru_cache(maxsize=None)
def _renderer(embodiment: str, size: int, view: str):
    """A jitted [T]-vmapped renderer per (robot, size, view): the robot's DH table is static."""
    import jax  # pylint: disable=g-import-not-at-top  (keeps JAX out of the OXE-only path)
    from rlhf_jax.envs import render as render_lib, robots  # pylint: disable=g-import-not-at-top
    robot = robots.ROBOTS[embodiment]
    return jax.jit(jax.vmap(lambda s: render_lib.render(robot, s, size, view)))


def sim_views() -> tuple[str, ...]:
    from rlhf_jax.envs import render as render_lib  # pylint: disable=g-import-not-at-top
    return tuple(render_lib.VIEWS)


def sim_frames(episode: Mapping, start: int, length: int, *, view: str, size: int) -> np.ndarray:
    """[length, size, size, 3] uint8: steps [start, start + length) of a simulator episode."""
    meta, obs = episode["episode_metadata"], episode["steps"]["observation"]
    dof = int(meta["dof"])
    window = slice(int(start), int(start) + int(length))
    scene = SimScene(q=np.asarray(obs["state"][window, :dof], np.float32),
                     goal=np.asarray(obs["goal"][window], np.float32),
                     obstacle=np.asarray(obs["obstacle"][window], np.float32),
                     box=np.asarray(obs["box"][window], np.float32))
    if len(scene.q) != length:
        raise ValueError(f"sim_frames: field 'start': expected a segment inside the episode "
                         f"{meta['episode_id']!r} ({len(obs['state'])} steps), got start {start}, "
                         f"length {length}")
    return np.asarray(_renderer(str(meta["embodiment"]), int(size), view)(scene))


class TimedSimCameras:
    """The simulator's camera views as LeRobot image features (``cameras`` maps
    ``observation.images.<view>`` to an episode -> frames function, as ``write_lerobot`` takes
    them), timing the rendering in ``seconds`` so a write can be reported net of it."""

    def __init__(self, views, size: int):
        self.views, self.size, self.seconds = tuple(views), int(size), 0.0

    def _render(self, view: str) -> Callable[[Mapping], np.ndarray]:
        def frames(episode):
            t = time.perf_counter()
            out = sim_frames(episode, 0, len(episode["steps"]["reward"]), view=view, size=self.size)
            self.seconds += time.perf_counter() - t
            return out
        return frames

    @property
    def cameras(self) -> dict:
        return {f"observation.images.{v}": self._render(v) for v in self.views}


def upscale(frames: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of [T, H, W, 3] so the longer side is `size` (both sides even)."""
    h, w = frames.shape[1:3]
    scale = size / max(h, w)
    nh, nw = max(2, int(round(h * scale / 2)) * 2), max(2, int(round(w * scale / 2)) * 2)
    rows = np.minimum(np.arange(nh) * h // nh, h - 1)
    cols = np.minimum(np.arange(nw) * w // nw, w - 1)
    return np.ascontiguousarray(frames[:, rows][:, :, cols])


def oxe_cameras(name: str, path: str, split: str = "train") -> tuple[list[str], list[dict]]:
    """(camera names, per episode {camera: [T, H, W, 3] uint8}) of every RGB camera of an OXE
    dataset, episodes in `oxe.load_oxe` order (episode i is '<name>/<split>/i')."""
    from rlhf_jax.data import oxe, rlds  # pylint: disable=g-import-not-at-top
    _, tfds = rlds.import_tf()
    builder = tfds.builder_from_directory(rlds.find_builder_dir(path))
    flat = oxe.flatten_features(builder.info.features)
    cams = sorted(k for k, (shape, dtype) in flat.items()
                  if k.startswith("observation/") and dtype == "uint8" and len(shape) == 3
                  and shape[-1] == 3)
    out = []
    data = rlds.dense_episodes(builder, split, f"{path} ({name})", None)
    for traj in tfds.as_numpy(data):
        steps = traj["steps"]
        out.append({c.split("/", 1)[1]: np.asarray(steps["observation"][c.split("/", 1)[1]], np.uint8)
                    for c in cams})
    return [c.split("/", 1)[1] for c in cams], out


def oxe_frames(camera: np.ndarray, start: int, length: int, *, size: int) -> np.ndarray:
    """[length, h, w, 3] uint8 frames of one camera of an OXE episode, upscaled to `size`."""
    window = np.asarray(camera[int(start):int(start) + int(length)], np.uint8)
    if len(window) != length:
        raise ValueError(f"oxe_frames: field 'start': expected a segment inside the episode "
                         f"({len(camera)} steps), got start {start}, length {length}")
    return upscale(window, size)


def encode_webm(frames: np.ndarray, path: str, fps: float) -> None:
    """Writes [T, H, W, 3] uint8 frames (H, W even) to `path` as WebM/VP9 at `fps`."""
    import imageio_ffmpeg  # pylint: disable=g-import-not-at-top
    frames = np.ascontiguousarray(frames, np.uint8)
    h, w = frames.shape[1:3]
    writer = imageio_ffmpeg.write_frames(
        path, (w, h), fps=fps, codec="libvpx-vp9", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
        output_params=list(VP9_PARAMS), macro_block_size=2, ffmpeg_log_level="error",
        input_params=["-f", "rawvideo"])
    writer.send(None)
    for frame in frames:
        writer.send(frame)
    writer.close()


def renderer_fingerprint() -> str:
    """sha256 (short) of the simulator sources the sim clips are rendered with."""
    from rlhf_jax.data.generate import simulator_fingerprint  # pylint: disable=g-import-not-at-top
    return simulator_fingerprint()


class ClipCache:
    """WebM clips under `root`, named by the sha256 of their key (see the module docstring)."""

    def __init__(self, root: str, fps: float):
        self.root = os.path.abspath(root)
        self.fps = float(fps)
        os.makedirs(self.root, exist_ok=True)

    def key(self, parts: Mapping[str, Any]) -> str:
        blob = json.dumps({"format": CLIP_FORMAT, "fps": self.fps, "vp9": list(VP9_PARAMS), **parts},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def cached(self, parts: Mapping[str, Any]) -> str | None:
        """File name of the clip keyed by `parts` if it is already in the cache, else None."""
        name = self.key(parts) + ".webm"
        return name if os.path.isfile(os.path.join(self.root, name)) else None

    def clip(self, parts: Mapping[str, Any], frames: Callable[[], np.ndarray]) -> str:
        """File name of the clip keyed by `parts`, encoding `frames()` only when not cached."""
        name = self.key(parts) + ".webm"
        path = os.path.join(self.root, name)
        if not os.path.isfile(path):
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".webm")
            os.close(fd)
            try:
                encode_webm(frames(), tmp, self.fps)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
        return name

    def resolve(self, name: str) -> str | None:
        """The path of a cached clip `name`, or None: only '<sha256>.webm' files directly under
        root, so no request can reach another file (no '..', no separators, no symlink out)."""
        if not CLIP_NAME.match(name):
            return None
        path = os.path.realpath(os.path.join(self.root, name))
        if os.path.dirname(path) != os.path.realpath(self.root) or not os.path.isfile(path):
            return None
        return path


def decode_frame_count(path: str) -> int:
    """Frames in a video file (ffmpeg decodes it): for tests and benchmarks."""
    import imageio_ffmpeg  # pylint: disable=g-import-not-at-top
    return int(imageio_ffmpeg.count_frames_and_secs(path)[0])

