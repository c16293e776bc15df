"""MetricWriter: the CSV/JSON it writes, and its TensorBoard event file decoded record by record
(TFRecord framing + tensorboardX's Event proto: the scalars a TensorBoard user would see)."""
from __future__ import annotations

import csv
import glob
import json
import os
import struct

from rlhf_jax.metric_writer import MetricWriter


def test_csv_and_summary_hold_every_row_in_first_seen_column_order(tmp_path):
    w = MetricWriter(str(tmp_path), "sft")
    w.write(1, {"loss": 0.5})
    w.write(2, {"loss": 0.25, "acc": 0.75})
    w.close({"final": w.rows[-1]})
    with open(tmp_path / "sft_metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [list(r) for r in rows] == [["step", "loss", "acc"]] * 2
    assert rows[0] == {"step": "1", "loss": "0.5", "acc": ""} and rows[1]["acc"] == "0.75"
    assert json.loads((tmp_path / "sft_summary.json").read_text()) == {"final": {"step": 2, "loss": 0.25, "acc": 0.75}}
    assert not os.path.exists(tmp_path / "tensorboard")


def _scalars(path: str) -> dict:
    """{tag: [(step, value)]} of an event file: records are u64 length, u32 crc, data, u32 crc."""
    from tensorboardX.proto import event_pb2

    out, data = {}, open(path, "rb").read()
    pos = 0
    while pos < len(data):
        (n,) = struct.unpack("<Q", data[pos:pos + 8])
        event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + n])
        pos += 16 + n
        for v in event.summary.value:
            out.setdefault(v.tag, []).append((event.step, round(v.simple_value, 6)))
    return out


def test_tensorboard_events_carry_the_numeric_scalars(tmp_path):
    w = MetricWriter(str(tmp_path), "dpo", tensorboard=True)
    for step in (10, 20):
        w.write(step, {"point": "sigmoid@beta=0.1", "loss": 1.0 / step, "bad": float("nan")}, tag_prefix="p0/")
    w.close()
    [events] = glob.glob(str(tmp_path / "tensorboard" / "dpo" / "events.*"))
    # Strings and NaN stay out of TensorBoard; the scalars arrive with their steps.
    assert _scalars(events) == {"p0/loss": [(10, 0.1), (20, 0.05)]}


def test_wandb_requested_but_missing_is_skipped(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    w = MetricWriter(str(tmp_path), "ppo", wandb=True)
    w.write(1, {"loss": 1.0})
    w.close()
    assert (tmp_path / "ppo_metrics.csv").exists()
