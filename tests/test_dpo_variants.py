"""DPO variants on a pipeline workdir: the report's arithmetic on hand-built runs, bad fields refused
before anything is written, the docs block from the committed results (once they exist), and
(slow) the tiny variant end to end on a tiny pipeline workdir, where seeds give different policies
and a variant's run equals a plain ``run_dpo`` with the same fields."""
import csv
import json
import os

import numpy as np
import pytest
from scipy import stats

from configs.dpo_variants import get_config
from experiments import cli, dpo_variants
from experiments import dpo_variants_report as report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = "results/dpo_variants_quick"
SFT = {"gold_return": 1.0, "success_rate": 1.0}


def _rows(golds: dict) -> list[dict]:
    """One row per (variant, seed) from {(name, floor, clip, reduction, beta): [gold per seed]}."""
    return [{"variant": name, "log_std_floor": floor, "action_clip": clip, "logp_reduction": reduction,
             "beta": beta, "seed": s, "gold_return": g, "success_rate": 0.5 + 0.1 * s,
             "implicit_accuracy": 0.6 + 0.01 * s}
            for (name, floor, clip, reduction, beta), gs in golds.items() for s, g in enumerate(gs)]


def test_gain_interval_and_verdicts_on_hand_built_runs():
    rows = _rows({("baseline", None, 0.999, "sum", 0.1): [2.0, 3.0, 4.0],
                  ("floor", -2.5, 0.999, "sum", 0.1): [3.0, 3.5, 4.0],
                  ("clip", None, 0.95, "mean", 5.0): [0.5, 0.6, 0.7]})
    out = report.summarise(rows, SFT)
    by = {v["variant"]: v for v in out["variants"]}
    assert [v["variant"] for v in out["variants"]] == ["baseline", "floor", "clip"]
    t = stats.t.ppf(0.975, 2)
    # Gains 1, 2, 3: mean 2, sample sd 1.
    assert by["baseline"]["gain"]["mean"] == pytest.approx(2.0)
    np.testing.assert_allclose(by["baseline"]["gain"]["ci95"], [2.0 - t / np.sqrt(3), 2.0 + t / np.sqrt(3)])
    np.testing.assert_allclose(by["baseline"]["gold_return"]["ci95"], [3.0 - t / np.sqrt(3), 3.0 + t / np.sqrt(3)])
    assert by["baseline"]["verdict"] == "not distinguishable from SFT"   # lower end 2 − 2.48 < 0
    # Gains 2, 2.5, 3: sd 0.5, lower end 2.5 − 1.24 > 0.
    assert by["floor"]["verdict"] == report.BEATS and by["floor"]["gain"]["ci95"][0] > 0
    assert by["clip"]["verdict"] == "below SFT" and by["clip"]["gain"]["mean"] == pytest.approx(-0.4)
    assert by["floor"]["success_rate"] == pytest.approx(0.6) and by["floor"]["implicit_accuracy"] == pytest.approx(0.61)
    assert by["floor"]["seeds"] == [0, 1, 2] and by["floor"]["log_std_floor"] == -2.5
    assert (by["clip"]["logp_reduction"], by["clip"]["beta"]) == ("mean", 5.0)
    assert out["best"] == "floor" and out["beats_sft"] == ["floor"]
    # π_SFT 1.3 higher: the floor variant's gains 0.7, 1.2, 1.7 have an interval across 0.
    shifted = report.summarise(rows, dict(SFT, gold_return=2.3))
    assert {v["variant"]: v["verdict"] for v in shifted["variants"]}["floor"] == "not distinguishable from SFT"
    assert shifted["beats_sft"] == []
    assert report.verdict([1e-9, 1.0]) == report.BEATS and report.verdict([0.0, 1.0]) != report.BEATS


def test_outputs_and_docs_block_from_hand_built_runs(tmp_path):
    c = get_config("quick")
    rows = _rows({tuple(v): [1.9, 2.0, 2.1] for v in c.variants})
    summary = report.write_outputs(str(tmp_path), rows, SFT, c, wall_s=120.0)
    for name in ("runs.csv", "summary.json", "dpo_variants.png"):
        assert os.path.isfile(tmp_path / name), name
    with open(tmp_path / "summary.json", encoding="utf-8") as f:
        assert json.load(f) == json.loads(json.dumps(summary))
    with open(tmp_path / "runs.csv", encoding="utf-8") as f:
        assert f.readline().startswith("variant,log_std_floor,action_clip,logp_reduction,beta,seed,")
    assert [(v["logp_reduction"], v["beta"]) for v in summary["variants"]] == [(v[3], v[4]) for v in c.variants]
    block = report.docs_block(summary, RESULTS)
    assert block.count("\n| ") == 1 + len(c.variants)   # header + one row per variant
    assert "β and log-prob reduction per variant" in block and "at β" not in block
    assert "| baseline | — | 0.999 | sum | 0.1 | +1.00 [+0.75, +1.25] |" in block
    assert "| mean_beta_5 | — | 0.999 | mean | 5 | +1.00 [+0.75, +1.25] |" in block
    assert "Beats SFT (interval above 0): baseline," in block


@pytest.mark.parametrize("override, match", [
    ("--config.variants=(('a',None,1.5,'sum',0.1),)", "action_clip in (0, 1)"),
    ("--config.variants=(('a',-9.0,0.99,'sum',0.1),)", "log_std_floor of None or a number"),
    ("--config.variants=(('a',None,0.99,'max',0.1),)", "logp_reduction of 'sum' or 'mean'"),
    ("--config.variants=(('a',None,0.99,'mean',0.0),)", "beta > 0"),
    ("--config.variants=(('a',None,0.99,'sum',-1),)", "beta > 0"),
    ("--config.variants=(('a',None,0.99,'sum',0.1),('a',-2.0,0.99,'sum',0.1))", "distinct names"),
    ("--config.variants=(('a/b',None,0.99,'sum',0.1),)", "stage directory"),
    # The record's fields, checked by the CLI: an old three-field record, a β given as a string.
    ("--config.variants=(('a',None,0.99),)", "field 'variants'"),
    ("--config.variants=(('a',None,0.99,'sum','0.1'),)", "field 'variants'"),
    ("--config.variants=()", "field 'variants'"),
    ("--config.seeds=(0,)", "field 'seeds'"),
    ("--config.seeds=(1,1)", "field 'seeds'"),
    ("--config.pipeline.dpo.dpo.loss_types=('sigmoid','ipo')", "field 'pipeline.dpo.dpo.loss_types'"),
    ("--config.pipeline_workdir=", "field 'pipeline_workdir'"),
])
def test_bad_fields_are_refused_before_anything_is_written(capsys, tmp_path, override, match):
    workdir = str(tmp_path / "w")
    code = dpo_variants.main(["prog", "--config=configs/dpo_variants.py:quick", override, f"--workdir={workdir}"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err[-2000:]
    assert "configs/dpo_variants.py" in lines[0] and match in lines[0], lines[0]
    assert not os.path.exists(workdir)


def test_a_pipeline_workdir_without_its_stages_is_refused(tmp_path):
    pipeline = tmp_path / "pipeline"
    (pipeline / "sft" / "checkpoints" / "sft").mkdir(parents=True)   # SFT finished, no rollouts stage
    c = get_config("quick")
    c.pipeline_workdir = str(pipeline)
    with pytest.raises(cli.ConfigError, match=f"field 'pipeline_workdir'.*{pipeline}"):
        dpo_variants.run(c, str(tmp_path / "w"))
    assert not os.path.exists(tmp_path / "w")


def test_the_variants_are_the_runs_configs():
    """A variant sets the floor, the clip, the log-prob reduction and β, a seed sets both the pairs'
    and the training seed; everything else is the pipeline's DPO config."""
    from experiments.stages import rlhf

    c = get_config("quick")
    base = rlhf.dpo_config(c.pipeline, "S", "R")
    for variant in c.variants:
        run = dpo_variants.variant_config(c, "S", "R", variant, 7)
        assert (run.dpo.log_std_floor, run.train.action_clip) == (variant[1], variant[2])
        assert (run.dpo.logp_reduction, run.dpo.betas) == (variant[3], (variant[4],))
        assert run.seed == run.preferences.seed == 7
        run.dpo.log_std_floor, run.train.action_clip = base.dpo.log_std_floor, base.train.action_clip
        run.dpo.logp_reduction, run.dpo.betas = base.dpo.logp_reduction, base.dpo.betas
        run.seed, run.preferences.seed = base.seed, base.preferences.seed
        assert run.to_dict() == base.to_dict()


def test_the_sum_variants_keep_the_pipelines_dpo_setting_and_mean_ones_carry_theirs():
    """The floor and clip variants run at the pipeline's own reduction and β, so their results are
    the ones measured before variants carried either; a per-step variant reaches DPO's config."""
    c = get_config("quick")
    d = c.pipeline.dpo.dpo
    by = {v[0]: v for v in c.variants}
    assert [v[0] for v in c.variants] == ["baseline", "floor_-2.5", "floor_-1.5", "clip_0.99", "clip_0.95",
                                          "floor_-2.5_clip_0.99", "mean_beta_0.5", "mean_beta_5"]
    assert {v[3:] for v in c.variants if not v[0].startswith("mean")} == {(d.logp_reduction, d.betas[0])}
    assert by["mean_beta_0.5"] == ("mean_beta_0.5", None, 0.999, "mean", 0.5)
    run = dpo_variants.variant_config(c, "S", "R", by["mean_beta_5"], 0)
    assert run.dpo.logp_reduction == "mean" and run.dpo.betas == (5.0,)
    assert run.dpo.loss_types == d.loss_types and run.dpo.log_std_floor is None and run.train.action_clip == 0.999


def test_five_field_variants_override_from_the_command_line(tmp_path):
    """The first record's None floor and number β take numbers and integers on the command line."""
    workdir = str(tmp_path / "w")
    inv = cli.parse(["prog", "--config=configs/dpo_variants.py:quick", f"--workdir={workdir}",
                     "--config.variants=(('m',-2.0,0.99,'mean',5),('s',None,0.95,'sum',0.2))"])
    assert [tuple(v) for v in inv.config.variants] == [("m", -2.0, 0.99, "mean", 5), ("s", None, 0.95, "sum", 0.2)]
    dpo_variants.validate_variants(inv.config, inv.config_file)   # accepted by the job as well


def test_docs_block_is_generated_from_the_committed_summary():
    from experiments.doc_blocks import read_block

    with open(os.path.join(ROOT, RESULTS, "summary.json"), encoding="utf-8") as f:
        summary = json.load(f)
    with open(os.path.join(ROOT, "docs", "sft_dpo.md"), encoding="utf-8") as f:
        page = f.read()
    assert read_block(page, report.DOCS_BLOCK, RESULTS) == report.docs_block(summary, RESULTS)


@pytest.fixture(scope="module")
def pipeline_workdir(tmp_path_factory, tiny_data_root, tiny_dataset_dir):
    """(workdir, pipeline config) of a tiny pipeline run as far as dpo_variants reads it: the
    pipeline's own sft and rollouts stages under its tiny test settings (tests/pipeline_fixtures)."""
    from experiments.stages import rlhf
    from experiments.stages.runner import open_run, run_stage
    from tests.pipeline_fixtures import TINY

    del tiny_dataset_dir  # built once per session under tiny_data_root
    workdir = str(tmp_path_factory.mktemp("pipeline") / "run")
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        inv = cli.parse(["prog", *TINY, f"--config.sft.dataset.data_dir={tiny_data_root}", f"--workdir={workdir}"])
    finally:
        os.chdir(cwd)
    config = inv.config
    episodes, dt = open_run(config, workdir, False, config.sft.dataset)
    sft = run_stage(workdir, "sft", rlhf.sft_stage(config, episodes, dt))
    run_stage(workdir, "rollouts", rlhf.rollout_stage(config, sft["checkpoint"], dt))
    return workdir, config


@pytest.mark.slow
def test_tiny_variants_end_to_end(tmp_path, pipeline_workdir):
    import jax

    from experiments.stages import dpo, rlhf
    from rlhf_jax.checkpoint import restore_policy

    pipeline, made_with = pipeline_workdir
    c = get_config("tiny")
    c.pipeline_workdir = pipeline
    # The tiny variant's pipeline block holds the tiny pipeline's DPO and evaluation settings.
    for block in ("dpo", "eval"):
        assert c.pipeline[block].to_dict() == made_with[block].to_dict(), block
    workdir = str(tmp_path / "variants")
    summary = dpo_variants.run(c, workdir)
    other = c.variants[1][0]   # floor -2.5, clip 0.99, per-step log-probs at β 5
    for name in ("runs.csv", "summary.json", "dpo_variants.png", "baseline/seed_1/stage.json",
                 f"{other}/seed_0/stage.json"):
        assert os.path.isfile(os.path.join(workdir, name)), name
    assert [(v["variant"], v["seeds"]) for v in summary["variants"]] == [(v[0], [0, 1]) for v in c.variants]
    # runs.csv names each checkpoint relative to the working directory (no machine path), and it resolves.
    with open(os.path.join(workdir, "runs.csv"), encoding="utf-8") as f:
        checkpoints = [row["checkpoint"] for row in csv.DictReader(f)]
    assert checkpoints and all(not os.path.isabs(p) and os.path.isdir(p) for p in checkpoints)
    for v in summary["variants"]:
        assert (v["verdict"] == report.BEATS) == (v["gain"]["ci95"][0] > 0)
        assert 0.0 <= v["success_rate"] <= 1.0 and 0.0 <= v["implicit_accuracy"] <= 1.0

    def params(stage):
        variables, meta = restore_policy(os.path.join(stage, "checkpoints", "dpo"))
        return jax.tree.leaves(variables["params"]), meta

    # Two seeds of one variant: different pairs and keys, different policies.
    p0, _ = params(os.path.join(workdir, "baseline", "seed_0"))
    p1, _ = params(os.path.join(workdir, "baseline", "seed_1"))
    assert any(not np.allclose(a, b) for a, b in zip(p0, p1))
    # The other variant trained with its floor, clip, reduction and β, and recorded them.
    _, meta = params(os.path.join(workdir, other, "seed_0"))
    assert meta["log_std_floor"] == -2.5 and meta["action_clip"] == 0.99
    assert [p["beta"] for p in meta["points"]] == [5.0]
    with open(os.path.join(workdir, other, "seed_0", "dpo_summary.json"), encoding="utf-8") as f:
        assert json.load(f)["config"]["dpo"]["logp_reduction"] == "mean"
    assert [(v["logp_reduction"], v["beta"]) for v in summary["variants"]] == [("sum", 0.1), ("mean", 5.0)]
    # Baseline, seed 1 = a plain run_dpo with the same fields.
    with open(os.path.join(pipeline, "rollouts", "stage.json"), encoding="utf-8") as f:
        rollouts = json.load(f)["path"]
    plain = rlhf.dpo_config(c.pipeline, os.path.join(pipeline, "sft"), rollouts)
    plain.seed = plain.preferences.seed = 1
    alone = dpo.run_dpo(plain, str(tmp_path / "plain"))
    pa, _ = params(str(tmp_path / "plain"))
    for a, b in zip(pa, p1):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with open(os.path.join(workdir, "baseline", "seed_1", "stage.json"), encoding="utf-8") as f:
        row = json.load(f)
    point = dpo.point_name(alone["points"][0])
    assert row["implicit_accuracy"] == pytest.approx(alone["implicit_reward"]["test"][point]["accuracy"])
    # A rerun with --resume reuses every stage and writes the same summary.
    again = dpo_variants.run(c, workdir, resume=True)
    assert {k: v for k, v in again.items() if k != "wall_s"} == {k: v for k, v in summary.items() if k != "wall_s"}
