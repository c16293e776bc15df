"""The pixels-vs-state report on hand-built results: accuracy cells, the fitted alpha, and the N at
which pixels reach state's accuracy at N = 1,600 (inside the grid, and as bounds outside it), and the fitted crossover N with its bootstrap interval."""
import csv
import io
import json
import os

import numpy as np
import pytest

from experiments import pixels_report as R
from experiments.doc_blocks import read_block

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
    cross = R.crossover(fit, table[("oracle", "joint_32x32")]["acc"][1600])
    assert cross["N"] == pytest.approx(want, rel=0.02) and cross["never"] == 0.0
    assert float(R.crossover_text(cross).split(" [")[0].replace(",", "")) == pytest.approx(want, rel=0.02)
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


def _noisy_curves(e_pix, rng_seed, seeds=6, sd=0.004):
    """State err = 0.02 + 1.6·N^-0.6 and pixels err = e_pix + 2·N^-0.5 at N = 100 … 6,400, each (N, seed)
    with Gaussian noise of ``sd``: the state curve's accuracy at 1,600 and the pixel curve's accuracies."""
    rng = np.random.default_rng(rng_seed)
    grid = (100, 200, 400, 800, 1600, 3200, 6400)
    pix = {n: list(1 - (e_pix + 2.0 * n ** -0.5) + sd * rng.standard_normal(seeds)) for n in grid}
    state = list(1 - (0.02 + 1.6 * 1600 ** -0.6) + sd * rng.standard_normal(seeds))
    return state, pix


@pytest.mark.parametrize("rng_seed", [0, 1, 2])
def test_crossover_interval_covers_the_true_n_over_noise_draws(rng_seed):
    """err_t = 0.02 + 1.6·1600^-0.6; pixels with E = 0.01 cross at N* = (2 / (err_t − 0.01))^2 (≈ 3,300),
    inside the interval for every noise draw; no replicate has its floor above the target."""
    state, pix = _noisy_curves(0.01, rng_seed)
    err_t = 0.02 + 1.6 * 1600 ** -0.6
    true_n = (2.0 / (err_t - 0.01)) ** (1 / 0.5)
    cross = R.crossover(R.fit_alpha(pix, 1e-3), state)
    low, high = cross["N_ci"]
    assert low <= true_n <= high
    assert high < 3 * true_n and cross["never"] == 0.0  # an interval, not a bound
    assert cross["replicates"] == R.N_BOOTSTRAP


def test_floor_above_the_target_never_crosses():
    """Pixels with floor E = 0.2 above the state target error (≈ 0.05): "never" in (nearly) every replicate."""
    state, pix = _noisy_curves(0.2, 0)
    cross = R.crossover(R.fit_alpha(pix, 1e-3), state)
    assert np.isinf(cross["N"]) and np.isinf(cross["N_ci"][0]) and cross["never"] > 0.97
    assert R.crossover_text(cross).startswith("never (fit's floor above it; never in ")


def test_crossover_text_bounds():
    assert R.crossover_text({"N": 2436.2, "N_ci": [1416.0, 5990.4], "never": 0.0}) == "2,436 [1,416, 5,990]"
    assert R.crossover_text({"N": 2436.2, "N_ci": [1900.0, np.inf], "never": 0.12}) == \
        "2,436 [1,900, never); never in 12% of resamples"
    assert R.crossover_text({"N": 2436.2, "N_ci": [np.inf, np.inf], "never": 0.975}) == \
        "2,436; never in 98% of resamples"
    assert R.crossover_text({"N": np.inf, "N_ci": [np.inf, np.inf], "never": 1.0}) == \
        "never (fit's floor above it; never in 100% of resamples)"
    assert R.crossover_text({"N": np.inf, "N_ci": [np.inf, np.inf], "never": 0.995}) == \
        "never (fit's floor above it; never in > 99% of resamples)"
    assert R.crossover_text({"N": 900.0, "N_ci": [500.0, 1800.0], "never": 0.004}) == \
        "900 [500, 1,800]; never in < 1% of resamples"
    assert R.crossover_text(None) == "—"


def test_crossover_is_deterministic():
    """Identical inputs give an identical interval and text (fixed bootstrap and target-redraw seeds), and the
    redraw seed is what fixes it: another seed moves the interval."""
    state, pix = _noisy_curves(0.01, 3)
    fits = [R.fit_alpha(pix, 1e-3) for _ in range(2)]
    runs = [R.crossover(f, state) for f in fits]
    assert runs[0] == runs[1] and R.crossover_text(runs[0]) == R.crossover_text(runs[1])
    assert R.crossover(fits[0], state, seed=1)["N_ci"] != runs[0]["N_ci"]


def test_docs_block_is_the_report_of_the_committed_results(monkeypatch):
    """docs/pixels.md's block equals what the report renders from results/pixels_vs_state."""
    monkeypatch.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the block names its source
    source = "results/pixels_vs_state"
    with open("docs/pixels.md", encoding="utf-8") as f:
        body = read_block(f.read(), R.DOCS_BLOCK, source)
    with open(os.path.join(source, "results.csv"), encoding="utf-8", newline="") as f:
        assert body == R.docs_block(R.read_rows(f), source)
