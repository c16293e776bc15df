"""Pieces of reward-model transfer that the compiled sweep does not provide.

* An unseen context token (a target arm or task the model never saw) gets a principled value
  before zero-shot scoring and fine-tuning: the mean of the source rows, or the row the model
  learnt under token dropout (``sweep.make_sweep_chunk(token_dropout=...)``).
* One step budget rule for every (condition, n): passes over the data, clipped, so a 10,000-pair
  model trains as many epochs as a 1,000-pair one; best-validation selection (the sweep's rule)
  then picks the step.
* Learning-rate selection on validation: the same rule for fine-tuning and for scratch.
"""
from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

UNKNOWN_TOKENS = ("mean", "dropout")
TABLES = {"embodiment": "embodiment_embed", "task": "task_embed"}


def _table_path(params) -> dict:
    """Path (tuple of keys) of each context embedding table in a Flax params tree."""
    found = {}

    def walk(node, path):
        if isinstance(node, dict) or hasattr(node, "items"):
            for key, child in node.items():
                if key in TABLES.values() and "embedding" in child:
                    found[key] = path + (key, "embedding")
                else:
                    walk(child, path + (key,))

    walk(params, ())
    return found


def _get(tree, path):
    for key in path:
        tree = tree[key]
    return tree


def _set(tree, path, value):
    if not path:
        return value
    head, rest = path[0], path[1:]
    return {**tree, head: _set(tree[head], rest, value)}


def fill_unseen_token(params, axis: str, target_ids: Sequence[int], mode: str, *,
                      source_ids: Sequence[int] = (), unknown_id: int | None = None):
    """Params with the embedding rows of ``target_ids`` set to what an unseen token should be.

    params: a (possibly stacked [S, K, ...]) Flax params tree with a context embedding table
    ``[..., rows, dim]`` for ``axis`` ("embodiment" or "task").
    mode "mean": each target row := mean of the ``source_ids`` rows (the tokens the model was
    trained on). mode "dropout": each target row := the ``unknown_id`` row, learnt under token
    dropout. Without the table (embodiment-agnostic features), params come back unchanged.
    Step 0 of fine-tuning from the result is exactly the zero-shot model.
    """
    if mode not in UNKNOWN_TOKENS:
        raise ValueError(f"unknown-token mode must be one of {UNKNOWN_TOKENS}, got {mode!r}")
    path = _table_path(params).get(TABLES[axis])
    if path is None:
        return params
    table = jnp.asarray(_get(params, path))
    if mode == "mean":
        if not source_ids:
            raise ValueError("mode 'mean' needs the source rows it averages")
        fill = jnp.mean(table[..., jnp.asarray(list(source_ids)), :], axis=-2)
    else:
        if unknown_id is None:
            raise ValueError("mode 'dropout' needs the unknown token's row")
        fill = table[..., unknown_id, :]
    for t in target_ids:
        table = table.at[..., int(t), :].set(fill)
    return _set(params, path, table)


def steps_for_pairs(n_pairs: int, *, epochs: float, batch_size: int, min_steps: int, max_steps: int,
                    multiple: int) -> int:
    """Training steps for n_pairs: ``epochs`` passes at ``batch_size``, in [min_steps, max_steps],
    rounded up to a multiple of ``multiple`` (the chunk length)."""
    steps = math.ceil(epochs * n_pairs / batch_size)
    steps = min(max(steps, min_steps), max_steps)
    return int(math.ceil(steps / multiple) * multiple)


def step_groups(n_values: Sequence[int], **rule) -> dict[int, tuple[int, ...]]:
    """{steps: the n values trained for that many steps}, so each group is one compiled run."""
    groups: dict[int, list[int]] = {}
    for n in sorted(int(v) for v in n_values):
        groups.setdefault(steps_for_pairs(n, **rule), []).append(n)
    return {s: tuple(ns) for s, ns in sorted(groups.items())}


def choose_learning_rate(val_loss: np.ndarray) -> np.ndarray:
    """Index of the selected learning rate per (kind, n, seed).

    val_loss [L, ..., K]: each member's best validation NLL for each of L learning rates; the
    ensemble's score is its members' mean, and the lowest wins (ties → the first).
    """
    return np.argmin(np.asarray(val_loss).mean(-1), axis=0)


def stacked_rows(tree, index: np.ndarray):
    """tree[index] along the leading (point) axis, for every leaf."""
    return jax.tree.map(lambda x: x[np.asarray(index)], tree)
