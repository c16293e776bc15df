"""benchmarks.common: what every benchmark JSON records about the accelerators' memory."""
from __future__ import annotations

import json

import jax

from benchmarks import common


class _FakeGpu:
    def __init__(self, ident, stats):
        self.ident, self.stats = ident, stats

    def memory_stats(self):
        return self.stats

    def __str__(self):
        return f"cuda:{self.ident}"


def test_a_cpu_keeps_no_memory_count_so_none_is_recorded(tmp_path):
    assert all(d.platform == "cpu" for d in jax.local_devices())
    assert common.device_memory() is None
    path = tmp_path / "b.json"
    common.write_json(str(path), {"benchmark": "x"})
    assert json.loads(path.read_text())["device_memory"] is None


def test_each_accelerators_peak_and_limit_are_recorded(monkeypatch, tmp_path):
    gb = 2**30
    devices = [_FakeGpu(0, {"peak_bytes_in_use": 3 * gb, "bytes_in_use": gb, "bytes_limit": 80 * gb, "num_allocs": 7}),
               _FakeGpu(1, {"peak_bytes_in_use": 2 * gb, "bytes_limit": 80 * gb})]
    monkeypatch.setattr(jax, "local_devices", lambda: devices)
    expected = [{"device": "cuda:0", "peak_bytes_in_use": 3 * gb, "bytes_in_use": gb, "bytes_limit": 80 * gb},
                {"device": "cuda:1", "peak_bytes_in_use": 2 * gb, "bytes_limit": 80 * gb}]
    assert common.device_memory() == expected
    path = tmp_path / "b.json"
    common.write_json(str(path), {"benchmark": "x"})
    assert json.loads(path.read_text())["device_memory"] == expected
