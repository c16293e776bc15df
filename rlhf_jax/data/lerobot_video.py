"""MP4 video for LeRobot datasets through PyAV: frames decoded by timestamp, frames encoded.

Decoding follows LeRobot's rule: a frame is requested by its timestamp (episode start in the
file + the frame's `timestamp` column); the decoded frame closest to it is taken, and a gap of
more than `tolerance_s` (LeRobot's default 1e-4 s) is an error, never a silent neighbour.
Encoding writes AV1 (SVT-AV1 or libaom, as LeRobot does) when this PyAV build has an AV1
encoder and H.264 otherwise, yuv420p, one frame per 1/fps with exact rational timestamps.
"""
from __future__ import annotations

import fractions
import os
from typing import Sequence

import numpy as np

from rlhf_jax.data.lerobot_format import FrameTimestampError, LeRobotError, VideoTooShortError, fail

TOLERANCE_S = 1e-4
AV1_ENCODERS = ("libsvtav1", "libaom-av1")
H264_ENCODERS = ("libx264", "h264")
ENCODER_PRESETS = {"libsvtav1": "6", "libx264": "medium", "h264": "medium"}
CODEC_NAMES = {"libsvtav1": "av1", "libaom-av1": "av1", "libx264": "h264", "h264": "h264"}


def has_encoder(name: str) -> bool:
    import av  # pylint: disable=g-import-not-at-top
    try:
        av.codec.Codec(name, "w")
        return True
    except Exception:  # pylint: disable=broad-except  (PyAV raises several kinds for "unknown")
        return False


def pick_encoder(codec: str = "auto") -> str:
    """The encoder to use: codec 'auto' (AV1 if available, else H.264), 'av1' or 'h264'."""
    wanted = {"auto": AV1_ENCODERS + H264_ENCODERS, "av1": AV1_ENCODERS, "h264": H264_ENCODERS}[codec]
    for name in wanted:
        if has_encoder(name):
            return name
    raise fail(LeRobotError, "PyAV", "video.codec", f"an encoder of {list(wanted)}", "none installed")


class VideoWriter:
    """An MP4 written frame batch by frame batch (episodes one after another in one file):
    `with VideoWriter(path, fps) as w: w.write(frames)`; frames [N, H, W, 3] uint8 RGB, H and W
    even and the same in every batch. `codec` is 'av1' or 'h264' (from the encoder used).

    crf 20: the round trip of rendered 64×64 frames stays within 3 grey levels (mean absolute
    error; most of it is the 4:2:0 chroma subsampling).
    """

    def __init__(self, path: str, fps: float, *, encoder: str | None = None, crf: int = 20):
        import av  # pylint: disable=g-import-not-at-top
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner on every encode otherwise
        self.encoder = encoder or pick_encoder()
        self.codec = CODEC_NAMES[self.encoder]
        self.rate = fractions.Fraction(fps).limit_denominator(1000)
        self.crf, self.count, self.stream = crf, 0, None
        self.container = av.open(path, "w")

    def _open_stream(self, height: int, width: int) -> None:
        self.stream = self.container.add_stream(self.encoder, rate=self.rate)
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p"
        self.stream.time_base = 1 / self.rate
        # SVT-AV1's faster presets (8+) blur thin edges past 3 grey levels even at low crf; 6 keeps them.
        self.stream.options = {"crf": str(self.crf), "preset": ENCODER_PRESETS.get(self.encoder, "medium")}

    def write(self, frames: np.ndarray) -> None:
        import av  # pylint: disable=g-import-not-at-top
        frames = np.asarray(frames, np.uint8)
        if self.stream is None:
            self._open_stream(int(frames.shape[1]), int(frames.shape[2]))
        for img in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = self.count
            self.count += 1
            for packet in self.stream.encode(frame):
                self.container.mux(packet)

    def close(self) -> None:
        if self.stream is not None:
            for packet in self.stream.encode():
                self.container.mux(packet)
        self.container.close()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def encode_video(path: str, frames: np.ndarray, fps: float, *, encoder: str | None = None,
                 crf: int = 20) -> str:
    """Writes frames [N, H, W, 3] uint8 RGB to an MP4 at `fps` (`VideoWriter`); returns the codec."""
    with VideoWriter(path, fps, encoder=encoder, crf=crf) as writer:
        writer.write(frames)
    return writer.codec


def decode_frames(path: str, timestamps: Sequence[float], *, tolerance_s: float = TOLERANCE_S,
                  field: str = "timestamp") -> np.ndarray:
    """Frames [N, H, W, 3] uint8 RGB of the video at `path` nearest to each timestamp (s).

    Raises VideoTooShortError when the video ends before the last timestamp, FrameTimestampError
    when the nearest frame is more than tolerance_s away; both name the file and `field`.
    """
    import av  # pylint: disable=g-import-not-at-top
    query = np.asarray(timestamps, np.float64)
    if not len(query):
        return np.zeros((0, 0, 0, 3), np.uint8)
    first, last = float(query.min()), float(query.max())
    times, images = [], []
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if first > 0:  # keyframe at or before the first request; decoding runs on from there
            container.seek(int(first / stream.time_base), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base)
            if t < first - tolerance_s:
                continue
            times.append(t)
            images.append(frame.to_ndarray(format="rgb24"))
            if t >= last - tolerance_s:
                break
    times = np.asarray(times)
    check_times(path, times, query, tolerance_s=tolerance_s, field=field)
    nearest = np.abs(times[None, :] - query[:, None]).argmin(1)
    return np.stack([images[j] for j in nearest])


def frame_times(path: str) -> np.ndarray:
    """Presentation times (s) of every frame of the first video stream, sorted; read from the
    packets without decoding."""
    import av  # pylint: disable=g-import-not-at-top
    with av.open(path) as container:
        stream = container.streams.video[0]
        times = [float(p.pts * stream.time_base) for p in container.demux(stream) if p.pts is not None]
    return np.sort(np.asarray(times, np.float64))


def check_times(path: str, times: np.ndarray, query: np.ndarray, *, tolerance_s: float = TOLERANCE_S,
                field: str = "timestamp") -> None:
    """Raises VideoTooShortError / FrameTimestampError (as `decode_frames` would) unless every
    query time has a frame of `times` within tolerance_s."""
    query = np.asarray(query, np.float64)
    if not len(query):
        return
    last = float(query.max())
    if not len(times) or times[-1] < last - tolerance_s:
        end = f"{times[-1]:.4f} s" if len(times) else "no frame"
        raise fail(VideoTooShortError, path, field, f"a frame at {last:.4f} s (the episode's last)",
                   f"the video ends at {end}")
    hi = np.clip(np.searchsorted(times, query), 0, len(times) - 1)
    lo = np.clip(hi - 1, 0, len(times) - 1)
    nearest = np.where(np.abs(times[lo] - query) <= np.abs(times[hi] - query), lo, hi)
    gap = np.abs(times[nearest] - query)
    if (gap > tolerance_s).any():
        i = int(gap.argmax())
        raise fail(FrameTimestampError, path, field, f"a frame within {tolerance_s} s of {query[i]:.6f} s",
                   f"nearest frame at {times[nearest[i]]:.6f} s ({gap[i]:.6f} s away)")


def video_info(encoder_codec: str, height: int, width: int, fps: float) -> dict:
    """The `info` block LeRobot writes for a video feature."""
    return {"video.height": height, "video.width": width, "video.codec": encoder_codec,
            "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": fps,
            "video.channels": 3, "has_audio": False}
