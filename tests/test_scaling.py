"""Power-law fits recover planted parameters; derived quantities follow their formulas."""
import numpy as np
import pytest

from rlhf_jax import scaling


def _synthetic(E, A, alpha, noise, seed, seeds=5):
    rng = np.random.default_rng(seed)
    n = np.repeat([100, 200, 400, 800, 1600, 3200, 6400, 12800], seeds).astype(float)
    err = (E + A * n ** -alpha) * np.exp(rng.normal(0, noise, n.shape))
    return n, err


@pytest.mark.parametrize("planted", [(0.05, 2.0, 0.5), (0.02, 5.0, 0.8)])
def test_recovers_planted_parameters_inside_interval(planted):
    E, A, alpha = planted
    n, err = _synthetic(E, A, alpha, noise=0.03, seed=1)
    fit = scaling.fit_power_law(n, err, n_bootstrap=400, seed=0)
    for key, true in zip(("E", "A", "alpha"), planted):
        low, high = fit[f"{key}_ci"]
        assert low <= true <= high, (key, true, fit[f"{key}_ci"])
    assert abs(fit["alpha"] - alpha) < 0.1


def test_pure_power_law_with_e_fixed_to_zero():
    n, err = _synthetic(0.0, 1.5, 0.35, noise=0.02, seed=2)
    fit = scaling.fit_power_law(n, err, fix_e=True, n_bootstrap=300)
    assert fit["E"] == 0.0 and fit["E_ci"] == [0.0, 0.0]
    assert fit["alpha_ci"][0] <= 0.35 <= fit["alpha_ci"][1]
    assert fit["alpha_ci"][1] - fit["alpha_ci"][0] < 0.1


def test_n_for_target_inverts_the_curve():
    fit = {"E": 0.05, "A": 2.0, "alpha": 0.5, "ci": 0.95,
           "bootstrap": {"E": [0.05] * 4, "A": [2.0] * 4, "alpha": [0.5] * 4}}
    out = scaling.n_for_target(fit, 0.1)
    np.testing.assert_allclose(out["N"], (2.0 / 0.05) ** 2)
    np.testing.assert_allclose(scaling.predict(fit, out["N"]), 0.1)
    assert scaling.n_for_target(fit, 0.04)["N"] == np.inf  # below the floor E: never reached


def test_alpha_difference_detects_a_real_gap():
    f1 = scaling.fit_power_law(*_synthetic(0.03, 2.0, 0.7, 0.03, 3), n_bootstrap=300)
    f2 = scaling.fit_power_law(*_synthetic(0.03, 2.0, 0.3, 0.03, 4), n_bootstrap=300)
    d = scaling.alpha_difference(f1, f2)
    assert d["delta_alpha_ci"][0] > 0.2
    # An independent fit of the same planted curve (new noise draw): no gap.
    f1_again = scaling.fit_power_law(*_synthetic(0.03, 2.0, 0.7, 0.03, 5), n_bootstrap=300)
    same = scaling.alpha_difference(f1, f1_again)
    assert same["delta_alpha_ci"][0] <= 0 <= same["delta_alpha_ci"][1]


def test_band_contains_point_estimate_and_bad_input_is_refused():
    n, err = _synthetic(0.05, 2.0, 0.5, 0.03, 5)
    fit = scaling.fit_power_law(n, err, n_bootstrap=200)
    grid = np.geomspace(100, 12800, 20)
    low, high = scaling.prediction_band(fit, grid)
    mid = scaling.predict(fit, grid)
    assert np.all(low <= mid * 1.001) and np.all(mid <= high * 1.001)
    with pytest.raises(ValueError, match="err > 0"):
        scaling.fit_power_law([1, 2, 3], [0.1, 0.0, 0.1])
    with pytest.raises(ValueError, match="two distinct N"):
        scaling.fit_power_law([5, 5, 5], [0.1, 0.2, 0.1])
    for bad in (np.nan, np.inf):  # these used to return an α with a zero-width interval
        with pytest.raises(ValueError, match="field 'n'"):
            scaling.fit_power_law([100, 200, bad, 400], [0.3, 0.2, 0.15, 0.1])


def test_saturation_n_is_where_a_doubling_gains_exactly_the_threshold():
    fit = {"E": 0.1, "A": 2.0, "alpha": 0.5, "ci": 0.95,
           "bootstrap": {"E": [0.1] * 40, "A": [2.0] * 36 + [1.0] * 4, "alpha": [0.5] * 36 + [-0.1] * 4}}
    out = scaling.saturation_n(fit, gain=0.01)
    gain = scaling.predict(fit, out["N"]) - scaling.predict(fit, 2 * out["N"])
    np.testing.assert_allclose(gain, 0.01)
    # A replicate whose error never falls (α ≤ 0) is saturated from the start: N = 0.
    assert out["N_ci"][0] == 0.0 and out["N_ci"][1] == pytest.approx(out["N"])
