"""The notebooks' stored outputs show the committed results they read.

The notebooks are committed with their outputs, made by ``python -m experiments.run_notebooks``.
Without executing anything, this reads each notebook's JSON and checks that

* every code cell ran, in order in one kernel, and no stored output is an error;
* the notebook reads a committed directory under ``results/`` (its ``RESULTS_DIR`` default);
* its headline lines, ``label: quantity = value [low, high]`` with an optional ``(note)`` after,
  are exactly the ones its results files hold, each number equal to the file's to the precision
  printed: an output left from an older run (an older fit's α, say) fails here;
* the tables it prints from its results files (claims, the transfer table) are theirs.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = ("cross_embodiment.ipynb", "label_efficiency.ipynb", "scaling_curves.ipynb")
RESULTS_DIR_DEFAULT = re.compile(r'os\.environ\.get\("RESULTS_DIR", "([^"]+)"\)')
HEADLINE_START = re.compile(r"^\S+: \w+ = ")  # a line that claims to be a headline must parse fully
HEADLINE = re.compile(r"^(?P<label>\S+): (?P<quantity>\w+) = (?P<value>\S+)"
                      r"(?: \[(?P<low>\S+), (?P<high>\S+)\])?(?: \((?P<note>.*)\))?$")


@dataclasses.dataclass(frozen=True)
class Number:
    """A headline number: its value, its 95% interval (None when it has none) and its note."""
    value: float | str
    ci: tuple | None = None
    note: str | None = None


# ----------------------------------------------------------------------------- reading notebooks

def load_notebook(name: str) -> dict:
    with open(os.path.join(ROOT, "notebooks", name), encoding="utf-8") as f:
        return json.load(f)


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def joined(text) -> str:
    return "".join(text) if isinstance(text, list) else text


def printed_text(nb: dict) -> str:
    """Everything the notebook's code cells printed to stdout, in order."""
    return "".join(joined(o["text"]) for c in code_cells(nb) for o in c["outputs"]
                   if o["output_type"] == "stream" and o["name"] == "stdout")


def results_dir_of(nb: dict) -> str:
    """The results directory the notebook reads when ``RESULTS_DIR`` is unset."""
    found = RESULTS_DIR_DEFAULT.findall("\n".join(joined(c["source"]) for c in code_cells(nb)))
    assert len(found) == 1, f"expected one RESULTS_DIR default, found {found}"
    return found[0]


def headline_numbers(text: str) -> dict[tuple[str, str], Number]:
    """(label, quantity) -> the Number printed on each headline line of ``text``, as strings."""
    out = {}
    for line in text.splitlines():
        if not HEADLINE_START.match(line):
            continue
        m = HEADLINE.match(line)
        assert m, f"headline line does not parse: {line!r}"
        key = (m["label"], m["quantity"])
        assert key not in out, f"{key} printed twice"
        out[key] = Number(m["value"], (m["low"], m["high"]) if m["low"] is not None else None, m["note"])
    return out


# ----------------------------------------------------------------------------- comparing

def agrees(printed: str, expected: float) -> bool:
    """Whether ``printed`` is ``expected`` shown to the precision printed (half a unit of the
    last digit; inf and nan only as themselves)."""
    value = float(printed.replace(",", ""))
    if math.isnan(value) or math.isnan(expected):
        return math.isnan(value) and math.isnan(expected)
    if math.isinf(value) or math.isinf(expected):
        return value == expected
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return abs(value - expected) <= 0.5 * 10 ** -decimals * (1 + 1e-9) + 1e-12


def mismatches(printed: dict[tuple[str, str], Number], expected: dict[tuple[str, str], Number]) -> list[str]:
    """Every difference between the printed headline numbers and the results files' numbers."""
    problems = [f"{k} not printed" for k in expected if k not in printed]
    problems += [f"{k} printed but not in the results files" for k in printed if k not in expected]
    for key in expected.keys() & printed.keys():
        got, want = printed[key], expected[key]
        if not agrees(got.value, want.value):
            problems.append(f"{key}: printed {got.value}, results hold {want.value}")
        if (got.ci is None) != (want.ci is None):
            problems.append(f"{key}: interval printed {got.ci}, results hold {want.ci}")
        elif got.ci is not None and not all(agrees(g, w) for g, w in zip(got.ci, want.ci)):
            problems.append(f"{key}: interval printed [{', '.join(got.ci)}], results hold {list(want.ci)}")
        if (got.note or "") != (want.note or ""):
            problems.append(f"{key}: note printed {got.note!r}, results hold {want.note!r}")
    return problems


# ----------------------------------------------------------------------------- the results files

def read_json(results_dir: str, name: str) -> dict:
    with open(os.path.join(ROOT, results_dir, name), encoding="utf-8") as f:
        return json.load(f)


def scaling_expected(results_dir: str) -> dict[tuple[str, str], Number]:
    """fit.json: α, E and A of every curve with their intervals, and the N for the target error."""
    fit = read_json(results_dir, "fit.json")
    out = {}
    for name, curve in fit["fits"].items():
        for key in ("alpha", "E", "A"):
            out[(name, key)] = Number(curve[key], tuple(curve[f"{key}_ci"]))
        need = fit["n_for_target"][name]
        out[(name, "N_for_target")] = Number(need["N"], tuple(need["N_ci"]))
    return out


def transfer_expected(results_dir: str) -> dict[tuple[str, str], Number]:
    """summary.json: per transfer × model, source and zero-shot accuracy, the drop and
    fine-tune − scratch, with their intervals."""
    summary = read_json(results_dir, "summary.json")
    out = {}
    for name in summary["order"]:
        model = summary["models"][name]
        for key in ("source", "zero_shot", "drop_points", "finetune_minus_scratch"):
            if key in model:
                out[(name, key)] = Number(model[key]["estimate"], tuple(model[key]["ci"]))
    return out


def final_accuracy(results_dir: str) -> dict[str, float]:
    """results.csv: each strategy's mean test accuracy over seeds at the last round."""
    with open(os.path.join(ROOT, results_dir, "results.csv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    last = max(int(r["round"]) for r in rows)
    by_strategy = {}
    for r in rows:
        if int(r["round"]) == last:
            by_strategy.setdefault(r["strategy"], []).append(float(r["test_accuracy"]))
    return {s: sum(v) / len(v) for s, v in by_strategy.items()}


def label_efficiency_expected(results_dir: str) -> dict[tuple[str, str], Number]:
    """savings.json and results.csv: per strategy the final accuracy, then labels and dollars to
    the target (with the note of a budget that is only a bound) and the saving against uniform;
    per claim, its numbers with their intervals."""
    savings, accuracy = read_json(results_dir, "savings.json"), final_accuracy(results_dir)
    out = {}
    for strategy, entry in savings["strategies"].items():
        out[(strategy, "final_accuracy")] = Number(accuracy[strategy])
        for cost in ("labels", "dollars"):
            out[(strategy, f"{cost}_to_target")] = Number(entry[cost]["to_target"], note=entry[cost]["note"] or None)
            out[(strategy, f"{cost}_saving")] = Number(entry[cost]["saving_vs_uniform"], tuple(entry[cost]["saving_ci"]))
    for name, claim in savings["claims"].items():
        for key, ci_key in [("ours", "ci")] + [(k, f"{k}_ci") for k in claim]:
            if key in claim and ci_key in claim:
                out[(name, key)] = Number(claim[key], tuple(claim[ci_key]))
    return out


EXPECTED = {"cross_embodiment.ipynb": transfer_expected, "label_efficiency.ipynb": label_efficiency_expected,
            "scaling_curves.ipynb": scaling_expected}


def table_rows(text: str) -> list[str]:
    """The body rows of the markdown tables in ``text`` (header and rule rows dropped)."""
    rows = [line for line in text.splitlines() if line.startswith("| ") and line.endswith(" |")]
    return [r for r in rows if not r.startswith(("| transfer | model |", "|---"))]


# ----------------------------------------------------------------------------- the tests

@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_code_cell_ran_in_order_without_errors(name):
    cells = code_cells(load_notebook(name))
    counts = [c["execution_count"] for c in cells]
    assert counts == list(range(1, len(cells) + 1)), f"{name}: execution counts {counts}; rerun " \
                                                     "python -m experiments.run_notebooks"
    errors = [o for c in cells for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, f"{name}: {[e['ename'] + ': ' + e['evalue'] for e in errors]}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_headline_numbers_equal_the_results_files(name):
    nb = load_notebook(name)
    results_dir = results_dir_of(nb)
    assert results_dir.startswith("results/") and os.path.isdir(os.path.join(ROOT, results_dir)), (
        f"{name} reads {results_dir}, not a committed results directory")
    problems = mismatches(headline_numbers(printed_text(nb)), EXPECTED[name](results_dir))
    assert not problems, f"{name} (rerun python -m experiments.run_notebooks):\n" + "\n".join(problems)


def test_transfer_tables_are_the_committed_ones():
    from experiments import cross_embodiment_report as report  # pylint: disable=g-import-not-at-top

    nb = load_notebook("cross_embodiment.ipynb")
    results_dir = results_dir_of(nb)
    with open(os.path.join(ROOT, results_dir, "claims.md"), encoding="utf-8") as f:
        committed = table_rows(f.read()) + table_rows(report.headline_table(read_json(results_dir, "summary.json")))
    assert sorted(table_rows(printed_text(nb))) == sorted(committed)


def test_label_efficiency_claims_are_the_committed_ones():
    nb = load_notebook("label_efficiency.ipynb")
    with open(os.path.join(ROOT, results_dir_of(nb), "claims.md"), encoding="utf-8") as f:
        assert f.read() in printed_text(nb)


def test_the_check_catches_a_stale_number_and_a_missing_line():
    expected = scaling_expected("results/quick")
    fresh = {key: Number(f"{n.value:.3f}", tuple(f"{v:.3f}" for v in n.ci)) for key, n in expected.items()}
    assert not mismatches(fresh, expected)
    stale = headline_numbers("oracle/ensemble: alpha = 0.739 [0.154, 1.640]\n")  # an older build's fit
    problems = mismatches(fresh | stale, expected)
    assert problems == ["('oracle/ensemble', 'alpha'): printed 0.739, results hold 0.14721090078258436",
                        "('oracle/ensemble', 'alpha'): interval printed [0.154, 1.640], results hold "
                        "[0.12799153161015872, 0.9001852976192481]"]
    assert len(mismatches({}, expected)) == len(expected)
    assert agrees("0.15", 0.1472) and not agrees("0.148", 0.1472) and agrees("inf", math.inf)
    assert agrees("nan", math.nan) and not agrees("41870", math.inf) and agrees("1,312", 1312.4)
    with pytest.raises(AssertionError, match="does not parse"):
        headline_numbers("panda->ur5|eef: n_recover_50 = ≤ 100 [≤ 100, 130]\n")
