"""The best-step rule and its readings, on best steps whose answers are known."""
import numpy as np
import pytest

from rlhf_jax.evaluation import convergence


def test_rule_counts_members_strictly_before_three_quarters():
    # T = 400: cutoff 300; 300 itself is in the last quarter.
    rule = convergence.best_step_rule([0, 100, 299, 300, 400], 400)
    assert (rule["before_cutoff"], rule["members"], rule["cutoff_step"]) == (3, 5, 300.0)
    assert not rule["met"]  # 3/5 = 60% < 80%
    assert convergence.best_step_rule([0, 100, 200, 299, 400], 400)["met"]  # 4/5 = 80%


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_budget_estimate_is_the_smallest_budget_that_meets_the_rule(seed):
    steps = np.random.default_rng(seed).integers(0, 5000, size=25)
    budget = convergence.budget_estimate(steps)
    assert convergence.best_step_rule(steps, budget)["met"]
    assert not convergence.best_step_rule(steps, budget - 1)["met"]
    rounded = convergence.budget_estimate(steps, multiple=400)
    assert rounded % 400 == 0 and budget <= rounded < budget + 400


def test_best_steps_by_point_keeps_members_and_drops_the_ensemble_row():
    rows = [{"condition": "oracle", "n": "25", "seed": "0", "member": m, "best_step": s}
            for m, s in (("0", "50"), ("1", "0"), ("ensemble", "50"))]
    rows.append({"condition": "oracle", "n": "50", "seed": "1", "member": "0", "best_step": "75"})
    assert convergence.best_steps_by_point(rows) == {"oracle": {25: {0: [50, 0]}, 50: {1: [75]}}}


def test_step_summary_counts_both_edges():
    out = convergence.step_summary([0, 0, 10, 300, 400], 400, first_eval=0)
    assert (out["at_first_evaluation"], out["in_last_quarter"], out["median_best_step"]) == (2, 2, 10.0)
