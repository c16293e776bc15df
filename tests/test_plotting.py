"""Figure helpers: atomic PNG writes, the caller's matplotlib backend, and the scaling plot."""
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from rlhf_jax import plotting, scaling

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == PNG_MAGIC and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])  # (width, height)


def test_save_figure_writes_png_atomically(tmp_path):
    fig, ax = plotting.new_figure(figsize=(4.0, 3.0))
    ax.plot([1, 2, 3], [3, 1, 2])
    path = tmp_path / "fig.png"
    plotting.save_figure(fig, str(path), dpi=50)
    assert os.listdir(tmp_path) == ["fig.png"]  # no temp file left behind
    assert _png_size(path) == (200, 150)  # figsize × dpi


def test_new_figure_returns_axes_grid():
    fig, axes = plotting.new_figure(2, 3)
    assert axes.shape == (2, 3) and len(fig.axes) == 6


def test_failed_save_leaves_nothing(tmp_path):
    fig, ax = plotting.new_figure()
    ax.plot([0, 1], [0, 1])
    with pytest.raises(ValueError):
        plotting.save_figure(fig, str(tmp_path / "fig.notaformat"))
    assert os.listdir(tmp_path) == []


def test_import_and_plot_keep_callers_backend(tmp_path):
    code = (
        "import matplotlib, sys\n"
        "matplotlib.use('svg')\n"
        "from rlhf_jax import plotting\n"
        "fig, ax = plotting.new_figure()\n"
        "ax.plot([0, 1], [1, 0])\n"
        f"plotting.save_figure(fig, {str(tmp_path / 'x.png')!r})\n"
        "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=120)
    assert out.stdout.split() == ["svg", "False"]
    assert _png_size(tmp_path / "x.png")


def _rows_and_fits():
    rng = np.random.default_rng(0)
    ns = np.array([50, 100, 200, 400, 800])
    rows = []
    for member, scale in (("ensemble", 1.0), ("0", 1.2)):
        for n in ns:
            for seed in range(3):
                err = (0.1 + 2.0 * n**-0.5) * scale * (1 + 0.01 * rng.normal())
                rows.append({"condition": "oracle", "member": member, "n": int(n), "seed": seed,
                             "model_size": "small", "test_error": float(err)})
    fits = {}
    for kind, member in (("ensemble", "ensemble"), ("single", "0")):
        sel = [r for r in rows if r["member"] == member]
        fits[f"oracle/{kind}"] = scaling.fit_power_law([r["n"] for r in sel], [r["test_error"] for r in sel],
                                                        n_bootstrap=50)
    return rows, fits


def test_plot_scaling_writes_png(tmp_path):
    rows, fits = _rows_and_fits()
    fit = fits["oracle/ensemble"]
    assert abs(fit["alpha"] - 0.5) < 0.15 and abs(fit["E"] - 0.1) < 0.05  # the synthetic law is recovered
    path = tmp_path / "scaling.png"
    plotting.plot_scaling(rows, fits, str(path), title="synthetic")
    assert os.listdir(tmp_path) == ["scaling.png"]
    assert _png_size(path) == (780, 540)  # 6.5 × 4.5 inches at 120 dpi


def test_plot_scaling_with_model_size_keys(tmp_path):
    rows, fits = _rows_and_fits()
    sized = {"oracle/ensemble/small": fits["oracle/ensemble"]}  # only the ensemble line, one size
    path = tmp_path / "sized.png"
    plotting.plot_scaling(rows, sized, str(path))
    assert _png_size(path) == (780, 540)
