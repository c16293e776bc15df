"""Active query selection (rlhf_jax.query) against a slow NumPy reference and hand cases."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhf_jax import query
from rlhf_jax.errors import ConfigError

K, M, F, L, TOPK = 4, 40, 3, 6, 8

# One jit object for every test: its cache is keyed on (k, method, shapes), so each
# configuration compiles once per session.
_select = jax.jit(query.select_queries, static_argnames=("k", "method"))


def _ensemble(seed: int = 0):
    rng = np.random.default_rng(seed)
    ra = (2.0 * rng.normal(size=(K, M))).astype(np.float32)
    rb = (2.0 * rng.normal(size=(K, M))).astype(np.float32)
    feats = rng.normal(size=(M, F)).astype(np.float32)
    labelled = rng.normal(size=(L, F)).astype(np.float32)
    return ra, rb, feats, labelled


# ---- slow NumPy reference, written independently of the module ----------------------------

def _ref_score(ra, rb, method):
    """Per-candidate loops in float64."""
    out = np.zeros(ra.shape[1])
    for j in range(ra.shape[1]):
        d = np.array([float(ra[i, j]) - float(rb[i, j]) for i in range(ra.shape[0])])
        p = 1.0 / (1.0 + np.exp(-d))
        if method == "disagreement":
            out[j] = math.sqrt(np.mean((p - p.mean()) ** 2))
        elif method == "entropy":
            out[j] = np.mean([-(q * math.log(q) + (1 - q) * math.log(1 - q)) for q in p])
        elif method == "mean_entropy":
            q = p.mean()
            out[j] = -(q * math.log(q) + (1 - q) * math.log(1 - q))
        elif method == "logit":
            out[j] = np.mean((d - d.mean()) ** 2)
        elif method == "probability":
            out[j] = np.mean((p - p.mean()) ** 2)
        elif method == "label":
            y = (p > 0.5).astype(np.float64)
            out[j] = np.mean((y - y.mean()) ** 2)
    return out


def _ref_topk(scores, k):
    return np.argsort(-scores, kind="stable")[:k]


def _ref_kcenter(x, k, centres, first=None):
    """B-Pref-style greedy: a shrinking list of remaining candidates, centres grow."""
    x = x.astype(np.float64)
    centres = [c.astype(np.float64) for c in centres]
    remaining = list(range(len(x)))
    picked = []
    if first is not None:
        picked.append(first)
        remaining.remove(first)
        centres.append(x[first])
    while len(picked) < k:
        dists = [min(np.linalg.norm(x[i] - c) for c in centres) for i in remaining]
        j = remaining[int(np.argmax(dists))]
        picked.append(j)
        remaining.remove(j)
        centres.append(x[j])
    return np.array(picked)


_HYBRID_SCORE = {"kcenter_disagreement": "disagreement", "kcenter_entropy": "entropy"}


def _ref_select(ra, rb, k, method, feats, labelled, first=None):
    if method in query.SCORE_METHODS:
        return _ref_topk(_ref_score(ra, rb, method), k)
    centres = [] if labelled is None else list(labelled)
    if method == "kcenter":
        return _ref_kcenter(feats, k, centres, first)
    keep = _ref_topk(_ref_score(ra, rb, _HYBRID_SCORE[method]), M // 2)
    return keep[_ref_kcenter(feats[keep], k, centres, first)]


# ---- agreement with the reference ------------------------------------------------------

@pytest.mark.parametrize("method", query.SCORE_METHODS + query.KCENTER_METHODS)
def test_matches_numpy_reference(method):
    ra, rb, feats, labelled = _ensemble()
    key = jax.random.key(3)
    got = np.asarray(_select(ra, rb, k=TOPK, method=method, key=key, features=feats,
                             labelled_features=labelled))
    assert got.dtype == np.int32 and got.shape == (TOPK,)
    np.testing.assert_array_equal(got, _ref_select(ra, rb, TOPK, method, feats, labelled))


@pytest.mark.parametrize("method", query.KCENTER_METHODS)
def test_kcenter_without_labelled_follows_reference_from_random_start(method):
    ra, rb, feats, _ = _ensemble(1)
    firsts = set()
    for seed in range(4):
        got = np.asarray(_select(ra, rb, k=TOPK, method=method, key=jax.random.key(seed),
                                 features=feats))
        pool = np.arange(M) if method == "kcenter" else _ref_topk(
            _ref_score(ra, rb, _HYBRID_SCORE[method]), M // 2)
        assert got[0] in pool
        first = int(np.flatnonzero(pool == got[0])[0])
        # The reference works in pool positions; map the start there and the picks back.
        ref = pool[_ref_kcenter(feats[pool], TOPK, [], first)]
        np.testing.assert_array_equal(got, ref)
        firsts.add(int(got[0]))
    assert len(firsts) > 1, "the first centre should depend on the key"


def test_uncertainty_matches_reference_scores():
    ra, rb, _, _ = _ensemble(2)
    for method in query.SCORE_METHODS:
        got = np.asarray(query.uncertainty(ra, rb, method))
        assert got.dtype == np.float32 and got.shape == (M,)
        np.testing.assert_allclose(got, _ref_score(ra, rb, method), rtol=2e-5, atol=1e-6,
                                   err_msg=method)


def test_label_ties_break_by_lower_index():
    ra, rb, _, _ = _ensemble()
    scores = np.asarray(query.uncertainty(ra, rb, "label"))
    got = np.asarray(_select(ra, rb, k=TOPK, method="label", key=None))
    assert len(set(scores[got].tolist())) < TOPK, "fixture should contain tied label scores"
    for s in set(scores[got].tolist()):
        tied = got[scores[got] == s]
        np.testing.assert_array_equal(tied, np.sort(tied))
    # Every candidate scoring above the k-th pick's score is included.
    assert set(np.flatnonzero(scores > scores[got[-1]])) <= set(got.tolist())


# ---- uniform ----------------------------------------------------------------------------

def test_uniform_distinct_in_range_and_key_dependent():
    ra, rb, _, _ = _ensemble()
    a = np.asarray(_select(ra, rb, k=TOPK, method="uniform", key=jax.random.key(0)))
    b = np.asarray(_select(ra, rb, k=TOPK, method="uniform", key=jax.random.key(1)))
    for idx in (a, b):
        assert idx.dtype == np.int32 and len(set(idx.tolist())) == TOPK
        assert idx.min() >= 0 and idx.max() < M
    assert not np.array_equal(a, b)


def test_uniform_is_uniform_over_keys():
    ra, rb, _, _ = _ensemble()
    n_keys, k = 2000, 10
    keys = jax.random.split(jax.random.key(7), n_keys)
    picks = np.asarray(jax.jit(jax.vmap(
        lambda kk: query.select_queries(ra, rb, k, "uniform", kk)))(keys))
    assert all(len(set(row)) == k for row in picks.tolist())
    freq = np.bincount(picks.ravel(), minlength=M) / n_keys
    # Each index is in a k-subset with probability k/M = 0.25; 6 binomial σ ≈ 0.058.
    np.testing.assert_allclose(freq, k / M, atol=0.06)


# ---- hand cases -------------------------------------------------------------------------

def _split_ensemble():
    """Candidate 4: members confidently disagree (d = ±3); the rest agree on d ≈ 1."""
    rng = np.random.default_rng(5)
    ra = (1.0 + 0.05 * rng.normal(size=(K, 6))).astype(np.float32)
    ra[:, 4] = [-3.0, 3.0, -3.0, 3.0]
    return ra, np.zeros_like(ra)


@pytest.mark.parametrize("method", ["disagreement", "logit", "probability", "label", "mean_entropy"])
def test_most_disagreed_candidate_first(method):
    ra, rb = _split_ensemble()
    assert int(_select(ra, rb, k=1, method=method, key=None)[0]) == 4


def test_bpref_entropy_is_mean_member_entropy_not_entropy_of_mean():
    ra, rb = _split_ensemble()
    h = np.asarray(query.uncertainty(ra, rb, "entropy"))
    hm = np.asarray(query.uncertainty(ra, rb, "mean_entropy"))
    p4 = 1.0 / (1.0 + math.exp(-3.0))
    member_h = -(p4 * math.log(p4) + (1 - p4) * math.log(1 - p4))
    np.testing.assert_allclose(h[4], member_h, rtol=1e-5)
    np.testing.assert_allclose(hm[4], math.log(2.0), rtol=1e-5)
    # Confident members that disagree look certain to B-Pref's entropy.
    assert int(_select(ra, rb, k=1, method="entropy", key=None)[0]) != 4


def test_identical_members_zero_disagreement_nonzero_entropy():
    rng = np.random.default_rng(9)
    ra = np.tile(rng.normal(size=(1, 10)), (K, 1)).astype(np.float32)
    rb = np.tile(rng.normal(size=(1, 10)), (K, 1)).astype(np.float32)
    for method in ("disagreement", "logit", "probability", "label"):
        np.testing.assert_allclose(np.asarray(query.uncertainty(ra, rb, method)), 0.0, atol=1e-12,
                                   err_msg=method)
    h = np.asarray(query.uncertainty(ra, rb, "entropy"))
    assert np.all(h > 1e-3)
    np.testing.assert_allclose(np.asarray(query.uncertainty(ra, rb, "mean_entropy")), h, rtol=1e-5)


# ---- k-center ---------------------------------------------------------------------------

def _clusters():
    rng = np.random.default_rng(11)
    centres = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0]])
    feats = np.repeat(centres, 5, axis=0) + 0.1 * rng.normal(size=(15, 3))
    return feats.astype(np.float32), np.arange(15) // 5


def test_kcenter_avoids_labelled_cluster():
    feats, cluster = _clusters()
    ra = np.zeros((K, 15), np.float32)
    labelled = feats[:5] + np.float32(0.05)
    got = np.asarray(_select(ra, ra, k=2, method="kcenter", key=None, features=feats,
                             labelled_features=labelled))
    assert sorted(cluster[got].tolist()) == [1, 2]


def test_kcenter_without_labelled_covers_every_cluster():
    feats, cluster = _clusters()
    ra = np.zeros((K, 15), np.float32)
    for seed in range(3):
        got = np.asarray(_select(ra, ra, k=3, method="kcenter", key=jax.random.key(seed),
                                 features=feats))
        assert sorted(cluster[got].tolist()) == [0, 1, 2]


@pytest.mark.parametrize("method,k", [("kcenter", 15), ("kcenter_disagreement", 7), ("kcenter_entropy", 7)])
def test_kcenter_indices_distinct_even_for_duplicate_features(method, k):
    ra, rb, _, _ = _ensemble()
    ra, rb = ra[:, :15], rb[:, :15]
    feats = np.zeros((15, F), np.float32)
    got = np.asarray(_select(ra, rb, k=k, method=method, key=jax.random.key(0), features=feats,
                             labelled_features=feats[:2]))
    assert len(set(got.tolist())) == k and got.min() >= 0 and got.max() < 15
    # All distances tie at 0, so picks follow the pool order: index order for kcenter, score
    # order (the higher score first) for the hybrids.
    expected = np.arange(k) if method == "kcenter" else _ref_topk(
        _ref_score(ra, rb, _HYBRID_SCORE[method]), k)
    np.testing.assert_array_equal(got, expected)


# ---- jit and arguments ----------------------------------------------------------------------

@pytest.mark.parametrize("method", query.METHODS)
def test_jit_equals_eager(method):
    ra, rb, feats, labelled = _ensemble(4)
    args = dict(key=jax.random.key(2), features=feats, labelled_features=labelled)
    eager = query.select_queries(ra, rb, TOPK, method, **args)
    np.testing.assert_array_equal(np.asarray(eager),
                                  np.asarray(_select(ra, rb, k=TOPK, method=method, **args)))


def test_candidate_count():
    assert query.DEFAULT_OVERSAMPLING == 10
    assert query.candidate_count(8) == 80
    assert query.candidate_count(8, 2) == 16
    assert query.candidate_count(5, 1.5) == 7
    assert set(query.METHODS) == {"uniform", "disagreement", "entropy", "mean_entropy", "logit",
                                  "probability", "label", "kcenter", "kcenter_disagreement",
                                  "kcenter_entropy"}


@pytest.mark.parametrize("call,field", [
    (lambda a, f: query.select_queries(a, a, 2, "bald"), "method"),
    (lambda a, f: query.uncertainty(a, a, "uniform"), "method"),
    (lambda a, f: query.select_queries(a, a, M + 1, "disagreement"), "k"),
    (lambda a, f: query.select_queries(a, a, 0, "logit"), "k"),
    (lambda a, f: query.select_queries(a, a, M // 2 + 1, "kcenter_entropy", jax.random.key(0), f), "k"),
    (lambda a, f: query.select_queries(a, a[:, :-1], 2, "logit"), "returns_b"),
    (lambda a, f: query.select_queries(a[0], a[0], 2, "logit"), "returns_a"),
    (lambda a, f: query.select_queries(a, a, 2, "kcenter", jax.random.key(0)), "features"),
    (lambda a, f: query.select_queries(a, a, 2, "kcenter", jax.random.key(0), f[:-1]), "features"),
    (lambda a, f: query.select_queries(a, a, 2, "kcenter", jax.random.key(0), f, f[:, :-1]),
     "labelled_features"),
    (lambda a, f: query.select_queries(a, a, 2, "kcenter", None, f), "key"),
    (lambda a, f: query.select_queries(a, a, 2, "uniform"), "key"),
    (lambda a, f: query.candidate_count(4, 0.5), "oversampling"),
    (lambda a, f: query.candidate_count(0), "k"),
    (lambda a, f: query.select_queries(jnp.asarray(a).at[0, 1].set(jnp.nan), a, 2, "disagreement"), "returns_a"),
    (lambda a, f: query.select_queries(a, jnp.asarray(a).at[1, 0].set(jnp.inf), 2, "logit"), "returns_b"),
])
def test_bad_arguments_raise_config_error(call, field):
    ra, _, feats, _ = _ensemble()
    with pytest.raises(ConfigError, match=f"field '{field}'"):
        call(ra, feats)
