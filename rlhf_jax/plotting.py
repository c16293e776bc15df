"""Plots of scaling results, and the figure helpers every experiment's plots use.

Figures are built with matplotlib's object API (``matplotlib.figure.Figure``), not pyplot: no
GUI backend is needed on a headless machine, and importing this module never changes the
backend of the caller (a notebook keeps its inline plots).
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

from rlhf_jax import scaling


def new_figure(nrows: int = 1, ncols: int = 1, figsize=(6.5, 4.5), **subplot_kw):
    """(figure, axes) as ``pyplot.subplots`` returns them, without pyplot's global state."""
    from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **subplot_kw)


def save_figure(fig, path: str, dpi: int = 120) -> None:
    """Lays out and writes ``fig`` to ``path`` atomically (temp file in the same directory, then
    a rename), so an interrupted run never leaves a truncated image."""
    fig.tight_layout()
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.splitext(path)[1] or ".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def plot_scaling(rows: list[dict], fits: dict, path: str, title: str = "Reward-model test error vs N") -> None:
    """Log–log test error vs N: mean ± std over seeds, fitted curve and 95% band per fit.

    ``fits`` keys are "<condition>/<ensemble|single>[/<size>]"; ensemble lines are solid,
    single-model lines dashed in the same colour. Written atomically to ``path``.
    """
    import matplotlib  # pylint: disable=g-import-not-at-top

    fig, ax = new_figure(figsize=(6.5, 4.5))
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
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
    if ax.get_legend_handles_labels()[0]:  # a one-N pilot has no fitted curve to label
        ax.legend(fontsize=7)
    save_figure(fig, path, dpi=120)


def plot_accuracy_vs_dollars(rows: list[dict], path: str) -> None:
    """Ensemble test accuracy vs dollars spent on labels (N × the condition's cost per pair):
    mean ± std over seeds, one line per condition, log x. Written atomically to ``path``."""
    fig, ax = new_figure(figsize=(6.5, 4.5))
    ens = [r for r in rows if r["member"] == "ensemble"]
    for cond in dict.fromkeys(r["condition"] for r in ens):
        sel = [r for r in ens if r["condition"] == cond]
        ns = sorted({r["n"] for r in sel})
        dollars = np.array([np.mean([r["dollars"] for r in sel if r["n"] == n]) for n in ns])
        acc = [np.array([r["test_accuracy"] for r in sel if r["n"] == n]) for n in ns]
        ax.errorbar(dollars, [a.mean() for a in acc], yerr=[a.std() for a in acc], marker="o", ms=4,
                    capsize=2, label=f"{cond} (${dollars[0] / ns[0]:.2f}/pair)")
    ax.set_xscale("log")
    ax.set_xlabel("dollars spent on labels (gold questions, re-asks and adjudication included)")
    ax.set_ylabel("held-out accuracy vs gold")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path, dpi=120)
