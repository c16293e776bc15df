"""Comparison of two sweep results.csv files, and of two JSON reports: text fields equal, numbers
within tolerance."""
import csv
import math

import numpy as np


def read_rows(path: str) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def assert_same_results(rows_a: list[dict], rows_b: list[dict], tol: float = 1e-5) -> None:
    assert len(rows_a) == len(rows_b)
    for ra, rb in zip(rows_a, rows_b):
        for key, va in ra.items():
            try:
                a, b = float(va), float(rb[key])
            except ValueError:
                assert va == rb[key], key
                continue
            np.testing.assert_allclose(b, a, rtol=tol, atol=tol, err_msg=key)


def assert_tree_close(got, want, rel: float, abs_tol: float, where: str = "report") -> None:
    """Equal structure and non-float leaves (keys, lengths, strings, verdicts); floats within `rel`
    relative or `abs_tol` absolute, NaN equal to NaN (an undefined estimate stays undefined) and
    ±inf only to itself."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), where
        for key in want:
            assert_tree_close(got[key], want[key], rel, abs_tol, f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_tree_close(g, w, rel, abs_tol, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool):
        if math.isnan(want):
            assert isinstance(got, float) and math.isnan(got), where
        elif got != want:  # an infinite bound must be matched exactly
            assert abs(got - want) <= max(abs_tol, rel * abs(want)), (where, got, want)
    else:
        assert got == want, where
