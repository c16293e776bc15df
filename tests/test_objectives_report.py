"""The per-objective sweep's docs block: accuracy vs N per objective from results.csv and run_info.json."""
from __future__ import annotations

import json

from experiments import objectives_report as report
from experiments.doc_blocks import markers, read_block

T_975_2DF = 4.302652729749464  # Student-t 97.5% quantile with 2 degrees of freedom (3 seeds)


def rows_of(accuracy: dict) -> list[dict]:
    """Ensemble rows per ((teacher, objective, N): [accuracy per seed])."""
    return [{"condition": f"{t}@{o}", "objective": o, "n": n, "seed": s, "member": "ensemble", "test_accuracy": a}
            for (t, o, n), per_seed in accuracy.items() for s, a in enumerate(per_seed)]


ACCURACY = {("oracle", "task", 100): [0.85, 0.86, 0.87], ("oracle", "task", 400): [0.93, 0.94, 0.95],
            ("oracle", "smoothness", 100): [0.5, 0.6, 0.7], ("oracle", "smoothness", 400): [0.78, 0.8, 0.82],
            ("mistake", "task", 100): [0.7, 0.7, 0.7], ("mistake", "task", 400): [0.9, 0.9, 0.9]}


def test_first_n_reaching_a_level_reads_the_mean_over_seeds():
    by_n = report.accuracy_by_objective(rows_of(ACCURACY))["oracle"]["smoothness"]
    assert report.first_n_reaching(by_n, 0.8) == 400 and report.first_n_reaching(by_n, 0.6) == 100
    assert report.first_n_reaching(by_n, 0.9) is None


def test_block_has_a_table_per_teacher_with_intervals_levels_and_estimates():
    estimates = {"task": {"per_step": 1.0, "previous_step": 1.0}, "smoothness": {"per_step": 0.5, "previous_step": 0.93}}
    block = report.docs_block(rows_of(ACCURACY), "results/x", estimates)
    assert "Labels from `oracle`:" in block and "Labels from `mistake`:" in block
    half = T_975_2DF * 0.1 / 3 ** 0.5  # sample SD of 0.5, 0.6, 0.7 is 0.1
    assert f"| smoothness | 0.600 [{0.6 - half:.3f}, {0.6 + half:.3f}] | 0.800 [" in block
    assert "| 100 | 400 | 1.000 | 1.000 |" in block  # oracle task: ≥ 0.8 at 100, ≥ 0.9 at 400
    assert "| 400 | — | 0.500 | 0.930 |" in block  # smoothness reaches 0.8 at 400 only, never 0.9
    assert "At N = 400, from the lowest mean accuracy to the highest: smoothness, task." in block
    assert "| 0.900 [0.900, 0.900] | 400 | 400 | 1.000 | 1.000 |" in block  # mistake: equal seeds, zero width

def test_main_reads_the_csv_and_run_info_and_writes_the_block(tmp_path):
    results = tmp_path / "res"
    results.mkdir()
    (results / "results.csv").write_text(
        "condition,objective,n,seed,member,test_accuracy\n"
        + "".join(f"oracle@safety,safety,50,{s},ensemble,{a}\noracle@safety,safety,50,{s},0,0.1\n"
                  for s, a in enumerate((0.6, 0.7, 0.8))), encoding="utf-8")
    (results / "run_info.json").write_text(json.dumps(
        {"markovian_estimate": {"objectives": {"safety": {"per_step": 0.99, "previous_step": 0.99}}}}))
    start, end = markers(report.DOCS_BLOCK, str(results))
    page = tmp_path / "page.md"
    page.write_text(f"{start}\n{end}\n", encoding="utf-8")
    assert report.main(["prog", str(results), "--docs", str(page)]) == 0
    block = read_block(page.read_text(encoding="utf-8"), report.DOCS_BLOCK, str(results))
    assert "| safety | 0.700 [" in block and "| 0.990 | 0.990 |" in block  # member rows ignored


def test_a_single_seed_is_shown_without_an_interval():
    block = report.docs_block(rows_of({("oracle", "efficiency", 50): [0.75]}), "results/x", {})
    assert "| efficiency | 0.750 | — | — | — | — |" in block


def test_the_page_block_is_the_report_of_the_committed_results_or_says_how_to_make_it(monkeypatch):
    """Until results/objectives is committed the block says which commands make it; after, it is
    exactly what the report renders from the committed files."""
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    monkeypatch.chdir(root)  # the block names its source relative to the repository root
    source, page = "results/objectives", "docs/objectives.md"
    with open(page, encoding="utf-8") as f:
        body = read_block(f.read(), report.DOCS_BLOCK, source)
    if not os.path.exists(os.path.join(source, "results.csv")):  # a run still to do: its block says how
        assert body.startswith("Not run yet") and f"objectives_report {source} --docs {page}" in body
        return
    with open(os.path.join(source, "results.csv"), encoding="utf-8", newline="") as f:
        assert body == report.docs_block(report.read_rows(f), source)
