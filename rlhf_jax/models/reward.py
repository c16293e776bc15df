"""Reward models over trajectory segments: a Markovian per-step MLP, the same MLP that also sees
the previous step, a per-step model over camera frames (PixelReward), and a segment transformer.

Both map a segment (observations [B, T, D], actions [B, T, A], task id [B], embodiment id [B],
optional images [B, T, H, W, 3]) to a per-step reward [B, T] and a segment return [B].

``dtype`` (``compute_dtype`` in a config's model block: "float32" or "bfloat16") is the type the
dense and attention layers multiply in. In bfloat16 the inputs and kernels of each of their
matmuls are cast to bfloat16 and the products accumulate into float32 (``preferred_element_type``),
so what leaves a layer, the rewards and the returns are float32; parameters, and so gradients and
optimiser state, stay float32, as do the input encoders (normalisers, embeddings, the image CNN).
In float32 the layers are built exactly as they always were.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from rlhf_jax.models.encoders import IMAGE_ENCODERS, ContextEmbedding, ImageEncoder, Normalizer


def _step_inputs(module, obs, act, task_id, embodiment_id, image):
    """Normalised per-step features [B, T, F] with the context broadcast over time."""
    parts = [Normalizer("obs", name="obs_norm")(obs), Normalizer("act", name="act_norm")(act)]
    ctx = ContextEmbedding(module.num_tasks, module.num_embodiments, module.context_dim, name="context")(
        task_id, embodiment_id)
    parts.append(jnp.broadcast_to(ctx[..., None, :], obs.shape[:-1] + ctx.shape[-1:]))
    if image is not None:
        parts.append(ImageEncoder(out_dim=module.context_dim * 2, name="image")(image))
    return jnp.concatenate(parts, axis=-1)


COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

# bfloat16 operands, float32 products and sums: the tensor-core path on GPUs, without rounding
# the accumulator (and each layer's output) to bfloat16's 8-bit mantissa.
_float32_accumulating_dot = functools.partial(jax.lax.dot_general, preferred_element_type=jnp.float32)


def _is_float32(dtype) -> bool:
    return jnp.dtype(dtype) == jnp.float32


def _dense(features: int, dtype) -> nn.Dense:
    """nn.Dense multiplying in ``dtype`` with float32 parameters and float32 accumulation; in
    float32 the plain nn.Dense (the same program as before the option existed)."""
    if _is_float32(dtype):
        return nn.Dense(features)
    return nn.Dense(features, dtype=dtype, param_dtype=jnp.float32, dot_general=_float32_accumulating_dot)


def _einsum_in(dtype) -> Callable:
    """jnp.einsum with its operands cast to ``dtype`` and float32 accumulation and output."""
    def einsum(subscripts, *operands, **kwargs):
        cast = (x.astype(dtype) for x in operands)
        return jnp.einsum(subscripts, *cast, preferred_element_type=jnp.float32, **kwargs)

    return einsum


def _attention(heads: int, dtype) -> nn.MultiHeadDotProductAttention:
    """Self-attention whose projections and score / value einsums multiply in ``dtype`` with
    float32 accumulation, its softmax in float32; in float32 the plain module."""
    if _is_float32(dtype):
        return nn.MultiHeadDotProductAttention(heads)
    return nn.MultiHeadDotProductAttention(
        heads, dtype=dtype, param_dtype=jnp.float32, force_fp32_for_softmax=True,
        qkv_dot_general=_float32_accumulating_dot, out_dot_general=_float32_accumulating_dot,
        qk_attn_weights_einsum_cls=lambda: _einsum_in(dtype), attn_weights_value_einsum_cls=lambda: _einsum_in(dtype))


def _masked_aggregate(step_rewards, mask, how):
    if mask is None:
        mask = jnp.ones_like(step_rewards)
    total = jnp.sum(step_rewards * mask, axis=-1)
    if how == "sum":
        return total
    if how == "mean":
        return total / jnp.maximum(jnp.sum(mask, axis=-1), 1.0)
    raise ValueError(f"aggregate must be 'sum' or 'mean', got {how!r}")


class MarkovianReward(nn.Module):
    """r(s_t, a_t, task, embodiment) per step by an MLP; the segment return sums (or averages)."""

    num_tasks: int
    num_embodiments: int
    hidden: Sequence[int] = (64, 64)
    context_dim: int = 8
    aggregate: str = "sum"
    dtype: Any = jnp.float32  # what the dense layers multiply in (module docstring)

    @nn.compact
    def __call__(self, obs, act, task_id, embodiment_id, image=None, mask=None):
        x = _step_inputs(self, obs, act, task_id, embodiment_id, image)
        for width in self.hidden:
            x = nn.gelu(_dense(width, self.dtype)(x))
        step_rewards = _dense(1, self.dtype)(x)[..., 0]
        return _masked_aggregate(step_rewards, mask, self.aggregate), step_rewards


class PreviousStepReward(nn.Module):
    """r(s_{t-1}, s_t, a_t, task, embodiment) per step: MarkovianReward's MLP with the previous
    step's normalised observation beside each step's inputs (a segment's first step sees its own).

    The gold jerk of step t, ((qd_{t+1} - 2 qd_t + qd_{t-1}) / qd_max)^2, needs qd_{t-1}, which
    only the previous step's observation carries; with it, every step's jerk but the first of a
    segment is a function of the inputs. A step alone is no segment to it (no per-step reward).
    """

    num_tasks: int
    num_embodiments: int
    hidden: Sequence[int] = (64, 64)
    context_dim: int = 8
    aggregate: str = "sum"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, obs, act, task_id, embodiment_id, image=None, mask=None):
        x = _step_inputs(self, obs, act, task_id, embodiment_id, image)
        seen = x[..., :obs.shape[-1]]  # the normalised observations lead the step inputs
        previous = jnp.concatenate([seen[..., :1, :], seen[..., :-1, :]], axis=-2)
        x = jnp.concatenate([x, previous], axis=-1)
        for width in self.hidden:
            x = nn.gelu(_dense(width, self.dtype)(x))
        step_rewards = _dense(1, self.dtype)(x)[..., 0]
        return _masked_aggregate(step_rewards, mask, self.aggregate), step_rewards


class PixelReward(nn.Module):
    """r(frame_t, task, embodiment) — or with ``proprio``, r(frame_t, q_t, qd_t, a_t, task,
    embodiment) — per step by the CNN encoder and an MLP; the return sums (or averages).

    ``pixels`` conditions read no state features: the goal, obstacle and box are only in the
    frames. ``proprio`` adds what the robot knows of itself: its normalised joint positions and
    velocities (the first ``proprio_dim`` observation features, the "joint" layout's q and qd) and
    its normalised actions. Both keep the task and embodiment embeddings of the state models.

    ``encoder``: "patch" (``PatchEncoder``: 2x2 stride-2 convolutions as batched matmuls, the fast
    one on CPU) or "conv" (``ImageEncoder``: 3x3 stride-2 convolutions), with ``channels`` per layer.

    image [B, T_f, H, W, 3] uint8 holds every ``every``-th step of the segment (steps 0, every,
    2·every, ...); obs/act [B, T, ·] are read at those steps, and the return is ``every`` times
    their sum, so its scale matches a per-step sum over all T steps.
    """

    num_tasks: int
    num_embodiments: int
    hidden: Sequence[int] = (64, 64)
    channels: Sequence[int] = (8, 16)
    context_dim: int = 8
    aggregate: str = "sum"
    every: int = 1
    proprio: bool = False
    proprio_dim: int = 0
    encoder: str = "patch"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, obs, act, task_id, embodiment_id, image=None, mask=None):
        if image is None:
            raise ValueError("PixelReward needs camera frames (image [B, T_f, H, W, 3])")
        obs, act = obs[..., ::self.every, :], act[..., ::self.every, :]
        if obs.shape[-2] != image.shape[-4]:
            raise ValueError(f"PixelReward: {image.shape[-4]} frames for {obs.shape[-2]} steps sampled every "
                             f"{self.every}")
        # Both normalisers are built, so the variables match the state models' (checkpoints, norm stats).
        seen_obs, seen_act = Normalizer("obs", name="obs_norm")(obs), Normalizer("act", name="act_norm")(act)
        ctx = ContextEmbedding(self.num_tasks, self.num_embodiments, self.context_dim, name="context")(
            task_id, embodiment_id)
        encoder = IMAGE_ENCODERS[self.encoder](channels=tuple(self.channels), out_dim=self.context_dim * 2,
                                               name="image")
        parts = [encoder(image),
                 jnp.broadcast_to(ctx[..., None, :], obs.shape[:-1] + ctx.shape[-1:])]
        if self.proprio:
            parts += [seen_obs[..., :self.proprio_dim], seen_act]
        x = jnp.concatenate(parts, axis=-1)
        for width in self.hidden:
            x = nn.gelu(_dense(width, self.dtype)(x))
        step_rewards = _dense(1, self.dtype)(x)[..., 0]
        if mask is not None:
            mask = mask[..., ::self.every]
        return self.every * _masked_aggregate(step_rewards, mask, self.aggregate), step_rewards


class TransformerReward(nn.Module):
    """Non-Markovian reward in the spirit of Preference Transformer (Kim et al., 2023).

    A causal transformer reads the segment; each step emits a reward r_t and an importance
    logit; the return is T · Σ_t softmax(logits)_t · r_t, so steps that matter for the
    preference can dominate while the scale stays comparable to a per-step sum.
    """

    num_tasks: int
    num_embodiments: int
    width: int = 64
    depth: int = 2
    heads: int = 4
    max_len: int = 256
    context_dim: int = 8
    aggregate: str = "sum"  # kept for a shared constructor signature; weighting replaces it
    dtype: Any = jnp.float32  # what the dense and attention layers multiply in (module docstring)

    @nn.compact
    def __call__(self, obs, act, task_id, embodiment_id, image=None, mask=None):
        x = _step_inputs(self, obs, act, task_id, embodiment_id, image)
        length = x.shape[-2]
        if length > self.max_len:
            raise ValueError(f"segment length {length} exceeds TransformerReward.max_len={self.max_len}")
        x = _dense(self.width, self.dtype)(x)
        pos = self.param("pos_embed", nn.initializers.normal(0.02), (self.max_len, self.width))
        x = x + pos[:length]
        valid = jnp.ones(x.shape[:-1], bool) if mask is None else mask.astype(bool)
        attn_mask = nn.combine_masks(nn.make_causal_mask(valid), nn.make_attention_mask(valid, valid))
        for _ in range(self.depth):
            h = nn.LayerNorm()(x)
            x = x + _attention(self.heads, self.dtype)(h, h, mask=attn_mask)
            h = nn.LayerNorm()(x)
            x = x + _dense(self.width, self.dtype)(nn.gelu(_dense(2 * self.width, self.dtype)(h)))
        x = nn.LayerNorm()(x)
        out = _dense(2, self.dtype)(x)
        step_rewards, logits = out[..., 0], out[..., 1]
        logits = jnp.where(valid, logits, -1e9)
        weights = jax.nn.softmax(logits, axis=-1)
        n_valid = jnp.sum(valid, axis=-1)
        return n_valid * jnp.sum(weights * step_rewards, axis=-1), step_rewards


REWARD_MODELS = {"markovian": MarkovianReward, "previous_step": PreviousStepReward, "transformer": TransformerReward}


def make_reward_model(kind: str, *, num_tasks: int, num_embodiments: int, **kwargs) -> nn.Module:
    """Builds a reward model by name ('markovian', 'previous_step' or 'transformer')."""
    if kind not in REWARD_MODELS:
        raise ValueError(f"unknown reward model {kind!r}; expected one of {sorted(REWARD_MODELS)}")
    return REWARD_MODELS[kind](num_tasks=num_tasks, num_embodiments=num_embodiments, **kwargs)


def reward_model_from_config(model_config, hidden, *, num_tasks: int, num_embodiments: int) -> nn.Module:
    """A reward model from a config's ``model`` block (``kind`` + module fields) and layer sizes.

    "markovian" takes the sizes as its MLP ``hidden``; the transformer takes the first size as
    its width and the count as its depth, so one ``hidden`` sweep axis serves both kinds.
    ``compute_dtype`` (absent: "float32") becomes the module's ``dtype``.
    """
    kwargs = dict(model_config.to_dict() if hasattr(model_config, "to_dict") else model_config)
    kind = kwargs.pop("kind")
    kwargs.pop("hidden", None)
    compute_dtype = kwargs.pop("compute_dtype", "float32")
    if compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype must be one of {sorted(COMPUTE_DTYPES)}, got {compute_dtype!r}")
    kwargs["dtype"] = COMPUTE_DTYPES[compute_dtype]
    if kind in ("markovian", "previous_step"):
        kwargs["hidden"] = tuple(int(h) for h in hidden)
    else:
        kwargs["width"], kwargs["depth"] = int(hidden[0]), len(hidden)
    return make_reward_model(kind, num_tasks=num_tasks, num_embodiments=num_embodiments, **kwargs)


PIXEL_FEATURE_KINDS = ("pixels", "pixels_proprio")


def pixel_model_from_config(model_config, hidden, channels, feature_kind: str, every: int, proprio_dim: int, *,
                            num_tasks: int, num_embodiments: int, encoder: str = "patch") -> PixelReward:
    """The PixelReward of a config's ``model`` block (context_dim, aggregate, compute_dtype), MLP
    sizes ``hidden``, CNN channels ``channels``, for ``feature_kind`` "pixels" or "pixels_proprio"."""
    if feature_kind not in PIXEL_FEATURE_KINDS:
        raise ValueError(f"feature_kind must be one of {PIXEL_FEATURE_KINDS}, got {feature_kind!r}")
    cfg = dict(model_config.to_dict() if hasattr(model_config, "to_dict") else model_config)
    compute_dtype = cfg.get("compute_dtype", "float32")
    return PixelReward(num_tasks=num_tasks, num_embodiments=num_embodiments, hidden=tuple(int(h) for h in hidden),
                       channels=tuple(int(c) for c in channels), context_dim=int(cfg.get("context_dim", 8)),
                       aggregate=cfg.get("aggregate", "sum"), every=int(every),
                       proprio=feature_kind == "pixels_proprio", proprio_dim=int(proprio_dim), encoder=encoder,
                       dtype=COMPUTE_DTYPES[compute_dtype])


def segment_returns(model: nn.Module, variables, segments: dict) -> jax.Array:
    """Applies the model to a segment dict {obs, act, task, embodiment, [image], [mask]} -> [B]."""
    ret, _ = model.apply(variables, segments["obs"], segments["act"], segments["task"],
                         segments["embodiment"], segments.get("image"), segments.get("mask"))
    return ret
