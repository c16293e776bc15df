"""The docs block of the QC report (``experiments.qc_report``) from a committed qc.json: agreement
and label error before and after removing the flagged annotators, each QC policy's label error
(Wilson 95% interval over pairs) and cost, and the claims we test read against those intervals.

  python -m experiments.qc_report_docs results/qc_quick --docs docs/qc_report.md
"""
from __future__ import annotations

import sys

from experiments.doc_blocks import render_main
from rlhf_jax.evaluation.seed_statistics import interval_vs_range
from rlhf_jax.labels.qc_sources import POLICY_R, POOLS

DOCS_BLOCK = "qc-report-table"


def range_verdict(ci, claimed) -> str:
    """Where a 95% interval lies against a claimed range [low, high]."""
    where = interval_vs_range(*ci, *claimed)
    if where == "overlaps":
        return "overlaps the claimed range (the interval reaches past it)"
    return f"{where} the claimed range"


def _claimed(lo: float, hi: float) -> str:
    return f"{lo * 100:g}–{hi:.0%}"


def _pct(x: float) -> str:
    return f"{x:.1%}"


def _error(e: dict) -> str:
    return f"{_pct(e['value'])} [{_pct(e['ci'][0])}, {_pct(e['ci'][1])}]"


def agreement_table(report: dict) -> list[str]:
    """Agreement and label error before and after removing the flagged annotators."""
    b, a = report["before_qc"], report["after_qc"]
    lines = ["| | before QC | after QC |", "|---|---|---|",
             f"| Fleiss' κ | {b['fleiss_kappa']['value']:.3f} | {a['fleiss_kappa']['value']:.3f} |"]
    for key, name in (("krippendorff_alpha", "Krippendorff's α"), ("krippendorff_alpha_nominal", "Krippendorff's α")):
        if key in b:
            lines.append(f"| {name} ({b[key]['level']}) | {b[key]['value']:.3f} | {a[key]['value']:.3f} |")
    lines.append(f"| label error (answers) [95%] | {_error(b['label_error'])} | {_error(a['label_error'])} |")
    ordinal, nominal = b["krippendorff_alpha"], b.get("krippendorff_alpha_nominal")
    no_ties = all(p.get("tie_rate") == 0 for p in report["annotators"].values())
    if nominal and nominal["value"] == ordinal["value"] and no_ties:
        lines += ["", "Ordinal and nominal α coincide: no annotator answered a tie (every tie rate is 0)."]
    return lines


def policy_table(policies: dict) -> list[str]:
    """One row per policy, in the order the policies are defined."""
    order = [p for p in POLICY_R if p in policies] + sorted(set(policies) - set(POLICY_R))
    lines = ["| policy | r | label error [95%] | $ per pair | × raw |", "|---|---|---|---|---|"]
    for name in order:
        p = policies[name]
        lines.append(f"| `{name}` | {p['r']} | {_error(p['label_error'])} | {p['dollars_per_pair']:.2f} | "
                     f"{p['cost_multiplier_vs_raw']:.2f} |")
    same = [name for name in order if name != "majority" and "majority" in policies
            and policies[name]["label_error"] == policies["majority"]["label_error"]]
    if same:
        lines += ["", f"{', '.join(f'`{s}`' for s in same)} and `majority` have the same label error here."]
    return lines


def claim_lines(report: dict) -> list[str]:
    """The claims we test, each read against our 95% interval (or our cost, which has none)."""
    claims, policies, prices = report["seed_claims"], report["policies"], report["costs"]["model"]
    lines = []
    if "raw" in policies:
        lo, hi = claims["label_error_single"]
        raw = policies["raw"]["label_error"]
        lines.append(f"* **Single-annotation error of {_claimed(lo, hi)}.** `raw`: {_error(raw)}, "
                     f"{range_verdict(raw['ci'], (lo, hi))}.")
    if "adjudicated" in policies:
        adj = policies["adjudicated"]
        lo, hi = claims["label_error_adjudicated"]
        lines.append(f"* **Double annotation with adjudication cuts error to {_claimed(lo, hi)}.** `adjudicated`: "
                     f"{_error(adj['label_error'])}, {range_verdict(adj['label_error']['ci'], (lo, hi))}.")
        lo, hi = claims["double_annotation_cost_multiplier"]
        mult = adj["cost_multiplier_vs_raw"]
        where = "inside" if lo <= mult <= hi else ("above" if mult > hi else "below")
        senior = adj.get("by_kind", {}).get("expert", {}).get("answers", 0)
        lines.append(f"* **Adjudication costs ×{lo:g}–{hi:g}.** `adjudicated` costs ×{mult:.2f} `raw`'s dollars "
                     f"per pair, {where} the claimed range: the senior gave {senior:,} answers on "
                     f"{adj['pairs_labelled']:,} pairs, at ×{prices['expert'] / prices['human']:g} a crowd "
                     f"answer's price.")
    if "filtered" in policies:
        f = policies["filtered"]
        by_cost = sorted((p["cost_multiplier_vs_raw"], n) for n, p in policies.items() if n != "raw")
        rank = "the cheapest policy besides `raw`" if by_cost[0][1] == "filtered" else "not the cheapest"
        lines.append(f"* **Removing annotators below {claims['accuracy_threshold']:.0%} gold accuracy.** `filtered`: "
                     f"{_error(f['label_error'])} at ×{f['cost_multiplier_vs_raw']:.2f}, {rank}.")
    return lines


def docs_block(report: dict, results_dir: str) -> str:
    """The docs page's generated block from a committed qc.json."""
    labels = report["labels"]
    gold = f", gold rate {labels['gold_rate']:.0%}" if labels.get("gold_rate") is not None else ""
    source = f"the `{labels['spec']}` preset" if labels["spec"] in POOLS else f"`{labels['spec']}`"
    flagged = ", ".join(f"`{a}`" for a in report["flagged"]) or "none"
    lines = [f"Generated by `python -m experiments.qc_report_docs {results_dir} --docs docs/qc_report.md` from the "
             f"committed `{results_dir}/qc.json`: {labels['pairs']:,} pairs × r = {labels['r']} answers of "
             f"{source} ({labels['annotators']} annotators{gold}). Flagged: {flagged}. Label errors are "
             f"against the oracle, with Wilson 95% intervals over answers (first table) or pairs (second).",
             "", "Before and after removing the flagged annotators:", "", *agreement_table(report),
             "", "Each policy on the same pairs:", "", *policy_table(report["policies"])]
    claims = claim_lines(report)
    if claims:
        lines += ["", "The claims we test, against these numbers:", "", *claims]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """``python -m experiments.qc_report_docs RESULTS_DIR --docs PAGE``: the page's block from qc.json."""
    return render_main(argv, prog="experiments.qc_report_docs", results_file="qc.json",
                       default_page="docs/qc_report.md", name=DOCS_BLOCK, render=docs_block)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
