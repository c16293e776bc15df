"""PPO-on-gold tuning grid: the report's arithmetic on hand-built rows, the config's checks, the
docs block from the committed results, and (slow) the tiny grid end to end, where one vmapped
point equals the same run alone."""
import json
import os

import numpy as np
import pytest
from scipy import stats

from configs.ppo_tuning import get_config
from experiments import cli, ppo_tuning
from experiments import ppo_tuning_report as report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rows(golds: dict) -> list[dict]:
    return [{"log_std_floor": f, "learning_rate": lr, "beta": b, "seed": s, "gold_return": g, "kl_final": 1.0}
            for (f, lr, b), gs in golds.items() for s, g in enumerate(gs)]


def test_fraction_interval_and_choice_on_hand_built_runs():
    rows = _rows({(-5.0, 1e-4, 0.0): [2.0, 4.0], (-2.0, 1e-4, 0.0): [8.0, 10.0]})
    out = report.summarise(rows, sft_gold=0.0, expert_gold=10.0, target=0.7)
    best = out["choice"]
    assert best["setting"] == {"log_std_floor": -2.0, "learning_rate": 1e-4, "beta": 0.0}
    assert best["fraction"]["mean"] == pytest.approx(0.9)
    half = stats.t.ppf(0.975, 1) * np.std([0.8, 1.0], ddof=1) / np.sqrt(2)  # two seeds
    np.testing.assert_allclose(best["fraction"]["ci95"], [0.9 - half, 0.9 + half])
    assert out["reached"] and out["verdict"].startswith("reached")
    assert "lies across the target" in out["verdict"]  # two seeds: a wide t interval
    low = report.summarise(_rows({(-5.0, 1e-4, 0.0): [2.0, 2.1, 2.2]}), 0.0, 10.0, 0.7)
    assert not low["reached"] and low["verdict"].startswith("not reached") and "lies below the target" in low["verdict"]


def test_budget_curve_on_hand_built_runs():
    rows = [dict(r, updates=u, gold_return=r["gold_return"] * u / 200) for u in (100, 200)
            for r in _rows({(-5.0, 2e-5, 0.01): [6.0, 8.0, 10.0]})]
    curve = report.budget_curve(rows, sft_gold=0.0, expert_gold=10.0)
    assert [(b["updates"], round(b["fraction"]["mean"], 6)) for b in curve] == [(100, 0.4), (200, 0.8)]
    half = stats.t.ppf(0.975, 2) * np.std([0.6, 0.8, 1.0], ddof=1) / np.sqrt(3)
    np.testing.assert_allclose(curve[1]["fraction"]["ci95"], [0.8 - half, 0.8 + half])


@pytest.mark.parametrize("field,value,match", [
    ("eval_every", 3, "field 'eval_every'"),
    ("learning_rates", (1e-4, -1e-4), "field 'learning_rates'"),
    ("betas", (), "field 'betas'"),
    ("log_std_floors", (-9.0,), "field 'log_std_floors'"),
    ("seeds", (0,), "field 'seeds'"),
    ("target_fraction", 1.5, "field 'target_fraction'"),
    ("tasks", ("reach_hold",), "field 'tasks'"),
    ("sft_checkpoint", "no/such/checkpoint", "field 'sft_checkpoint'"),
])
def test_bad_grid_fields_are_refused_before_anything_runs(tmp_path, field, value, match):
    c = get_config("tiny")
    c[field] = value
    with pytest.raises(cli.ConfigError, match=match):
        ppo_tuning.run(c, str(tmp_path / "w"))
    assert not os.path.exists(tmp_path / "w")


@pytest.mark.parametrize("results", ["results/ppo_tuning_quick", "results/ppo_budget_quick",
                                     "results/ppo_budget_default_panda", "results/ppo_budget_default_ur5",
                                     "results/ppo_budget_default_panda_reach", "results/ppo_two_task_default_panda"])
def test_docs_block_is_generated_from_the_committed_summary(results):
    from experiments.doc_blocks import read_block

    with open(os.path.join(ROOT, results, "summary.json"), encoding="utf-8") as f:
        summary = json.load(f)
    with open(os.path.join(ROOT, "docs", "ppo.md"), encoding="utf-8") as f:
        page = f.read()
    assert read_block(page, report.DOCS_BLOCK, results) == report.docs_block(summary, results)


@pytest.mark.slow
def test_tiny_grid_runs_and_a_vmapped_point_equals_the_run_alone(tmp_path, tiny_data_root, tiny_dataset_dir):
    import jax

    from experiments.stages.ppo import load_reference
    from rlhf_jax.models.reward_inference import gold_reward_fn
    from rlhf_jax.train import ppo

    del tiny_dataset_dir
    c = get_config("tiny")
    c.pipeline.sft.dataset.data_dir = tiny_data_root
    c.eval_every = 2   # evaluated after 2 and 4 updates: the chunked program must equal one whole run
    workdir = str(tmp_path / "grid")
    summary = ppo_tuning.run(c, workdir)
    assert sorted({b["updates"] for b in summary["budget_curve"]}) == [2, 4]
    for name in ("grid.csv", "summary.json", "ppo_tuning.png", "sft/stage.json", "floor_1/stage.json"):
        assert os.path.isfile(os.path.join(workdir, name)), name
    assert len(summary["settings"]) == len(c.log_std_floors) * len(c.learning_rates) * len(c.betas)
    with open(os.path.join(workdir, "floor_1", "stage.json"), encoding="utf-8") as f:
        rows = json.load(f)["rows"]
    # The last point of floor 1, trained alone with its own key and hyper-parameters.
    lr, beta, seed = ppo_tuning.grid_points(c)[-1]
    pc = ppo_tuning.gold_ppo_config(c, os.path.join(workdir, "sft", "checkpoints", "sft"), c.log_std_floors[1])
    ref_vars, model, _ = load_reference(pc)
    train = jax.jit(ppo.make_train(pc, gold_reward_fn(), ref_vars, model))
    hp = dict(ppo.default_hparams(pc), lr=np.float32(lr), beta=np.float32(beta))
    _, metrics = train(jax.random.key(c.pipeline.seed + 1000 * seed), hp)
    np.testing.assert_allclose(float(metrics["kl"][-1]), rows[-1]["kl_final"], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(float(metrics["gold_return"][-1]), rows[-1]["train_gold_final"], rtol=1e-3, atol=1e-4)
    # A second arm's run starts from this run's π_SFT instead of training its own: same rows.
    c.sft_checkpoint, c.log_std_floors = os.path.join(workdir, "sft", "checkpoints", "sft"), (c.log_std_floors[0],)
    reused = str(tmp_path / "reused")
    ppo_tuning.run(c, reused)
    assert not os.path.exists(os.path.join(reused, "sft"))
    with open(os.path.join(workdir, "floor_0", "stage.json"), encoding="utf-8") as f, \
            open(os.path.join(reused, "floor_0", "stage.json"), encoding="utf-8") as g:
        assert json.load(g)["rows"] == json.load(f)["rows"]
