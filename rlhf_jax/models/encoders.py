"""Input encoders shared by reward models and policies: normalisation, image CNN, id embeddings."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np


class Normalizer(nn.Module):
    """Standardises features with statistics computed from training data.

    The statistics live in the ``"norm"`` collection (not ``"params"``), so optimisers never
    touch them and checkpoints carry them with the model. Set them with ``set_norm_stats``.
    """

    name_prefix: str = "x"

    @nn.compact
    def __call__(self, x):
        dim = x.shape[-1]
        mean = self.variable("norm", f"{self.name_prefix}_mean", lambda: jnp.zeros((dim,), jnp.float32))
        std = self.variable("norm", f"{self.name_prefix}_std", lambda: jnp.ones((dim,), jnp.float32))
        return (x - mean.value) / std.value


def feature_stats(x: np.ndarray, min_std: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over all leading axes of x [..., D]; constant features get std 1."""
    flat = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
    mean = flat.mean(0)
    std = flat.std(0)
    std = np.where(std < min_std, 1.0, std)
    return mean.astype(np.float32), std.astype(np.float32)


def set_norm_stats(variables: dict, obs_stats, act_stats) -> dict:
    """Returns variables with the ``norm`` collection set to (mean, std) of obs and actions."""
    norm = {"obs_norm": {"obs_mean": jnp.asarray(obs_stats[0]), "obs_std": jnp.asarray(obs_stats[1])},
            "act_norm": {"act_mean": jnp.asarray(act_stats[0]), "act_std": jnp.asarray(act_stats[1])}}
    out = dict(variables)
    out["norm"] = jnp_broadcast_like(norm, variables["norm"])
    return out


def jnp_broadcast_like(new, old):
    """Broadcasts ``new`` leaves to the (possibly stacked) shapes of ``old`` leaves."""
    import jax

    return jax.tree.map(lambda n, o: jnp.broadcast_to(n, o.shape).astype(o.dtype), new, old)


class ImageEncoder(nn.Module):
    """Small CNN: uint8 images [..., H, W, 3] -> features [..., out_dim]."""

    channels: Sequence[int] = (16, 32, 32)
    out_dim: int = 32

    @nn.compact
    def __call__(self, image):
        lead = image.shape[:-3]
        x = image.reshape((-1,) + image.shape[-3:]).astype(jnp.float32) / 255.0 - 0.5
        for c in self.channels:
            x = nn.Conv(c, (3, 3), strides=(2, 2))(x)
            x = nn.relu(x)
        x = x.mean(axis=(1, 2))
        x = nn.Dense(self.out_dim)(x)
        return x.reshape(lead + (self.out_dim,))


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
