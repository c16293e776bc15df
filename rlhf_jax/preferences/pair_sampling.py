"""Uniform sampling of distinct same-group pairs of segment rows (numpy, no JAX).

Used by the preference splits (`rlhf_jax.preferences.segments`) and the label pools; a pair is
unordered, identified by `pair_key`, so pairs already drawn or labelled can be excluded.
"""
from __future__ import annotations

import numpy as np

from rlhf_jax.errors import SplitError, describe


def pair_pool(rows: np.ndarray, group: np.ndarray):
    """Sort rows by group; returns sorted rows, group starts/sizes, distinct pairs per group."""
    order = np.argsort(group, kind="stable")
    rows, g = rows[order], group[order]
    _, start, size = np.unique(g, return_index=True, return_counts=True)
    return rows, start, size, size * (size - 1) // 2


def pair_key(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Order-free int64 key of a pair of rows."""
    return np.minimum(a, b) * (1 << 31) + np.maximum(a, b)


def sample_pairs(rows: np.ndarray, group: np.ndarray, n: int, rng: np.random.Generator,
                 exclude: set | None = None) -> tuple[np.ndarray, np.ndarray]:
    """n distinct unordered pairs of `rows` with equal `group`, uniform over all such pairs.

    Pairs whose key (see pair_key) is in `exclude` are not drawn. Orientation (which is a) is
    random. Raises SplitError if fewer than n such pairs exist.
    """
    rows, start, size, pool = pair_pool(np.asarray(rows, np.int64), np.asarray(group, np.int64))
    total = int(pool.sum())
    seen = set() if exclude is None else set(exclude)
    if n > total - len(seen):
        raise SplitError(describe("sample_pairs", "n", f"at most the {total - len(seen)} distinct "
                                  "same-group pairs available", n))
    if 2 * (n + len(seen)) > total:
        # Dense request: rejection sampling would stall, so enumerate the pool and permute it.
        parts = [np.stack(np.triu_indices(int(k), 1)) + st for st, k in zip(start, size) if k > 1]
        ij = np.concatenate(parts, 1) if parts else np.zeros((2, 0), np.int64)
        a, b = rows[ij[0]], rows[ij[1]]
        if seen:
            ok = ~np.isin(pair_key(a, b), np.fromiter(seen, np.int64, len(seen)))
            a, b = a[ok], b[ok]
        pick = rng.permutation(len(a))[:n]
        swap = rng.random(n) < 0.5
        a, b = a[pick], b[pick]
        return np.where(swap, b, a), np.where(swap, a, b)
    out_a, out_b, have = [], [], 0
    while have < n:
        m = int((n - have) * 1.2) + 16
        g = rng.choice(len(pool), size=m, p=pool / total)
        i = rng.integers(0, size[g])
        j = (i + 1 + rng.integers(0, size[g] - 1)) % size[g]  # j != i, uniform over the others
        a, b = rows[start[g] + i], rows[start[g] + j]
        key = pair_key(a, b)
        _, first = np.unique(key, return_index=True)
        first.sort()
        if seen:
            first = first[~np.isin(key[first], np.fromiter(seen, np.int64, len(seen)))]
        first = first[: n - have]
        seen.update(key[first].tolist())
        out_a.append(a[first])
        out_b.append(b[first])
        have += len(first)
    return np.concatenate(out_a), np.concatenate(out_b)
