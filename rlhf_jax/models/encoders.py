"""Input encoders shared by reward models and policies: normalisation, image CNN, id embeddings."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from rlhf_jax import normalizer

feature_stats = normalizer.stats  # the name the model builders and their callers know


class Normalizer(nn.Module):
    """Standardises features with statistics computed from training data.

    The statistics live in the ``"norm"`` collection (not ``"params"``), so optimisers never
    touch them and checkpoints carry them with the model. Set them with ``set_norm_stats``;
    the layout is ``rlhf_jax.normalizer.collection``.
    """

    name_prefix: str = "x"

    @nn.compact
    def __call__(self, x):
        _, mean_key, std_key = normalizer.keys(self.name_prefix)
        mean = self.variable("norm", mean_key, jnp.zeros, x.shape[-1:], jnp.float32)
        std = self.variable("norm", std_key, jnp.ones, x.shape[-1:], jnp.float32)
        return normalizer.normalize(x, mean.value, std.value)


def set_norm_stats(variables: dict, obs_stats, act_stats) -> dict:
    """Returns variables with the ``norm`` collection set to (mean, std) of obs and actions,
    broadcast to the (possibly ensemble-stacked) shapes already there."""
    out = dict(variables)
    out["norm"] = jnp_broadcast_like(normalizer.collection(obs_stats, act_stats), variables["norm"])
    return out


def jnp_broadcast_like(new, old):
    """Broadcasts ``new`` leaves to the (possibly stacked) shapes of ``old`` leaves."""
    import jax

    return jax.tree.map(lambda n, o: jnp.broadcast_to(n, o.shape).astype(o.dtype), new, old)


def _frames_in_unit_range(image):
    """uint8 images [..., H, W, 3] -> (float32 [B, H, W, 3] in [-0.5, 0.5], the leading shape)."""
    return image.reshape((-1,) + image.shape[-3:]).astype(jnp.float32) / 255.0 - 0.5, image.shape[:-3]


def _pooled_features(x, out_dim: int, lead: tuple):
    """Feature maps [B, h, w, c] -> features [*lead, out_dim]: a spatial mean, then one Dense
    (created here, inside the calling module's compact method, so it is that module's layer)."""
    return nn.Dense(out_dim)(x.mean(axis=(1, 2))).reshape(lead + (out_dim,))


class ImageEncoder(nn.Module):
    """Small CNN: uint8 images [..., H, W, 3] -> features [..., out_dim]."""

    channels: Sequence[int] = (16, 32, 32)
    out_dim: int = 32

    @nn.compact
    def __call__(self, image):
        x, lead = _frames_in_unit_range(image)
        for c in self.channels:
            x = nn.Conv(c, (3, 3), strides=(2, 2))(x)
            x = nn.relu(x)
        return _pooled_features(x, self.out_dim, lead)


class PatchEncoder(nn.Module):
    """CNN of 2x2, stride-2 convolutions: uint8 images [..., H, W, 3] -> features [..., out_dim].

    Each layer cuts the image into non-overlapping 2x2 patches (a reshape) and applies one dense
    map to every patch (the convolution's shared kernel), so under a vmap over models that each
    read their own frames (the sweep's points x members) the layers are batched matmuls; XLA's
    CPU backend turns a conv vmapped over both kernels and inputs into a grouped convolution that
    ran about 10x slower for 16x16 frames. H and W must be divisible by 2^len(channels).
    """

    channels: Sequence[int] = (8, 16)
    out_dim: int = 32

    @nn.compact
    def __call__(self, image):
        x, lead = _frames_in_unit_range(image)
        for c in self.channels:
            b, h, w, d = x.shape
            if h % 2 or w % 2:
                raise ValueError(f"PatchEncoder: a {h}x{w} map cannot be cut into 2x2 patches "
                                 f"(frame sides must divide by 2^{len(self.channels)})")
            x = x.reshape(b, h // 2, 2, w // 2, 2, d).transpose(0, 1, 3, 2, 4, 5).reshape(b, h // 2, w // 2, 4 * d)
            x = nn.relu(nn.Dense(c)(x))
        return _pooled_features(x, self.out_dim, lead)


IMAGE_ENCODERS = {"conv": ImageEncoder, "patch": PatchEncoder}


class ContextEmbedding(nn.Module):
    """Embeds the task instruction id and (optionally) the embodiment id.

    The instruction is a learned token embedding per task (no downloaded text model).
    ``num_embodiments = 0`` gives embodiment-agnostic features (no embodiment input at all).
    """

    num_tasks: int
    num_embodiments: int
    dim: int = 16

    @nn.compact
    def __call__(self, task_id, embodiment_id):
        parts = [nn.Embed(self.num_tasks, self.dim, name="task_embed")(task_id)]
        if self.num_embodiments > 0:
            parts.append(nn.Embed(self.num_embodiments, self.dim, name="embodiment_embed")(embodiment_id))
        return jnp.concatenate(parts, axis=-1)
