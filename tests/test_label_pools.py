"""Simulated teams, QC policies as label sources, label-file conditions, the QC report."""
from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from rlhf_jax.preferences import annotators as ann
from rlhf_jax.labels import costs, label_pools, label_set_io, label_sets
from rlhf_jax.errors import ConfigError, SplitError
from rlhf_jax.labels.label_sources import TeacherSource, as_label_source
from rlhf_jax.preferences.pair_sampling import pair_key
from rlhf_jax.labels.qc_sources import LabelFileSource, PoolSource
from rlhf_jax.labels import qc_summary

N_PAIRS = 1000


@pytest.fixture(scope="module")
def pool_pairs(tiny_preference_data):
    d = tiny_preference_data
    return d.segments, d.train.idx_a[:N_PAIRS], d.train.idx_b[:N_PAIRS]


@pytest.fixture(scope="module")
def crowd_answers(pool_pairs):
    seg, a, b = pool_pairs
    return PoolSource(pool="crowd", policy="majority", r=5).answers(seg, a, b, seed=0)


def test_planted_bad_annotators_are_exactly_the_flagged_ones(crowd_answers, pool_pairs):
    seg = pool_pairs[0]
    ls = crowd_answers
    answers = ls.subset(~ls.gold)
    per = {a: int(np.sum(answers.annotator_id == a)) for a in ls.annotators}
    assert min(per.values()) >= 250  # every annotator labels enough pairs to be judged
    report = qc_summary.annotator_report(ls, qc_summary.oracle_row_labels(ls, seg), threshold=0.8, min_gold=5, z=2.0)
    flagged = {a for a, v in report.items() if v["flagged"]}
    assert flagged == {"sim/bad-random-0", "sim/bad-left-1", "sim/bad-sixty-2"}
    assert any(r.startswith("left_rate") for r in report["sim/bad-left-1"]["reasons"])
    for a, v in report.items():  # gold accuracy separates them on its own, with its interval
        assert (v["ci_high"] < 0.8) == (a in flagged) or v["accuracy"] >= 0.8, (a, v)


def test_gold_questions_come_from_train_segments_outside_the_pool(crowd_answers, pool_pairs):
    seg, a, b = pool_pairs
    ls = crowd_answers
    gold = ls.subset(ls.gold)
    ra, rb = label_sets.segment_rows(gold, seg)
    assert np.all(seg.episode_split[seg.episode_index[ra]] == 0) and np.all(seg.episode_split[seg.episode_index[rb]] == 0)
    assert not set(pair_key(ra, rb).tolist()) & set(pair_key(a.astype(np.int64), b.astype(np.int64)).tolist())
    share = ls.gold.mean()
    assert 0.11 < share < 0.13  # inserted at the default 12% of all questions
    np.testing.assert_array_equal(gold.gold_label, qc_summary.oracle_row_labels(gold, seg))
    # r distinct annotators per pair
    item, _, _ = ls.items()
    for i in np.unique(item)[:50]:
        who = ls.annotator_id[item == i]
        assert len(who) == 5 and len(set(who)) == 5


def test_reported_confidence_is_blind_to_slips(pool_pairs):
    seg, a, b = pool_pairs
    lab = ann.label_pairs(ann.Teacher("mistake", eps=0.3), seg, a, b, seed=0, timestamp=0.0)
    oracle = ann.label_pairs("oracle", seg, a, b, seed=0, timestamp=0.0).label
    flipped = (lab.label != oracle) & (oracle != 0.5)
    assert flipped.sum() > 100
    # The oracle-side confidence knows the flips; what the annotator reports does not.
    assert lab.oracle_confidence[flipped].max() < lab.oracle_confidence[~flipped].min()
    np.testing.assert_array_equal(lab.confidence[flipped], 1.0)
    np.testing.assert_array_equal(lab.confidence[~flipped & (oracle != 0.5)], 1.0)


def test_policies_cut_label_error_and_costs_add_up(pool_pairs):
    seg, a, b = pool_pairs
    oracle = ann.label_pairs("oracle", seg, a, b, seed=0, timestamp=0.0).label
    err, cost = {}, {}
    for policy in ("raw", "majority", "adjudicated"):
        src = PoolSource(pool="crowd", policy=policy)
        lab = src.label(seg, a, b, seed=0)
        assert lab.keep.all()
        err[policy] = np.mean(lab.label != oracle)
        cost[policy] = lab.cost
        ls = lab.label_set
        kinds = np.array([ls.annotators[x]["kind"] for x in ls.annotator_id])
        n_gold = label_pools.n_gold_pairs(len(a), 0.12)
        # Every answer bought is counted: r per pair and per gold pair, plus the senior's.
        assert int(np.sum(kinds == "human")) == src.r * (len(a) + n_gold)
        assert lab.cost["gold_answers"] == src.r * n_gold
        assert lab.cost["dollars"] == pytest.approx(np.sum(kinds == "human") * 1.00 + np.sum(kinds == "expert") * 2.00)
    assert err["majority"] < err["raw"] - 0.05 and err["adjudicated"] < err["raw"] - 0.05
    senior = cost["adjudicated"]["by_kind"]["expert"]["answers"]
    assert 0 < senior < len(a)  # only the pairs the two annotators disagree on go to the senior
    assert costs.add_costs(cost["raw"], cost["majority"])["dollars"] == pytest.approx(
        cost["raw"]["dollars"] + cost["majority"]["dollars"])


def test_filtered_policy_reasks_the_removed_annotators_pairs(pool_pairs):
    seg, a, b = pool_pairs
    lab = PoolSource(pool="crowd", policy="filtered").label(seg, a, b, seed=0)
    ls = lab.label_set
    assert lab.keep.all()
    assert len(ls) > len(a) + label_pools.n_gold_pairs(len(a), 0.12)  # the re-asks were bought
    raw = PoolSource(pool="crowd", policy="raw").label(seg, a, b, seed=0)
    oracle = ann.label_pairs("oracle", seg, a, b, seed=0, timestamp=0.0).label
    assert np.mean(lab.label != oracle) < np.mean(raw.label != oracle)


@pytest.mark.parametrize("spec,match", [
    ("qc:crowd", r"'qc:<pool>/<policy>'"),
    ("qc:nobody/majority", r"field 'pool': expected one of \['crowd'\]"),
    ("qc:crowd/vote", r"field 'policy'"),
    ("qc:crowd/majority,r=20", r"field 'r': expected labels per pair in \[1, size=10\]"),
    ("qc:crowd/majority,gold=x", r"gold as a float"),
    ("qc:crowd/adjudicated,r=1", r"adjudication needs two answers"),
    ("qc:crowd/filtered,gold=0", r"filtering needs gold questions"),
    ("qc:crowd/majority,pool_seed=-1", r"field 'pool_seed': expected an integer >= 0, got -1"),
    ("file:/no/such/labels.jsonl", r"field 'path': expected an existing label file"),
    ("file+vote:x.jsonl", r"field 'policy'"),
])
def test_bad_condition_strings(spec, match):
    with pytest.raises(ConfigError, match=match):
        as_label_source(spec)


def test_label_file_without_validation_labels_is_an_error(tmp_path, tiny_preference_data):
    d = tiny_preference_data
    train = TeacherSource("mistake").label(d.segments, d.train.idx_a, d.train.idx_b, seed=0)
    path = label_set_io.write_label_set(str(tmp_path / "train_only.jsonl"), train.label_set)
    src = LabelFileSource(path)
    got = src.label(d.segments, d.train.idx_a, d.train.idx_b, seed=0)
    np.testing.assert_array_equal(got.keep, train.keep)
    np.testing.assert_array_equal(got.label[got.keep], train.label[train.keep])
    with pytest.raises(SplitError, match=r"train_only\.jsonl: field 'pairs': expected answers on some of the"):
        src.label(d.segments, d.val.idx_a, d.val.idx_b, seed=500)


def test_label_file_condition_equals_the_preset_in_one_sweep(tmp_path, tiny_data_root):
    """The same labels given as a preset and as a label file train the same models."""
    from configs.scaling_sweep import get_config
    from experiments.stages.sweep import load_pool, run_sweep, surf_spec
    from tests.results_compare import read_rows

    c = get_config("tiny")
    c.data_dir = tiny_data_root
    c.n_values, c.total_steps, c.chunk_steps, c.eval_every = (25, 50, 100), 40, 20, 10
    pref = load_pool(c, "test", surf_spec(c))
    src = TeacherSource("mistake")  # condition 0 labels train with seed 0 and val with seed 500
    train = src.label(pref.segments, pref.train.idx_a, pref.train.idx_b, 0)
    val = src.label(pref.segments, pref.val.idx_a, pref.val.idx_b, 500)
    both = label_sets.concat([train.label_set, val.label_set])
    path = label_set_io.write_label_set(str(tmp_path / "mistake.jsonl"), both)
    c.conditions = ("mistake", f"file:{path}", "qc:crowd/adjudicated")
    workdir = str(tmp_path / "run")
    run_sweep(c, workdir, log=lambda *_: None)
    rows = read_rows(os.path.join(workdir, "results.csv"))
    by = {}
    for r in rows:
        by.setdefault(r["condition"], []).append({k: v for k, v in r.items() if k != "condition"})
    assert by["mistake"] == by[f"file:{path}"]
    with open(os.path.join(workdir, "run_info.json")) as f:
        info = json.load(f)["label_sources"]
    assert info["mistake"]["label_set_hash"] == info[f"file:{path}"]["label_set_hash"] == both.content_hash()
    qc_rows = by["qc:crowd/adjudicated"]
    assert float(qc_rows[0]["dollars"]) > 2 * float(by["mistake"][0]["dollars"])  # double + senior + gold
    assert info["qc:crowd/adjudicated"]["gold_answers"] > 0
    assert os.path.getsize(os.path.join(workdir, "accuracy_vs_dollars.png")) > 0
    meta_path = os.path.join(workdir, "reward_models", "mistake_n25_seed0", "meta.json")
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            assert json.load(f)["label_source"]["label_set_hash"] == both.content_hash()


def test_qc_report_cli(tmp_path, tiny_data_root):
    from experiments import qc_report

    base = ["qc_report", "--config=configs/qc_report.py:tiny", f"--config.data_dir={tiny_data_root}"]
    out = str(tmp_path / "qc")
    assert qc_report.main([*base, "--workdir", out]) == 0
    with open(os.path.join(out, "qc.json")) as f:
        text = f.read()
    # Strict JSON: no bare NaN/Infinity tokens; a non-finite number is null with its reason beside it.
    rep = json.loads(text, parse_constant=lambda token: pytest.fail(f"qc.json holds {token}"))
    assert "matrix_null_reason" in rep["after_qc"]["cohen_kappa"] or None not in sum(
        rep["after_qc"]["cohen_kappa"]["matrix"], [])
    assert set(rep["flagged"]) == {"sim/bad-random-0", "sim/bad-left-1", "sim/bad-sixty-2"}
    assert rep["after_qc"]["fleiss_kappa"]["value"] > rep["before_qc"]["fleiss_kappa"]["value"]
    assert rep["after_qc"]["label_error"]["value"] < rep["before_qc"]["label_error"]["value"]
    assert rep["fleiss_kappa"] == rep["before_qc"]["fleiss_kappa"]["value"]
    for name in ("annotators.csv", "qc_accuracy.png", "qc_agreement.png", "qc_outliers.png", "labels.jsonl"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    with open(os.path.join(out, "annotators.csv")) as f:
        people = list(csv.DictReader(f))
    assert len(people) == 10 and {p["flagged"] for p in people} == {"True", "False"}
    # The same answers as a label file give the same agreement and flags.
    out2 = str(tmp_path / "qc_file")
    assert qc_report.main([*base, f"--config.labels={out}/labels.jsonl", "--workdir", out2]) == 0
    with open(os.path.join(out2, "qc.json")) as f:
        rep2 = json.load(f)
    assert rep2["labels"]["label_set_hash"] == rep["labels"]["label_set_hash"]
    assert rep2["krippendorff_alpha"] == rep["krippendorff_alpha"] and rep2["flagged"] == rep["flagged"]


def test_qc_report_refuses_a_file_of_skips_only(tmp_path, capsys, tiny_data_root):
    from experiments import qc_report

    base = ["qc_report", "--config=configs/qc_report.py:tiny", f"--config.data_dir={tiny_data_root}"]
    assert qc_report.main([*base, "--workdir", str(tmp_path / "qc")]) == 0
    lines = (tmp_path / "qc" / "labels.jsonl").read_text().splitlines()
    rows = [dict(json.loads(line), label="skip") for line in lines[1:]]
    skips = tmp_path / "skips.jsonl"
    skips.write_text("\n".join([lines[0], *map(json.dumps, rows)]) + "\n")
    capsys.readouterr()
    out = tmp_path / "qc_skips"
    assert qc_report.main([*base, f"--config.labels={skips}", "--workdir", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "field 'labels'" in err[0] and "all skipped" in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("flag,match", [
    ("--config.labels=nobody", "field 'labels': expected a label file"),
    ("--config.labels=/no/such.jsonl", "field 'labels': expected an existing label file"),
    ("--config.r=11", "field 'r'"),
    ("--config.qc.alpha_level=interval", "field 'qc.alpha_level'"),
    ("--config.qc.policies=('raw','vote')", "field 'qc.policies'"),
    ("--config.pool.seed=-1", "field 'pool.seed'"),
])
def test_qc_report_bad_input(tmp_path, capsys, flag, match):
    from experiments import qc_report

    out = str(tmp_path / "qc")
    assert qc_report.main(["qc_report", "--config=configs/qc_report.py:tiny", flag, "--workdir", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0] and err[0].startswith("error: configs/qc_report.py")
    assert not os.path.exists(out)


def test_weighted_policies_use_confidence_and_gold_accuracy(pool_pairs):
    seg, a, b = pool_pairs
    oracle = ann.label_pairs("oracle", seg, a, b, seed=0, timestamp=0.0).label
    maj = PoolSource(pool="crowd", policy="majority").label(seg, a, b, seed=0)
    down = PoolSource(pool="crowd", policy="downweighted").label(seg, a, b, seed=0)
    conf = PoolSource(pool="crowd", policy="confidence").label(seg, a, b, seed=0)
    # Same answers bought (same r, seed and gold), different aggregation.
    assert maj.label_set.content_hash() == down.label_set.content_hash() == conf.label_set.content_hash()
    # The planted annotators are below 80% on gold, so their votes weigh less and error falls.
    assert np.mean(down.label != oracle) < np.mean(maj.label != oracle)
    # Confidence weighting (its formula is tested in test_qc) changes the vote shares it reports.
    assert not np.allclose(conf.confidence, maj.confidence)


def test_a_finished_workdir_is_replaced_only_with_overwrite(tmp_path, capsys, tiny_data_root):
    """Without --overwrite a finished run's workdir is refused as it is; with it (and a config that
    passes its checks) the old files are renamed aside intact and a fresh run writes the name."""
    from experiments import qc_report
    from tests.bad_input_utils import fails_cleanly, snapshot

    base = ["--config=configs/qc_report.py:tiny", f"--config.data_dir={tiny_data_root}"]
    out = str(tmp_path / "qc")
    assert qc_report.main(["qc_report", *base, "--workdir", out]) == 0
    finished = snapshot(out)
    fails_cleanly(capsys, qc_report.main, [*base, "--workdir", out], out, "not empty", "--overwrite")
    fails_cleanly(capsys, qc_report.main, [*base, "--config.r=11", "--overwrite", "--workdir", out], out,
                  "field 'r'")
    assert not os.path.exists(out + ".replaced-1")
    assert qc_report.main(["qc_report", *base, "--overwrite", "--workdir", out]) == 0
    assert snapshot(out + ".replaced-1") == finished
    assert f"were moved to {out}.replaced-1" in capsys.readouterr().out
    with open(os.path.join(out, "qc.json")) as f:
        assert json.load(f)["flagged"]
