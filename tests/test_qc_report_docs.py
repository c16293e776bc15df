"""The QC report's docs block, generated from qc.json, and how it reads the claims."""
from __future__ import annotations

import json
import os

import pytest

from experiments import qc_report_docs as report
from experiments.doc_blocks import read_block

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("ci, verdict", [((0.13, 0.17), "inside"), ((0.19, 0.21), "above"),
                                         ((0.05, 0.11), "below"), ((0.176, 0.210), "overlaps"),
                                         ((0.10, 0.20), "overlaps")])
def test_a_claim_is_settled_only_when_the_interval_lies_inside_or_outside_its_range(ci, verdict):
    assert report.range_verdict(ci, (0.12, 0.18)).startswith(verdict)


def test_docs_block_is_generated_from_the_committed_qc_json():
    source = "results/qc_quick"
    with open(os.path.join(ROOT, source, "qc.json"), encoding="utf-8") as f:
        qc = json.load(f)
    with open(os.path.join(ROOT, "docs", "qc_report.md"), encoding="utf-8") as f:
        page = f.read()
    assert read_block(page, report.DOCS_BLOCK, source) == report.docs_block(qc, source)
