"""Plots of scaling results (matplotlib, headless)."""
from __future__ import annotations

import os
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rlhf_jax import scaling  # noqa: E402


def plot_scaling(rows: list[dict], fits: dict, path: str, title: str = "Reward-model test error vs N") -> None:
    """Log–log test error vs N: mean ± std over seeds, fitted curve and 95% band per fit.

    ``fits`` keys are "<condition>/<ensemble|single>[/<size>]"; ensemble lines are solid,
    single-model lines dashed in the same colour. Written atomically to ``path``.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    groups = sorted({name.split("/")[0] + "".join("/" + p for p in name.split("/")[2:]) for name in fits})
    for g, group in enumerate(groups):
        colour = colours[g % len(colours)]
        cond, *size = group.split("/")
        for kind, style, marker in (("ensemble", "-", "o"), ("single", "--", "s")):
            name = "/".join([cond, kind] + size)
            if name not in fits:
                continue
            sel = [r for r in rows if r["condition"] == cond and (not size or r["model_size"] == size[0])
                   and ((r["member"] == "ensemble") == (kind == "ensemble"))]
            ns = np.array(sorted({r["n"] for r in sel}))
            per_n = [np.array([r["test_error"] for r in sel if r["n"] == n]) for n in ns]
            mean = np.array([v.mean() for v in per_n])
            std = np.array([v.std() for v in per_n])
            ax.errorbar(ns, mean, yerr=std, fmt=marker, color=colour, ms=4, capsize=2, alpha=0.8)
            grid = np.geomspace(ns.min(), ns.max(), 100)
            fit = fits[name]
            low, high = scaling.prediction_band(fit, grid)
            label = f"{group} {kind}: α={fit['alpha']:.2f} [{fit['alpha_ci'][0]:.2f}, {fit['alpha_ci'][1]:.2f}]"
            ax.plot(grid, scaling.predict(fit, grid), style, color=colour, label=label)
            ax.fill_between(grid, low, high, color=colour, alpha=0.15, lw=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("preference pairs N")
    ax.set_ylabel("held-out error (1 − accuracy vs gold)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
