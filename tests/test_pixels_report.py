"""The pixels-vs-state report on hand-built results: accuracy cells, the fitted alpha, and the N at
which pixels reach state's accuracy at N = 1,600 (inside the grid, and as bounds outside it)."""
import csv
import io
import json

import numpy as np
import pytest

from experiments import pixels_report as R

N_VALUES = (100, 200, 400, 800, 1600)


def _csv(curves: dict) -> str:
    """results.csv text: ensemble rows (and a member row the report must skip) of {(kind, size): acc(n, seed)}."""
    out = io.StringIO()
    w = csv.DictWriter(out, ["condition", "n", "seed", "features", "model_size", "member", "test_accuracy"])
    w.writeheader()
    for (kind, size), acc in curves.items():
        for n in N_VALUES:
            for seed in (0, 1):
                w.writerow(dict(condition="oracle", n=n, seed=seed, features=kind, model_size=size, member="ensemble",
                                test_accuracy=acc(n, seed)))
                w.writerow(dict(condition="oracle", n=n, seed=seed, features=kind, model_size=size, member="0",
                                test_accuracy=0.0))
    return out.getvalue()


def _rows(curves):
    return R.read_rows(io.StringIO(_csv(curves)))


def test_exact_power_laws_give_back_their_alpha_and_the_crossing_n(tmp_path):
    """err = 0.02 + A·N^-alpha per curve (both seeds on it): alpha recovered; pixels (A = 2, alpha = 0.5) reach
    state's accuracy at 1,600 (1 - 0.02 - 1.6·1600^-0.6 = 0.961) beyond the grid (a bound), at the N the
    closed form gives from the fit."""
    state = lambda n, s: 1 - (0.02 + 1.6 * n ** -0.6)  # noqa: E731
    pixels = lambda n, s: 1 - (0.02 + 2.0 * n ** -0.5)  # noqa: E731
    rows = _rows({("joint", "joint_32x32"): state, ("pixels", "pixels_cnn8x16_32x32"): pixels})
    table = R.curves(rows)
    assert {k: c["kind"] for k, c in table.items()} == {("oracle", "joint_32x32"): "joint",
                                                        ("oracle", "pixels_cnn8x16_32x32"): "pixels"}
    fit = R.fit_alpha(table[("oracle", "pixels_cnn8x16_32x32")]["acc"], 1e-3, n_bootstrap=20)
    assert fit["alpha"] == pytest.approx(0.5, abs=0.01)
    target = 1 - (0.02 + 1.6 * 1600 ** -0.6)
    want = (2.0 / (1.6 * 1600 ** -0.6)) ** (1 / 0.5)  # 0.02 + 2 N^-0.5 = 1 - target
    assert R.n_reaching(table[("oracle", "pixels_cnn8x16_32x32")]["acc"], target) == "> 1,600"
    assert float(R.fitted_n(fit, target).replace(",", "")) == pytest.approx(want, rel=0.02)
    block = R.docs_block(rows, str(tmp_path), benchmark={})
    assert f"state accuracy at N = 1,600: {target:.3f}" in block and f"{target:.3f}" == "0.961"
    assert "| joint | joint_32x32 |" in block and "> 1,600" in block


def test_grid_crossings_and_bounds():
    acc = {n: [a, a] for n, a in zip(N_VALUES, (0.70, 0.80, 0.85, 0.90, 0.95))}
    assert R.n_reaching(acc, 0.85) == "400"
    assert R.n_reaching(acc, 0.60) == "≤ 100"
    assert R.n_reaching(acc, 0.96) == "> 1,600"
    assert R.n_reaching({100: [0.8, 0.9]}, 0.85) == "≤ 100"  # the mean over seeds is what reaches it


def test_benchmark_and_config_beside_the_results_enter_the_block(tmp_path):
    flat = lambda n, s: 0.8 + 0.01 * np.log2(n / 100) + 0.001 * s  # noqa: E731
    (tmp_path / "results.csv").write_text(_csv({("joint", "joint_32x32"): flat, ("pixels", "p"): flat}))
    (tmp_path / "config.json").write_text(json.dumps({"n_test": 50}))
    (tmp_path / "run_info.json").write_text(json.dumps({"frames_mib": 61.5}))
    (tmp_path / "benchmark.json").write_text(json.dumps({
        "machine": {"device": "cpu"}, "frame_size": 16, "every": 5, "points": 4, "members": 2, "batch_size": 32,
        "kinds": {"joint": {"temp_mib_per_point": 1.5, "shared_mib": 3.0, "pairs_per_s": 12000.0},
                  "pixels": {"temp_mib_per_point": 9.25, "shared_mib": 70.0, "pairs_per_s": 900.0}}}))
    assert R.test_pairs(str(tmp_path)) == 50
    page = tmp_path / "page.md"
    page.write_text(f"x\n<!-- pixels-table:start {tmp_path} -->\nold\n<!-- pixels-table:end {tmp_path} -->\n")
    assert R.main(["pixels_report", str(tmp_path), "--docs", str(page)]) == 0
    text = page.read_text()
    assert "| pixels | 9.25 | — | 70.00 | 900 |" in text and "old" not in text
    assert "take 61.5 MiB" in text
    assert "| pixels | p |" in text and "| 1,600 |" in text  # same accuracies: pixels reach state's at N = 1,600
