"""Active query selection: which of M candidate pairs to send to annotators next.

Every scorer reads the ensemble's predicted segment returns of both sides of each candidate,
returns_a, returns_b [K, M] (K members, M candidates), through the per-member Bradley-Terry
logit d_m = R_a,m − R_b,m and probability p_m = σ(d_m). Methods and their names follow
B-Pref (Lee et al. 2021, rll-research/BPref ``reward_model.py``) and imitation's
``ActiveSelectionFragmenter`` (``uncertainty_on``):

  uniform               k distinct candidates uniformly at random
  disagreement          std_m p_m                                  (B-Pref disagreement_sampling)
  entropy               mean_m H(p_m)                              (B-Pref entropy_sampling)
  mean_entropy          H(mean_m p_m)
  logit                 var_m d_m                                  (imitation default)
  probability           var_m p_m                                  (imitation)
  label                 var_m 1[p_m > ½] = q(1 − q), q = mean_m 1[p_m > ½]   (imitation)
  kcenter               greedy k-center on features                (B-Pref kcenter_sampling)
  kcenter_disagreement  top ⌊M/2⌋ by disagreement, then k-center   (B-Pref kcenter_disagree_sampling)
  kcenter_entropy       top ⌊M/2⌋ by entropy, then k-center        (B-Pref kcenter_entropy_sampling)

with H(p) = −p log p − (1 − p) log(1 − p). Top-k methods take the k highest scores; ties go
to the lower candidate index (``jax.lax.top_k`` returns equal elements lower index first),
so a selection is a deterministic function of its inputs. Every std and variance is the
population one (ddof 0): B-Pref uses ``np.std``; imitation's torch ``.var()`` for "logit" is
the unbiased one, which only rescales every score by K/(K − 1) and so selects the same pairs.

Everything is pure and jittable with ``k`` and ``method`` static::

    jax.jit(select_queries, static_argnames=("k", "method"))
"""
from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp

from rlhf_jax.ensemble import disagreement, ensemble_preference_probability
from rlhf_jax.errors import ConfigError, describe
from rlhf_jax.losses.bradley_terry import preference_probability

SCORE_METHODS = ("disagreement", "entropy", "mean_entropy", "logit", "probability", "label")
KCENTER_METHODS = ("kcenter", "kcenter_disagreement", "kcenter_entropy")
METHODS = ("uniform",) + SCORE_METHODS + KCENTER_METHODS

# B-Pref's hybrids cut the candidates to the more uncertain half before k-center.
_PREFILTER = {"kcenter_disagreement": "disagreement", "kcenter_entropy": "entropy"}

# B-Pref's train_PEBBLE.yaml large_batch; imitation's scripts use fragment_sample_factor 2.
DEFAULT_OVERSAMPLING = 10


def candidate_count(k: int, oversampling: float = DEFAULT_OVERSAMPLING) -> int:
    """Number of candidates M to draw for a batch of k queries: int(k × oversampling).

    B-Pref draws mb_size × large_batch candidates (large_batch 10 in its PEBBLE config);
    imitation draws int(fragment_sample_factor × num_pairs). The k-center hybrids keep only
    half of them, so they need oversampling ≥ 2.
    """
    where = "candidate_count"
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ConfigError(describe(where, "k", "a positive integer", repr(k)))
    if isinstance(oversampling, bool) or not isinstance(oversampling, numbers.Real) or not oversampling >= 1:
        raise ConfigError(describe(where, "oversampling", "a real number >= 1", repr(oversampling)))
    return int(k * oversampling)


def _binary_entropy(p: jax.Array) -> jax.Array:
    """H(p) in nats, elementwise; entr(0) = 0 keeps certain predictions finite."""
    return jax.scipy.special.entr(p) + jax.scipy.special.entr(1.0 - p)


def _scores(returns_a: jax.Array, returns_b: jax.Array, method: str) -> jax.Array:
    """Uncertainty score [M] of each candidate under a score method; returns_* [K, M] float32."""
    if method == "disagreement":
        return disagreement(returns_a, returns_b)
    if method == "mean_entropy":
        return _binary_entropy(ensemble_preference_probability(returns_a, returns_b))
    d = returns_a - returns_b
    if method == "entropy":
        # −p log p − (1−p) log(1−p) through log σ(±d): B-Pref's softmax·log_softmax, which
        # stays accurate where p rounds to 0 or 1 in float32.
        p = preference_probability(returns_a, returns_b)
        member_h = -(p * jax.nn.log_sigmoid(d) + (1.0 - p) * jax.nn.log_sigmoid(-d))
        return member_h.mean(0)
    if method == "logit":
        return d.var(0)
    if method == "probability":
        return preference_probability(returns_a, returns_b).var(0)
    # "label". d > 0 is p > ½ without float32 sigmoid rounding tiny positive logits to ½.
    q = (d > 0).astype(jnp.float32).mean(0)
    return q * (1.0 - q)


def _check_returns(where: str, returns_a, returns_b) -> tuple[jax.Array, jax.Array]:
    """float32 returns, both [K, M] with the same shape, K ≥ 1 and M ≥ 1."""
    a = jnp.asarray(returns_a, jnp.float32)
    b = jnp.asarray(returns_b, jnp.float32)
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ConfigError(describe(where, "returns_a", "a non-empty [K, M] array", f"shape {a.shape}"))
    if b.shape != a.shape:
        raise ConfigError(describe(where, "returns_b", f"shape {a.shape} like returns_a", f"shape {b.shape}"))
    for name, x in (("returns_a", a), ("returns_b", b)):
        # Values are known on eager calls only (under jit they are tracers): NaN would rank first
        # or last by accident, so an eager call refuses it.
        if not isinstance(x, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(x))):
            raise ConfigError(describe(where, name, "finite predicted returns", "NaN or inf"))
    return a, b


def uncertainty(returns_a: jax.Array, returns_b: jax.Array, method: str) -> jax.Array:
    """Score [M] that a top-k method ranks candidates by; returns_* [K, M] -> [M] float32.

    method ∈ SCORE_METHODS (see the module docstring for each formula). "entropy" is what
    B-Pref's get_entropy computes: each member's |Σ softmax·log_softmax| over the two
    segments' returns, i.e. its binary entropy H(p_m), averaged over members — the expected
    (aleatoric) entropy, not the entropy of the ensemble mean, which is "mean_entropy".
    """
    if method not in SCORE_METHODS:
        raise ConfigError(describe("uncertainty", "method", f"one of {SCORE_METHODS}", repr(method)))
    a, b = _check_returns("uncertainty", returns_a, returns_b)
    return _scores(a, b, method)


def _distances(x: jax.Array, centre: jax.Array) -> jax.Array:
    """Euclidean distance [M] of each row of x [M, F] to one centre [F]."""
    return jnp.sqrt(jnp.sum(jnp.square(x - centre), axis=-1))


def kcenter_greedy(features: jax.Array, k: int, key: jax.Array | None = None,
                   labelled_features: jax.Array | None = None) -> jax.Array:
    """Greedy k-center (farthest-point) selection; features [M, F] -> indices [k] int32.

    With centres C (labelled_features [L, F], L ≥ 1, as B-Pref's labelled buffer), each step
    picks i* = argmax_i min_{c ∈ C} ‖x_i − c‖ over not-yet-picked i and adds x_i* to C,
    updating the running min-distance by min(dist, ‖x − x_i*‖). Without labelled features
    (or with L = 0) the first pick is a candidate drawn uniformly with key. Ties go to the
    lower index (jnp.argmax returns the first maximum). Picked candidates are masked out, so
    the k indices are distinct even when candidates coincide.
    """
    x = jnp.asarray(features, jnp.float32)
    m = x.shape[0]
    picks = jnp.zeros((k,), jnp.int32)
    if labelled_features is not None and labelled_features.shape[0] > 0:
        centres = jnp.asarray(labelled_features, jnp.float32)
        min_d = jax.lax.fori_loop(
            0, centres.shape[0],
            lambda j, d: jnp.minimum(d, _distances(x, centres[j])),
            jnp.full((m,), jnp.inf, jnp.float32))
        start = 0
    else:
        first = jax.random.randint(key, (), 0, m, dtype=jnp.int32)
        picks = picks.at[0].set(first)
        min_d = _distances(x, x[first]).at[first].set(-jnp.inf)
        start = 1

    def step(i, carry):
        d, chosen = carry
        j = jnp.argmax(d).astype(jnp.int32)
        # −inf marks a picked candidate: min() keeps it there, argmax never returns it again.
        d = jnp.minimum(d, _distances(x, x[j])).at[j].set(-jnp.inf)
        return d, chosen.at[i].set(j)

    _, picks = jax.lax.fori_loop(start, k, step, (min_d, picks))
    return picks


def _check_features(where: str, method: str, m: int, key, features, labelled_features):
    """float32 features [M, F] and labelled features [L, F] (or None) for a k-center method."""
    if features is None:
        raise ConfigError(describe(where, "features", f"a [M={m}, F] array for method {method!r}", None))
    x = jnp.asarray(features, jnp.float32)
    if x.ndim != 2 or x.shape[0] != m:
        raise ConfigError(describe(where, "features", f"shape [M={m}, F]", f"shape {x.shape}"))
    lab = None
    if labelled_features is not None:
        lab = jnp.asarray(labelled_features, jnp.float32)
        if lab.ndim != 2 or lab.shape[1] != x.shape[1]:
            raise ConfigError(describe(where, "labelled_features", f"shape [L, F={x.shape[1]}]",
                                       f"shape {lab.shape}"))
    if key is None and (lab is None or lab.shape[0] == 0):
        raise ConfigError(describe(where, "key", "a PRNG key (k-center without labelled_features "
                                   "draws its first centre)", None))
    return x, lab


def select_queries(returns_a: jax.Array, returns_b: jax.Array, k: int, method: str,
                   key: jax.Array | None = None, features: jax.Array | None = None,
                   labelled_features: jax.Array | None = None) -> jax.Array:
    """Indices [k] int32 of the candidates to query, in selection order.

    returns_a, returns_b [K, M]: each member's predicted return of side a / b of each
    candidate. k (static): queries to pick, 1 ≤ k ≤ M (≤ ⌊M/2⌋ for the k-center hybrids).
    method (static): one of METHODS. key: PRNG key for "uniform" and for k-center's first
    centre when there are no labelled features; unused otherwise. features [M, F]: the
    candidates' features, required by the k-center methods. labelled_features [L, F]: the
    already-labelled pairs' features, k-center's initial centres.

    Top-k methods return indices by descending score (ties: lower index first). "uniform"
    returns the first k of a uniform random permutation of 0..M−1. The hybrids keep the
    ⌊M/2⌋ highest-scoring candidates (B-Pref's int(0.5 · num_init)), in score order, and run
    kcenter_greedy among them, so their k-center ties go to the higher score.
    """
    where = "select_queries"
    if method not in METHODS:
        raise ConfigError(describe(where, "method", f"one of {METHODS}", repr(method)))
    a, b = _check_returns(where, returns_a, returns_b)
    m = a.shape[1]
    pool = m // 2 if method in _PREFILTER else m
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= pool:
        bound = f"⌊M/2⌋ = {pool}" if method in _PREFILTER else f"M = {m}"
        raise ConfigError(describe(where, "k", f"an integer in [1, {bound}] for method {method!r}", repr(k)))
    k = int(k)

    if method == "uniform":
        if key is None:
            raise ConfigError(describe(where, "key", "a PRNG key for method 'uniform'", None))
        return jax.random.permutation(key, m)[:k].astype(jnp.int32)
    if method in SCORE_METHODS:
        return jax.lax.top_k(_scores(a, b, method), k)[1].astype(jnp.int32)

    x, lab = _check_features(where, method, m, key, features, labelled_features)
    if method == "kcenter":
        return kcenter_greedy(x, k, key, lab)
    keep = jax.lax.top_k(_scores(a, b, _PREFILTER[method]), pool)[1]
    return keep[kcenter_greedy(x[keep], k, key, lab)].astype(jnp.int32)
