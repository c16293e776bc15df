"""The pipeline's comparison of PPO on combined objective heads with PPO on the scalar reward model
(``compare_objectives``): the heads reuse the reward-model stage's pairs, the PPO arm reuses the
headline's seeds, and the paired comparison reads known answers off hand-built rows."""
import json
import os

import numpy as np
import pytest

from experiments import rlhf_pipeline
from tests.pipeline_fixtures import TINY


@pytest.fixture(scope="module")
def objectives_run(tmp_path_factory, tiny_data_root, tiny_dataset_dir):
    del tiny_dataset_dir  # built once per session under tiny_data_root
    workdir = str(tmp_path_factory.mktemp("pipeline_objectives") / "run")
    argv = ["prog", *TINY, f"--config.sft.dataset.data_dir={tiny_data_root}", "--config.compare_objectives=True",
            "--config.iterate.rounds=0", f"--workdir={workdir}"]
    assert rlhf_pipeline.main(argv) == 0
    with open(os.path.join(workdir, "pipeline.json")) as f:
        return workdir, json.load(f)


@pytest.mark.slow
def test_heads_are_trained_on_the_scalar_models_pairs_and_ppo_on_them_under_the_headline_seeds(objectives_run):
    from rlhf_jax.objective_heads import load_objective_heads
    from rlhf_jax.preferences.objectives import OBJECTIVE_NAMES
    from rlhf_jax.reward_artifact import load_reward_model

    workdir, result = objectives_run
    for seed in (0, 1):
        with open(os.path.join(workdir, "reward_model", f"seed_{seed}", "stage.json")) as f:
            scalar = load_reward_model(json.load(f)["checkpoint"])
        heads = load_objective_heads(os.path.join(workdir, "reward_model_objectives", f"seed_{seed}"))
        assert heads.meta["pairs_hash"] == scalar.meta["pairs_hash"]
        assert set(heads.heads) == set(OBJECTIVE_NAMES) and all(w > 0 for w in heads.weights.values())
        for o, head in heads.heads.items():
            assert head.meta["pairs_hash"] == scalar.meta["pairs_hash"]   # same pairs, other answers
            assert head.meta["condition"] == f"stochastic@{o}"
            assert head.meta["label_source"]["label_set_hash"] != scalar.meta["label_source"]["label_set_hash"]
            for key in ("n", "seed", "members", "model", "segment_length", "dataset_path"):
                assert head.meta[key] == scalar.meta[key], key
    cells = lambda name: sorted((r["rm_seed"], r["ppo_seed"]) for r in result["runs"][name])
    assert cells("objectives") == cells("headline") == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert "ppo_rlhf_objectives" in result["policies"] and "round2" not in result
    o = result["objectives"]
    by_cell = {name: {(r["rm_seed"], r["ppo_seed"]): r["gold_return"] for r in result["runs"][name]}
               for name in ("headline", "objectives")}
    paired = np.mean([by_cell["objectives"][k] - by_cell["headline"][k] for k in by_cell["headline"]])
    assert o["combined_minus_scalar"]["mean"] == pytest.approx(paired)
    assert o["combined_minus_scalar"]["clusters"] == 2 and o["combined_minus_scalar"]["members"] == 2
    assert set(o["safety"]) == {"clearance", "collision", "joint_limit", "speed_violation", "violations"}
    assert set(o["weights"]) == {"0", "1"}
    with open(os.path.join(workdir, "pipeline.md"), encoding="utf-8") as f:
        assert "Combined objective heads vs the scalar reward model" in f.read()
    with open(os.path.join(workdir, "stage_configs.json"), encoding="utf-8") as f:
        stages = json.load(f)
    assert stages["reward_model_objectives/seed_1"]["objectives"] == list(OBJECTIVE_NAMES)
    assert stages["reward_model_objectives/seed_1"]["n_values"] == [30]
    assert not any(stages["ppo/objectives/ur5"]["safety"]["weights"])


def test_objectives_variant_is_quick_plus_the_comparison_without_the_iterated_round():
    from configs.rlhf_pipeline import get_config

    quick, variant = get_config("quick").to_dict(), get_config("objectives").to_dict()
    assert not quick["compare_objectives"] and variant["compare_objectives"]
    assert variant["iterate"]["rounds"] == 0 and variant["variant"] == "objectives"
    for key in ("variant", "compare_objectives", "iterate"):
        quick.pop(key), variant.pop(key)
    assert quick == variant


def test_an_annotator_that_is_no_teacher_preset_cannot_answer_sub_questions():
    from configs.rlhf_pipeline import get_config
    from experiments import cli
    from experiments.stages import rlhf

    config = get_config("objectives")
    config.annotator = "qc:crowd/majority"   # a simulated team's aggregated answers: no sub-answers
    with pytest.raises(cli.ConfigError, match="^my.py: field 'annotator': expected a teacher preset when "
                                              "compare_objectives is on"):
        rlhf.validate(config, "my.py")
    config.compare_objectives = False
    rlhf.validate(config, "my.py")


def test_paired_comparison_on_hand_built_runs():
    """Combined runs 0.5 gold above their scalar cell on every cell: zero-width difference +0.5 and the
    verdict 'combined better'; a difference that changes sign across reward-model seeds resolves none;
    safety components are read from the rows' gold components."""
    from experiments.pipeline_objectives import objectives_comparison, objectives_lines

    sft, R, P = 1.0, (0, 1, 2), (0, 1, 2, 3, 4)

    def row(gold, clearance=0.0, violations=0.1):
        comps = {"clearance": clearance, "collision": -0.2, "joint_limit": 0.0, "speed_violation": -1.0}
        return {"gold_return": gold, "violations": violations, "gold_components": comps}

    scalar = [(r, p, row(sft + 1.0 + 0.1 * p + r, clearance=-1.0)) for r in R for p in P]
    combined = [(r, p, row(sft + 1.5 + 0.1 * p + r, clearance=-0.5, violations=0.05)) for r in R for p in P]
    out = objectives_comparison(scalar, combined, R, P, sft, gold_seeds=[sft + 4.0] * 5)
    d = out["combined_minus_scalar"]
    assert d["mean"] == pytest.approx(0.5) and d["ci95"] == pytest.approx([0.5, 0.5]) and d["verdict"] == "combined better"
    assert out["scalar"]["gain"]["mean"] == pytest.approx(2.2) and out["combined"]["gain"]["mean"] == pytest.approx(2.7)
    assert out["combined"]["fraction_recovered"]["fraction"] == pytest.approx(2.7 / 4.0)
    assert out["safety"]["clearance"]["combined_minus_scalar"]["mean"] == pytest.approx(0.5)
    assert out["safety"]["violations"]["combined_minus_scalar"]["mean"] == pytest.approx(-0.05)
    assert out["safety"]["speed_violation"]["combined_minus_scalar"]["ci95"] == pytest.approx([0.0, 0.0])
    # +1 on one reward-model seed, −1 on another: the cluster interval straddles 0.
    combined = [(r, p, row(sft + 1.0 + 0.1 * p + r + (1.0, -1.0, 0.2)[r])) for r in R for p in P]
    out = objectives_comparison(scalar, combined, R, P, sft, gold_seeds=[sft + 4.0] * 5)
    assert out["combined_minus_scalar"]["verdict"] == "no difference resolved"
    lines = objectives_lines({"objectives": dict(out, weights={"0": {"task": 0.5, "safety": 0.25}})})
    assert "**no difference resolved**" in lines[0] and "seed 0: task 0.50, safety 0.25" in lines[0]
    assert len(lines) == 4 + 5 and lines[4].startswith("| clearance |")
    assert objectives_lines({}) == []


def test_stage_configs_record_the_heads_and_the_objectives_points():
    from configs.rlhf_pipeline import get_config
    from experiments.stages import rlhf

    config = get_config("objectives")
    rms = {r: f"w/reward_model/seed_{r}/rm" for r in config.reward_model.seeds}
    heads = {r: f"w/reward_model_objectives/seed_{r}" for r in config.reward_model.seeds}
    st = {"sft": {"checkpoint": "w/sft/ckpt"}, "rollouts": {"path": "w/rollouts/ds"}, "reward_models": rms,
          "headline": {}, "constraints": {}, "objective_heads": heads, "objectives": {}}
    out = rlhf.resolved_stage_configs(config, st, "w")
    sweep = out["reward_model_objectives/seed_2"]
    assert sweep["seeds"] == (2,) and sweep["label_seed"] == 2 and sweep["n_values"] == (2000,)
    assert sweep["dataset_path"] == "w/rollouts/ds" and sweep["save_models"]["condition"] == "*"
    scalar = out["reward_model/seed_2"]
    for key in ("model", "members", "total_steps", "n_train_pool", "pool_seed", "split_seed", "conditions", "loss"):
        assert sweep[key] == scalar[key], key
    points = out["ppo/objectives/panda"]["points"]
    assert {p["reward"] for p in points} == set(heads.values())
    assert sorted(p["seed"] for p in points) == sorted(list(config.ppo_seeds) * len(heads))
    assert not any(out["ppo/objectives/panda"]["safety"]["weights"])


def test_the_report_block_adds_the_comparison_after_the_iterated_round_and_nothing_without_it():
    """The committed quick result renders as before; with an ``objectives`` entry (hand-built) the
    block gains the comparison's sentence and safety table right after the iterated-round line."""
    from experiments.pipeline_objectives import objectives_comparison, objectives_lines
    from experiments.rlhf_pipeline_report import docs_block
    from rlhf_jax.strict_json import read_json

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = read_json(os.path.join(root, "results", "pipeline_quick", "pipeline.json"))
    plain = docs_block(result, "results/x")
    assert "Combined objective heads" not in plain
    cells = [(r["rm_seed"], r["ppo_seed"], r) for r in result["runs"]["headline"]]
    shifted = [(r, p, dict(row, gold_return=row["gold_return"] + 0.25)) for r, p, row in cells]
    seeds = result["seeds"]
    result["objectives"] = dict(objectives_comparison(cells, shifted, seeds["reward_model"], seeds["ppo"],
                                                      result["policies"]["sft"]["gold_return"],
                                                      [r["gold_return"] for r in result["runs"]["gold"]]),
                                weights={"0": {"task": 1.0}})
    lines = docs_block(result, "results/x").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Iterated round"))
    assert lines[at + 2].startswith("Combined objective heads") and "+0.25 [+0.25, +0.25] gold" in lines[at + 2]
    assert "**combined better**" in lines[at + 2] and lines[at + 6].startswith("| clearance |")
    inserted = 1 + len(objectives_lines(result))   # a blank line, then the comparison
    assert lines[:at + 1] + lines[at + 1 + inserted:] == plain.splitlines()
