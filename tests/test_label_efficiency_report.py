"""The label-efficiency docs blocks: the page shows what the report renders from the committed
results, and the tables render known numbers as expected."""
from __future__ import annotations

import os
import re

import pytest

from experiments import label_efficiency_report as report
from experiments.doc_blocks import markers, read_block

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T_975_2DF = 4.302652729749464  # Student-t 97.5% quantile with 2 degrees of freedom (3 seeds)


def _page_sources() -> list[str]:
    with open(os.path.join(ROOT, report.DOCS_PAGE), encoding="utf-8") as f:
        return re.findall(rf"<!-- {report.DOCS_BLOCK}:start (\S+) -->", f.read())


def test_the_page_has_a_block_per_run_including_routing_and_default():
    assert {"results/label_efficiency_quick", "results/label_efficiency_surf", "results/label_efficiency_routing",
            "results/label_efficiency_default"} <= set(_page_sources())


@pytest.mark.parametrize("source", _page_sources())
def test_docs_block_matches_committed_results(source, monkeypatch):
    monkeypatch.chdir(ROOT)  # the block names its source relative to the repository root
    if not os.path.exists(os.path.join(source, "results.csv")):  # a run still to do: its block says how
        with open(report.DOCS_PAGE, encoding="utf-8") as f:
            body = read_block(f.read(), report.DOCS_BLOCK, source)
        assert body.startswith("Not run yet") and f"--docs {report.DOCS_PAGE}" in body and source in body
        return
    with open(os.path.join(source, "results.csv"), encoding="utf-8", newline="") as f:
        rows = report.read_rows(f)
    with open(report.DOCS_PAGE, encoding="utf-8") as f:
        page = f.read()
    assert read_block(page, report.DOCS_BLOCK, source) == report.docs_block(rows, source)


def test_accuracy_table_shows_mean_and_t_interval_over_seeds():
    rows = [{"strategy": s, "seed": seed, "round": 0, "labels": 100, "dollars": 100.0, "test_accuracy": acc}
            for s, accs in (("uniform", (0.6, 0.7, 0.8)), ("routed", (0.5, 0.5, 0.5)))
            for seed, acc in enumerate(accs)]
    half = T_975_2DF * 0.1 / 3 ** 0.5  # SD over seeds 0.1
    assert report.accuracy_table(rows).splitlines() == [
        "| strategy | 100 labels | $ at the end |", "|---|---|---|",
        f"| `uniform` | 0.700 [{0.7 - half:.3f}, {0.7 + half:.3f}] | 100 |",
        "| `routed` | 0.500 [0.500, 0.500] | 100 |"]
    assert f"{0.7 - half:.3f}" == "0.452"


def test_savings_table_bounds_a_strategy_that_missed_the_target():
    reached = {"to_target": 150.0, "reached": True, "saving_vs_uniform": 0.25, "saving_ci": [-0.1, 0.5]}
    missed = {"to_target": 400.0, "reached": False, "saving_vs_uniform": -1.0, "saving_ci": [-2.0, -0.5]}
    sav = {"target_accuracy": 0.8, "strategies": {"pseudo": {"labels": reached, "dollars": reached},
                                                   "routed": {"labels": missed, "dollars": missed}},
           "claims": {"pseudo/pseudo": {"claim": "c", "ours": 0.9, "ci": [0.7, 1.0], "verdict": "v"}}}
    lines = report.savings_table(sav).splitlines()
    assert lines[2] == "| `pseudo` | 150 | +25% [-10%, +50%] | 150 | +25% [-10%, +50%] | ×0.90 [0.70, 1.00] |"
    assert lines[3] == "| `routed` | > 400 (budget) | ≤ -100% (bound) | > 400 (budget) | ≤ -100% (bound) | — |"


def test_main_writes_the_block(tmp_path):
    source = os.path.join(ROOT, "results", "label_efficiency_surf")
    start, end = markers(report.DOCS_BLOCK, source)
    page = tmp_path / "page.md"
    page.write_text(f"{start}\n{end}\n", encoding="utf-8")
    assert report.main(["prog", source, "--docs", str(page)]) == 0
    assert "| `pseudo_surf` | 0.781 [" in read_block(page.read_text(encoding="utf-8"), report.DOCS_BLOCK, source)
