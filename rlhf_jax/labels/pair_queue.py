"""The labelling queue: which pairs a person sees, in which order, with gold questions mixed in.

    items = build_queue(segments, (train_a, train_b), (val_a, val_b), n_pairs=50, val_share=0.2,
                        method="uniform", seed=0, gold=(gold_a, gold_b, gold_labels), gold_rate=0.12)

Pairs come from the candidate pools (the train and validation pools a sweep on the same dataset
and pool settings draws, so a finished label file answers pairs that sweep asks for); the order
within each pool is `rlhf_jax.query.select_queries` (`uniform`, or `kcenter` on the pairs'
features: diverse pairs first, without a reward model). Validation pairs are spread evenly
through the queue at `val_share`, and gold pairs at `gold_rate` of all items: one gold item in each
block of about 1/gold_rate items, at a seeded position in its block, so every prefix of the
queue holds gold_rate of gold within one item and the position gives nothing away. Each pair is
shown left/right in a seeded random orientation, so a side preference cannot pass for quality.
Everything is a function of the inputs and `seed`: the same config gives the same queue.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np

QUEUE_METHODS = ("uniform", "kcenter")


@dataclasses.dataclass(frozen=True)
class QueueItem:
    """One question: SegmentTable rows shown left (`row_a`) and right (`row_b`)."""
    item_id: str
    row_a: int
    row_b: int
    pool: str            # "train", "val" or "gold"
    gold_label: float    # the oracle's answer for (left, right) of a gold item, NaN otherwise

    @property
    def gold(self) -> bool:
        return self.pool == "gold"


def spread_positions(n_total: int, n_marked: int, rng: np.random.Generator) -> np.ndarray:
    """[n_total] bool with n_marked True: one in each of n_marked near-equal blocks, at a random
    place in its block (so any prefix of length p holds n_marked/n_total · p ± 1 marks)."""
    marked = np.zeros(n_total, bool)
    if n_marked <= 0:
        return marked
    edges = np.round(np.linspace(0, n_total, n_marked + 1)).astype(np.int64)
    marked[[int(rng.integers(lo, hi)) for lo, hi in zip(edges[:-1], edges[1:])]] = True
    return marked


def pair_features(segments, rows_a, rows_b) -> np.ndarray:
    """[P, 2D] per-pair features for k-center: both segments' mean observations, side-sorted so a
    pair and its mirror are the same point."""
    mean = np.asarray(segments.obs, np.float32).mean(1)
    fa, fb = mean[np.asarray(rows_a)], mean[np.asarray(rows_b)]
    first = (fa.sum(-1) <= fb.sum(-1))[:, None]
    return np.concatenate([np.where(first, fa, fb), np.where(first, fb, fa)], -1)


def select_order(segments, rows_a, rows_b, k: int, method: str, seed: int) -> np.ndarray:
    """Indices [k] of the candidate pairs to ask, in asking order (`query.select_queries`)."""
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    from rlhf_jax import query  # pylint: disable=g-import-not-at-top
    m = len(rows_a)
    if k == 0:
        return np.zeros(0, np.int64)
    no_model = jnp.zeros((1, m), jnp.float32)  # neither method reads predicted returns
    feats = jnp.asarray(pair_features(segments, rows_a, rows_b)) if method == "kcenter" else None
    if feats is not None:  # standardised so no single feature dominates the distances
        feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
    picked = query.select_queries(no_model, no_model, k, method, jax.random.PRNGKey(seed), features=feats)
    return np.asarray(picked, np.int64)


def _item_id(segments, row_a: int, row_b: int, pool: str, seed: int) -> str:
    """An opaque id: it names the question without telling a gold item from another."""
    ids, ep, st = segments.episode_ids, segments.episode_index, segments.start
    text = f"{seed}|{ids[int(ep[row_a])]}:{int(st[row_a])}|{ids[int(ep[row_b])]}:{int(st[row_b])}|{pool}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def n_gold_items(n_pairs: int, gold_rate: float) -> int:
    """Gold items so that they are gold_rate of all items (as `label_pools.n_gold_pairs`)."""
    return int(math.ceil(gold_rate / (1.0 - gold_rate) * n_pairs)) if gold_rate > 0 else 0


def build_queue(segments, train: tuple, val: tuple, *, n_pairs: int, val_share: float, method: str,
                seed: int, gold: tuple | None = None, gold_rate: float = 0.0) -> list[QueueItem]:
    """The queue (module docstring). train, val: (rows_a, rows_b) candidate pools; gold:
    (rows_a, rows_b, oracle label of a vs b) with at least n_gold_items(n_pairs, gold_rate) pairs."""
    if method not in QUEUE_METHODS:
        raise ValueError(f"build_queue: field 'method': expected one of {QUEUE_METHODS}, got {method!r}")
    rng = np.random.default_rng([seed, 23])
    n_val = int(round(n_pairs * val_share))
    picks = {"train": select_order(segments, *train, n_pairs - n_val, method, seed),
             "val": select_order(segments, *val, n_val, method, seed + 1)}
    is_val = spread_positions(n_pairs, n_val, rng)
    next_of = {"val": iter(picks["val"]), "train": iter(picks["train"])}
    order = [(p, int(next(next_of[p]))) for p in np.where(is_val, "val", "train")]
    n_gold = n_gold_items(n_pairs, gold_rate)
    is_gold = spread_positions(n_pairs + n_gold, n_gold, rng)
    gold_pick = rng.permutation(len(gold[0]))[:n_gold] if n_gold else []
    pools = {"train": train, "val": val}
    items, pairs = [], iter(order)
    gold_iter = iter(gold_pick)
    for slot in range(n_pairs + n_gold):
        if is_gold[slot]:
            g = next(gold_iter)
            a, b, lab = int(gold[0][g]), int(gold[1][g]), float(gold[2][g])
            pool = "gold"
        else:
            pool, i = next(pairs)
            pool = str(pool)
            a, b, lab = int(pools[pool][0][i]), int(pools[pool][1][i]), math.nan
        if rng.random() < 0.5:  # show mirrored: the answer for (b, a) is 1 − answer for (a, b)
            a, b, lab = b, a, 1.0 - lab
        items.append(QueueItem(_item_id(segments, a, b, pool, seed), a, b, pool, lab))
    return items
