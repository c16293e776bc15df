"""Label efficiency: schedules, routing, the AI labeller, pseudo-labels, costs, and the loop itself
(round 0 = the plain sweep on the same subset; resumed = uninterrupted)."""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil

import numpy as np
import pytest

from rlhf_jax.preferences import annotators as ann
from rlhf_jax.preferences import routing
from rlhf_jax.errors import ConfigError
from rlhf_jax.train import active


def test_schedules_spend_the_same_budget():
    const = active.schedule(100, 50, 5, "constant")
    hyper = active.schedule(100, 50, 5, "hyperbolic")
    assert const == [100, 150, 200, 250, 300]
    assert hyper[0] == 100 and hyper[-1] == 300
    steps = np.diff(hyper)
    assert np.all(steps[:-1] >= steps[1:]) and steps[0] > steps[-1]  # k_t ∝ 1/(1+t): front-loaded
    with pytest.raises(ConfigError, match="field 'kind'"):
        active.schedule(1, 1, 2, "linear")


def test_a_reference_strategy_reaches_its_multiple_of_the_largest_budget():
    plain, routed = active.Strategy("uniform"), active.Strategy("r", route="random", human_fraction=0.3,
                                                                per_round_multiple=3)
    ref = active.Strategy("ref", reference=True)
    for kind in ("constant", "hyperbolic"):
        for reach in (1.0, 3.0, 4.5):
            p, r, x = active.strategy_schedules((plain, routed, ref), 100, 50, 6, kind, reach)
            assert p == active.schedule(100, 50, 6, kind) and r == active.schedule(100, 150, 6, kind)
            assert x[0] == 100 and reach * r[-1] <= x[-1] < reach * r[-1] + 5 + 1  # ceil per round: at most 5 over
    with pytest.raises(ConfigError, match="field 'rounds'"):
        active.strategy_schedules((plain, ref), 100, 50, 1)
    with pytest.raises(ConfigError, match="field 'per_round_multiple'"):
        active.Strategy("bad", per_round_multiple=0)


def test_uncertainty_routing_sends_exactly_the_top_fraction():
    u = np.array([0.1, 0.9, 0.5, 0.9, 0.0, 0.3, 0.7, 0.2, 0.8, 0.4])
    to_human = routing.route(u, "uncertainty", 0.3, seed=0)
    assert to_human.sum() == 3 and set(np.flatnonzero(to_human)) == {1, 3, 8}  # 0.9, 0.9, 0.8
    ties = routing.route(np.ones(10), "uncertainty", 0.2, seed=0)
    assert set(np.flatnonzero(ties)) == {0, 1}  # ties go to the lower index
    rnd = routing.route(u, "random", 0.3, seed=1)
    assert rnd.sum() == 3 and not np.array_equal(rnd, routing.route(u, "random", 0.3, seed=2))
    assert routing.route(u, "all_human", 0.0, 0).all() and not routing.route(u, "all_ai", 1.0, 0).any()
    with pytest.raises(ConfigError, match="field 'policy'"):
        routing.route(u, "cheapest", 0.3, 0)


def test_ai_labeller_sees_outcomes_not_nuance(tiny_preference_data):
    d = tiny_preference_data
    seg = d.segments
    ai = routing.ai_labeller()
    w = ai.weights(seg.component_names, seg.gold_weights)
    for c, wc in zip(seg.component_names, w):
        assert (wc == 0) == (c in routing.AI_BLIND_TO), c
    a, b = d.train.idx_a, d.train.idx_b
    oracle = ann.label_pairs("oracle", seg, a, b, seed=0, timestamp=0.0).label
    err = lambda t: np.mean(ann.label_pairs(t, seg, a, b, seed=3, timestamp=0.0).label != oracle)  # noqa: E731
    assert err((ai,)) > err(routing.expert_humans()) + 0.05  # cheaper and worse


def test_droid_pseudo_labels_only_pair_top_with_bottom():
    rng = np.random.default_rng(0)
    mean_returns = rng.normal(size=200)
    pool_a, pool_b = rng.integers(0, 200, 3000), rng.integers(0, 200, 3000)
    free = np.arange(0, 3000, 2)
    idx, label, weight = active.droid_pseudo_labels(mean_returns, pool_a, pool_b, free)
    rows = np.unique(np.concatenate([pool_a, pool_b]))
    lo, hi = np.quantile(mean_returns[rows], 0.2), np.quantile(mean_returns[rows], 0.8)
    ra, rb = mean_returns[pool_a[idx]], mean_returns[pool_b[idx]]
    assert len(idx) > 50 and set(idx) <= set(free)
    assert np.all(((ra >= hi) & (rb <= lo)) | ((rb >= hi) & (ra <= lo)))
    np.testing.assert_array_equal(label, (ra > rb).astype(np.float32))  # the top segment wins
    np.testing.assert_allclose(weight, 1 / (1 + np.exp(-np.abs(ra - rb))), rtol=1e-6)
    assert np.all(weight > 0.5)


def _config(root, **kw):
    from configs.label_efficiency import get_config
    c = get_config("tiny")
    c.data_dir = root
    for k, v in kw.items():
        if isinstance(v, dict):
            for kk, vv in v.items():
                c[k][kk] = vv
        else:
            c[k] = v
    return c


@pytest.fixture(scope="module")
def tiny_run(tiny_data_root, tmp_path_factory):
    from experiments.label_efficiency import run
    workdir = str(tmp_path_factory.mktemp("label_eff") / "run")
    run(_config(tiny_data_root), workdir, log=lambda *a: None)
    with open(os.path.join(workdir, "results.csv")) as f:
        rows = list(csv.DictReader(f))
    return workdir, rows


def test_outputs_and_costs_add_up(tiny_run):
    workdir, rows = tiny_run
    for name in ("results.csv", "savings.json", "claims.md", "label_efficiency.png"):
        assert os.path.getsize(os.path.join(workdir, name)) > 0
    c = _config("")
    from experiments.label_efficiency import label_plan, strategies
    plan = dict(zip(c.strategies, label_plan(c, strategies(c, "x"))))
    budget = active.schedule(c.initial, c.per_round, c.rounds)
    assert plan["uniform"] == budget and plan["routed_uncertainty_30"] == active.schedule(c.initial, 3 * c.per_round,
                                                                                        c.rounds)
    # The reference reaches 3× the largest other budget (the routed run's), so effective sizes are not capped.
    assert plan["uniform_reference"][-1] >= 3 * plan["routed_uncertainty_30"][-1]
    for r in rows:
        assert int(r["labels"]) == plan[r["strategy"]][int(r["round"])] == int(r["human_labels"]) + int(r["ai_labels"])
        assert float(r["dollars"]) == pytest.approx(int(r["human_labels"]) * 1.00 + int(r["ai_labels"]) * 0.03)
        if r["strategy"] == "routed" and int(r["round"]) > 0:
            bought = int(r["labels"]) - c.initial  # round 0 is all human; then 30% of each round
            assert int(r["human_labels"]) == c.initial + round(0.3 * c.per_round) * int(r["round"]) and bought > 0
        if r["strategy"] == "pseudo_droid" and int(r["round"]) > 0:
            assert int(r["pseudo_labels"]) > 0
        if r["strategy"] == "pseudo_surf":  # SURF's pseudo-labels live inside training steps
            assert int(r["pseudo_labels"]) == 0
    # Every strategy's first round is the same uniform set: identical results.
    first = {r["strategy"]: r["test_accuracy"] for r in rows if r["round"] == "0" and r["seed"] == "0"}
    assert len({v for k, v in first.items() if k != "pseudo_surf"}) == 1
    assert first["pseudo_surf"] != first["uniform"]  # SURF trains on crops and unlabelled pairs from round 0
    with open(os.path.join(workdir, "savings.json")) as f:
        sav = json.load(f)
    assert set(sav["strategies"]) == set(c.strategies) and sav["strategies"]["uniform"]["labels"]["saving_vs_uniform"] == 0
    assert {k.split("/")[0] for k in sav["claims"]} == {"active", "pseudo", "routing"}
    assert sav["claims"]["pseudo/pseudo_droid"]["reference"] == "uniform_reference"
    with open(os.path.join(workdir, "routing.json")) as f:
        route = json.load(f)
    assert set(route["curves"]) == {"uniform", "routed", "routed_uncertainty_30"}
    assert route["reference_cost"] == pytest.approx(budget[-1])  # all-human: a dollar a label
    for per in route["matched_accuracy"].values():
        for e in per.values():
            assert e["cut_ci"][0] <= e["cut"] + 1e-9 and e["cut"] <= e["cut_ci"][1] + 1e-9
    assert os.path.getsize(os.path.join(workdir, "routing.png")) > 0


def test_resumed_run_equals_the_uninterrupted_one(tiny_run, tmp_path, tiny_data_root):
    from experiments.label_efficiency import run
    workdir, rows = tiny_run
    copy = str(tmp_path / "copy")
    shutil.copytree(workdir, copy)
    for name in ("results.csv", "savings.json", "claims.md", "label_efficiency.png", "rounds/round_2.json"):
        os.remove(os.path.join(copy, name))
    run(_config(tiny_data_root), copy, resume=True, log=lambda *a: None)
    with open(os.path.join(copy, "results.csv")) as f:
        assert list(csv.DictReader(f)) == rows


def test_round_zero_equals_the_plain_sweep_on_the_same_subset(tiny_data_root, tmp_path):
    """The uniform first round is the plain compiled sweep at N = initial on the same labels."""
    from experiments import label_efficiency as le
    from experiments.stages.sweep import load_pool, surf_spec, train_one_size
    from rlhf_jax.train.sweep_data import make_sweep_data

    c = _config(tiny_data_root, strategies=("uniform",))
    pref = load_pool(c, "test", surf_spec(c))
    human, _, val = le.answer_tables(c, pref)

    @dataclasses.dataclass(frozen=True)
    class Answers:  # a label source that answers with the human table (seed 0) and validation labels
        name: str = "humans"

        def label(self, segments, idx_a, idx_b, seed):
            is_val = len(idx_a) == len(pref.val.idx_a) and np.array_equal(idx_a, pref.val.idx_a)
            lab = val if is_val else human[0]["label"]
            conf = np.ones(len(idx_a), np.float32) if is_val else human[0]["confidence"]
            return ann.Labels(label=lab, keep=np.ones(len(idx_a), bool), confidence=conf,
                              annotator=np.zeros(len(idx_a), np.int32), timestamp=np.zeros(len(idx_a)),
                              provenance=[{}])

    plain = make_sweep_data(pref, (Answers(),), (c.initial,), c.seeds[:1], c.members, confidence_weights=True)
    want, _, _ = train_one_size(c, plain, tuple(c.model_sizes[0]), str(tmp_path / "plain"), surf_spec(c),
                                log=lambda _: None)
    base = make_sweep_data(pref, ("oracle",), (c.initial,), c.seeds[:1], c.members)
    base = dataclasses.replace(base, data=base.data.replace(val_label=plain.data.val_label))
    start = active.initial_sets(len(pref.train.idx_a), c.initial, c.seeds[:1])
    runs = [[le.empty_run(start[0], human, 0)]]
    strat = active.Strategy("uniform")
    inputs = le.round_inputs(base, runs, [strat], c.seeds[:1], c.members, c)
    got, _, _ = train_one_size(c, inputs, tuple(c.model_sizes[0]), str(tmp_path / "round0"), surf_spec(c),
                               log=lambda _: None)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("override,match", [
    (dict(strategies=("disagreement",)), "includes 'uniform'"),
    (dict(strategies=("uniform", "nope")), "field 'strategies'"),
    (dict(rounds=100), "field 'rounds'"),
    (dict(oversampling=0.5), "field 'oversampling'"),
    (dict(target_accuracy=1.5), "field 'target_accuracy'"),
    (dict(reference_reach=40.0), "field 'reference_reach'"),
    (dict(reference_reach=0.5), "field 'reference_reach'"),
    (dict(rounds=1), "field 'rounds'"),
    (dict(surf=dict(enabled=False, tau=1.5, lam=1.0, mu=2, crop=5)), "field 'surf.tau'"),
    (dict(n_val=0), "field 'n_val'"),            # used to run to the end without a validation set
    (dict(eval_every=0), "field 'eval_every'"),  # used to be a ZeroDivisionError
    (dict(chunk_steps=0), "field 'chunk_steps'"),
    (dict(optimizer=dict(schedule="bogus")), "field 'optimizer.schedule'"),
])
def test_bad_config_is_one_line_and_no_workdir(tiny_data_root, tmp_path, override, match):
    from experiments.label_efficiency import run
    workdir = str(tmp_path / "run")
    with pytest.raises(ConfigError, match=match):
        run(_config(tiny_data_root, **override), workdir, log=lambda *a: None)
    assert not os.path.exists(workdir)


def test_notebook_plots_a_results_directory(tiny_run):
    pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    from tests.subprocess_utils import execute_notebook

    outputs = execute_notebook("label_efficiency.ipynb", tiny_run[0])
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)


def test_default_variant_covers_every_method_and_validates():
    from configs.label_efficiency import get_config
    from experiments.label_efficiency import validate
    from rlhf_jax.query import METHODS

    c = get_config("default")
    strats = validate(c, "configs/label_efficiency.py")
    assert {s.select for s in strats} == set(METHODS)
    assert {s.route for s in strats} == set(routing.ROUTES)
    assert {s.pseudo for s in strats} == set(active.PSEUDO)


# Each variant differs from the sweep config it derives from (configs/scaling_sweep.py:quick, or :tiny for
# tiny) in exactly these shared fields; every other field it shares with the sweep is the sweep's.
OWN_OVERRIDES = {"quick": {"confidence_weights", "seeds"}, "surf": {"variant", "confidence_weights", "seeds"},
                 "routing": {"variant", "confidence_weights", "seeds"},
                 "default": {"variant", "confidence_weights", "seeds"},
                 "tiny": {"confidence_weights", "model_sizes", "surf"}}
ACTIVE_FIELDS = {"strategies", "strategy_defs", "initial", "per_round", "rounds", "schedule", "oversampling",
                 "humans", "ai", "costs", "target_accuracy", "n_bootstrap", "reference_reach", "criteria"}


@pytest.mark.parametrize("variant", sorted(OWN_OVERRIDES))
def test_data_and_model_fields_come_from_the_sweep_config(variant, monkeypatch):
    from configs import label_efficiency, scaling_sweep

    assert set(OWN_OVERRIDES) == set(label_efficiency.VARIANTS)
    own = label_efficiency.get_config(variant).to_dict()
    sweep = scaling_sweep.get_config("tiny" if variant == "tiny" else "quick").to_dict()
    assert set(label_efficiency.SWEEP_FIELDS) <= set(own) & set(sweep)
    assert set(own) - set(sweep) == ACTIVE_FIELDS  # no sweep-only field (conditions, n_values, fit, ...)
    assert {k for k in set(own) & set(sweep) if own[k] != sweep[k]} == OWN_OVERRIDES[variant]
    # Derived, not retyped: a change to the sweep's base reaches every field not overridden here.
    real = scaling_sweep.get_config

    def changed(arg):
        c = real(arg)
        c.optimizer.learning_rate, c.n_val, c.surf.tau = 0.5, 123, 0.5
        return c

    monkeypatch.setattr(scaling_sweep, "get_config", changed)
    c = label_efficiency.get_config(variant)
    assert (c.optimizer.learning_rate, c.n_val, c.surf.tau) == (0.5, 123, 0.5)


@pytest.mark.parametrize("variant", ["quick", "surf", "routing", "default"])
def test_run_variants_have_five_seeds_and_an_uncapped_reference(variant):
    from configs.label_efficiency import get_config
    from experiments.label_efficiency import label_plan, validate

    c = get_config(variant)
    strats = validate(c, "configs/label_efficiency.py")
    assert len(c.seeds) >= 5
    plan = dict(zip(c.strategies, label_plan(c, strats)))
    if any(s.pseudo for s in strats):  # effective sizes up to 3× the largest budget are measurable
        others = max(v[-1] for k, v in plan.items() if k != "uniform_reference")
        assert plan["uniform_reference"][-1] >= 3 * others
    if variant == "routing":  # both rules at three human fractions, and all-human (fraction 1)
        fractions = {(s.route, s.human_fraction) for s in strats}
        assert fractions == {("all_human", 1.0)} | {(r, f) for r in ("uncertainty", "random") for f in (0.1, 0.3, 0.6)}


def test_docs_block_of_a_run_with_routing_shows_the_matched_readings(tiny_run):
    from experiments import label_efficiency_report as report
    workdir = tiny_run[0]
    with open(os.path.join(workdir, "results.csv"), encoding="utf-8", newline="") as f:
        block = report.docs_block(report.read_rows(f), workdir)
    with open(os.path.join(workdir, "routing.json")) as f:
        route = json.load(f)
    assert "matched accuracy" in block and "`routed_uncertainty_30` | 0.3 |" in block
    for verdict in route["claim"].values():
        assert verdict in block
