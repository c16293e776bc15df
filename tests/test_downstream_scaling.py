"""Downstream scaling: the readings, the saturating fit and the two-stage intervals on hand-built runs
whose answers are known; (slow) the tiny variant end to end. The vmapped PPO program over reward-model
points is tested in tests/test_ppo_points.py."""
import json
import os

import numpy as np
import pytest

from experiments import downstream_report as report

SFT, REF = 2.0, 4.0


def _rows(fraction, acc, noise=None):
    """Rows of 3 reward-model seeds x 2 PPO seeds per N, and 2 PPO-on-gold seeds."""
    rows = []
    for n in (100, 300, 1000, 3000, 10000):
        for s in range(3):
            for p in range(2):
                extra = 0.0 if noise is None else noise(s, p)
                rows.append({"n": n, "seed": s, "ppo_seed": p, "rm_test_accuracy": acc(n), "success": 1.0,
                             "gold_return": SFT + fraction(n) * (REF - SFT) + extra, "rm_accuracy_on_policy": 0.6})
    return rows + [{"n": None, "seed": None, "ppo_seed": p, "gold_return": REF} for p in range(2)]


def test_readings_fit_and_intervals_on_hand_built_runs():
    fit = report.analyse(_rows(lambda n: 0.8 * n / (n + 300), lambda n: 0.6 + 0.05 * np.log2(n / 100)), SFT, 50)
    assert fit["per_doubling"]["accuracy_points"]["value"] == pytest.approx(0.05)
    assert fit["per_doubling"]["accuracy_points"]["ci95"] == pytest.approx([0.05, 0.05])   # seeds agree exactly
    assert fit["fit"]["f_max"]["value"] == pytest.approx(0.8, rel=1e-4)
    assert fit["fit"]["n_half"]["value"] == pytest.approx(300, rel=1e-3)
    assert fit["by_n"]["1000"]["fraction_recovered"]["mean"] == pytest.approx(0.8 * 1000 / 1300)
    assert fit["verdicts"]["accuracy_points"] == "excludes the claimed range"   # 5 points < 8-12%
    assert fit["reward_model_seeds"] == 3 and fit["ppo_seeds"] == 2


def test_noisy_seeds_widen_the_intervals_and_make_verdicts_undecided():
    # One reward-model seed far above the others: the cluster bootstrap must see it.
    noisy = _rows(lambda n: 0.1 * np.log2(n / 100) / 7, lambda n: 0.7, noise=lambda s, p: 1.5 * (s == 0) + 0.1 * p)
    fit = report.analyse(noisy, SFT, 400)
    lo, hi = fit["by_n"]["100"]["gold_gain"]["ci95"]
    assert hi - lo > 0.5
    flat = report.analyse(_rows(lambda n: 0.1 * np.log2(n / 100) / 7, lambda n: 0.7), SFT, 50)
    assert flat["per_doubling"]["fraction_points"]["ci95"] == pytest.approx([0.1 / 7, 0.1 / 7])


def test_docs_block_orders_n_by_value_and_says_when_the_fit_is_flat():
    """fit.json's N keys sort as text (10000 before 300); the table must not. A collapse that shrinks
    with N (fractions below 0, rising) cannot be fitted by a form that rises from 0: the block says so."""
    rising = json.loads(json.dumps(report.analyse(
        _rows(lambda n: 0.8 * n / (n + 300), lambda n: 0.7), SFT, 20), sort_keys=True))
    collapse = json.loads(json.dumps(report.analyse(
        _rows(lambda n: -30.0 / np.log2(n / 50), lambda n: 0.7), SFT, 20), sort_keys=True))
    for fit in (rising, collapse):
        fit.update(arm="panda", tasks=["reach_avoid"], sft_gold=SFT, expert_gold=REF, wall_s=60.0, ppo_program_s=30.0)
    block = report.docs_block(rising, "results/x")
    table_ns = [line.split("|")[1].strip() for line in block.splitlines() if line.startswith("| ") and "," in line[:9]]
    assert [int(n.replace(",", "")) for n in table_ns] == [1000, 3000, 10000]
    assert block.index("| 300 |") < block.index("| 1,000 |") and "flat line" not in block
    assert collapse["fit"]["n_half"]["value"] <= 1.01 * report.N_HALF_FLOOR
    assert "every fraction is below 0" in report.docs_block(collapse, "results/x")


@pytest.mark.slow
def test_tiny_downstream_runs_end_to_end_and_resumes_after_preparing(tmp_path, tiny_data_root, tiny_dataset_dir):
    """The run in one go equals the run in two halves (--prepare_only, then --resume: the GPU
    script's path, which loads no dataset once the SFT stage has finished)."""
    from configs.downstream_scaling import get_config
    from experiments import downstream_scaling

    del tiny_dataset_dir
    c = get_config("tiny")
    c.pipeline.sft.dataset.data_dir = tiny_data_root
    workdir = str(tmp_path / "down")
    fit = downstream_scaling.run(c, workdir)
    halves = str(tmp_path / "halves")
    assert downstream_scaling.run(c, halves, prepare_only=True) is None
    assert not os.path.exists(os.path.join(halves, "ppo"))
    again = downstream_scaling.run(c, halves, resume=True)
    for d in (fit, again):
        d.pop("wall_s"), d.pop("ppo_program_s")
    assert again == fit
    assert list(fit["by_n"]) == ["10", "20", "30"] and fit["points"] == 3 * 2 * 2 + 2
    with open(os.path.join(workdir, "ppo", "panda", "stage.json")) as f:
        rewards = [p["reward"] for p in json.load(f)["points"]]
    assert len(set(rewards)) == 3 * 2 + 1   # every (N, reward-model seed) its own ensemble, and gold
    for name in ("downstream.csv", "fit.json", "downstream.png", "reward_model/seed_1/stage.json"):
        assert os.path.isfile(os.path.join(workdir, name)), name
    with open(os.path.join(workdir, "stage_configs.json")) as f:
        configs = json.load(f)
    assert [p["reward"] for p in configs["ppo/panda"]["points"]] == rewards   # the points the stage ran
    assert configs["reward_model/seed_1"]["save_models"]["n_values"] == [10, 20, 30]


def test_stage_configs_name_every_point_and_what_each_reward_stage_saves(tmp_path):
    """stage_configs.json: every (N, reward-model seed, PPO seed) point and the gold ones, PPO's
    arm and π_SFT, and each reward-model seed's sweep saving every N on the run's rollouts."""
    from configs.downstream_scaling import get_config
    from experiments import downstream_scaling

    c = get_config("quick")
    out = downstream_scaling.stage_configs(c, "w", "w/sft/ckpt", "w/rollouts/ds")
    rm = c.pipeline.reward_model
    pts = out[f"ppo/{c.arm}"]["points"]
    assert len(pts) == len(rm.n_values) * len(rm.seeds) * len(c.ppo_seeds) + len(c.ppo_seeds)
    assert sum(p["reward"] == "gold" for p in pts) == len(c.ppo_seeds)
    assert {p["n"] for p in pts if p["n"]} == set(rm.n_values)
    assert out[f"ppo/{c.arm}"]["env"]["robot"] == c.arm and out[f"ppo/{c.arm}"]["ref_checkpoint"] == "w/sft/ckpt"
    for r in rm.seeds:
        s = out[f"reward_model/seed_{r}"]
        assert s["seeds"] == (r,) and s["dataset_path"] == "w/rollouts/ds"
        assert tuple(s["save_models"]["n_values"]) == tuple(rm.n_values)


def test_docs_block_is_generated_from_the_committed_results():
    from experiments.doc_blocks import read_block

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "results", "downstream_quick", "fit.json"), encoding="utf-8") as f:
        fit = json.load(f)
    with open(os.path.join(root, "docs", "rlhf_pipeline.md"), encoding="utf-8") as f:
        page = f.read()
    source = "results/downstream_quick"
    assert read_block(page, report.DOCS_BLOCK, source) == report.docs_block(fit, source)
