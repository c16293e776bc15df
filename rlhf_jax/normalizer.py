"""Feature normalisation, defined once: statistics from data, the ``norm`` variable collection,
applying (and inverting) the standardisation, and running statistics for online training.

Models read their statistics from a ``"norm"`` collection laid out as

    {"obs_norm": {"obs_mean": [D], "obs_std": [D]}, "act_norm": {"act_mean": [A], "act_std": [A]}}

(one ``<part>_norm`` entry per normalised input, read by ``models.encoders.Normalizer`` named
``<part>_norm`` with prefix ``<part>``). Saved checkpoints carry these keys, so `collection`
is the only place that spells them.

Array-agnostic: `normalize`, `denormalize`, `running_update` and `collection` accept numpy or
jnp inputs (and tracers, under jit). `stats` and `moments` reduce on the host in float64, as
the batch statistics of a dataset always have (jnp would reduce in float32 by default). The
same call on numpy and on jnp inputs agrees to float32 rounding (XLA's division may differ from
numpy's in the last bit), so each caller keeps the array kind it used before.
"""
from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from rlhf_jax.features import array_module

MIN_STD = 1e-3  # below this a feature counts as constant and passes through unscaled
RUNNING_EPS = 1e-6  # added to running variances before the square root
RUNNING_CLIP = 10.0
RUNNING_COUNT0 = 1e-4  # prior count of the running statistics: avoids 0/0 at the first merge
PARTS = ("obs", "act")


def moments(x, min_std: float = MIN_STD) -> tuple[np.ndarray, np.ndarray]:
    """float64 (mean [D], std [D]) over all leading axes of x [..., D]; std < min_std -> 1."""
    flat = np.asarray(x, np.float64).reshape(-1, np.shape(x)[-1])
    mean = flat.mean(0)
    std = flat.std(0)
    return mean, np.where(std < min_std, 1.0, std)


def stats(x, min_std: float = MIN_STD) -> tuple[np.ndarray, np.ndarray]:
    """float32 (mean [D], std [D]) over all leading axes of x [..., D]; constant features get
    std 1 (e.g. zero-filled simulator context on real data passes through unscaled)."""
    mean, std = moments(x, min_std)
    return mean.astype(np.float32), std.astype(np.float32)


def identity(dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(zeros [dim], ones [dim]): statistics that leave features unchanged."""
    return np.zeros((dim,), np.float32), np.ones((dim,), np.float32)


def keys(part: str) -> tuple[str, str, str]:
    """(module name, mean key, std key) of a part in the ``norm`` collection."""
    return f"{part}_norm", f"{part}_mean", f"{part}_std"


def collection(obs=None, act=None) -> dict:
    """The ``norm`` collection of (mean, std) pairs, float32 jnp leaves; parts given as None
    are left out (a policy normalises obs only)."""
    out = {}
    for part, pair in zip(PARTS, (obs, act)):
        if pair is not None:
            module, mean_key, std_key = keys(part)
            out[module] = {mean_key: jnp.asarray(pair[0], jnp.float32),
                           std_key: jnp.asarray(pair[1], jnp.float32)}
    return out


def normalize(x, mean, std, clip: float | None = None):
    """(x − mean) / std, optionally clipped to [−clip, clip]; x [..., D], mean/std [D]."""
    z = (x - mean) / std
    if clip is None:
        return z
    return array_module(x, mean, std).clip(z, -clip, clip)


def denormalize(z, mean, std):
    """Inverse of `normalize` (without clipping): z · std + mean."""
    return z * std + mean


class Running(NamedTuple):
    """Running statistics of a stream of feature batches: count [], mean [D], var [D]."""
    count: object
    mean: object
    var: object


def running_init(dim: int, xp=jnp) -> Running:
    """Empty running statistics (count RUNNING_COUNT0, mean 0, var 1) for features [D]."""
    return Running(xp.asarray(RUNNING_COUNT0, xp.float32), xp.zeros((dim,)), xp.ones((dim,)))


def running_merge(count, mean, var, b_count, b_mean, b_var) -> Running:
    """Parallel merge of two sets of (count, mean, var) statistics (Chan et al., 1979)."""
    tot = count + b_count
    delta = b_mean - mean
    new_mean = mean + delta * b_count / tot
    m2 = var * count + b_var * b_count + delta**2 * count * b_count / tot
    return Running(tot, new_mean, m2 / tot)


def running_update(count, mean, var, x) -> Running:
    """Running (count, mean, var) merged with a batch x [N, D] (population variance)."""
    return running_merge(count, mean, var, x.shape[0], x.mean(0), x.var(0))


def running_std(var, eps: float = RUNNING_EPS):
    """std [D] of running statistics, sqrt(var + eps); array-agnostic."""
    return array_module(var).sqrt(var + eps)


def running_normalize(mean, var, x, eps: float = RUNNING_EPS, clip: float = RUNNING_CLIP):
    """x [..., D] standardised by running statistics and clipped to [−clip, clip]."""
    return normalize(x, mean, running_std(var, eps), clip)
