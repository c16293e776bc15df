"""Transfer experiment: the tiny variant end to end (outputs, numbers consistent with the rows,
verdicts following their criteria, the notebook), fine-tuning never above zero-shot on
validation, and bad configs."""
from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from configs import cross_embodiment as xe_config
from experiments import cli
from experiments import cross_embodiment as xe
from experiments import cross_embodiment_report as report
from experiments.cross_embodiment import run_transfer
from rlhf_jax.errors import ConfigError
from rlhf_jax.evaluation import transfer_stats as ts

from tests.results_compare import assert_tree_close
from tests.subprocess_utils import ROOT, execute_notebook


@pytest.fixture(scope="module")
def tiny_run(tiny_data_root, tiny_dataset_dir, tmp_path_factory):
    """The tiny variant run into a temp workdir (uses the session's tiny dataset)."""
    del tiny_dataset_dir  # built by the session fixture into tiny_data_root
    workdir = str(tmp_path_factory.mktemp("xemb") / "run")
    config = xe_config.get_config("tiny")
    config.data_dir = tiny_data_root
    summary = run_transfer(config, workdir, log=lambda *_: None)
    return workdir, summary, config


@pytest.mark.slow
def test_outputs_and_summary_agree_with_rows(tiny_run):
    workdir, summary, config = tiny_run
    for name in ("results.csv", "test_correct.npz", "summary.json", "claims.md", "claims.json",
                 "accuracy_vs_n_target.png", "config.json", "run_info.json"):
        assert os.path.isfile(os.path.join(workdir, name)), name
    with open(os.path.join(workdir, "results.csv")) as f:
        rows = list(csv.DictReader(f))
    models = [label for label, _, _ in xe.model_variants(config)]
    assert models == ["joint/mean", "joint/dropout", "eef"]
    assert {r["model"] for r in rows} == set(models)
    for model in models:
        m = summary["models"][f"panda->ur5|{model}"]
        for cond in ("finetune", "scratch"):
            for n in config.n_target:
                acc = [float(r["accuracy"]) for r in rows if r["model"] == model and r["condition"] == cond
                       and int(r["n_target"]) == n]
                assert len(acc) == len(config.seeds)
                est, (lo, hi) = m[cond][str(n)]["estimate"], m[cond][str(n)]["ci"]
                assert est == pytest.approx(np.mean(acc), abs=1e-6) and lo <= est + 1e-9 <= hi + 2e-9
    # Scratch does not depend on how the unseen token is filled: trained once, shared.
    scratch = {model: [r["accuracy"] for r in rows if r["model"] == model and r["condition"] == "scratch"]
               for model in ("joint/mean", "joint/dropout")}
    assert scratch["joint/mean"] == scratch["joint/dropout"]
    chosen = {float(r["learning_rate"]) for r in rows if r["condition"] in ("finetune", "scratch")}
    assert chosen <= set(config.target_learning_rates)
    assert json.load(open(os.path.join(workdir, "summary.json")))["models"].keys() == summary["models"].keys()


@pytest.mark.slow
def test_verdicts_follow_their_criteria(tiny_run):
    _, summary, config = tiny_run
    claims = config.claims.to_dict()
    for name, m in summary["models"].items():
        for c in m["claims"]:
            q = m["drop_points"] if "accuracy points" in c["claim"] else m["drop_relative"]
            lo, hi = q["ci"]
            bounds = claims["drop_points"] if "accuracy points" in c["claim"] else claims["drop_relative"]
            assert c["verdict"] == ts.verdict(lo, hi, at_least=bounds[0], at_most=bounds[1]), name


@pytest.mark.slow
def test_refuses_nonempty_workdir(tiny_run):
    workdir, _, config = tiny_run
    with pytest.raises(ConfigError, match="not empty"):
        run_transfer(config, workdir)


@pytest.mark.slow
def test_notebook_executes_on_results(tiny_run):
    workdir, _, _ = tiny_run
    outputs = execute_notebook("cross_embodiment.ipynb", workdir)
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the curves were drawn
    assert any("holds" in o.get("text", "") or "inconclusive" in o.get("text", "") or "fails" in o.get("text", "")
               for o in outputs)  # and the claims table printed


def test_config_variants_and_overrides():
    default = xe_config.get_config("default")
    assert default.transfers == ("panda->ur5", "panda->gen3") and len(default.seeds) >= 5
    assert default.dataset == "large" and max(default.n_target) == 10000
    assert [t.target for t in xe.parse_transfers(xe_config.get_config("loeo"), "c")] == ["panda", "gen3", "ur5"]
    loto = xe.parse_transfers(xe_config.get_config("loto"), "c")
    assert [t.target for t in loto] == list(xe_config.TASKS) and all(len(t.source) == 3 for t in loto)
    spec = "--config=configs/cross_embodiment.py:quick"
    parsed = cli.parse(["prog", spec, "--config.seeds=(0,1,2)", "--workdir=x"])
    assert parsed.config.seeds == (0, 1, 2) and parsed.config_file == "configs/cross_embodiment.py"
    with pytest.raises(ValueError, match="variant"):
        xe_config.get_config("huge")
    with pytest.raises(ConfigError, match="no such field"):
        cli.parse(["prog", spec, "--config.nope=1", "--workdir=x"])


@pytest.mark.parametrize("field,value,match", [
    ("transfers", ("panda>ur5",), "transfers"),
    ("transfers", ("panda->panda",), "transfers"),
    ("transfers", ("panda->kuka",), "transfers"),
    ("seeds", (0,), "seeds"),
    ("unknown_tokens", ("zeros",), "unknown_tokens"),
    ("token_dropout", 1.0, "token_dropout"),
    ("target_learning_rates", (), "target_learning_rates"),
])
def test_bad_config_names_the_field(field, value, match):
    config = xe_config.get_config("tiny")
    config[field] = value
    with pytest.raises(ConfigError, match=match):
        xe.validate(config, "configs/cross_embodiment.py")
    loto = xe_config.get_config("loto")
    loto.unknown_tokens = ("mean", "dropout")
    with pytest.raises(ConfigError, match="unknown_tokens"):
        xe.validate(loto, "configs/cross_embodiment.py")


def test_finetuning_starts_from_zero_shot_and_never_ends_worse_on_validation(tiny_episodes, tiny_dataset_dir):
    """Step 0 of fine-tuning is the zero-shot model (same normaliser, unseen token filled) and a
    selection candidate: with a zero learning rate fine-tuning *is* zero-shot, and with training
    the selected validation NLL is never above zero-shot's, whatever the learning rate."""
    import jax

    from rlhf_jax.data import rlds
    from rlhf_jax.train import sweep
    from rlhf_jax.train.sweep_data import make_sweep_data

    config = xe_config.get_config("tiny")
    meta = rlds.load_metadata(tiny_dataset_dir)
    tr = xe.parse_transfers(config, "c")[0]
    src = xe.preference_data(config, tiny_episodes, "embodiment", tr.source, config.n_source, "joint", meta)
    tgt = xe.preference_data(config, tiny_episodes, "embodiment", (tr.target,), max(config.n_target), "joint", meta)
    model, params, src_in, _ = xe.pretrain(config, src, "joint", "dropout", tr, log=lambda *_: None)
    params = xe.filled(params, config, tr, "dropout")
    tgt_in = make_sweep_data(tgt, ("oracle",), config.n_target, config.seeds, config.members)
    zero_shot = xe.test_correct(model, params, src_in.norm, tgt_in).mean(-1)
    stacked = lambda x: np.broadcast_to(x, (len(config.seeds), config.members) + x.shape)  # noqa: E731
    val0, _ = sweep.make_validation(model)(params, jax.tree.map(stacked, src_in.norm),
                                           np.zeros(len(config.seeds), np.int32), tgt_in.data)
    for lrs in ((0.0,), (3e-3, 3e-2)):
        config.target_learning_rates = lrs
        res = xe.target_phase(config, tgt_in, model, params, src_in.norm, ("finetune", "scratch"), lambda *_: None)
        ft = res["finetune"]
        assert np.all(ft["val_loss"] <= np.asarray(val0).mean(-1)[:, None] + 1e-6)
        if lrs == (0.0,):
            np.testing.assert_allclose(ft["correct"].mean(-1), np.repeat(zero_shot[:, None], len(config.n_target), 1))
            assert np.all(ft["best_step"] == 0)


def test_unseen_token_is_the_source_mean_or_the_learnt_unknown_row():
    from rlhf_jax.train.transfer import fill_unseen_token

    rng = np.random.default_rng(0)
    table = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)  # [S, K, rows, dim]
    params = {"context": {"embodiment_embed": {"embedding": table}, "task_embed": {"embedding": table[..., :2, :]}},
              "mlp": {"kernel": np.ones((3,))}}
    mean = fill_unseen_token(params, "embodiment", (2,), "mean", source_ids=(0, 1))
    out = np.asarray(mean["context"]["embodiment_embed"]["embedding"])
    np.testing.assert_allclose(out[..., 2, :], table[..., :2, :].mean(-2), rtol=1e-6)
    np.testing.assert_array_equal(out[..., [0, 1, 3], :], table[..., [0, 1, 3], :])
    drop = fill_unseen_token(params, "embodiment", (1,), "dropout", unknown_id=3)
    np.testing.assert_array_equal(np.asarray(drop["context"]["embodiment_embed"]["embedding"])[..., 1, :],
                                  table[..., 3, :])
    task = fill_unseen_token(params, "task", (1,), "mean", source_ids=(0,))
    np.testing.assert_array_equal(np.asarray(task["context"]["task_embed"]["embedding"])[..., 1, :], table[..., 0, :])
    assert fill_unseen_token({"mlp": {"kernel": 1}}, "embodiment", (0,), "mean", source_ids=(1,)) == {"mlp": {"kernel": 1}}


def test_token_dropout_replaces_ids_at_its_rate():
    import jax
    import jax.numpy as jnp

    from rlhf_jax.train.sweep import drop_tokens

    segs = {"embodiment": jnp.zeros((20000,), jnp.int32), "obs": jnp.ones((20000, 2))}
    for rate in (0.0, 0.1, 1.0):
        a, b = drop_tokens(jax.random.PRNGKey(0), (segs, segs), rate, 3)
        for out in (a, b):
            ids = np.asarray(out["embodiment"])
            assert set(np.unique(ids)) <= {0, 3}
            assert np.mean(ids == 3) == pytest.approx(rate, abs=0.01)
            np.testing.assert_array_equal(np.asarray(out["obs"]), 1.0)
        if 0 < rate < 1:
            assert not np.array_equal(np.asarray(a["embodiment"]), np.asarray(b["embodiment"]))


def test_step_budget_rule_and_learning_rate_choice():
    from rlhf_jax.train.transfer import choose_learning_rate, step_groups, steps_for_pairs

    rule = dict(epochs=10.0, batch_size=32, min_steps=400, max_steps=4000, multiple=200)
    assert steps_for_pairs(100, **rule) == 400 and steps_for_pairs(2000, **rule) == 800
    assert steps_for_pairs(10000, **rule) == 3200 and steps_for_pairs(10 ** 6, **rule) == 4000
    assert step_groups((100, 250, 500, 1000, 2000, 10000), **rule) == {400: (100, 250, 500, 1000), 800: (2000,),
                                                                       3200: (10000,)}
    val = np.array([[[1.0, 1.0], [0.25, 0.25]], [[0.5, 0.7], [0.5, 0.25]]])  # [L=2, points=2, K=2]
    np.testing.assert_array_equal(choose_learning_rate(val), [1, 0])


COMMITTED = ("results/transfer", "results/transfer_loto")  # the runs with tables in docs/transfer.md


@pytest.mark.parametrize("workdir", COMMITTED + ("results/transfer_quick",))
def test_committed_summary_is_what_the_report_computes_from_the_committed_run(workdir):
    """Everything but the power-law fits is its recomputation to 1e-9 relative, verdicts equal. The
    fits E + A·n^−α are ill-conditioned (E and α trade off when E is near 0), so the optimiser's end
    moves with the machine's CPU and BLAS: on another machine results/transfer_loto's finetune E
    recomputes as 0.0002 for a committed 0.0009, and results/transfer_quick's scratch α upper bound
    as 0.309 for 0.291. So a fit is held to the curve it draws, within 1e-3 error at every n of the
    grid, and its parameters and bootstrap bounds to 10% relative (1e-3 absolute)."""
    rows, arrays, config = report.load(os.path.join(ROOT, workdir))
    fresh = json.loads(json.dumps(report.summarise(rows, arrays, config), default=float))
    committed = json.load(open(os.path.join(ROOT, workdir, "summary.json")))
    grid = np.asarray(committed["n_target"], float)

    def curve(fit):
        return fit["E"] + fit["A"] * grid ** -fit["alpha"]

    for name, model in committed["models"].items():
        got_fits, want_fits = fresh["models"][name].pop("fit"), model.pop("fit")
        assert sorted(got_fits) == sorted(want_fits), name
        for arm, want in want_fits.items():
            got = {k: v for k, v in got_fits[arm].items() if k != "bootstrap"}
            np.testing.assert_allclose(curve(got), curve(want), rtol=0, atol=1e-3, err_msg=f"{name} {arm}")
            assert_tree_close(got, want, rel=0.1, abs_tol=1e-3, where=f"{name}.fit.{arm}")
    assert_tree_close(fresh, committed, rel=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("workdir", COMMITTED)
def test_doc_transfer_tables_are_generated_from_the_committed_summary(workdir):
    summary = json.load(open(os.path.join(ROOT, workdir, "summary.json")))
    text = open(os.path.join(ROOT, report.DOC_PAGE)).read()
    start, end = report.readme_block(text, workdir)
    assert text[start:end] == "\n" + report.readme_table(summary)


CLAIMS = xe_config.get_config("default").claims.to_dict()
GRID = [100, 250, 500, 1000, 2000, 10000]


def _point(estimate, lo, hi) -> dict:
    return {"estimate": estimate, "ci": [lo, hi]}


def _recovery_rows(at_500, at_1000) -> dict[str, dict]:
    """The recovery claim's rows for a hand-built summary with recovery (estimate, lo, hi) at 500 and 1,000."""
    m = {"drop_points": _point(20.0, 16.0, 24.0), "drop_relative": _point(0.2, 0.17, 0.23),
         "recovery": {"500": _point(*at_500), "1000": _point(*at_1000)}, "label_saving": {}}
    rows = report.judge(m, CLAIMS, "embodiment", GRID)
    return {r["claim"].split(": ")[-1]: r for r in rows if "recover most" in r["claim"]}


def test_recovery_claim_is_judged_at_both_ends_of_its_range():
    # holds at 1,000 but not established at 500 (eef → Gen3 recovers 46% [33%, 61%] there)
    rows = _recovery_rows((0.46, 0.33, 0.61), (0.75, 0.60, 0.90))
    assert (rows["strict end"]["criterion"], rows["strict end"]["verdict"]) == ("recovered at n=500 ≥ 50%", "inconclusive")
    assert (rows["lenient end"]["criterion"], rows["lenient end"]["verdict"]) == ("recovered at n=1000 ≥ 50%", "holds")
    assert rows["strict end"]["ours"] == "46% [33%, 61%]"
    assert rows["both ends"]["verdict"] == "holds only at the lenient end (n=1,000)"
    assert rows["both ends"]["ours"] == "n=500: inconclusive; n=1,000: holds"
    # whole interval below half at 500: fails there, still only the lenient end
    rows = _recovery_rows((0.30, 0.20, 0.40), (0.75, 0.60, 0.90))
    assert rows["strict end"]["verdict"] == "fails"
    assert rows["both ends"]["verdict"] == "holds only at the lenient end (n=1,000)"
    assert _recovery_rows((0.7, 0.6, 0.8), (0.8, 0.7, 0.9))["both ends"]["verdict"] == "holds at both ends"
    assert _recovery_rows((0.4, 0.3, 0.55), (0.6, 0.45, 0.8))["both ends"]["verdict"] == "holds at neither end"


def test_n_read_off_the_grid_is_printed_as_a_bound_at_its_edges():
    floor = report.grid_estimate(100.0, np.r_[np.full(95, 100.0), np.full(5, 130.0)], GRID)
    assert (floor["bound"], floor["ci_bounds"]) == ("below_grid", ["below_grid", None])
    assert report.interval_text(floor, "{:,.0f}", GRID) == "≤ 100 [≤ 100, 130]"
    interior = report.grid_estimate(187.0, np.linspace(120.0, 400.0, 101), GRID)
    assert (interior["bound"], interior["ci_bounds"]) == (None, [None, None])
    assert report.interval_text(interior, "{:,.0f}", GRID) == "187 [127, 393]"
    beyond = report.grid_estimate(np.inf, np.r_[np.linspace(1700.0, 9000.0, 90), np.full(10, np.inf)], GRID)
    assert (beyond["bound"], beyond["ci_bounds"]) == ("above_grid", [None, "above_grid"])
    assert report.interval_text(beyond, "{:,.0f}", GRID) == "> 10,000 [1,903, > 10,000]"


def _correct(accuracies, seeds=5, pairs=200) -> np.ndarray:
    """[S, N, T] correctness with the given accuracy per n; the correct pairs of a higher accuracy
    include those of a lower one, so curves are ordered in every bootstrap replicate."""
    idx = np.arange(pairs)
    return np.broadcast_to(idx[None, None] < np.asarray(accuracies)[None, :, None] * pairs,
                           (seeds, len(accuracies), pairs)).astype(np.float32)


def test_summary_flags_grid_edges_and_the_saving_verdict_says_bound():
    """Hand-built curves: fine-tuning recovers half the drop at the grid's first n (source 0.9,
    zero-shot 0.6, fine-tune 0.8 at 100), 90% in between, and scratch never matches fine-tuning at
    500 on the grid, so the 500-pair saving rests on n_scratch clipped to 10,000."""
    grid = [100, 500, 1000, 10000]
    arrays = {"a->b|eef|source_in_domain": _correct([0.9]), "a->b|eef|zero_shot": _correct([0.6]),
              "a->b|eef|finetune": _correct([0.8, 0.85, 0.88, 0.9]),
              "a->b|eef|scratch": _correct([0.6, 0.7, 0.75, 0.8])}
    claims = dict(CLAIMS, beats=(500, 10000), saving_at=500)
    m = report.model_summary(ts.Resampler(5, 200, seed=0), arrays, "a->b|eef|", grid, claims)
    assert m["n_recover_50"]["estimate"] == 100 and m["n_recover_50"]["bound"] == "below_grid"
    assert m["n_recover_90"]["bound"] is None and 500 < m["n_recover_90"]["estimate"] < 1000
    assert m["scratch_equivalent"]["500"]["bound"] == "above_grid"
    assert m["label_saving"]["500"]["estimate"] == pytest.approx(0.95) and m["label_saving"]["500"]["bound"] == "at_least"
    m["claims"] = report.judge(m, claims, "task", grid)
    saving = next(c for c in m["claims"] if "new tasks" in c["claim"])
    assert saving["ours"].startswith("≥ 95% [≥ 95%") and "lower bound" in saving["note"]
    assert "lower bound" in report.verdict_cell(saving)
    table = report.readme_table({"n_target": grid, "order": ["a->b|eef"], "models": {"a->b|eef": m}})
    assert "| ≤ 100 [" in table and "| ≥ 95% [" in table


@pytest.mark.slow
def test_leave_one_task_out_judges_the_new_task_saving(tiny_data_root, tiny_dataset_dir, tmp_path):
    """The task axis end to end on the tiny dataset: the held-out task's token is the mean of the
    source tasks', and the seed's new-task saving claim is judged at its stated n."""
    del tiny_dataset_dir
    config = xe_config.get_config("tiny")
    config.data_dir = tiny_data_root
    config.axis, config.transfers = "task", ("reach->reach_avoid",)
    config.feature_kinds, config.unknown_tokens = ("eef",), ("mean",)
    config.claims.saving_at = 50
    summary = run_transfer(config, str(tmp_path / "loto"), log=lambda *_: None)
    m = summary["models"]["reach->reach_avoid|eef"]
    saving = [c for c in m["claims"] if "new tasks" in c["claim"]]
    assert len(saving) == 1
    q = m["label_saving"]["50"]
    lo, hi = q["ci"]
    # an interval end resting on n_scratch clipped to the grid is a bound and cannot decide the claim
    assert saving[0]["verdict"] == ts.bounded_verdict(lo, hi, q["ci_bounds"], at_least=config.claims.saving)
    assert -1.0 <= lo <= hi <= 1.0 - 50 / 100  # clipped to the grid: never credited past n = 100


def test_pretraining_names_the_config_file_it_was_given(tiny_episodes, tiny_dataset_dir):
    """A source pool too small for n_source is refused naming the config file the run was given (it
    once named configs/cross_embodiment.py whatever --config said)."""
    from rlhf_jax.data import rlds

    config = xe_config.get_config("tiny")
    meta = rlds.load_metadata(tiny_dataset_dir)
    tr = xe.parse_transfers(config, "c")[0]
    src = xe.preference_data(config, tiny_episodes, "embodiment", tr.source, config.n_source, "joint", meta)
    config.n_source = len(src.train.idx_a) + 1
    with pytest.raises(ConfigError, match=r"^my_transfer\.py: field 'n_source'"):
        xe.pretrain(config, src, "joint", "dropout", tr, log=lambda _: None, config_file="my_transfer.py")
