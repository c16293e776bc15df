"""The B-Pref teacher's arithmetic, defined once for numpy and for JAX.

Two labellers simulate the same annotator: `preferences.annotators.label_pairs` (numpy, float64,
a pool of annotators over a segment table, with skip/equal thresholds and careless behaviours on
top) and `train.online.boltzmann_label` (JAX, float32, inside the compiled online program). Both
compute their labels with the functions below; they differ only in where their uniform draws come
from (a numpy Generator, a JAX key), which stay with the callers so that neither random stream
changes. Every function takes the array module `xp` (np or jnp):

  returns      R^γ [...] = Σ_t γ^(T−1−t) Σ_c w_c r[..., t, c]         (γ = 1: plain returns)
  scale        s = mean |R| over reference segments (1 when that mean is 0)
  probability  P(a ≻ b) = σ(β Δ) with Δ = (R^γ_a − R^γ_b) / s;  β = inf: 1[Δ > 0];  Δ = 0: ½
  rational     y = 1[u < P(a ≻ b)] for a uniform draw u ∈ [0, 1);  ½ for a perfect comparer's
               exact tie (β = inf, Δ = 0), which it reports as "equal"
  mistake      y -> 1 − y where the caller's draw (probability ε) says so; ties stay ½

numpy works in float64 (host statistics), JAX in float32, as each labeller always has.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from rlhf_jax.losses.bradley_terry import sigmoid


def _float_dtype(xp):
    """float64 on the host (numpy), float32 under JAX."""
    return np.float64 if xp is np else jnp.float32


def discounted_returns(step_rewards, weights, gamma: float = 1.0, xp=np):
    """R [...] = Σ_t γ^(T−1−t) Σ_c w_c r[..., t, c] of step_rewards [..., T, C], weights [C].

    The last step weighs 1 and earlier ones γ^k less (a myopic annotator remembers the end best).
    """
    dtype = _float_dtype(xp)
    step_rewards = xp.asarray(step_rewards, dtype)
    length = step_rewards.shape[-2]
    discount = gamma ** xp.arange(length - 1, -1, -1, dtype=dtype)
    return xp.einsum("...tc,c,t->...", step_rewards, xp.asarray(weights, dtype), discount)


def return_scale(returns, xp=np):
    """s [] = mean |R| over returns [S] of reference segments; 1 when that is 0 (all-zero
    rewards), so dividing by s is always defined."""
    s = xp.mean(xp.abs(returns))
    return xp.where(s > 0, s, 1.0)


def label_probability(delta, beta, xp=np):
    """P(a ≻ b) [...] = σ(β Δ) for scaled return differences delta [...], beta scalar or [...].

    β = inf is a perfect comparer: 1 for Δ > 0, 0 for Δ < 0. Δ = 0 gives ½ for every β.
    """
    # inf · 0 would be nan: the perfect comparer's logit is ±inf by the sign, and Δ = 0 is set apart.
    with np.errstate(over="ignore", invalid="ignore"):
        logit = xp.where(xp.isinf(beta), xp.sign(delta) * xp.inf, beta * delta)
        return xp.where(delta == 0, 0.5, sigmoid(logit, xp))


def rational_label(uniform, p_a, delta, beta, xp=np):
    """The label [...] before mistakes: 1 where uniform < p_a (= `label_probability`), else 0;
    ½ where a perfect comparer (β = inf) sees no difference (Δ = 0). uniform [...] in [0, 1)."""
    drawn = (uniform < p_a).astype(p_a.dtype)
    return xp.where(xp.isinf(beta) & (delta == 0), 0.5, drawn)


def mistake_flip(label, flip, xp=np):
    """label [...] with 1 − label where flip [...] (bool: the annotator slipped), except for
    ties (½), which a slip leaves as they are."""
    return xp.where(flip & (label != 0.5), 1.0 - label, label)
