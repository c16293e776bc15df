"""Plots of a QC report: gold accuracy with intervals, pairwise agreement, behaviour outliers."""
from __future__ import annotations

import os

import numpy as np

from rlhf_jax.plotting import new_figure, save_figure

BEHAVIOURS = ("left_rate", "tie_rate", "skip_rate", "majority_agreement", "median_seconds")


def plot_accuracy(report: dict, threshold: float, path: str):
    """Gold accuracy per annotator with its Wilson 95% interval; flagged annotators in red.

    Writes `path` and returns the figure (one axes, one y tick per annotator, worst first)."""
    people = report["annotators"]
    names = sorted(people, key=lambda a: np.nan_to_num(people[a].get("accuracy", np.nan), nan=-1.0))
    acc = np.array([people[a].get("accuracy", np.nan) for a in names], float)
    lo = np.array([people[a].get("ci_low", np.nan) for a in names], float)
    hi = np.array([people[a].get("ci_high", np.nan) for a in names], float)
    fig, ax = new_figure(figsize=(6.5, 0.35 * len(names) + 1.5))
    y = np.arange(len(names))
    colors = ["tab:red" if people[a]["flagged"] else "tab:blue" for a in names]
    ax.errorbar(acc, y, xerr=[np.clip(np.nan_to_num(acc - lo), 0, None), np.clip(np.nan_to_num(hi - acc), 0, None)], fmt="none", ecolor="0.5")
    ax.scatter(acc, y, c=colors, zorder=3)
    ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.0%}")
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=7)
    ax.set_xlabel("accuracy on gold questions (Wilson 95% interval)")
    ax.set_xlim(0, 1.02)
    ax.legend(loc="lower right", fontsize=8)
    save_figure(fig, path)
    return fig


def plot_agreement(report: dict, path: str):
    """Cohen's kappa between every pair of annotators (blank: too few shared pairs).

    Writes `path` and returns the figure (the matrix and its colour bar)."""
    ck = report["before_qc"]["cohen_kappa"]
    m = np.array(ck["matrix"], float)
    names = ck["annotators"]
    fig, ax = new_figure(figsize=(6.5, 5.5))
    im = ax.imshow(np.ma.masked_invalid(m), vmin=-0.2, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=7)
    ax.set_title(f"Cohen's kappa; Fleiss {report['before_qc']['fleiss_kappa']['value']:.3f}, "
                 f"Krippendorff α {report['before_qc']['krippendorff_alpha']['value']:.3f}", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
    save_figure(fig, path)
    return fig


def robust_z(values: np.ndarray) -> np.ndarray:
    """(x − median) / (1.4826·MAD) of values [n], NaN-aware; a zero MAD gives z = 0 (nothing to
    compare)."""
    med = np.nanmedian(values)
    mad = 1.4826 * np.nanmedian(np.abs(values - med))
    return np.zeros_like(values) if not mad > 0 else (values - med) / mad


def plot_outliers(report: dict, z: float, path: str):
    """Robust z of each behaviour per annotator, clipped to ±10; the ±z band is the outlier rule.

    Writes `path` and returns the figure (one axes, one x tick per behaviour)."""
    people = report["annotators"]
    names = sorted(people)
    fig, ax = new_figure(figsize=(7.5, 4.5))
    for j, feat in enumerate(BEHAVIOURS):
        vals = np.array([people[a].get(feat, np.nan) for a in names], float)
        zs = np.clip(robust_z(vals), -10, 10)
        x = j + np.linspace(-0.3, 0.3, len(names))
        colors = ["tab:red" if people[a]["flagged"] else "tab:blue" for a in names]
        ax.scatter(x, zs, c=colors, s=18)
        for xi, zi, a in zip(x, zs, names):
            if abs(zi) > z:
                ax.annotate(a, (xi, zi), fontsize=6, rotation=30)
    ax.axhspan(-z, z, color="0.9", zorder=0)
    ax.set_xticks(range(len(BEHAVIOURS)))
    ax.set_xticklabels(BEHAVIOURS, fontsize=8)
    ax.set_ylabel("robust z (median/MAD), clipped to ±10")
    ax.set_title("annotator behaviour; red = flagged", fontsize=9)
    save_figure(fig, path)
    return fig


def plot_all(report: dict, threshold: float, z: float, workdir: str) -> None:
    """The three QC figures into `workdir`: qc_accuracy.png, qc_agreement.png, qc_outliers.png."""
    plot_accuracy(report, threshold, os.path.join(workdir, "qc_accuracy.png"))
    plot_agreement(report, os.path.join(workdir, "qc_agreement.png"))
    plot_outliers(report, z, os.path.join(workdir, "qc_outliers.png"))
