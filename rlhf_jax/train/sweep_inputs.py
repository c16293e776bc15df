"""Host-side preparation of a scaling sweep: config checks, labels per condition, device arrays."""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from rlhf_jax import normalizer
from rlhf_jax.data import annotators
from rlhf_jax.data.errors import ConfigError
from rlhf_jax.data.preferences import PreferenceData, nested_subsets
from rlhf_jax.train.sweep import SweepData, SweepGrid

CONFIG_FILE = "configs/scaling_sweep.py"


def _fail(field: str, expected: str, got) -> None:
    raise ConfigError(f"{CONFIG_FILE}: field {field!r}: expected {expected}, got {got!r}")


def validate_config(config) -> None:
    """Checks sizes and names before any data is loaded or anything compiles."""
    if len(config.n_values) == 0:
        _fail("n_values", "a non-empty list of positive pair counts", list(config.n_values))
    for n in config.n_values:
        if int(n) <= 0:
            _fail("n_values", "positive pair counts", list(config.n_values))
    if list(config.n_values) != sorted(set(int(n) for n in config.n_values)):
        _fail("n_values", "strictly increasing pair counts", list(config.n_values))
    if max(config.n_values) > config.n_train_pool:
        _fail("n_values", f"at most n_train_pool={config.n_train_pool}", max(config.n_values))
    if config.members < 1:
        _fail("members", "an ensemble size of at least 1", config.members)
    if len(config.seeds) < 1:
        _fail("seeds", "at least one seed", list(config.seeds))
    for field in ("batch_size", "total_steps", "eval_every", "chunk_steps", "segment_length", "n_val", "n_test"):
        if int(config[field]) <= 0:
            _fail(field, "a positive integer", config[field])
    if config.chunk_steps % config.eval_every:
        _fail("chunk_steps", f"a multiple of eval_every={config.eval_every}", config.chunk_steps)
    if config.total_steps % config.chunk_steps:
        _fail("total_steps", f"a multiple of chunk_steps={config.chunk_steps}", config.total_steps)
    for cond in config.conditions:
        if cond not in annotators.TEACHER_PRESETS:
            _fail("conditions", f"teacher presets from {sorted(annotators.TEACHER_PRESETS)}", cond)
    if config.model.kind not in ("markovian", "transformer"):
        _fail("model.kind", "'markovian' or 'transformer'", config.model.kind)
    for hidden in config.model_sizes:
        if not hidden or any(int(h) <= 0 for h in hidden):
            _fail("model_sizes", "lists of positive layer widths", list(hidden))


@dataclasses.dataclass
class SweepInputs:
    grid: SweepGrid
    data: SweepData
    norm: dict
    test_rows: np.ndarray       # [St] unique segment rows of the test pairs
    test_a: np.ndarray          # [Pt] positions into test_rows
    test_b: np.ndarray
    test_label: np.ndarray      # [Pt] gold labels (oracle teacher)
    test_gold_return: np.ndarray  # [St]
    usable: dict                # condition -> usable (non-skipped) train pairs
    label_stats: dict           # condition -> tie/skip fractions of its training labels


def build_inputs(config, pref: PreferenceData) -> SweepInputs:
    """Relabels the train/val pools per condition and lays out the shared device arrays.

    The test pairs keep the oracle labels they were made with: accuracy is measured against the
    gold rubric, not against the noisy teacher a condition trains on.
    """
    seg = pref.segments
    conditions = tuple(config.conditions)
    n_pool = len(pref.train.idx_a)
    labels, orders, val_labels, val_weights, usable, stats = [], [], [], [], {}, {}
    for c, cond in enumerate(conditions):
        lab = annotators.label_pairs(cond, seg, pref.train.idx_a, pref.train.idx_b,
                                     seed=config.label_seed * 1000 + c, timestamp=0.0)
        vlab = annotators.label_pairs(cond, seg, pref.val.idx_a, pref.val.idx_b,
                                      seed=config.label_seed * 1000 + 500 + c, timestamp=0.0)
        keep = lab.keep
        usable[cond] = int(keep.sum())
        stats[cond] = {"skip_fraction": float(1 - keep.mean()),
                       "tie_fraction": float(np.mean(lab.label[keep] == 0.5)) if keep.any() else 0.0}
        if max(config.n_values) > usable[cond]:
            _fail("n_values", f"at most the {usable[cond]} pairs teacher {cond!r} does not skip "
                  f"(of a pool of {n_pool})", max(config.n_values))
        per_seed = []
        for seed in config.seeds:
            perm = nested_subsets(n_pool, config.n_values, seed)
            kept = perm[keep[perm]]  # skipping preserves the permutation order: still nested
            per_seed.append(np.concatenate([kept, -np.ones(n_pool - len(kept), np.int64)]))
        orders.append(per_seed)
        labels.append(lab.label)
        val_labels.append(vlab.label)
        val_weights.append(vlab.keep.astype(np.float32))

    val_rows, val_inv = np.unique(np.concatenate([pref.val.idx_a, pref.val.idx_b]), return_inverse=True)
    n_val = len(pref.val.idx_a)
    test_rows, test_inv = np.unique(np.concatenate([pref.test.idx_a, pref.test.idx_b]), return_inverse=True)
    n_test = len(pref.test.idx_a)
    # Normalisation statistics come from the training split's segments (unlabelled data,
    # shared by every N), never from validation or test episodes.
    train_rows = np.unique(np.concatenate([pref.train.idx_a, pref.train.idx_b]))
    norm = normalizer.collection(normalizer.stats(seg.obs[train_rows]), normalizer.stats(seg.act[train_rows]))
    data = SweepData(
        seg_obs=jnp.asarray(seg.obs, jnp.float32), seg_act=jnp.asarray(seg.act, jnp.float32),
        seg_task=jnp.asarray(seg.task_id, jnp.int32), seg_emb=jnp.asarray(seg.embodiment_id, jnp.int32),
        train_a=jnp.asarray(pref.train.idx_a, jnp.int32), train_b=jnp.asarray(pref.train.idx_b, jnp.int32),
        train_label=jnp.asarray(np.stack(labels), jnp.float32),
        order=jnp.asarray(np.array(orders), jnp.int32),
        val_rows=jnp.asarray(val_rows, jnp.int32), val_a=jnp.asarray(val_inv[:n_val], jnp.int32),
        val_b=jnp.asarray(val_inv[n_val:], jnp.int32),
        val_label=jnp.asarray(np.stack(val_labels), jnp.float32),
        val_weight=jnp.asarray(np.stack(val_weights), jnp.float32))
    grid = SweepGrid(conditions=conditions, n_values=tuple(int(n) for n in config.n_values),
                     seeds=tuple(int(s) for s in config.seeds), members=int(config.members))
    return SweepInputs(grid=grid, data=data, norm=norm, test_rows=test_rows, test_a=test_inv[:n_test],
                       test_b=test_inv[n_test:], test_label=np.asarray(pref.test.label),
                       test_gold_return=np.asarray(seg.gold_return)[test_rows], usable=usable,
                       label_stats=stats)
