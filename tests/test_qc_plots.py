"""QC report figures (rlhf_jax.labels.qc_plots) drawn from a small hand-built QC summary."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from rlhf_jax.labels import qc_plots

nan = math.nan


def person(accuracy, flagged, left_rate=0.5, skip_rate=0.0):
    return {"accuracy": accuracy, "ci_low": accuracy - 0.1, "ci_high": min(accuracy + 0.1, 1.0),
            "flagged": flagged, "left_rate": left_rate, "tie_rate": 0.1, "skip_rate": skip_rate,
            "majority_agreement": 0.8, "median_seconds": 5.0}


REPORT = {
    "annotators": {"ann": person(0.9, False, left_rate=0.52), "bob": person(0.55, True, left_rate=0.98),
                   "cat": person(nan, False, left_rate=0.48), "dan": person(0.75, False, skip_rate=0.02)},
    "before_qc": {"cohen_kappa": {"annotators": ["ann", "bob", "cat", "dan"],
                                  "matrix": [[1, 0.1, 0.7, nan], [0.1, 1, 0.0, 0.2],
                                             [0.7, 0.0, 1, 0.6], [nan, 0.2, 0.6, 1]]},
                  "fleiss_kappa": {"value": 0.4321}, "krippendorff_alpha": {"value": 0.4567}},
}


def ticks(labels):
    return [t.get_text() for t in labels]


def test_plot_all_writes_the_three_figures(tmp_path):
    qc_plots.plot_all(REPORT, 0.8, 3.0, str(tmp_path))
    names = ("qc_accuracy.png", "qc_agreement.png", "qc_outliers.png")
    assert sorted(os.listdir(tmp_path)) == list(names)  # no temporary files left behind
    for name in names:
        with open(tmp_path / name, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_accuracy_plot_orders_annotators_and_marks_the_flagged(tmp_path):
    fig = qc_plots.plot_accuracy(REPORT, 0.8, str(tmp_path / "acc.png"))
    assert (tmp_path / "acc.png").is_file() and len(fig.axes) == 1
    ax = fig.axes[0]
    assert ticks(ax.get_yticklabels()) == ["cat", "bob", "dan", "ann"]  # no gold first, then worst
    assert ax.get_xlabel().startswith("accuracy on gold questions")
    assert ticks(ax.get_legend().get_texts()) == ["threshold 80%"]
    colors = ax.collections[-1].get_facecolors()
    assert [tuple(c) for c in colors] == [to_rgba(c) for c in ("tab:blue", "tab:red", "tab:blue", "tab:blue")]


def test_agreement_plot_shows_the_matrix_and_the_pool_statistics(tmp_path):
    fig = qc_plots.plot_agreement(REPORT, str(tmp_path / "agree.png"))
    assert len(fig.axes) == 2  # the matrix and its colour bar
    ax = fig.axes[0]
    names = REPORT["before_qc"]["cohen_kappa"]["annotators"]
    assert ticks(ax.get_xticklabels()) == names and ticks(ax.get_yticklabels()) == names
    assert "Fleiss 0.432" in ax.get_title() and "Krippendorff α 0.457" in ax.get_title()
    shown = ax.images[0].get_array()
    assert shown.mask[0, 3] and shown.mask[3, 0] and not shown.mask[0, 1]
    np.testing.assert_allclose(shown.data[1, 3], 0.2)


def test_outlier_plot_names_only_the_outliers(tmp_path):
    fig = qc_plots.plot_outliers(REPORT, 3.0, str(tmp_path / "out.png"))
    ax = fig.axes[0]
    assert len(fig.axes) == 1 and ticks(ax.get_xticklabels()) == list(qc_plots.BEHAVIOURS)
    assert ax.get_ylabel().startswith("robust z")
    # bob's left rate is far out; dan's skip rate is the only non-zero one, but MAD = 0 there.
    assert [t.get_text() for t in ax.texts] == ["bob"]
    assert len(ax.collections) == len(qc_plots.BEHAVIOURS)


def test_robust_z_closed_form():
    z = qc_plots.robust_z(np.array([1.0, 2.0, 3.0, 4.0, 100.0, nan]))
    np.testing.assert_allclose(z[:5], (np.array([1, 2, 3, 4, 100]) - 3) / 1.4826)
    assert np.isnan(z[5])
    np.testing.assert_array_equal(qc_plots.robust_z(np.array([2.0, 2.0, 2.0, 5.0])), 0.0)
    shifted = qc_plots.robust_z(np.array([1.0, 2.0, 3.0, 4.0, 100.0]) * 7 + 11)
    np.testing.assert_allclose(shifted, z[:5])  # invariant to scale and shift
    assert qc_plots.robust_z(np.array([1.0, 9.0, 2.0]))[1] == pytest.approx(7 / 1.4826)
