"""Does a reward model order episodes as the gold rubric does, off its own test pairs?

A reward model's test accuracy is measured on pairs like the ones it was trained on (segments of
π_SFT's rollouts). What PPO needs is different: the right order on the episodes the fine-tuned
policy produces, and between π_SFT and a better policy. Both are read from per-episode returns,
proxy (the reward model's Σ_t r) and gold, of evaluation rollouts:

* ``episode_pair_accuracy``: every pair of one policy's episodes (one arm × task);
* ``paired_accuracy``: episode e of policy A against episode e of policy B, started from the same
  initial state (the pipeline evaluates every policy on the same states), e.g. the scripted
  expert against π_SFT.

A pair counts as right when the proxy difference has the gold difference's sign; pairs that gold
ties are skipped, and a proxy tie on a gold-decided pair counts as wrong.
"""
from __future__ import annotations

import numpy as np


def _agreement(d_proxy: np.ndarray, d_gold: np.ndarray) -> float:
    decided = d_gold != 0
    if not decided.any():
        return float("nan")
    return float(np.mean(np.sign(d_proxy[decided]) == np.sign(d_gold[decided])))


def episode_pair_accuracy(proxy, gold) -> float:
    """Share of the E·(E−1)/2 episode pairs of one policy, proxy [E] and gold [E] returns, that the
    reward model orders as gold does (NaN when gold ties every pair)."""
    proxy, gold = np.asarray(proxy, np.float64), np.asarray(gold, np.float64)
    i, j = np.triu_indices(len(gold), 1)
    return _agreement(proxy[i] - proxy[j], gold[i] - gold[j])


def paired_accuracy(proxy_a, gold_a, proxy_b, gold_b) -> float:
    """Share of same-initial-state episode pairs (a_e, b_e), each [E], that the reward model
    orders as gold does (NaN when gold ties every pair)."""
    pa, ga, pb, gb = (np.asarray(x, np.float64) for x in (proxy_a, gold_a, proxy_b, gold_b))
    if not pa.shape == ga.shape == pb.shape == gb.shape:
        raise ValueError(f"paired_accuracy: expected four returns of one shape, got {pa.shape}, {ga.shape}, "
                         f"{pb.shape}, {gb.shape}")
    return _agreement(pa - pb, ga - gb)
