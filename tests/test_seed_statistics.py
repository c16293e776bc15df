"""Two-stage bootstrap over (reward-model seed, PPO seed) and the fraction of PPO-gold's gain:
closed forms on hand-built numbers."""
import numpy as np
import pytest

from rlhf_jax.evaluation import seed_statistics as S


def test_a_constant_result_has_a_zero_width_interval():
    out = S.cluster_interval(np.full((3, 5), 2.5), n_bootstrap=500)
    assert out["mean"] == 2.5 and out["ci95"] == [2.5, 2.5] and out["half_width"] == 0.0
    assert (out["clusters"], out["members"]) == (3, 5)


@pytest.mark.parametrize("values", [np.array([[0.0, 0.0], [10.0, 10.0]]),   # all the spread between clusters
                                    np.array([[0.0, 10.0]])])               # all of it within the one cluster
def test_each_stage_resamples_with_replacement(values):
    """Two equally likely values, drawn twice: means 0, 5, 10 with probabilities 1/4, 1/2, 1/4 —
    whether the two values are two clusters (stage one) or two members of one cluster (stage two)."""
    means = S.cluster_bootstrap_means(values, n_bootstrap=40_000, seed=3)
    assert set(np.unique(means)) == {0.0, 5.0, 10.0}
    freq = [np.mean(means == v) for v in (0.0, 5.0, 10.0)]
    np.testing.assert_allclose(freq, [0.25, 0.5, 0.25], atol=0.01)


def test_clusters_widen_the_interval_over_a_naive_bootstrap():
    """Three reward-model seeds far apart, five PPO seeds close within each: resampling the 15 runs
    as if independent understates the uncertainty the reward-model seed carries."""
    rng = np.random.default_rng(0)
    values = np.array([[-3.0], [0.0], [3.0]]) + 0.1 * rng.standard_normal((3, 5))
    clustered = S.cluster_interval(values, n_bootstrap=4000, seed=1)["half_width"]
    flat = S.cluster_interval(values.reshape(1, -1), n_bootstrap=4000, seed=1)["half_width"]  # one cluster: iid
    assert clustered > 1.5 * flat


def test_same_seed_same_replicates_and_bad_input_refused():
    v = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(S.cluster_bootstrap_means(v, 100, 7), S.cluster_bootstrap_means(v, 100, 7))
    assert not np.array_equal(S.cluster_bootstrap_means(v, 100, 7), S.cluster_bootstrap_means(v, 100, 8))
    with pytest.raises(ValueError, match="finite"):
        S.cluster_bootstrap_means(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="clusters, members"):
        S.cluster_bootstrap_means(np.arange(3.0))


def test_fraction_recovered_closed_forms():
    sft, gold = 1.0, np.array([5.0, 5.0, 5.0])
    half = S.fraction_recovered(np.full((3, 5), 3.0), sft, gold, n_bootstrap=500)
    assert half["fraction"] == 0.5 and half["ci95"] == [0.5, 0.5]
    assert (half["gain_rlhf"], half["gain_gold"]) == (2.0, 4.0)
    worse = S.fraction_recovered(np.full((3, 5), 0.0), sft, gold, n_bootstrap=500)
    assert worse["fraction"] == -0.25
    nothing = S.fraction_recovered(np.full((3, 5), 3.0), sft, np.array([1.0, 0.5]), n_bootstrap=100)
    assert np.isnan(nothing["fraction"])


def test_fraction_interval_covers_noisy_gold_runs():
    """With PPO-gold seeds spread around 5 and RLHF exactly at 3, the ratio's interval straddles 0.5."""
    out = S.fraction_recovered(np.full((3, 5), 3.0), 1.0, np.array([4.0, 5.0, 6.0]), n_bootstrap=4000, seed=2)
    assert out["ci95"][0] < 0.5 < out["ci95"][1]


def test_t_interval_closed_form_and_bad_input():
    """Seeds 1, 2, 3: mean 2, sample sd 1, so the 95% half-width is t(0.975, 2) / sqrt(3)."""
    out = S.t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / np.sqrt(3)
    assert out["mean"] == 2.0
    np.testing.assert_allclose(out["ci95"], [2.0 - half, 2.0 + half])
    assert S.t_interval([4.0, 4.0])["ci95"] == [4.0, 4.0]
    with pytest.raises(ValueError, match="at least two seeds"):
        S.t_interval([1.0])


def test_interval_vs_range_at_each_side_and_edge():
    from rlhf_jax.evaluation.seed_statistics import interval_vs_range

    assert interval_vs_range(0.10, 0.12, 0.08, 0.12) == "inside"      # the range's ends count as inside
    assert interval_vs_range(0.13, 0.20, 0.08, 0.12) == "above"
    assert interval_vs_range(0.01, 0.07, 0.08, 0.12) == "below"
    assert interval_vs_range(0.05, 0.10, 0.08, 0.12) == "overlaps"
    assert interval_vs_range(0.00, 0.20, 0.08, 0.12) == "overlaps"   # wider than the range on both sides


def test_relative_reduction_is_paired_and_matches_its_closed_form():
    """on = 0.3 · off run by run: every paired replicate's ratio is 0.3, so the reduction is 0.7
    with a zero-width interval; unpaired resamples would scatter. A treatment that raises the rate
    gives a negative reduction, and nothing to cut gives NaN."""
    rng = np.random.default_rng(3)
    off = rng.uniform(0.2, 0.9, (3, 4))
    r = S.relative_reduction(0.3 * off, off, n_bootstrap=500)
    assert r["reduction"] == pytest.approx(0.7) and r["ci95"] == pytest.approx([0.7, 0.7])
    worse = S.relative_reduction(off + 0.1, off, n_bootstrap=500)
    assert worse["reduction"] < 0 and worse["ci95"][1] < 0
    assert np.isnan(S.relative_reduction(off, np.zeros_like(off))["reduction"])
