"""The pilot flow: a one-N sweep (as configs/scaling_sweep.py:medium_pilot) trains without a fit,
and experiments.step_budget reads the best-step rule off its results."""
import csv
import json
import os

import pytest

from configs.scaling_sweep import get_config
from experiments import step_budget
from experiments.stages.sweep import run_sweep


def test_medium_pilot_is_medium_at_its_largest_n_with_medium_budget_and_schedule():
    pilot, medium = get_config("medium_pilot"), get_config("medium")
    assert pilot.n_values == (max(medium.n_values),) and len(pilot.seeds) >= 2
    for field in ("dataset", "total_steps", "eval_schedule", "eval_every", "batch_size", "members", "n_train_pool"):
        assert pilot[field] == medium[field], field
    assert medium.eval_schedule == "log"


def test_usage_errors_exit_2(tmp_path, capsys):
    assert step_budget.main(["step_budget"]) == 2
    assert step_budget.main(["step_budget", str(tmp_path)]) == 2
    assert "usage" in capsys.readouterr().err


@pytest.mark.slow
def test_one_n_pilot_runs_and_its_budget_reading_recounts_the_best_steps(tiny_data_root, tmp_path, capsys):
    config = get_config("tiny")
    config.data_dir = tiny_data_root
    config.n_values, config.eval_schedule = (400,), "log"
    config.total_steps, config.chunk_steps, config.eval_every = 40, 20, 10
    workdir = str(tmp_path / "pilot")
    assert run_sweep(config, workdir, log=lambda *_: None) == {}
    with open(os.path.join(workdir, "fit.json")) as f:
        assert json.load(f)["primary"] is None
    assert step_budget.main(["step_budget", workdir]) == 0
    assert "best-step rule" in capsys.readouterr().out
    with open(os.path.join(workdir, "step_budget.json")) as f:
        budget = json.load(f)
    with open(os.path.join(workdir, "results.csv")) as f:
        steps = [int(r["best_step"]) for r in csv.DictReader(f) if r["member"] != "ensemble"]
    reading = budget["conditions"]["oracle"]
    assert reading["members"] == len(steps) == len(config.seeds) * config.members
    assert reading["before_cutoff"] == sum(s < 0.75 * 40 for s in steps)
    assert budget["met"] == (reading["before_cutoff"] >= 0.8 * len(steps))
