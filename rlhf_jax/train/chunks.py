"""One chunk runner for every long run: compiled chunks, NaN check, checkpoint, progress line.

    state = run_chunks(chunk_fn, state, n_chunks=..., checkpointer=ckpt, ...)

A long run (a scaling sweep, PPO, a transfer phase) is a jitted ``chunk_fn(state) -> (state,
history)`` called ``n_chunks`` times. After each chunk the runner checks ``history["loss"]``
for NaN/Inf — before the new state replaces the last good one — records the history, saves a
checkpoint and prints one progress line. A non-finite loss raises ``NonFiniteLossError``
naming the global step and, for stacked runs, the sweep point and member.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from rlhf_jax import sharding


class NonFiniteLossError(FloatingPointError):
    """A NaN/Inf training loss; the message names the step, the point and the member.
    ``before_first_checkpoint``: the loop had saved nothing yet (its first chunk failed)."""

    def __init__(self, message: str, before_first_checkpoint: bool = False):
        super().__init__(message)
        self.before_first_checkpoint = before_first_checkpoint


def first_nonfinite(losses: np.ndarray) -> tuple[int, ...] | None:
    """Index (step offset, then any point/member axes) of the first NaN/Inf in losses, or None."""
    bad = ~np.isfinite(np.asarray(losses))
    if not bad.any():
        return None
    return tuple(int(i) for i in np.argwhere(bad)[0])


def describe_index(index: tuple[int, ...]) -> str:
    """'sweep point p, member m' (or fewer parts) for the non-step axes of a loss index."""
    names = ("sweep point", "member")
    return ", ".join(f"{n} {i}" for n, i in zip(names, index))


def run_chunks(chunk_fn: Callable[[Any], tuple[Any, dict]], state: Any, *, n_chunks: int, steps_per_chunk: int,
               start_chunk: int = 0, checkpointer=None, checkpoint_tree: Callable[[Any], Any] = lambda s: s,
               checkpoint_meta: Callable[[int], dict] = lambda c: {"chunk": c},
               on_chunk: Callable[[int, dict], None] = lambda c, h: None,
               progress: Callable[[int, dict], str] | None = None,
               describe_point: Callable[[tuple[int, ...]], str] = describe_index,
               log: Callable[[str], None] = print, name: str = "run", total_steps: int | None = None) -> Any:
    """Runs chunks ``start_chunk .. n_chunks − 1`` of ``chunk_fn`` and returns the final state.

    chunk_fn(state) -> (state, history) with ``history["loss"]`` [steps_per_chunk, ...] (any
    trailing point/member axes). on_chunk(c, history) records a finished chunk's history (on
    the host) before it is checkpointed; checkpoint_tree(state) and checkpoint_meta(c + 1) are
    what is saved after chunk c, at step (c + 1)·steps_per_chunk. progress(c, history) is the
    text after "<name> step s/total"; describe_point(index) names a loss index's point/member.
    total_steps: when the last chunk is shorter (total_steps not a multiple of steps_per_chunk),
    the steps the run has in all, so the step numbers stay right.

    A non-finite loss raises NonFiniteLossError naming the step and point; with no checkpointer,
    nothing this runner saved could be resumed, so it counts as before the first checkpoint.
    """
    t0 = time.time()
    total = total_steps or n_chunks * steps_per_chunk
    for c in range(start_chunk, n_chunks):
        new_state, history = chunk_fn(state)
        history = sharding.to_host(history)
        bad = first_nonfinite(history["loss"])
        if bad is not None:
            where = describe_point(bad[1:])
            kept = f"; the last good checkpoint (chunk {c}) is kept in {checkpointer.directory}" if checkpointer else ""
            raise NonFiniteLossError(f"non-finite {name} loss at step {c * steps_per_chunk + bad[0] + 1}"
                                     + (f", {where}" if where else "") + kept,
                                     before_first_checkpoint=c == 0 or checkpointer is None)
        state = new_state
        on_chunk(c, history)
        step = min((c + 1) * steps_per_chunk, total)
        if checkpointer is not None:
            checkpointer.save(step, checkpoint_tree(state), checkpoint_meta(c + 1))
        detail = progress(c, history) if progress else f"loss {float(np.mean(history['loss'][-1])):.4f}"
        log(f"{name} step {step}/{total}  {detail}  ({time.time() - t0:.1f}s)")
    return state
