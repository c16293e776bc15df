"""Readings of label-efficiency runs on hand-built curves: effective size against the reference
(estimate, bounds at both grid edges, verdicts that flip at the criterion) and routing at matched
accuracy and matched cost (closed forms on curves linear in log dollars)."""
import numpy as np
import pytest

from experiments import label_efficiency_readings as rd
from experiments import label_efficiency_routing as routing

REF_LABELS = np.array([100.0, 440.0, 780.0, 1120.0, 1460.0, 1800.0])
OFFSETS = np.array([-0.02, -0.01, 0.0, 0.01, 0.02])  # per seed, zero mean, shared by every curve


def log_linear(n, a=0.5, b=0.04):
    return a + b * np.log(n)


def ref_acc():
    return log_linear(REF_LABELS)[None, :] + OFFSETS[:, None]


def test_effective_size_reads_the_reference_at_the_run_accuracy():
    run = log_linear(1200.0) + OFFSETS  # the reference needs 1,200 labels for it; the run bought 600
    e = rd.effective_size(REF_LABELS, ref_acc(), run, 600.0, n_boot=200, at_least=1.5)
    assert e["ours"] == pytest.approx(2.0, rel=1e-6) and e["bound"] is None
    assert e["ci"][0] <= e["ours"] <= e["ci"][1] and e["ci_bounds"] == [None, None]
    assert e["verdict"] == "holds"
    assert rd.effective_size(REF_LABELS, ref_acc(), run, 600.0, 200, at_least=2.5)["verdict"] == "fails"


def test_effective_size_beyond_the_reference_is_a_lower_bound():
    run = log_linear(5000.0) + OFFSETS  # better than the reference's best
    e = rd.effective_size(REF_LABELS, ref_acc(), run, 600.0, n_boot=100, at_least=2.0)
    assert e["bound"] == "at_least" and e["ours"] == pytest.approx(3.0)  # 1,800 / 600, clipped
    assert e["verdict"].startswith("holds") and "bound" in e["verdict"]
    # A criterion above the clipped value can be neither met nor refuted: the upper end is open.
    assert rd.effective_size(REF_LABELS, ref_acc(), run, 600.0, 100, at_least=4.0)["verdict"].startswith(
        "inconclusive")


def test_effective_size_at_the_first_point_is_an_upper_bound():
    run = log_linear(50.0) + OFFSETS  # worse than the reference's first round
    e = rd.effective_size(REF_LABELS, ref_acc(), run, 600.0, n_boot=100, at_least=2.0)
    assert e["bound"] == "at_most" and e["ours"] == pytest.approx(100.0 / 600.0)
    assert e["verdict"].startswith("fails") and "bound" in e["verdict"]


# ----------------------------------------------------------------------------- routing

def _config(cut_at_least=0.60, n_boot=200):
    from configs.label_efficiency import get_config
    c = get_config("routing")
    c.criteria.routing_cost_cut_at_least = cut_at_least
    c.n_bootstrap = n_boot
    return c


HUMAN_DOLLARS = np.array([100.0, 200.0, 300.0, 400.0, 500.0, 600.0])
ROUTED_DOLLARS = np.array([100.0, 196.3, 292.6, 388.9, 485.2, 581.5])


def _rows(routed_acc_fn):
    rows = []
    for s, off in enumerate(OFFSETS):
        for name, dollars, fn in (("uniform", HUMAN_DOLLARS, lambda d: log_linear(d, 0.5, 0.02)),
                                  ("routed_uncertainty_30", ROUTED_DOLLARS, routed_acc_fn)):
            for t, d in enumerate(dollars):
                rows.append({"strategy": name, "seed": s, "round": t, "dollars": d, "labels": 100 * (t + 1),
                             "test_accuracy": float(fn(d) + off)})
    return rows


def steep(d):  # routed accuracy starts lower and rises faster per dollar than all-human's
    return log_linear(d, 0.5, 0.02) - 0.04 + 0.06 * np.log(d / 100.0)


def test_matched_accuracy_and_matched_cost_follow_the_closed_form():
    out = routing.routing_readings(_rows(steep), _config())
    ref = log_linear(600.0, 0.5, 0.02)
    assert out["reference_accuracy"] == pytest.approx(ref)
    for delta in (0.03, 0.05):
        # steep(d) = ref − delta  ⇔  0.08·log d = ref − delta − 0.5 + 0.04 + 0.06·log 100
        d_star = np.exp((ref - delta - 0.5 + 0.04 + 0.06 * np.log(100.0)) / 0.08)
        assert ROUTED_DOLLARS[0] < d_star < ROUTED_DOLLARS[-1]
        e = out["matched_accuracy"][f"within_{round(100 * delta)}_points"]["routed_uncertainty_30"]
        assert e["cost"] == pytest.approx(d_star, rel=1e-6) and e["cut"] == pytest.approx(1 - d_star / 600.0)
        # all-human's own curve reaches the same level at 600·exp(−delta/0.02)
        own = out["matched_accuracy"][f"within_{round(100 * delta)}_points"]["uniform"]
        assert own["cost"] == pytest.approx(max(100.0, 600.0 * np.exp(-delta / 0.02)), rel=1e-6)
        same = e["vs_all_human_same_level"]
        assert same["cut"] == pytest.approx(1 - d_star / own["cost"], rel=1e-6)
        assert same["bound"] == (own["cost"] == 100.0)  # all-human reached it with the shared first round
    m = out["matched_cost"]["strategies"]["routed_uncertainty_30"]
    assert out["matched_cost"]["dollars"] == pytest.approx(210.0)
    assert m["accuracy"] == pytest.approx(steep(210.0), abs=1e-3)  # log-linear between rounds: exact here
    assert m["gap"] == pytest.approx(ref - steep(210.0), abs=1e-3)


def test_routing_verdict_flips_at_the_criterion():
    cut = routing.routing_readings(_rows(steep), _config())["matched_accuracy"]["within_5_points"][
        "routed_uncertainty_30"]["cut"]
    below, above = _config(cut_at_least=cut - 0.05), _config(cut_at_least=cut + 0.05)
    key = "uncertainty/matched_accuracy/within_5_points"
    assert routing.routing_readings(_rows(steep), below)["claim"][key].startswith("holds")
    assert routing.routing_readings(_rows(steep), above)["claim"][key].startswith("fails")


def test_a_curve_that_never_gets_close_has_a_bounded_cut():
    flat = lambda d: np.full_like(np.asarray(d, float), 0.55)  # noqa: E731  (far below all-human)
    out = routing.routing_readings(_rows(flat), _config(cut_at_least=0.0))
    e = out["matched_accuracy"]["within_3_points"]["routed_uncertainty_30"]
    assert e["cut_bound"] == "at_most" and e["cut"] == pytest.approx(1 - ROUTED_DOLLARS[-1] / 600.0)
    assert "bound" in e["verdict"]
    assert out["matched_cost"]["strategies"]["routed_uncertainty_30"]["verdicts"]["within_3_points"] == "fails"
    text = routing.routing_lines(out)
    assert "≤ 3%" in text and "routed_uncertainty_30" in text


def test_accuracy_at_cost_is_not_extrapolated():
    assert np.isnan(routing.accuracy_at_cost(ROUTED_DOLLARS, ROUTED_DOLLARS / 1000, 700.0))
    assert routing.accuracy_at_cost(ROUTED_DOLLARS, ROUTED_DOLLARS, 100.0) == pytest.approx(100.0)


def test_a_flat_all_human_curve_is_not_credited_to_routing():
    # All-human alone reaches 5 points below its end with the first round (a cut of 1 − 100/600):
    # a criterion under that is met by buying fewer human labels, and the verdict says so.
    key = "uncertainty/matched_accuracy/within_5_points"
    lenient = routing.routing_readings(_rows(steep), _config(cut_at_least=0.5))["claim"][key]
    strict = routing.routing_readings(_rows(steep), _config(cut_at_least=0.9))["claim"][key]
    assert "not routing" in lenient and "not routing" not in strict
