"""Power-law scaling fits err(N) = E + A·N^(−α) with bootstrap confidence intervals.

The point estimate follows Chinchilla's approach 3 (Hoffmann et al., 2022): minimise a Huber
loss between log err and log(E + A·N^−α) = logaddexp(e, a − α·log N), with E = exp(e),
A = exp(a), by L-BFGS (scipy) from a grid of initial values, keeping the best. Bootstrap
replicates resample the (N, seed) points with replacement and are refitted all at once by a
vectorised Levenberg–Marquardt / IRLS solver written here (NumPy, [R, 3] parameters, batched
3×3 solves), started from the point estimate — no library fits this form vectorised, and a
Python loop of 1,000 L-BFGS fits would dominate the sweep's post-processing.
"""
from __future__ import annotations

import itertools

import numpy as np
from scipy import optimize, special

_FLOOR = -30.0  # log E used when E is fixed to 0 (exp(-30) is far below any measured error)


def _huber(r, delta):
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))


def _model(theta, log_n, fix_e):
    """log err predicted and its Jacobian w.r.t. theta = (e, a, α); theta [..., 3], log_n [M]."""
    e = np.full_like(theta[..., 0], _FLOOR) if fix_e else theta[..., 0]
    power = theta[..., 1, None] - theta[..., 2, None] * log_n  # [..., M]
    pred = np.logaddexp(e[..., None], power)
    w_power = special.expit(power - e[..., None])  # d pred / d power
    jac = np.stack([(0.0 if fix_e else 1.0) * (1 - w_power), w_power, -w_power * log_n], axis=-1)
    return pred, jac


def _objective(theta, log_n, log_err, weight, delta, fix_e):
    pred, jac = _model(theta, log_n, fix_e)
    r = pred - log_err
    psi = np.clip(r, -delta, delta)  # Huber derivative
    total = weight.sum()
    return float(np.sum(weight * _huber(r, delta)) / total), (weight * psi) @ jac / total


def _point_fit(log_n, log_err, delta, fix_e):
    lo = float(np.min(log_err))
    es = [_FLOOR] if fix_e else [lo - 3.0, lo - 1.0, lo - 0.3]
    grid = itertools.product(es, [lo, lo + 2.0, lo + 5.0], [0.1, 0.4, 0.8])
    weight = np.ones_like(log_n)
    best = None
    for start in grid:
        res = optimize.minimize(_objective, np.array(start), args=(log_n, log_err, weight, delta, fix_e),
                                jac=True, method="L-BFGS-B")
        if best is None or res.fun < best.fun:
            best = res
    return best.x, best.fun


def _bootstrap_fits(theta0, log_n, log_err, weights, delta, fix_e, iters=100):
    """Vectorised IRLS + Levenberg–Marquardt: weights [R, M] -> thetas [R, 3]."""
    r_count = weights.shape[0]
    theta = np.broadcast_to(theta0, (r_count, 3)).copy()
    damping = np.full(r_count, 1e-3)
    eye = np.eye(3)
    free = np.array([0.0 if fix_e else 1.0, 1.0, 1.0])

    def cost(th):
        pred, _ = _model(th, log_n, fix_e)
        return np.sum(weights * _huber(pred - log_err, delta), axis=1)

    current = cost(theta)
    for _ in range(iters):
        pred, jac = _model(theta, log_n, fix_e)
        r = pred - log_err
        # IRLS weights turn the Huber loss into a reweighted least-squares step.
        irls = weights * np.where(np.abs(r) <= delta, 1.0, delta / np.maximum(np.abs(r), 1e-12))
        jtj = np.einsum("rm,rmi,rmj->rij", irls, jac, jac) * free[:, None] * free[None, :]
        jtr = np.einsum("rm,rmi,rm->ri", irls, jac, r) * free
        lhs = jtj + damping[:, None, None] * (np.einsum("rii->ri", jtj)[:, :, None] * eye + 1e-6 * eye) + 1e-9 * eye
        step = np.linalg.solve(lhs + (1 - free)[None, :, None] * eye, -jtr[..., None])[..., 0]
        candidate = theta + step
        new = cost(candidate)
        better = new < current
        theta = np.where(better[:, None], candidate, theta)
        current = np.where(better, new, current)
        damping = np.clip(np.where(better, damping * 0.3, damping * 10.0), 1e-7, 1e7)
    return theta


def _degenerate(log_n, weights):
    """Replicates that drew fewer than two distinct N cannot identify a slope."""
    distinct = np.unique(log_n, return_inverse=True)[1]
    per_n = np.zeros((weights.shape[0], distinct.max() + 1))
    np.add.at(per_n.T, distinct, weights.T)
    return (per_n > 0).sum(1) < 2


def fit_power_law(n, err, *, fix_e: bool = False, n_bootstrap: int = 1000, huber_delta: float = 1e-3,
                  seed: int = 0, ci: float = 0.95) -> dict:
    """Fits err(N) = E + A·N^(−α) to points (n [M], err [M]) and bootstraps intervals.

    ``fix_e=True`` fits the pure form err = A·N^(−α) (E = 0; equivalently accuracy-gap ∝ N^−α).
    Points are typically one per (N, seed); the bootstrap resamples points with replacement.
    Returns a dict with ``E``, ``A``, ``alpha``, ``E_ci``, ``A_ci``, ``alpha_ci`` ([low, high]),
    ``loss``, ``n_points`` and ``bootstrap`` (per-replicate E, A, alpha, for derived intervals).
    """
    n = np.asarray(n, np.float64).ravel()
    err = np.asarray(err, np.float64).ravel()
    if n.shape != err.shape or n.size < 3:
        raise ValueError(f"fit_power_law needs ≥ 3 matching (n, err) points, got {n.size} and {err.size}")
    if not np.all(np.isfinite(n)):
        raise ValueError(f"fit_power_law: field 'n': expected finite N > 0, got {n[~np.isfinite(n)][0]!r}")
    if np.any(n <= 0) or np.any(err <= 0) or not np.all(np.isfinite(err)):
        raise ValueError("fit_power_law needs n > 0 and finite err > 0 (a zero error has no logarithm; "
                         "clip it, e.g. to 1/(2·test pairs), before fitting)")
    if np.unique(n).size < 2:
        raise ValueError("fit_power_law needs at least two distinct N values")
    log_n, log_err = np.log(n), np.log(err)
    theta, loss = _point_fit(log_n, log_err, huber_delta, fix_e)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n.size, np.full(n.size, 1.0 / n.size), size=n_bootstrap).astype(np.float64)
    boot = _bootstrap_fits(theta, log_n, log_err, counts, huber_delta, fix_e)
    boot[_degenerate(log_n, counts)] = np.nan
    e_boot = np.zeros(n_bootstrap) if fix_e else np.exp(boot[:, 0])
    a_boot, alpha_boot = np.exp(boot[:, 1]), boot[:, 2]
    q = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]
    return {
        "E": 0.0 if fix_e else float(np.exp(theta[0])), "A": float(np.exp(theta[1])), "alpha": float(theta[2]),
        "E_ci": np.nanpercentile(e_boot, q).tolist(),
        "A_ci": np.nanpercentile(a_boot, q).tolist(),
        "alpha_ci": np.nanpercentile(alpha_boot, q).tolist(),
        "loss": float(loss), "n_points": int(n.size), "fix_e": bool(fix_e), "ci": ci,
        "bootstrap": {"E": e_boot.tolist(), "A": a_boot.tolist(), "alpha": alpha_boot.tolist()},
    }


def predict(fit: dict, n) -> np.ndarray:
    """err(N) under a fit's point estimate."""
    return fit["E"] + fit["A"] * np.asarray(n, np.float64) ** (-fit["alpha"])


def prediction_band(fit: dict, n, ci: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise [low, high] of err(N) over the bootstrap replicates."""
    ci = fit["ci"] if ci is None else ci
    b = fit["bootstrap"]
    e, a, alpha = (np.asarray(b[k])[:, None] for k in ("E", "A", "alpha"))
    curves = e + a * np.asarray(n, np.float64)[None, :] ** (-alpha)
    low, high = np.nanpercentile(curves, [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100], axis=0)
    return low, high


def n_for_target(fit: dict, target_err: float, ci: float | None = None) -> dict:
    """N needed to reach ``target_err``: N = (A / (target − E))^(1/α), with a bootstrap interval.

    Replicates whose floor E is at or above the target never reach it and count as N = inf.
    """
    ci = fit["ci"] if ci is None else ci

    def solve(e, a, alpha):
        e, a, alpha = np.asarray(e, float), np.asarray(a, float), np.asarray(alpha, float)
        gap = target_err - e
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return np.where((gap > 0) & (alpha > 0), (a / np.where(gap > 0, gap, 1.0)) ** (1 / alpha), np.inf)

    b = fit["bootstrap"]
    samples = solve(b["E"], b["A"], b["alpha"])
    q = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]
    with np.errstate(invalid="ignore"):  # percentiles over replicates that never reach the target are inf
        n_ci = np.nanpercentile(samples, q).tolist()
    return {"target_err": target_err, "N": float(solve(fit["E"], fit["A"], fit["alpha"])),
            "N_ci": n_ci, "reachable_fraction": float(np.isfinite(samples[~np.isnan(samples)]).mean())}


def alpha_difference(fit_1: dict, fit_2: dict, ci: float | None = None) -> dict:
    """α₁ − α₂ with an interval from the two fits' independent bootstrap replicates."""
    ci = fit_1["ci"] if ci is None else ci
    a1, a2 = np.asarray(fit_1["bootstrap"]["alpha"]), np.asarray(fit_2["bootstrap"]["alpha"])
    m = min(len(a1), len(a2))
    diff = a1[:m] - a2[:m]
    q = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]
    return {"delta_alpha": fit_1["alpha"] - fit_2["alpha"], "delta_alpha_ci": np.nanpercentile(diff, q).tolist(),
            "p_alpha1_greater": float(np.mean(diff[~np.isnan(diff)] > 0))}


def saturation_n(fit: dict, gain: float = 0.01, ci: float | None = None) -> dict:
    """The N beyond which one more doubling cuts the error by less than ``gain``.

    err(N) − err(2N) = A·N^−α·(1 − 2^−α) < gain  ⇔  N > (A·(1 − 2^−α) / gain)^(1/α), per
    bootstrap replicate for the interval; a replicate with α ≤ 0 never gains and counts as
    N = 0 (already saturated). The floor E does not enter: it shifts both errors alike.
    """
    ci = fit["ci"] if ci is None else ci

    def solve(a, alpha):
        a, alpha = np.asarray(a, float), np.asarray(alpha, float)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            n = (a * (1 - 2.0 ** -alpha) / gain) ** (1 / alpha)
        return np.where(alpha > 0, np.maximum(n, 1.0), 0.0)

    samples = solve(fit["bootstrap"]["A"], fit["bootstrap"]["alpha"])
    q = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]
    return {"gain": gain, "N": float(solve(fit["A"], fit["alpha"])), "N_ci": np.nanpercentile(samples, q).tolist()}
