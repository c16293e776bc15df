"""Intervals over training seeds for RLHF results, and the share of PPO-on-gold's gain recovered.

A learned-reward PPO result is indexed by (reward-model seed r, PPO seed p). The independent
units are nested: a reward-model seed draws its own preference pairs, labels and initialisation
(a cluster), and PPO seeds vary within it. Episodes are not independent units at all: they share
a policy. The interval therefore comes from a two-stage (cluster) bootstrap: resample R reward-model
seeds with replacement, then, within each one drawn, its P PPO seeds with replacement, and take
the mean (Davison & Hinkley 1997, §3.8, "resampling both stages"). ``scipy.stats.bootstrap``
resamples one axis of exchangeable observations, so the nested scheme is written here.

    cluster_interval(gold [R, P])                  -> {"mean", "ci95", "half_width", ...}
    fraction_recovered(rlhf [R, P], sft, gold [G]) -> (gold(rlhf) − gold(sft)) / (gold(gold) − gold(sft))
    relative_reduction(on [R, P], off [R, P])      -> 1 − mean(on) / mean(off), paired resamples
    t_interval(x [seeds])                          -> {"mean", "ci95"} (one level of seeds)

``sft`` is π_SFT's evaluation (one deterministic policy on fixed initial states: a constant);
the PPO-on-gold runs ``gold`` [G] are independent seeds of their own, resampled alongside.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

CI = 0.95
N_BOOTSTRAP = 10_000


def cluster_bootstrap_means(values, n_bootstrap: int = N_BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """[n_bootstrap] means of two-stage resamples of ``values`` [R, P] (clusters × members):
    R clusters drawn with replacement, then P members drawn with replacement within each."""
    values = np.asarray(values, np.float64)
    if values.ndim != 2 or min(values.shape) < 1:
        raise ValueError(f"values: expected a [clusters, members] array, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("values: expected finite numbers, got NaN or inf")
    rng = np.random.default_rng(seed)
    r, p = values.shape
    clusters = rng.integers(0, r, (n_bootstrap, r))
    members = rng.integers(0, p, (n_bootstrap, r, p))
    return values[clusters[..., None], members].mean((1, 2))


def percentile_interval(replicates, ci: float = CI) -> list[float]:
    """The central ``ci`` percentile interval of bootstrap replicates."""
    lo, hi = np.quantile(np.asarray(replicates, np.float64), [(1 - ci) / 2, (1 + ci) / 2])
    return [float(lo), float(hi)]


def cluster_interval(values, n_bootstrap: int = N_BOOTSTRAP, seed: int = 0, ci: float = CI) -> dict:
    """Mean of ``values`` [R, P] with its two-stage bootstrap interval: {"mean", "ci95",
    "half_width" (half the interval's width), "clusters" R, "members" P}."""
    values = np.asarray(values, np.float64)
    lo, hi = percentile_interval(cluster_bootstrap_means(values, n_bootstrap, seed), ci)
    return {"mean": float(values.mean()), "ci95": [lo, hi], "half_width": (hi - lo) / 2,
            "clusters": int(values.shape[0]), "members": int(values.shape[1])}


def fraction_recovered(rlhf, sft: float, gold, n_bootstrap: int = N_BOOTSTRAP, seed: int = 0,
                       ci: float = CI) -> dict:
    """Share of PPO-on-gold's gain over π_SFT that PPO on a learned reward recovers.

    rlhf [R, P]: gold return of PPO-RLHF per (reward-model seed, PPO seed); sft: π_SFT's gold
    return; gold [G]: PPO-on-gold's gold return per PPO seed. Estimate (mean(rlhf) − sft) /
    (mean(gold) − sft); its interval resamples rlhf in two stages and gold over its seeds in the
    same replicate. {"fraction", "ci95", "gain_rlhf", "gain_gold"}; the fraction is NaN when
    PPO-on-gold gains nothing (no bound to recover).
    """
    gold = np.asarray(gold, np.float64).ravel()
    rlhf_means = cluster_bootstrap_means(rlhf, n_bootstrap, seed)
    rng = np.random.default_rng(seed + 1)
    gold_means = gold[rng.integers(0, len(gold), (n_bootstrap, len(gold)))].mean(1)
    gain_rlhf, gain_gold = float(np.mean(rlhf)) - sft, float(gold.mean()) - sft
    if gain_gold <= 0:
        return {"fraction": float("nan"), "ci95": [float("nan")] * 2, "gain_rlhf": gain_rlhf, "gain_gold": gain_gold}
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = (rlhf_means - sft) / (gold_means - sft)
    return {"fraction": gain_rlhf / gain_gold, "ci95": percentile_interval(ratios[np.isfinite(ratios)], ci),
            "gain_rlhf": gain_rlhf, "gain_gold": gain_gold}


def relative_reduction(on, off, claim: tuple[float, float] | None = None, n_bootstrap: int = N_BOOTSTRAP,
                       seed: int = 0, ci: float = CI) -> dict:
    """How much a treatment cuts a rate: 1 − mean(on) / mean(off), for paired runs ``on`` and
    ``off`` [R, P] (same reward-model seed and PPO seed at each index). Each replicate draws the
    same clusters and members for both (the same bootstrap seed), so the pairing is kept.
    {"reduction", "ci95"}; NaN when ``off`` is zero (nothing to cut). With a claimed range
    ``claim`` (low, high), also {"claim", "verdict"}: ``interval_vs_range`` of the interval, or
    "not measurable" when it is NaN."""
    off_mean = float(np.mean(off))
    if off_mean <= 0:
        out = {"reduction": float("nan"), "ci95": [float("nan")] * 2}
    else:
        on_means = cluster_bootstrap_means(on, n_bootstrap, seed)
        off_means = cluster_bootstrap_means(off, n_bootstrap, seed)
        with np.errstate(divide="ignore", invalid="ignore"):
            reductions = 1.0 - on_means / off_means
        out = {"reduction": 1.0 - float(np.mean(on)) / off_mean,
               "ci95": percentile_interval(reductions[np.isfinite(reductions)], ci)}
    if claim is not None:
        lo, hi = out["ci95"]
        out["claim"] = list(claim)
        out["verdict"] = interval_vs_range(lo, hi, *claim) if np.isfinite([lo, hi]).all() else "not measurable"
    return out


def t_interval(x, ci: float = CI) -> dict:
    """Mean of ``x`` [seeds] with its Student-t interval over seeds (``ci`` = 0.95: the 95% one),
    for results with one level of independent seeds: {"mean", "ci95"}."""
    x = np.asarray(x, np.float64)
    if x.ndim != 1 or len(x) < 2:
        raise ValueError(f"x: expected a [seeds] array of at least two seeds, got shape {x.shape}")
    half = stats.t.ppf((1 + ci) / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return {"mean": float(x.mean()), "ci95": [float(x.mean() - half), float(x.mean() + half)]}


def interval_text(ci: dict) -> str:
    """A table cell of a t_interval result: 'mean [low, high]' to 3 decimals."""
    return f"{ci['mean']:.3f} [{ci['ci95'][0]:.3f}, {ci['ci95'][1]:.3f}]"


def seeds_text(x) -> str:
    """A table cell of per-seed values: their mean and Student-t interval, or the value alone when
    there is one seed (no interval to give)."""
    return f"{x[0]:.3f}" if len(x) < 2 else interval_text(t_interval(x))


def interval_vs_range(low: float, high: float, range_low: float, range_high: float) -> str:
    """Where an interval [low, high] lies against a claimed range: 'inside' it, wholly 'above' or
    'below' it, or 'overlaps' (neither inside nor disjoint, so not decisive)."""
    if range_low <= low and high <= range_high:
        return "inside"
    if low > range_high:
        return "above"
    if high < range_low:
        return "below"
    return "overlaps"
