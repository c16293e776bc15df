"""Annotator QC report on a simulated team or a human label file.

  python -m experiments.qc_report --config configs/qc_report.py:quick --workdir runs/qc
  python -m experiments.qc_report --config configs/qc_report.py:quick \
      --config.labels=labels.jsonl --workdir runs/qc_file

`dataset` may be a LeRobot dataset (`lerobot:<dir>`). One without gold reward (foreign data) is
reported from a label file only, with no label error against an oracle (those entries are null).

Writes to the workdir:
  qc.json          pool agreement (Fleiss' kappa, Krippendorff's alpha, Cohen's kappa matrix) before
                   and after removing flagged annotators, label error against the oracle before and
                   after QC, per-annotator accuracy with Wilson intervals and `flagged` with
                   reasons, each QC policy's label error and cost, the seed's claims beside ours
  annotators.csv   one row per annotator
  labels.jsonl     the answers the report is about (a preset's simulated answers; reusable as a
                   `file:` sweep condition)
  qc_accuracy.png, qc_agreement.png, qc_outliers.png
"""
from __future__ import annotations

import functools
import os
import sys
import time

import numpy as np

from configs import qc_report as qc_report_config
from experiments import cli
from rlhf_jax import checkpoint, config_schema
from rlhf_jax.labels import costs, label_set_io
from rlhf_jax.data.dataset import dataset_config, load_preference_data
from rlhf_jax.labels.qc_sources import POOLS, PoolSource
from rlhf_jax.labels import qc_plots, qc_summary

FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".pq")
SEED_CLAIMS = {"label_error_single": [0.12, 0.18], "label_error_adjudicated": [0.03, 0.05],
               "double_annotation_cost_multiplier": list(costs.SEED_DOUBLE_ANNOTATION_MULTIPLIER),
               "gold_rate": [0.10, 0.15], "accuracy_threshold": 0.80}


def is_file(labels: str) -> bool:
    return os.path.splitext(labels)[1].lower() in FILE_SUFFIXES


def validate(config, config_file: str) -> None:
    """Every field the report reads, before any data is loaded; raises ConfigError.

    Each field's own domain is its record in ``configs/qc_report.py`` FIELDS; what follows are
    the label file or preset ``labels`` names, r within the pool and the dataset."""
    config_schema.validate(config, config_file, qc_report_config.FIELDS)
    if is_file(config.labels):
        if not os.path.isfile(config.labels):
            cli.fail(config_file, "labels", "an existing label file or a pool preset", config.labels)
    elif config.labels not in POOLS:
        cli.fail(config_file, "labels", f"a label file (.jsonl/.parquet) or a pool preset from {sorted(POOLS)}",
                 config.labels)
    if config.r > config.pool.size:
        cli.fail(config_file, "r", f"labels per pair in [1, pool.size={config.pool.size}]", config.r)
    dataset_config(config.dataset, config_file)
    cli.check_data_dir(config_file, "data_dir", config.data_dir)


def load_answers(config, config_file: str):
    """(label set, segments, the pairs' table rows or None): a preset's simulated answers or a file."""
    n_train = 0 if is_file(config.labels) else config.n_pairs
    pref = load_preference_data(config.dataset, config.data_dir or None, segment_length=config.segment_length,
                                stride=config.stride, n_train=n_train, n_val=0, n_test=0, seed=config.seed)
    seg = pref.segments
    if not qc_summary.has_gold(seg) and not is_file(config.labels):
        cli.fail(config_file, "labels", f"a label file: dataset {config.dataset!r} has no gold reward for "
                 "simulated annotators", config.labels)
    if is_file(config.labels):
        ls = label_set_io.read_label_set(config.labels)
        if ls.length != config.segment_length:
            cli.fail(config_file, "segment_length", f"the label file's segment length {ls.length}", config.segment_length)
        label_set_io.check_pairs_exist(ls, seg)
        return ls, seg, None
    src = PoolSource(pool=config.labels, policy="majority", r=config.r, gold_rate=config.gold_rate,
                     size=config.pool.size, pool_seed=config.pool.seed)
    ls = src.answers(seg, pref.train.idx_a, pref.train.idx_b, config.seed)
    return ls, seg, (pref.train.idx_a, pref.train.idx_b)


def build_report(config, ls, seg, pairs) -> tuple[dict, dict]:
    """(qc.json content, per-annotator rows)."""
    q = config.qc
    cost_model = costs.CostModel(**config.costs.to_dict())
    gold_known = qc_summary.has_gold(seg)
    oracle = qc_summary.oracle_row_labels(ls, seg)
    people = qc_summary.annotator_report(ls, oracle if gold_known else None, threshold=q.threshold,
                                         min_gold=q.min_gold, z=q.outlier_z)
    flagged = sorted(a for a, v in people.items() if v["flagged"])
    kept_rows = ~np.isin(ls.annotator_id.astype(str), flagged)
    if pairs is None:
        policies = qc_summary.file_policies(q.policies, ls, seg, threshold=q.threshold, seed=config.seed,
                                            cost_model=cost_model)
    else:
        policies = qc_summary.preset_policies(q.policies, seg, *pairs, pool=config.labels, size=config.pool.size,
                                              pool_seed=config.pool.seed, gold_rate=config.gold_rate,
                                              threshold=q.threshold, seed=config.seed, cost_model=cost_model)
    gold = ls.gold & ~ls.skipped
    report = {
        "labels": {"spec": config.labels, "label_set_hash": ls.content_hash(), "answers": len(ls),
                   "pairs": len(ls.subset(~ls.gold).items()[1]) if np.any(~ls.gold) else 0,
                   "gold_answers": int(ls.gold.sum()), "annotators": len(ls.annotators),
                   "r": ls.meta.get("r"), "gold_rate": config.gold_rate if pairs is not None else None},
        "fleiss_kappa": None, "krippendorff_alpha": None,
        "before_qc": {**qc_summary.agreement(ls, level=q.alpha_level, min_overlap=q.min_overlap),
                      "label_error": qc_summary.answer_error(ls, oracle) if gold_known else None,
                      "gold_error": qc_summary.error_with_interval(ls.label[gold] != ls.gold_label[gold])},
        "after_qc": {**qc_summary.agreement(ls, level=q.alpha_level, min_overlap=q.min_overlap, exclude=flagged),
                     "label_error": qc_summary.answer_error(ls, oracle, kept_rows) if gold_known else None,
                     "removed": flagged},
        "oracle": "the gold rubric of the dataset" if gold_known else None,
        "annotators": people, "flagged": flagged, "policies": policies,
        "costs": {"model": config.costs.to_dict(), "note": costs.__doc__.split("\n\n")[1]},
        "seed_claims": SEED_CLAIMS,
        "definitions": {
            "label_error": "fraction of answered training answers (or labels per pair) that differ from the "
                           "oracle's answer (the gold rubric's return of each segment)",
            "fleiss_kappa": "statsmodels, categories {0, 0.5, 1}, on the pairs with all r answers",
            "krippendorff_alpha": f"krippendorff package, value domain [0, 0.5, 1], level {q.alpha_level} "
                                  "(ties are the middle of an ordered scale); skips are missing ratings",
            "flagged": f"gold accuracy < {q.threshold} with >= {q.min_gold} gold answers, or a behaviour more "
                       f"than {q.outlier_z} robust σ (1.4826·MAD) from the pool median"}}
    report["fleiss_kappa"] = report["before_qc"]["fleiss_kappa"]["value"]
    report["krippendorff_alpha"] = report["before_qc"]["krippendorff_alpha"]["value"]
    return report, people


def annotator_rows(people: dict) -> list[dict]:
    cols = ("kind", "n_gold", "correct", "accuracy", "ci_low", "ci_high", "oracle_error", "n_labels",
            "left_rate", "tie_rate", "skip_rate", "majority_agreement", "median_seconds", "flagged")
    return [{"annotator_id": a, **{c: v.get(c) for c in cols}, "reasons": "; ".join(v["reasons"])}
            for a, v in people.items()]


def _body(inv: cli.Invocation) -> None:
    config, config_file = inv.config, inv.config_file
    validate(config, config_file)
    cli.check_workdir(inv.workdir, False, config)
    t0 = time.time()
    ls, seg, pairs = load_answers(config, config_file)
    cli.log(f"{len(ls)} answers from {len(ls.annotators)} annotators ({int(ls.gold.sum())} gold) "
            f"in {time.time() - t0:.1f}s")
    if not np.any(~ls.skipped):  # agreement, error and cost per pair would all be 0/0
        cli.fail(config_file, "labels", "a label file with at least one answer that is not a skip",
                 f"{len(ls)} answers, all skipped")
    report, people = build_report(config, ls, seg, pairs)
    report["wall_s"] = time.time() - t0
    checkpoint.prepare_run_dir(inv.workdir, config.to_json(indent=2, sort_keys=True), False, error=cli.ConfigError)
    label_set_io.write_label_set(os.path.join(inv.workdir, "labels.jsonl"), ls)
    checkpoint.atomic_write_json(os.path.join(inv.workdir, "qc.json"), report)
    checkpoint.atomic_write_csv(os.path.join(inv.workdir, "annotators.csv"), annotator_rows(people))
    qc_plots.plot_all(report, config.qc.threshold, config.qc.outlier_z, inv.workdir)
    b, a = report["before_qc"], report["after_qc"]
    error = (f"answer error {b['label_error']['value']:.3f} -> {a['label_error']['value']:.3f}"
             if b["label_error"] else "no oracle (the dataset has no gold reward)")
    cli.log(f"Fleiss kappa {b['fleiss_kappa']['value']:.3f} -> {a['fleiss_kappa']['value']:.3f}, "
            f"Krippendorff alpha {b['krippendorff_alpha']['value']:.3f} -> {a['krippendorff_alpha']['value']:.3f}, "
            f"{error} after removing {report['flagged']}")
    for name, p in report["policies"].items():
        err = p["label_error"]
        error = f"label error {err['value']:.3f} [{err['ci'][0]:.3f}, {err['ci'][1]:.3f}]" if err else "no oracle"
        cli.log(f"policy {name:<12s} {error}  "
                f"${p['dollars_per_pair']:.2f} per pair (x{p['cost_multiplier_vs_raw']:.2f} raw)")
    cli.log(f"wrote {inv.workdir}/qc.json, annotators.csv, labels.jsonl and plots in {time.time() - t0:.1f}s")


main = functools.partial(cli.run_main, body=_body, resumable=False)

if __name__ == "__main__":
    sys.exit(main(sys.argv))
