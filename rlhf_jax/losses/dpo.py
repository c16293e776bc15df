"""Direct preference optimisation losses over trajectory segments (DPO and its relatives).

A segment's log-likelihood is log π(σ) = Σ_t log π(a_t|s_t) over its valid steps. With the
frozen reference π_ref (the SFT policy), the implicit log-ratios are

    ρ_w = log π(σ_w) − log π_ref(σ_w),   ρ_l = log π(σ_l) − log π_ref(σ_l),   Δ = ρ_w − ρ_l,

and β·ρ is the implicit reward. ε = label_smoothing. Per-pair losses (names as in TRL):

    sigmoid    −(1−ε)·log σ(βΔ) − ε·log σ(−βΔ)                     (DPO; cDPO when ε > 0)
    hinge      relu(1 − βΔ)                                          (SLiC)
    ipo        (Δ − 1/(2β))²                                         (IPO)
    robust     [−(1−ε)·log σ(βΔ) + ε·log σ(−βΔ)] / (1 − 2ε)          (rDPO; needs ε < ½)
    bco_pair   −log σ(βρ_w) − log σ(−βρ_l)                           (BCO without its running shift)
    sppo_hard  (ρ_w − 1/(2β))² + (ρ_l + 1/(2β))²                     (SPPO, hard labels)
    nca_pair   −log σ(βρ_w) − ½·log σ(−βρ_w) − ½·log σ(−βρ_l)        (NCA)
    apo_zero   1 − σ(βρ_w) + σ(βρ_l)                                 (APO-zero)
    exo_pair   σ(βΔ)·[log σ(βΔ) − log(1−ε)] + σ(−βΔ)·[log σ(−βΔ) − log ε]   (EXO; needs ε > 0)

``dpo_loss`` is the per-type contract. ``dpo_loss_mixture`` evaluates Σ_k w_k·L_k for a weight
vector over ``LOSS_TYPES``, so the loss type (a one-hot w) or a blend of several can be a traced
value and a sweep over loss types vmaps into one program. ``preference_dpo_loss`` adds labels,
ties, confidence weights and the RPO-style NLL term, and returns TRL-named metrics.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

LOSS_TYPES = ("sigmoid", "hinge", "ipo", "robust", "bco_pair", "sppo_hard", "nca_pair", "apo_zero",
              "exo_pair")

_ls = jax.nn.log_sigmoid


def _sigmoid(rw, rl, beta, eps):
    x = beta * (rw - rl)
    return -(1.0 - eps) * _ls(x) - eps * _ls(-x)


def _hinge(rw, rl, beta, eps):
    return jax.nn.relu(1.0 - beta * (rw - rl))


def _ipo(rw, rl, beta, eps):
    return (rw - rl - 0.5 / beta) ** 2


def _robust(rw, rl, beta, eps):
    x = beta * (rw - rl)
    return (-(1.0 - eps) * _ls(x) + eps * _ls(-x)) / (1.0 - 2.0 * eps)


def _bco_pair(rw, rl, beta, eps):
    return -_ls(beta * rw) - _ls(-beta * rl)


def _sppo_hard(rw, rl, beta, eps):
    return (rw - 0.5 / beta) ** 2 + (rl + 0.5 / beta) ** 2


def _nca_pair(rw, rl, beta, eps):
    return -_ls(beta * rw) - 0.5 * _ls(-beta * rw) - 0.5 * _ls(-beta * rl)


def _apo_zero(rw, rl, beta, eps):
    return 1.0 - jax.nn.sigmoid(beta * rw) + jax.nn.sigmoid(beta * rl)


def _exo_pair(rw, rl, beta, eps):
    x = beta * (rw - rl)
    return (jax.nn.sigmoid(x) * (_ls(x) - jnp.log1p(-eps))
            + jax.nn.sigmoid(-x) * (_ls(-x) - jnp.log(eps)))


_LOSS_FNS = {"sigmoid": _sigmoid, "hinge": _hinge, "ipo": _ipo, "robust": _robust,
             "bco_pair": _bco_pair, "sppo_hard": _sppo_hard, "nca_pair": _nca_pair,
             "apo_zero": _apo_zero, "exo_pair": _exo_pair}
assert tuple(_LOSS_FNS) == LOSS_TYPES


def _check(loss_type, label_smoothing):
    if loss_type not in _LOSS_FNS:
        raise ValueError(f"unknown DPO loss_type {loss_type!r}; choose from {LOSS_TYPES}")
    if not isinstance(label_smoothing, (int, float, np.number)):
        return  # a (possibly traced) array: checked where the config is read
    eps = float(label_smoothing)
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {eps}")
    if loss_type == "exo_pair" and eps <= 0.0:
        raise ValueError("loss_type='exo_pair' needs label_smoothing > 0 (it takes log ε)")
    if loss_type == "robust" and eps >= 0.5:
        raise ValueError("loss_type='robust' needs label_smoothing < 0.5 (it divides by 1 − 2ε)")


def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, *,
             beta, loss_type: str = "sigmoid", label_smoothing=0.0):
    """Per-pair DPO-family loss.

    All inputs [B] segment log-likelihoods (Σ_t log π(a_t|s_t) over valid steps); beta > 0.
    Returns (losses [B], chosen_rewards [B] = β·ρ_w, rejected_rewards [B] = β·ρ_l); rewards are
    stop-gradient'ed (they are for logging). See the module docstring for each formula.
    Raises ValueError for an unknown type, exo_pair with ε = 0 or robust with ε ≥ ½.
    """
    _check(loss_type, label_smoothing)
    rho_w = policy_chosen_logps - ref_chosen_logps
    rho_l = policy_rejected_logps - ref_rejected_logps
    losses = _LOSS_FNS[loss_type](rho_w, rho_l, beta, label_smoothing)
    return losses, jax.lax.stop_gradient(beta * rho_w), jax.lax.stop_gradient(beta * rho_l)


def loss_weights(spec) -> np.ndarray:
    """Weight vector [K] over LOSS_TYPES from "sigmoid", "sigmoid:0.8+bco_pair:0.2" or a dict."""
    if isinstance(spec, str):
        spec = dict((p.split(":")[0], float(p.split(":")[1]) if ":" in p else 1.0)
                    for p in spec.replace(" ", "").split("+"))
    w = np.zeros(len(LOSS_TYPES), np.float32)
    for name, value in dict(spec).items():
        if name not in _LOSS_FNS:
            raise ValueError(f"unknown DPO loss_type {name!r}; choose from {LOSS_TYPES}")
        w[LOSS_TYPES.index(name)] = value
    return w


def dpo_loss_mixture(rho_w, rho_l, *, beta, weights, label_smoothing=0.0):
    """Σ_k weights[k]·L_k(ρ_w, ρ_l): rho_* [B], weights [K] over LOSS_TYPES (may be traced).

    Every type is evaluated (scalar maths on [B], negligible next to the policy forward pass),
    so ε is clamped to (1e-6, ½ − 1e-6) where exo/robust need it: with weight 0 a log 0 would
    otherwise turn into 0·inf = NaN in the gradient. Check ε statically where a type needs it
    (``validate_loss_spec``). Returns [B].
    """
    eps = jnp.asarray(label_smoothing, jnp.float32)
    safe = {"exo_pair": jnp.clip(eps, 1e-6, 1.0 - 1e-6), "robust": jnp.minimum(eps, 0.5 - 1e-6)}
    losses = jnp.stack([fn(rho_w, rho_l, beta, safe.get(name, eps)) for name, fn in _LOSS_FNS.items()])
    return jnp.tensordot(jnp.asarray(weights, losses.dtype), losses, axes=1)


def validate_loss_spec(spec, label_smoothing: float) -> None:
    """Raises ValueError where a weighted type cannot take this ε (see ``dpo_loss``)."""
    for name, w in zip(LOSS_TYPES, loss_weights(spec)):
        if w != 0:
            _check(name, label_smoothing)


def preference_dpo_loss(logp_a, logp_b, ref_a, ref_b, label, weight=None, *, beta, weights,
                        label_smoothing=0.0, rpo_alpha=0.0, num_steps=1.0):
    """Mean DPO-family loss over labelled segment pairs, and TRL-named metrics.

    logp_a, logp_b: [B] policy log π(σ); ref_a, ref_b: [B] reference log π_ref(σ), computed once
    and stored beside the pairs; label: [B] P(a preferred) in [0, 1] (1 = a, 0 = b, ½ = tie);
    weight: [B] per-label confidence (0 drops a pair, e.g. padding); weights: [K] loss mixture
    over LOSS_TYPES; num_steps: [B] or scalar count of valid steps (for the per-step NLL).

    Labels and ties. A label y is used as a mixture of both orientations,
        ℓ = y·L(w=a, l=b) + (1−y)·L(w=b, l=a),
    so y ∈ {0, 1} is ordinary DPO, swapping a↔b together with y↔1−y leaves ℓ unchanged, and a
    tie (y = ½) is the symmetric average of both orientations. For the sigmoid-type losses the
    tie term pulls Δ toward 0 (sigmoid: −½[log σ(βΔ) + log σ(−βΔ)]; ipo: Δ² + 1/(4β²));
    the pointwise losses (bco_pair, sppo_hard, nca_pair) pull both ρ toward 0; hinge is flat
    for |βΔ| ≤ 1 and apo_zero is constant, so a tie there asks only for "no confident order".
    No loss type drops ties.

    RPO term: + rpo_alpha·[y·nll_a + (1−y)·nll_b] with nll = −log π(σ)/num_steps (per-step NLL
    of the preferred segment, which keeps DPO from lowering the likelihood of both).

    loss = Σ_i w_i ℓ_i / Σ_i w_i.   Metrics (over non-tie pairs, weighted by w, chosen = the
    segment with y > ½): rewards/chosen, rewards/rejected (β·ρ), rewards/margins,
    rewards/accuracies (chosen reward strictly greater, as TRL), logps/chosen, logps/rejected,
    plus ties/fraction and dpo/nll_chosen.
    """
    label = jnp.asarray(label, jnp.float32)
    weight = jnp.ones_like(label) if weight is None else jnp.asarray(weight, jnp.float32)
    rho_a, rho_b = logp_a - ref_a, logp_b - ref_b
    kw = dict(beta=beta, weights=weights, label_smoothing=label_smoothing)
    l_ab = dpo_loss_mixture(rho_a, rho_b, **kw)
    l_ba = dpo_loss_mixture(rho_b, rho_a, **kw)
    nll_a, nll_b = -logp_a / num_steps, -logp_b / num_steps
    nll = label * nll_a + (1.0 - label) * nll_b
    per_pair = label * l_ab + (1.0 - label) * l_ba + rpo_alpha * nll
    loss = jnp.sum(weight * per_pair) / jnp.maximum(jnp.sum(weight), 1e-8)

    a_wins = label > 0.5
    decisive = weight * (label != 0.5)
    denom = jnp.maximum(jnp.sum(decisive), 1e-8)
    wmean = lambda x: jnp.sum(decisive * jax.lax.stop_gradient(x)) / denom  # noqa: E731
    r_a, r_b = beta * rho_a, beta * rho_b
    r_w, r_l = jnp.where(a_wins, r_a, r_b), jnp.where(a_wins, r_b, r_a)
    metrics = {
        "loss": loss,
        "rewards/chosen": wmean(r_w),
        "rewards/rejected": wmean(r_l),
        "rewards/margins": wmean(r_w - r_l),
        "rewards/accuracies": wmean((r_w > r_l).astype(jnp.float32)),
        "logps/chosen": wmean(jnp.where(a_wins, logp_a, logp_b)),
        "logps/rejected": wmean(jnp.where(a_wins, logp_b, logp_a)),
        "ties/fraction": jnp.sum(weight * (label == 0.5)) / jnp.maximum(jnp.sum(weight), 1e-8),
        "dpo/nll_chosen": jnp.sum(weight * jax.lax.stop_gradient(nll)) / jnp.maximum(jnp.sum(weight), 1e-8),
    }
    return loss, metrics
