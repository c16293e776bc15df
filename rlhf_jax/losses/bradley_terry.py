"""Bradley-Terry preference loss over segment returns."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

TIE_TOLERANCE = 1e-6


def check_pair_shapes(r_a, r_b, label, weight=None, margin=0.0) -> None:
    """Raises ValueError unless r_a, r_b, label (and weight, margin if arrays) are all [B] with the
    same B and floating/integer dtypes. Shapes are static under jit, so this costs nothing there;
    without it a label [1] or returns [B, 1] broadcast silently into a wrong loss."""
    shapes = {"r_a": jnp.shape(r_a), "r_b": jnp.shape(r_b), "label": jnp.shape(label)}
    if weight is not None:
        shapes["weight"] = jnp.shape(weight)
    if jnp.ndim(margin) > 0:
        shapes["margin"] = jnp.shape(margin)
    ref = shapes["r_a"]
    for name, shape in shapes.items():
        if len(shape) != 1 or shape != ref:
            raise ValueError(f"bradley_terry_loss: field '{name}': expected shape [B] with B = "
                             f"{ref[0] if len(ref) == 1 else '?'} like r_a {ref}, got {shape}")
    for name, x in (("r_a", r_a), ("r_b", r_b), ("label", label)):
        if not (jnp.issubdtype(jnp.result_type(x), jnp.floating) or jnp.issubdtype(jnp.result_type(x), jnp.integer)):
            raise ValueError(f"bradley_terry_loss: field '{name}': expected a real dtype, got {jnp.result_type(x)}")


def check_labels(label, where: str = "labels") -> None:
    """Raises ValueError unless every (host-side) label lies in [0, 1]; used where labels enter
    (label files, teachers, batch builders), never inside jit where values are unknown."""
    lab = np.asarray(label, np.float64)
    bad = ~((lab >= 0.0) & (lab <= 1.0))
    if bad.any():
        raise ValueError(f"{where}: field 'label': expected P(a preferred) in [0, 1], got {lab[bad][0]!r}")


def _is_concrete(x) -> bool:
    return x is not None and not isinstance(x, jax.core.Tracer)


def check_pair_values(label, weight=None, label_smoothing: float = 0.0) -> None:
    """Raises ValueError for labels outside [0, 1] (NaN included), negative or non-finite weights,
    or a smoothing ε outside [0, 1]. Values are checked only where they are known: on eager
    calls (the library's public use); under jit they are tracers and the callers' host-side
    checks (``check_labels`` where labels enter) apply instead."""
    if _is_concrete(label):
        check_labels(label, "bradley_terry_loss")
    if _is_concrete(weight):
        w = np.asarray(weight, np.float64)
        bad = ~(np.isfinite(w) & (w >= 0.0))
        if bad.any():
            raise ValueError(f"bradley_terry_loss: field 'weight': expected finite weights >= 0, got {w[bad][0]!r}")
    if _is_concrete(label_smoothing) and not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"bradley_terry_loss: field 'label_smoothing': expected ε in [0, 1], "
                         f"got {float(label_smoothing)!r}")


def bradley_terry_loss(
    r_a: jax.Array,
    r_b: jax.Array,
    label: jax.Array,
    weight: jax.Array | None = None,
    margin: jax.Array | float = 0.0,
    label_smoothing: float = 0.0,
    center_coef: float = 0.0,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Pairwise Bradley-Terry loss with soft labels, ties, margins, smoothing and weights.

    Shapes: r_a, r_b [B] segment returns; label [B] = P(a preferred) in [0, 1] (1: a wins,
    0: b wins, 0.5: tie); weight [B] per-label confidence (default 1); margin scalar or [B].

        y      = (1 − ε)·label + ε/2                       (label smoothing toward 1/2)
        ℓ_i    = −[y·log σ(r_a − r_b − m) + (1 − y)·log σ(r_b − r_a − m)]
        loss   = Σ_i w_i ℓ_i / Σ_i w_i  +  c·mean((r_a + r_b)²)

    A tie (y = 1/2) pulls r_a and r_b together; with equal returns and m = 0 every pair costs
    log 2. The margin asks the winner to lead by m (a tie with m > 0 is pushed toward
    |r_a − r_b| ≤ m from both sides). The centring term (c > 0) pins the otherwise free offset
    of the returns, which keeps ensembles comparable.

    Returns (loss, metrics): accuracy over non-tied pairs (a tie-free batch gives the usual
    accuracy; an all-tie batch reports 0.5), log_likelihood (−mean ℓ), mean margin
    (r_chosen − r_rejected), chosen/rejected mean returns (chosen = the labelled winner).
    Eager calls refuse labels outside [0, 1], negative weights and ε outside [0, 1]
    (``check_pair_values``); under jit only shapes are checked.
    """
    check_pair_shapes(r_a, r_b, label, weight, margin)
    check_pair_values(label, weight, label_smoothing)
    r_a = jnp.asarray(r_a, jnp.float32)
    r_b = jnp.asarray(r_b, jnp.float32)
    label = jnp.asarray(label, jnp.float32)
    weight = jnp.ones_like(label) if weight is None else jnp.asarray(weight, jnp.float32)
    y = (1.0 - label_smoothing) * label + 0.5 * label_smoothing
    diff = r_a - r_b
    nll = -(y * jax.nn.log_sigmoid(diff - margin) + (1.0 - y) * jax.nn.log_sigmoid(-diff - margin))
    total_weight = jnp.maximum(jnp.sum(weight), 1e-8)
    loss = jnp.sum(weight * nll) / total_weight
    if center_coef:
        loss = loss + center_coef * jnp.mean((r_a + r_b) ** 2)

    decided = jnp.abs(label - 0.5) > TIE_TOLERANCE
    a_wins = label > 0.5
    correct = jnp.where(a_wins, diff > 0, diff < 0)
    n_decided = jnp.sum(decided)
    accuracy = jnp.where(n_decided > 0, jnp.sum(correct & decided) / jnp.maximum(n_decided, 1), 0.5)
    chosen = jnp.where(a_wins, r_a, r_b)
    rejected = jnp.where(a_wins, r_b, r_a)
    denom = jnp.maximum(n_decided, 1)
    metrics = {
        "loss": loss,
        "accuracy": accuracy,
        "log_likelihood": -jnp.sum(weight * nll) / total_weight,
        "rewards/chosen": jnp.sum(jnp.where(decided, chosen, 0.0)) / denom,
        "rewards/rejected": jnp.sum(jnp.where(decided, rejected, 0.0)) / denom,
        "rewards/margins": jnp.sum(jnp.where(decided, chosen - rejected, 0.0)) / denom,
        "rewards/accuracies": accuracy,
    }
    return loss, metrics


def sigmoid(x, xp=jnp):
    """σ(x) = 1 / (1 + exp(−x)) elementwise; any shape.

    xp=jnp: ``jax.nn.sigmoid`` (traceable). xp=np: numpy on the host, in x's own dtype (float64
    stays float64), written out as 1 / (1 + exp(−x)) because that is what the host-side callers
    always computed; XLA's sigmoid may round the last bit differently. exp(−x) overflowing for
    x ≲ −709 (float64) gives exactly 0, silently.
    """
    if xp is np:
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-x))
    return jax.nn.sigmoid(x)


def preference_probability(r_a, r_b, xp=jnp):
    """P(a ≻ b) = σ(r_a − r_b) under Bradley-Terry; r_a, r_b any broadcastable shapes.

    xp: the array module that computes σ (see `sigmoid`); jnp by default, np for host callers
    that work in numpy (float64 inputs give float64 probabilities).
    """
    return sigmoid(r_a - r_b, xp)


def surf_pseudo_labels(r_a: jax.Array, r_b: jax.Array, tau: float) -> tuple[jax.Array, jax.Array]:
    """SURF's confidence-thresholded pseudo-labels (Park et al., 2022).

    r_a, r_b [U]: the current model's returns of unlabelled pairs (uncropped windows);
    p = σ(r_a − r_b). label [U] = 1[p > 1/2] (a hard label, as SURF uses); mask [U] = 1 where
    max(p, 1 − p) > tau, else 0 — only confident predictions become training labels. Both are
    constants of the loss (stop_gradient): the pseudo-labels are targets, not outputs.
    """
    p = jax.lax.stop_gradient(preference_probability(r_a, r_b))
    label = (p > 0.5).astype(jnp.float32)
    mask = (jnp.maximum(p, 1.0 - p) > tau).astype(jnp.float32)
    return label, mask
