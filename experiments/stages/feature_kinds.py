"""Feature kinds of a reward-model sweep: what the models read, trained in turn on the same pairs.

A sweep config's ``feature_kinds`` (empty: its ``feature_kind`` alone) names what each model
reads: "joint" or "eef" state features (``rlhf_jax.features``), "pixels" (camera frames through the
CNN encoder, no state features) or "pixels_proprio" (frames + the arm's joint positions,
velocities and actions). Every kind trains on the same label conditions, pairs and nested subsets;
like a model width, a kind changes shapes, so each (kind, MLP size, CNN size) is one compile in a
Python loop, and the CNN channel tuples of ``pixels.cnn_sizes`` are a sweep axis of the pixel
kinds as ``model_sizes`` is of every kind.
"""
from __future__ import annotations

from typing import NamedTuple

from experiments import cli
from rlhf_jax import features as F
from rlhf_jax.data.frames import check_frame_settings
from rlhf_jax.models.encoders import IMAGE_ENCODERS
from rlhf_jax.models.reward import PIXEL_FEATURE_KINDS, pixel_model_from_config, reward_model_from_config

STATE_FEATURE_KINDS = tuple(F.FEATURE_KINDS)
FEATURE_KINDS = STATE_FEATURE_KINDS + PIXEL_FEATURE_KINDS
# What pixels_proprio reads of the "joint" layout: q and qd lead it.
PROPRIO_DIM = F.part_slices("joint")["qd"].stop


class SizedModel(NamedTuple):
    """One shape of the sweep: feature kind, MLP widths, CNN channels (() for state kinds), row label."""
    kind: str
    hidden: tuple
    channels: tuple
    label: str


def feature_kinds(config) -> tuple[str, ...]:
    """The kinds a sweep trains: ``feature_kinds``, or ``(feature_kind,)`` when that is empty."""
    return tuple(config.get("feature_kinds", ()) or ()) or (config.feature_kind,)


def has_pixels(config) -> bool:
    return any(k in PIXEL_FEATURE_KINDS for k in feature_kinds(config))


def table_kind(config) -> str:
    """The state layout the segment table is cut in: the state kind trained, else "joint" (the
    layout whose q and qd pixels_proprio reads)."""
    state = [k for k in feature_kinds(config) if k in STATE_FEATURE_KINDS]
    return state[0] if state else "joint"


def check_feature_kinds(config, config_file: str) -> None:
    """feature_kind(s) and the pixels block; raises ConfigError naming the field."""
    field = "feature_kinds" if config.get("feature_kinds", ()) else "feature_kind"
    kinds = feature_kinds(config)
    shown = list(kinds) if field == "feature_kinds" else kinds[0]
    if not set(kinds) <= set(FEATURE_KINDS) or len(set(kinds)) != len(kinds):
        cli.fail(config_file, field, f"distinct feature kinds from {list(FEATURE_KINDS)}", shown)
    state = [k for k in kinds if k in STATE_FEATURE_KINDS]
    if len(state) > 1 or (has_pixels(config) and state not in ([], ["joint"])):
        cli.fail(config_file, field, "at most one state kind, and 'joint' beside pixel kinds (one segment table)",
                 shown)
    if not has_pixels(config):
        return
    if str(config.get("dataset", "")).startswith("lerobot:"):  # frames come from the simulator's stored states
        cli.fail(config_file, "dataset", "a simulator dataset variant with pixel feature kinds (frames are rendered "
                 "from the stored simulator states)", config.dataset)
    pixels = config.get("pixels")
    if pixels is None:
        cli.fail(config_file, "pixels", "a block with size, view, every and cnn_sizes", None)
    try:
        check_frame_settings(pixels.size, pixels.view, config_file)
    except ValueError:
        bad = "pixels.size" if int(pixels.size) < 4 else "pixels.view"
        cli.fail(config_file, bad, "an image side >= 4" if bad == "pixels.size" else "a camera of rlhf_jax.envs.render",
                 pixels.size if bad == "pixels.size" else pixels.view)
    encoder = pixels.get("encoder", "patch")
    if encoder not in IMAGE_ENCODERS:
        cli.fail(config_file, "pixels.encoder", " or ".join(map(repr, IMAGE_ENCODERS)), encoder)
    if encoder == "patch" and any(int(pixels.size) % 2 ** len(c) for c in pixels.cnn_sizes):
        cli.fail(config_file, "pixels.size", "a side divisible by 2^(CNN layers) for the patch encoder "
                 f"(cnn_sizes {[list(c) for c in pixels.cnn_sizes]})", pixels.size)
    if int(pixels.every) < 1:
        cli.fail(config_file, "pixels.every", "a frame stride of at least 1 step", pixels.every)
    if not pixels.cnn_sizes or any(not c or any(int(w) <= 0 for w in c) for c in pixels.cnn_sizes):
        cli.fail(config_file, "pixels.cnn_sizes", "tuples of positive channel counts", list(pixels.cnn_sizes))
    if config.get("surf") is not None and config.surf.enabled:
        cli.fail(config_file, "surf.enabled", "False with pixel feature kinds (crops cut states, not frames)", True)
    if config.get("pseudo") is not None and config.pseudo.droid:
        cli.fail(config_file, "pseudo.droid", "False with pixel feature kinds", True)


def sized_models(config) -> list[SizedModel]:
    """Every (kind, MLP size, CNN size) the sweep trains, in order: kinds, then model_sizes, then cnn_sizes."""
    out = []
    labelled = len(feature_kinds(config)) > 1 or has_pixels(config)
    for kind in feature_kinds(config):
        for hidden in config.model_sizes:
            hidden = tuple(int(h) for h in hidden)
            mlp = "x".join(map(str, hidden))
            if kind in PIXEL_FEATURE_KINDS:
                for channels in config.pixels.cnn_sizes:
                    channels = tuple(int(c) for c in channels)
                    out.append(SizedModel(kind, hidden, channels, f"{kind}_cnn{'x'.join(map(str, channels))}_{mlp}"))
            else:
                out.append(SizedModel(kind, hidden, (), f"{kind}_{mlp}" if labelled else mlp))
    return out


def build_model(config, sized: SizedModel):
    """The reward model of one sweep shape (PixelReward for pixel kinds; else config.model)."""
    if sized.kind in PIXEL_FEATURE_KINDS:
        return pixel_model_from_config(config.model, sized.hidden, sized.channels, sized.kind, int(config.pixels.every),
                                       PROPRIO_DIM, num_tasks=config.num_tasks, num_embodiments=config.num_embodiments,
                                       encoder=config.pixels.get("encoder", "patch"))
    return reward_model_from_config(config.model, sized.hidden, num_tasks=config.num_tasks,
                                    num_embodiments=config.num_embodiments)
