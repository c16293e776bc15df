"""Comparison of two sweep results.csv files: text fields equal, numbers within tolerance."""
import csv

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
