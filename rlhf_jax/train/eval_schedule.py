"""When a sweep scores its validation pairs: the evaluation schedule of best-validation selection.

Selection can only pick a step it evaluated. Two schedules:

* ``linear``: every ``eval_every`` steps, ``eval_every, 2·eval_every, …, T`` (no step 0): the
  sweep's original spacing, kept so that earlier runs reproduce.
* ``log``: step 0 (the untrained model, so a small N that overfits from its first updates can
  select "no training"), then half of the ``T / eval_every`` evaluations log-spaced from step 1
  to T (dense early: a small N's optimum often lies in its first tens of steps) and half evenly
  spaced every ``2·eval_every`` steps (so a late optimum of the largest N is resolved as finely
  as at the start of the run), and T. About as many evaluations as ``linear``, so the same cost.

The schedule is a function of the config only, identical for every sweep point, so one compiled
program evaluates all of them together; per chunk it becomes a boolean mask (``chunk_masks``)
passed to the chunk as an argument, so every chunk runs the same compiled program.
"""
from __future__ import annotations

import numpy as np

SCHEDULES = ("linear", "log")


def eval_steps(total_steps: int, eval_every: int, schedule: str = "linear") -> np.ndarray:
    """Sorted distinct global steps [E] (int64) after which the validation pairs are scored.

    Step s means "after s updates"; step 0 is the initial parameters.
    linear: {k·eval_every : 1 ≤ k ≤ T/eval_every}.
    log:    {0, T} ∪ round(geomspace(1, T, ⌈n/2⌉)) ∪ {k·2·eval_every ≤ T}, n = T // eval_every.
    """
    total_steps, eval_every = int(total_steps), int(eval_every)
    if total_steps <= 0 or eval_every <= 0:
        raise ValueError(f"eval_steps needs positive total_steps and eval_every, got {total_steps}, {eval_every}")
    if schedule == "linear":
        return np.arange(eval_every, total_steps + 1, eval_every, dtype=np.int64)
    if schedule != "log":
        raise ValueError(f"eval schedule: expected one of {SCHEDULES}, got {schedule!r}")
    count = max(total_steps // eval_every, 2)
    early = np.rint(np.geomspace(1, total_steps, (count + 1) // 2))
    late = np.arange(2 * eval_every, total_steps + 1, 2 * eval_every)
    steps = np.concatenate([[0, total_steps], early, late]).astype(np.int64)
    return np.unique(steps[(steps >= 0) & (steps <= total_steps)])


def chunk_masks(steps: np.ndarray, chunk_steps: int, n_chunks: int) -> np.ndarray:
    """bool [n_chunks, chunk_steps + 1]: entry [c, 0] = evaluate before chunk c's first update
    (only chunk 0 at step 0: every later chunk start is the previous chunk's last entry), entry
    [c, i ≥ 1] = evaluate after update i of chunk c, i.e. at global step c·chunk_steps + i."""
    steps = np.asarray(steps, np.int64)
    if steps.size and (steps.min() < 0 or steps.max() > chunk_steps * n_chunks):
        raise ValueError(f"evaluation steps {steps.min()}..{steps.max()} outside 0..{chunk_steps * n_chunks}")
    masks = np.zeros((n_chunks, chunk_steps + 1), bool)
    after = steps[steps > 0] - 1  # the update index (0-based) after which step s is reached
    masks[after // chunk_steps, after % chunk_steps + 1] = True
    masks[0, 0] = bool(np.any(steps == 0))
    return masks
