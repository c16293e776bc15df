"""The RLHF pipeline end to end on tiny shapes: every stage runs and composes, pipeline.json has every
policy entry, and a rerun with --resume reuses the finished stages and gives the same report."""
import json
import os

import pytest

from experiments import rlhf_pipeline
from tests.pipeline_fixtures import TINY


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory, tiny_data_root, tiny_dataset_dir):
    del tiny_dataset_dir  # built once per session under tiny_data_root
    workdir = str(tmp_path_factory.mktemp("pipeline") / "run")
    argv = ["prog", *TINY, f"--config.sft.dataset.data_dir={tiny_data_root}", f"--workdir={workdir}"]
    assert rlhf_pipeline.main(argv) == 0
    with open(os.path.join(workdir, "pipeline.json")) as f:
        return workdir, argv, json.load(f)


@pytest.mark.slow
def test_pipeline_writes_every_policy_and_comparison(pipeline_run):
    workdir, _, result = pipeline_run
    assert set(result["policies"]) == {"sft", "expert", "ppo_gold", "ppo_rlhf_no_constraints", "ppo_rlhf",
                                       "ppo_rlhf_round2", "dpo"}
    for name, p in result["policies"].items():
        for key in ("gold_return", "success", "gold_components", "violations", "kl_to_sft", "incident_rate"):
            assert key in p, (name, key)
        assert 0.0 <= p["success"] <= 1.0
    assert result["policies"]["sft"]["kl_to_sft"] == 0.0
    # 2 reward-model seeds x 2 PPO seeds, 2 gold seeds; constraints and round 2 under the secondary seed.
    assert [len(result["runs"][k]) for k in ("headline", "gold", "constraints", "round2")] == [4, 2, 2, 2]
    assert {(r["rm_seed"], r["ppo_seed"]) for r in result["runs"]["headline"]} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    h = result["headline"]
    assert h["gain"]["clusters"] == 2 and h["gain"]["members"] == 2
    assert h["power"]["sufficient"] == (h["gain"]["half_width"] <= h["gold_gain"]["mean"] / 3)
    assert [(m["round"], m["seed"]) for m in result["reward_models"]] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    for m in result["reward_models"]:
        assert m["n"] == 30 and set(m["expert_vs_sft"]) == {"ur5/reach"}
        assert 0.0 <= m["test_accuracy"] <= 1.0 and 0.0 <= m["accuracy_on_own_episodes"] <= 1.0
    for name in ("pipeline.md", "pipeline.png", "rollouts/stage.json", "reward_model/seed_1/stage.json"):
        assert os.path.isfile(os.path.join(workdir, name)), name


@pytest.mark.slow
def test_iterated_round_reuses_the_stages(pipeline_run):
    """Round 2's data is the rollout stage's dataset of pi_SFT plus the round-1 policies trained on that
    seed's reward model; its reward model is the sweep stage's artefact on it, per seed."""
    from rlhf_jax.data.rlds import load_rlds
    from rlhf_jax.reward_artifact import load_reward_model

    workdir, _, result = pipeline_run
    for seed in (0, 1):
        with open(os.path.join(workdir, "round2", "rollouts", f"seed_{seed}", "stage.json")) as f:
            info = json.load(f)
        policies = {e["episode_metadata"]["policy"] for e in load_rlds(info["path"])}
        assert {"sft@0.1", "sft@0.5", "sft@0.1,speed=0.5", "sft@0.1,goal=0.1"} <= policies
        fine_tuned = {p for p in policies if p.startswith("ppo_round1_")}
        assert fine_tuned == {f"ppo_round1_rm{seed}/point{2 * seed}@0.05"}, policies  # headline point (seed, ppo 0)
        with open(os.path.join(workdir, "round2", "reward_model", f"seed_{seed}", "stage.json")) as f:
            rm = load_reward_model(json.load(f)["checkpoint"])
        assert rm.meta["seed"] == seed and rm.meta["label_source"]["label_seed"] == seed
        assert rm.meta["dataset_path"] == info["path"]


@pytest.mark.slow
def test_resume_reuses_finished_stages(pipeline_run, capsys):
    workdir, argv, result = pipeline_run
    os.remove(os.path.join(workdir, "pipeline.json"))
    assert rlhf_pipeline.main(argv + ["--resume"]) == 0
    out = capsys.readouterr().out
    # sft, rollouts, 2 reward models, 2 PPO point sets, round 2 (2 rollouts, 2 reward models, PPO), dpo
    assert out.count("finished earlier, reused") == 12
    with open(os.path.join(workdir, "pipeline.json")) as f:
        again = json.load(f)
    for d in (again, result):
        d.pop("stages"), d.pop("wall_s"), d.pop("eval_wall_s")
    assert again == result


REDUCED = ["--config=configs/rlhf_pipeline.py:quick", "--config.ppo.ppo.num_updates=200",
           "--config.ppo.kl.total_updates=200", "--config.ppo_seeds=(0,1,2)", "--config.secondary_ppo_seeds=(0,)",
           "--config.iterate.rounds=0", "--config.eval.n_episodes=32"]


@pytest.mark.slow
def test_reduced_quick_pipeline_multi_seed_criterion(tmp_path):
    """The quick pipeline at 200 PPO updates, 3 reward-model seeds x 3 PPO seeds (about 5 minutes on 2
    cores). Criterion, chosen from the committed quick runs (results/pipeline_quick and
    results/pipeline_quick_mean: PPO on gold above pi_SFT on 5 of 5 seeds by at least +2.7; every
    one of the 15 learned-reward runs below PPO on gold, with the members' minimum and with their
    mean) and from the budget curve (results/ppo_budget_quick: PPO on gold at beta
    0.05 and 200 updates recovers about half of the SFT -> expert gap, interval over 5 seeds
    [0.49, 0.62]): PPO on gold beats pi_SFT on every seed,
    its interval over seeds excludes zero, and every learned-reward run ends below the PPO-on-gold
    run of the same PPO seed."""
    workdir = str(tmp_path / "reduced")
    assert rlhf_pipeline.main(["prog", *REDUCED, f"--workdir={workdir}"]) == 0
    with open(os.path.join(workdir, "pipeline.json")) as f:
        result = json.load(f)
    sft = result["policies"]["sft"]["gold_return"]
    gold = {r["ppo_seed"]: r["gold_return"] for r in result["runs"]["gold"]}
    assert len(gold) == 3 and all(g > sft for g in gold.values()), (sft, gold)
    assert result["headline"]["gold_gain"]["ci95"][0] > 0.0
    learned = result["runs"]["headline"]
    assert len(learned) == 9 and all(r["gold_return"] < gold[r["ppo_seed"]] for r in learned)


def test_the_reward_stage_names_the_config_file_it_was_given(tmp_path):
    """The reward stage's errors name the pipeline's own config file, whichever file that is (it
    once named configs/rlhf_pipeline.py whatever --config said)."""
    from configs.rlhf_pipeline import get_config
    from experiments import cli
    from experiments.stages import rlhf

    config = get_config("quick")
    run = rlhf.reward_stage(config, str(tmp_path / "no_rollouts_here"), "my_pipeline.py")
    with pytest.raises(cli.ConfigError, match=r"^my_pipeline\.py: field 'dataset_path'"):
        run(str(tmp_path / "reward_model"))
    assert not os.path.exists(tmp_path / "reward_model")


@pytest.mark.parametrize("results", ["results/pipeline_quick", "results/pipeline_quick_mean",
                                     "results/pipeline_quick_beta001", "results/pipeline_default_panda",
                                     "results/pipeline_default_ur5",
                                     "results/pipeline_objectives"])
def test_docs_table_is_generated_from_the_committed_pipeline(results):
    """docs/rlhf_pipeline.md's block equals what the report script makes of the committed pipeline.json."""
    from experiments.doc_blocks import read_block
    from experiments.rlhf_pipeline_report import DOCS_BLOCK, docs_block
    from rlhf_jax.strict_json import read_json

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = read_json(os.path.join(root, results, "pipeline.json"))   # as the report script reads it
    with open(os.path.join(root, "docs", "rlhf_pipeline.md"), encoding="utf-8") as f:
        page = f.read()
    assert read_block(page, DOCS_BLOCK, results) == docs_block(result, results)


def test_comparisons_on_hand_built_runs():
    """Headline, constraints and round-2 readings from rows whose answers are known: every learned run
    gains +1 over pi_SFT and PPO on gold +2 (fraction 0.5, zero-width intervals); constraints cost
    0.5 gold on every paired run and cut incidents from 50% to 15% (a 70% cut, inside the claimed
    60–80%); round 2 adds +0.25."""
    from types import SimpleNamespace

    from experiments.rlhf_pipeline_report import comparisons, incident_claim_lines

    config = SimpleNamespace(reward_model=SimpleNamespace(seeds=(0, 1, 2)), ppo_seeds=(0, 1, 2, 3, 4),
                             secondary_ppo_seeds=(0, 1))
    sft = 3.0

    def row(gold, violations=0.1, incidents=0.0):
        return {"gold_return": gold, "violations": violations, "incident_rate": incidents}

    rows = {"headline": [(r, p, row(sft + 1.0 + 0.0 * r, incidents=0.5)) for r in range(3) for p in range(5)],
            "gold": [(None, p, row(sft + 2.0)) for p in range(5)],
            "constraints": [(r, p, row(sft + 0.5, violations=0.0, incidents=0.15)) for r in range(3) for p in range(2)],
            "round2": [(r, p, row(sft + 1.25)) for r in range(3) for p in range(2)]}
    out = comparisons(config, rows, sft)
    h = out["headline"]
    assert h["gain"]["mean"] == pytest.approx(1.0) and h["gain"]["ci95"] == pytest.approx([1.0, 1.0])
    assert h["gain"]["clusters"] == 3 and h["gain"]["members"] == 5
    assert h["fraction_recovered"]["fraction"] == pytest.approx(0.5)
    assert h["power"] == {"half_width": pytest.approx(0.0), "third_of_gold_gain": pytest.approx(2 / 3), "sufficient": True}
    c = out["constraints"]
    assert c["gold_on_minus_off"]["mean"] == pytest.approx(-0.5)
    assert c["violations_off"]["mean"] == pytest.approx(0.1) and c["violations_on"]["mean"] == pytest.approx(0.0)
    cut = c["incident_reduction"]
    assert cut["reduction"] == pytest.approx(0.7) and cut["ci95"] == pytest.approx([0.7, 0.7])
    assert cut["verdict"] == "inside" and "falls by 70% [70%, 70%]" in incident_claim_lines(c)[0]
    assert out["round2"]["minus_round1"]["mean"] == pytest.approx(0.25)
    assert out["round2"]["fraction_recovered"]["fraction"] == pytest.approx(0.625)
    # One noisy reward-model seed widens the interval: the power check can fail.
    rows["headline"] = [(r, p, row(sft + (3.0 if r == 0 else 0.0) + 0.1 * p)) for r in range(3) for p in range(5)]
    out = comparisons(config, rows, sft)
    assert not out["headline"]["power"]["sufficient"]
    assert out["constraints"]["incident_reduction"]["verdict"] == "not measurable"   # no incidents off


def test_headline_names_each_reward_model_and_the_seeds_the_power_check_would_need():
    """Per reward-model seed means from hand-built rows, and the clusters a half-width 2x the target
    would need at the same spread (4x as many: half-widths shrink as 1/sqrt(clusters))."""
    from experiments.rlhf_pipeline_report import clusters_needed, gain_by_reward_model, headline_lines

    runs = [{"rm_seed": r, "ppo_seed": p, "gold_return": 1.0 + r + 0.5 * p} for r in range(3) for p in range(2)]
    result = {"policies": {"sft": {"gold_return": 1.0}}, "runs": {"headline": runs},
              "seeds": {"reward_model": [0, 1, 2], "ppo": [0, 1]},
              "headline": {"gain": {"mean": 1.25, "ci95": [-1.0, 3.5]}, "gold_gain": {"mean": 3.0, "ci95": [2.9, 3.1]},
                           "fraction_recovered": {"fraction": 0.42, "ci95": [-0.3, 1.2]},
                           "power": {"half_width": 2.0, "third_of_gold_gain": 1.0, "sufficient": False}}}
    assert gain_by_reward_model(result) == {0: pytest.approx(0.25), 1: pytest.approx(1.25), 2: pytest.approx(2.25)}
    assert clusters_needed(2.0, 1.0, 3) == 12 and clusters_needed(1.0, 1.0, 3) == 3
    text = "\n".join(headline_lines(result))
    assert "seed 0 +0.25, seed 1 +1.25, seed 2 +2.25" in text and "about 12 reward-model seeds" in text
    result["headline"]["power"].update(half_width=0.5, sufficient=True)
    assert "it would take" not in "\n".join(headline_lines(result))


def test_stage_configs_record_what_the_pipeline_fills_in_at_run_time():
    """stage_configs.json holds, per stage, the fields config.json cannot: the reward model's
    condition and rollouts, each point set's arm, tasks, π_SFT and points, DPO's teacher."""
    from configs.rlhf_pipeline import get_config
    from experiments.stages import rlhf

    config = get_config("quick")
    config.arms, config.tasks, config.annotator = ("ur5", "panda"), ("reach",), "noisy_pool"
    rms = {r: f"w/reward_model/seed_{r}/rm" for r in config.reward_model.seeds}
    st = {"sft": {"checkpoint": "w/sft/ckpt"}, "rollouts": {"path": "w/rollouts/ds"}, "reward_models": rms,
          "headline": {}, "constraints": {}, "round2": {}, "dpo": {},
          "round2_rollouts": {r: {"path": f"w/round2/rollouts/seed_{r}/ds"} for r in rms},
          "round2_reward_models": {r: f"w/round2/reward_model/seed_{r}/rm" for r in rms}}
    out = rlhf.resolved_stage_configs(config, st, "w")
    assert out["reward_model/seed_1"]["conditions"] == ("noisy_pool",)
    assert out["reward_model/seed_1"]["dataset_path"] == "w/rollouts/ds" and out["reward_model/seed_1"]["seeds"] == (1,)
    assert out["round2/reward_model/seed_2"]["dataset_path"] == "w/round2/rollouts/seed_2/ds"
    head = out["ppo/headline/panda"]
    assert head["env"]["robot"] == "panda" and head["env"]["tasks"] == ("reach",)
    assert head["ref_checkpoint"] == "w/sft/ckpt" and not any(head["safety"]["weights"])
    assert any(out["ppo/constraints/ur5"]["safety"]["weights"])
    rewards = [p["reward"] for p in head["points"]]
    assert rewards.count("gold") == len(config.ppo_seeds) and rewards.count(rms[0]) == len(config.ppo_seeds)
    assert {p["reward"] for p in out["round2/ppo/ur5"]["points"]} == set(st["round2_reward_models"].values())
    assert out["dpo"]["preferences"]["teacher"] == "noisy_pool" and out["dpo"]["dataset"]["path"] == "w/rollouts/ds"
