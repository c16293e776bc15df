"""Transfer statistics: accuracies, drops, recovery and label savings with bootstrap intervals.

Every quantity is computed once on the full data (the estimate) and once per bootstrap
replicate. A replicate resamples seeds with replacement (the same seeds for every curve, since a
seed fixes its subsets and initialisations across conditions) and test pairs with replacement
(the same target pairs for every target curve; the source pairs separately). Intervals are
percentile intervals of the replicates. Written by hand: scipy.stats.bootstrap resamples one
axis of one statistic, not two paired axes shared by many statistics.

Curves are read by first crossing with log-linear interpolation between grid points, never
extrapolated: a level not reached on the grid is ``inf`` (more than the largest n), one reached
at the first grid point is that point (at most it). ``grid_edge`` names those two cases, so a
report can print them as bounds ("≤ 100", "> 10,000") rather than as estimates.
"""
from __future__ import annotations

import numpy as np

CI = 0.95


def decided_correct(prob_a: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Per decided test pair (label ≠ 0.5): 1 if the ensemble's P(a ≻ b) is on the label's side,
    0 if not, 0.5 for a predicted tie. prob_a [..., T], label [T] → [..., T_decided]."""
    label = np.asarray(label, np.float64)
    decided = np.abs(label - 0.5) > 1e-6
    p = np.asarray(prob_a, np.float64)[..., decided]
    y = label[decided] > 0.5
    return np.where(p == 0.5, 0.5, (p > 0.5) == y).astype(np.float32)


class Resampler:
    """Bootstrap weights shared by every statistic of one run: seeds [B, S], pairs per set [B, T]."""

    def __init__(self, n_seeds: int, n_replicates: int = 1000, seed: int = 0):
        self.n_seeds, self.n_replicates = n_seeds, n_replicates
        self._rng = np.random.default_rng(seed)
        self.seed_w = self._counts(n_seeds)
        self._pair_w: dict[str, np.ndarray] = {}

    def _counts(self, n: int) -> np.ndarray:
        return self._rng.multinomial(n, np.full(n, 1.0 / n), size=self.n_replicates).astype(np.float32)

    def pairs(self, name: str, n_pairs: int) -> np.ndarray:
        if name not in self._pair_w:
            self._pair_w[name] = self._counts(n_pairs)
        return self._pair_w[name]

    def accuracy(self, correct: np.ndarray, pair_set: str) -> tuple[np.ndarray, np.ndarray]:
        """correct [S, N, T] → (estimate [N], replicates [B, N]) of the seed-mean accuracy."""
        c = np.asarray(correct, np.float32)
        s, _, t = c.shape
        if s != self.n_seeds:
            raise ValueError(f"correct has {s} seeds, the resampler {self.n_seeds}")
        wp = self.pairs(pair_set, t)
        reps = np.einsum("bs,snt,bt->bn", self.seed_w, c, wp) / (s * t)
        return c.mean((0, 2)), reps


def interval(replicates: np.ndarray, ci: float = CI) -> list[float]:
    """Percentile interval over the replicate axis (0); infinities are kept as bounds."""
    q = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]
    x = np.asarray(replicates, np.float64)
    with np.errstate(invalid="ignore"):  # interpolating between two infinite replicates is inf − inf
        linear = np.percentile(x, q, axis=0)
    above = np.percentile(x, q, axis=0, method="higher")
    return np.where(np.isnan(linear) & np.isinf(above), above, linear).tolist()


def first_crossing(n_values, acc: np.ndarray, level: np.ndarray) -> np.ndarray:
    """n at which the curve acc [..., N] over n_values [N] first reaches level [...].

    Log-linear interpolation between grid points; n_values[0] when the first point already
    reaches it; inf when no point does.
    """
    n = np.asarray(n_values, np.float64)
    acc = np.asarray(acc, np.float64)
    level = np.broadcast_to(np.asarray(level, np.float64), acc.shape[:-1])
    reached = acc >= level[..., None]
    first = np.argmax(reached, axis=-1)
    out = np.full(acc.shape[:-1], np.inf)
    hit = reached.any(-1)
    at_start = hit & (first == 0)
    out[at_start] = n[0]
    mid = hit & (first > 0)
    if mid.any():
        i = first[mid]
        a0 = np.take_along_axis(acc[mid], (i - 1)[:, None], -1)[:, 0]
        a1 = np.take_along_axis(acc[mid], i[:, None], -1)[:, 0]
        frac = np.where(a1 > a0, (level[mid] - a0) / np.where(a1 > a0, a1 - a0, 1.0), 1.0)
        out[mid] = np.exp(np.log(n[i - 1]) + np.clip(frac, 0, 1) * (np.log(n[i]) - np.log(n[i - 1])))
    return out


def n_to_recover(n_values, finetune: np.ndarray, zero_shot: np.ndarray, source: np.ndarray,
                 fraction: float) -> np.ndarray:
    """Target pairs for fine-tuning to recover ``fraction`` of the zero-shot drop.

    finetune [..., N]; zero_shot, source [...]. Level = zero_shot + fraction·(source − zero_shot);
    0 where there is no drop to recover.
    """
    drop = np.asarray(source) - np.asarray(zero_shot)
    n = first_crossing(n_values, finetune, np.asarray(zero_shot) + fraction * drop)
    return np.where(drop <= 0, 0.0, n)


def scratch_equivalent(n_values, scratch: np.ndarray, finetune: np.ndarray) -> np.ndarray:
    """Scratch pairs needed to match fine-tuning at each n: [..., N] (inf = beyond the grid)."""
    return np.stack([first_crossing(n_values, scratch, finetune[..., j]) for j in range(len(n_values))], -1)


def label_saving(n_values, n_equivalent: np.ndarray) -> np.ndarray:
    """1 − n / n_scratch_equivalent, with n_equivalent clipped to the grid: a conservative value
    (beyond the grid counts as the largest n, so a saving is never credited past what was run)."""
    n = np.asarray(n_values, np.float64)
    eq = np.clip(np.asarray(n_equivalent, np.float64), n[0], n[-1])
    return 1.0 - n / eq


def grid_edge(n: float, n_values) -> str | None:
    """Where an n read off the grid by ``first_crossing`` sits: "below_grid" when it is the first
    grid point (the level was already reached there, so the true n is at most that), "above_grid"
    when it is inf (never reached, so more than the largest n), None for an interpolated estimate
    (and for 0, "no drop to recover", and nan)."""
    if np.isinf(n):
        return "above_grid"
    if n == n_values[0]:
        return "below_grid"
    return None


def saving_bound(scratch_edge: str | None) -> str | None:
    """What a label saving 1 − n / n_scratch is when n_scratch sits at a grid edge. Beyond the grid,
    n_scratch is clipped to the largest n, so the true saving is "at_least" the value; at the first
    grid point, n_scratch may be smaller still, so the true saving is "at_most" the value."""
    return {"above_grid": "at_least", "below_grid": "at_most"}.get(scratch_edge)


def verdict(low: float, high: float, *, at_least: float | None = None, at_most: float | None = None) -> str:
    """holds / fails / inconclusive for the claim ``at_least ≤ value ≤ at_most`` given its interval.

    holds: the whole interval satisfies the claim; fails: the whole interval violates it (entirely
    below at_least or above at_most); otherwise inconclusive.
    """
    if at_least is None and at_most is None:
        raise ValueError("a claim needs at_least and/or at_most")
    if any(np.isnan(v) for v in (low, high)):
        return "inconclusive"
    ok_low = at_least is None or low >= at_least
    ok_high = at_most is None or high <= at_most
    if ok_low and ok_high:
        return "holds"
    if (at_least is not None and high < at_least) or (at_most is not None and low > at_most):
        return "fails"
    return "inconclusive"


def bounded_verdict(low: float, high: float, bounds=(None, None), **criterion) -> str:
    """``verdict`` when an interval end may be a bound, not an estimate: an upper end that is only
    "at_least" its value, or a lower end only "at_most" its value, is open on that side, so a
    claim that needs it can be neither established nor refuted by it."""
    low_bound, high_bound = bounds
    if high_bound == "at_least":
        high = np.inf
    if low_bound == "at_most":
        low = -np.inf
    return verdict(low, high, **criterion)


def verdict_at_both_ends(strict: str, lenient: str, strict_n: int, lenient_n: int) -> str:
    """Where a claim stated over a range of n ("500–1,000 pairs are enough") holds, given its
    verdict at the strict end (the smaller n) and at the lenient end (the larger n)."""
    if strict == "holds" and lenient == "holds":
        return "holds at both ends"
    if lenient == "holds":
        return f"holds only at the lenient end (n={lenient_n:,})"
    if strict == "holds":
        return f"holds only at the strict end (n={strict_n:,})"
    return "holds at neither end"
