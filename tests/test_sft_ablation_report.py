"""The SFT ablation's docs block, generated from ablation.json."""
from __future__ import annotations

import json
import os

from experiments import sft_ablation_report as report
from experiments.doc_blocks import read_block

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def variant(success: float, gold: float) -> dict:
    cells = {f"{arm}/{task}": {"success_rate": success, "gold_return": gold}
             for arm in ("ur5", "panda") for task in ("reach", "reach_avoid")}
    return {"what": "w", "optimizer_steps": 3000, "success_rate": success, "gold_return": gold,
            "violations_any_rate": 0.25, "per_arm_task": cells}


def test_variants_in_order_of_success_and_the_prior_beside_bc_per_arm_and_task():
    block = report.docs_block({"dagger": variant(1.0, 7.5), "bc": variant(0.375, -4.5),
                               "bc_expert_only": variant(0.0, -20.0)}, "results/x")
    rows = [line.split("|")[1].strip() for line in block.splitlines() if line.startswith("| `")]
    assert rows == ["`bc_expert_only`", "`bc`", "`dagger`"]
    assert "| `bc` | w | 3,000 | 37.5% | −4.50 | 25.0% |" in block
    assert "| panda | 100% (38%) | 100% (38%) |" in block and "| ur5 | 7.50 (−4.50) | 7.50 (−4.50) |" in block


def test_docs_block_is_generated_from_the_committed_ablation():
    source = "results/sft_ablation"
    with open(os.path.join(ROOT, source, "ablation.json"), encoding="utf-8") as f:
        ablation = json.load(f)
    with open(os.path.join(ROOT, "docs", "sft_dpo.md"), encoding="utf-8") as f:
        page = f.read()
    assert read_block(page, report.DOCS_BLOCK, source) == report.docs_block(ablation, source)
