"""KL-to-reference estimators and β controllers for KL-regularised RL (RLHF).

Samples come from π, so KL(π ‖ π_ref) = E_π[log π − log π_ref] is estimated per step from the
two log-probabilities of the sampled action (Schulman, "Approximating KL divergence", 2020).
"""
from __future__ import annotations

import jax.numpy as jnp

KL_ESTIMATORS = ("k1", "k3")
KL_SCHEDULES = ("fixed", "adaptive", "annealed")


def kl_k1(logp, ref_logp):
    """k1 = log π(a) − log π_ref(a): unbiased, high variance, can be negative. [...] -> [...]"""
    return logp - ref_logp


def kl_k3(logp, ref_logp):
    """k3 = (r − 1) − log r with r = π_ref(a)/π(a): unbiased, always ≥ 0, lower variance.
    [...] -> [...]"""
    log_r = ref_logp - logp
    return jnp.expm1(log_r) - log_r


def kl_estimate(logp, ref_logp, estimator: str = "k1"):
    """Per-sample KL estimate by name ('k1' or 'k3'); shapes kept."""
    if estimator == "k1":
        return kl_k1(logp, ref_logp)
    if estimator == "k3":
        return kl_k3(logp, ref_logp)
    raise ValueError(f"unknown KL estimator {estimator!r}; expected one of {KL_ESTIMATORS}")


def gaussian_kl(mean_p, log_std_p, mean_q, log_std_q, mask=None):
    """Analytic KL(N_p ‖ N_q) of diagonal Gaussians, summed over the last axis. [..., A] -> [...]

        KL = Σ_i m_i [log(σ_q/σ_p) + (σ_p² + (μ_p − μ_q)²)/(2σ_q²) − ½]

    mask [..., A] (optional): only dims with m_i > 0 count (padded joints of a smaller arm). A
    tanh squash applied to both leaves the KL unchanged (invariant under a shared bijection).
    """
    var_p, var_q = jnp.exp(2 * log_std_p), jnp.exp(2 * log_std_q)
    per = log_std_q - log_std_p + (var_p + jnp.square(mean_p - mean_q)) / (2 * var_q) - 0.5
    if mask is not None:
        per = jnp.where(mask > 0, per, 0.0)
    return per.sum(-1)


def adaptive_beta(beta, kl, target, n_steps, horizon):
    """Proportional β controller of Ziegler et al. (2019).

        e = clip(KL / target − 1, −0.2, 0.2),   β ← β·(1 + e·n / horizon)

    beta, kl: scalars (may be traced); kl is the measured KL per episode, n_steps the number of
    environment steps since the last update, horizon the controller's time constant (steps).
    """
    e = jnp.clip(kl / target - 1.0, -0.2, 0.2)
    return beta * (1.0 + e * n_steps / horizon)


def annealed_beta(step, total_steps, beta_start, beta_end):
    """Geometric (log-linear) anneal from beta_start at step 0 to beta_end at total_steps.

    Geometric rather than linear because β spans orders of magnitude (e.g. 0.02 → 0.001):
    a linear ramp would spend almost all of training near the start value.
    """
    frac = jnp.clip(step / jnp.maximum(total_steps, 1), 0.0, 1.0)
    return beta_start * (beta_end / beta_start) ** frac
