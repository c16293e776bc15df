"""One metrics writer for every stage: CSV and JSON always, TensorBoard and W&B on request.

    writer = MetricWriter(workdir, "sft", tensorboard=config.log.tensorboard, wandb=config.log.wandb)
    writer.write(step, {"loss": 0.3, ...})      # one row per logged step
    writer.close(summary)                       # sft_metrics.csv, sft_summary.json

TensorBoard event files (``<workdir>/tensorboard/<name>``) go through tensorboardX, which writes
the event protocol without importing TensorFlow, so runs that read no TFRecords never pay for
it. Weights & Biases is used when ``wandb=True`` and the package is installed (it is not a
dependency); asked for but missing, it is reported once and skipped.
"""
from __future__ import annotations

import logging
import math
import os
from typing import Any

from rlhf_jax.checkpoint import atomic_write_json, atomic_write_text


class MetricWriter:
    """Collects rows in memory, streams them to TensorBoard/W&B, writes the CSV atomically."""

    def __init__(self, workdir: str, name: str, *, tensorboard: bool = False, wandb: bool = False,
                 config: dict | None = None, rows: list[dict] | None = None):
        self.workdir, self.name = workdir, name
        self.rows = list(rows or [])  # rows restored from a checkpoint continue the same file
        self._tb = self._wandb = None
        if tensorboard:
            from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel

            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard", name))
        if wandb:
            try:
                import wandb as wandb_lib  # pylint: disable=import-outside-toplevel
            except ImportError:
                logging.warning("log.wandb=True but the wandb package is not installed; skipping W&B")
            else:
                self._wandb = wandb_lib.init(project="rlhf_jax", name=name, dir=workdir, config=config or {})

    def write(self, step: int, scalars: dict[str, Any], step_key: str = "step", tag_prefix: str = "") -> dict:
        """Appends ``{step_key: step, **scalars}``; numeric values also go to TensorBoard/W&B
        under ``tag_prefix + key`` (a sweep logs several points per step)."""
        row = {step_key: int(step), **scalars}
        self.rows.append(row)
        numeric = {tag_prefix + k: float(v) for k, v in scalars.items()
                   if isinstance(v, (int, float)) and math.isfinite(v)}
        if self._tb is not None:
            for key, value in numeric.items():
                self._tb.add_scalar(key, value, int(step))
        if self._wandb is not None:
            self._wandb.log(numeric, step=int(step))
        return row

    def flush(self) -> None:
        """``<name>_metrics.csv`` with every row so far (columns in first-seen order)."""
        if self.rows:
            keys = list(dict.fromkeys(k for row in self.rows for k in row))
            lines = [",".join(keys)] + [",".join(str(row.get(k, "")) for k in keys) for row in self.rows]
            atomic_write_text(os.path.join(self.workdir, f"{self.name}_metrics.csv"), "\n".join(lines) + "\n")
        if self._tb is not None:
            self._tb.flush()

    def close(self, summary: dict | None = None) -> None:
        """Flushes, writes ``<name>_summary.json`` (if given) and closes TensorBoard/W&B."""
        os.makedirs(self.workdir, exist_ok=True)
        self.flush()
        if summary is not None:
            atomic_write_json(os.path.join(self.workdir, f"{self.name}_summary.json"), summary)
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
