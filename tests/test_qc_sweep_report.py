"""The QC sweep's docs block: mean accuracy with a Student-t interval over seeds, from results.csv."""
from __future__ import annotations

import os

import pytest

from experiments import qc_sweep_report as report
from experiments.doc_blocks import markers, read_block

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T_975_2DF = 4.302652729749464  # Student-t 97.5% quantile with 2 degrees of freedom (3 seeds)


def rows_of(accuracy: dict, dollars_per_pair: dict) -> list[dict]:
    """results.csv rows: one ensemble row per (condition, N, seed) and a member row that the
    report must ignore (its accuracy is far off on purpose)."""
    rows = []
    for (cond, n), per_seed in accuracy.items():
        for seed, acc in enumerate(per_seed):
            base = {"condition": cond, "n": n, "seed": seed, "dollars": n * dollars_per_pair[cond]}
            rows += [dict(base, member="ensemble", test_accuracy=acc), dict(base, member="0", test_accuracy=0.0)]
    return rows


def test_three_seeds_give_the_student_t_interval_and_identical_seeds_zero_width():
    rows = rows_of({("qc:crowd/raw", 100): [0.7, 0.8, 0.9], ("oracle", 100): [0.8, 0.8, 0.8]},
                   {"qc:crowd/raw": 1.0, "oracle": 1.0})
    intervals = report.seed_intervals(rows)
    raw, oracle = intervals["qc:crowd/raw"][100], intervals["oracle"][100]
    half = T_975_2DF * 0.1 / 3 ** 0.5  # sample SD (n − 1) of 0.7, 0.8, 0.9 is 0.1
    assert raw["seeds"] == 3 and raw["mean"] == pytest.approx(0.8)
    assert raw["ci95"] == pytest.approx([0.8 - half, 0.8 + half])
    assert oracle["mean"] == pytest.approx(0.8) and oracle["ci95"] == pytest.approx([0.8, 0.8])


def test_the_block_reads_disjoint_intervals_and_the_bill_at_a_matched_budget():
    accuracy = {("qc:crowd/raw", 100): [0.60, 0.61, 0.62], ("qc:crowd/raw", 200): [0.70, 0.80, 0.90],
                ("qc:crowd/filtered", 100): [0.70, 0.71, 0.72], ("qc:crowd/filtered", 200): [0.80, 0.81, 0.82],
                ("oracle", 100): [0.80, 0.81, 0.82], ("oracle", 200): [0.85, 0.86, 0.87]}
    block = report.docs_block(rows_of(accuracy, {"qc:crowd/raw": 1.0, "qc:crowd/filtered": 2.0, "oracle": 1.0}),
                              "results/x")
    assert "over 3 seeds" in block and "| `qc:crowd/filtered` |" in block
    assert "| 400 | 2.00 |" in block  # filtered: $2 per pair × N = 200, twice raw's bill
    assert "`qc:crowd/raw` mean below at 2 of 2 N, intervals disjoint from the oracle's at N = 100;" in block
    # filtered's bill at N = 200 is $400: raw and the oracle are read at N = 200 ($200), the nearest
    assert "`qc:crowd/raw` at N = 200 ($200)" in block and "`oracle` at N = 200 ($200)" in block


def test_docs_block_is_generated_from_the_committed_results():
    source = "results/qc_sweep"
    with open(os.path.join(ROOT, source, "results.csv"), encoding="utf-8", newline="") as f:
        rows = report.read_rows(f)
    with open(os.path.join(ROOT, "docs", "qc_report.md"), encoding="utf-8") as f:
        page = f.read()
    assert read_block(page, report.DOCS_BLOCK, source) == report.docs_block(rows, source)


def test_main_reads_the_csv_and_writes_the_block(tmp_path):
    results = tmp_path / "res"
    results.mkdir()
    (results / "results.csv").write_text(
        "condition,n,seed,member,test_accuracy,dollars\n"
        + "".join(f"oracle,50,{s},ensemble,{a},50.0\n" for s, a in enumerate((0.6, 0.7, 0.8))), encoding="utf-8")
    start, end = markers(report.DOCS_BLOCK, str(results))
    page = tmp_path / "page.md"
    page.write_text(f"{start}\n{end}\n", encoding="utf-8")
    assert report.main(["prog", str(results), "--docs", str(page)]) == 0
    assert "| `oracle` | 0.700 [" in read_block(page.read_text(encoding="utf-8"), report.DOCS_BLOCK, str(results))
