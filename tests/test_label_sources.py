"""Label sources: teacher presets, the protocol pass-through, and kept-pair nested orders."""
import dataclasses

import numpy as np
import pytest

from rlhf_jax.preferences import annotators
from rlhf_jax.errors import ConfigError, SplitError
from rlhf_jax.labels.label_sources import LabelSource, TeacherSource, as_label_source
from rlhf_jax.preferences.segments import nested_subsets
from rlhf_jax.train.sweep_data import make_sweep_data


@dataclasses.dataclass
class DropEvery:
    """Oracle labels with every ``k``-th pair (by pool position) left unanswered."""

    k: int = 3
    name: str = "oracle_drop"

    def label(self, segments, idx_a, idx_b, seed):
        lab = annotators.label_pairs("oracle", segments, idx_a, idx_b, seed=seed, timestamp=0.0)
        keep = np.asarray(lab.keep, bool) & (np.arange(len(idx_a)) % self.k != 0)
        return dataclasses.replace(lab, keep=keep)


@pytest.mark.parametrize("preset", ["oracle", "stochastic", "noisy_pool"])
def test_teacher_source_equals_label_pairs(tiny_preference_data, preset):
    pref = tiny_preference_data
    a, b = pref.train.idx_a[:200], pref.train.idx_b[:200]
    src = TeacherSource(preset)
    assert src.name == preset and isinstance(src, LabelSource)
    got = src.label(pref.segments, a, b, seed=11)
    want = annotators.label_pairs(preset, pref.segments, a, b, seed=11, timestamp=0.0)
    for field in ("label", "keep", "confidence", "annotator"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=field)
    assert got.provenance == want.provenance
    # Simulated clock, not the wall clock: timestamps and the label-set hash are a pure function
    # of the seed, and each annotator's answers are spread over time.
    again = src.label(pref.segments, a, b, seed=11)
    np.testing.assert_array_equal(got.timestamp, again.timestamp)
    assert got.label_set.content_hash() == again.label_set.content_hash()
    assert len(np.unique(got.timestamp)) == len(a) and got.timestamp.min() > 1.7e9
    ls = got.label_set
    np.testing.assert_array_equal(np.isnan(ls.label), ~got.keep)
    np.testing.assert_array_equal(ls.label[got.keep], got.label[got.keep])
    assert got.cost["answers"] == len(a) and got.cost["dollars"] == len(a) * 1.0


def test_teacher_source_depends_on_seed_when_stochastic(tiny_preference_data):
    pref = tiny_preference_data
    src = TeacherSource("stochastic")
    l1 = src.label(pref.segments, pref.train.idx_a, pref.train.idx_b, seed=1).label
    l2 = src.label(pref.segments, pref.train.idx_a, pref.train.idx_b, seed=2).label
    assert not np.array_equal(l1, l2)


def test_as_label_source_resolves_names_and_passes_objects_through():
    assert as_label_source("mistake") == TeacherSource("mistake")
    custom = DropEvery()
    assert isinstance(custom, LabelSource)
    assert as_label_source(custom) is custom
    src = TeacherSource("oracle")
    assert as_label_source(src) is src


@pytest.mark.parametrize("spec", ["no_such_teacher", 3, None])
def test_as_label_source_rejects_unknown_specs_naming_the_field(spec):
    with pytest.raises(ConfigError, match="'conditions'") as err:
        as_label_source(spec)
    assert repr(spec) in str(err.value) and "oracle" in str(err.value)  # lists the valid presets
    with pytest.raises(ConfigError, match=r"my_config\.py: field 'sources'"):
        as_label_source(spec, field="sources", where="my_config.py")


def test_sweep_orders_draw_only_kept_pairs_and_stay_nested(tiny_preference_data):
    pref = tiny_preference_data
    n_pool = len(pref.train.idx_a)
    n_values, seeds = (20, 60, 150), (0, 1)
    src = DropEvery(k=3)
    inputs = make_sweep_data(pref, [src, "oracle"], n_values, seeds, members=1)
    keep = src.label(pref.segments, pref.train.idx_a, pref.train.idx_b, seed=0).keep
    assert inputs.grid.conditions == ("oracle_drop", "oracle")
    assert inputs.usable == {"oracle_drop": int(keep.sum()), "oracle": n_pool}
    np.testing.assert_allclose(inputs.label_stats["oracle_drop"]["skip_fraction"], 1 - keep.mean())
    order = np.asarray(inputs.data.order)
    assert order.shape == (2, len(seeds), n_pool)
    for s, seed in enumerate(seeds):
        perm = nested_subsets(n_pool, n_values, seed)
        dropped = order[0, s]
        valid = dropped[dropped >= 0]
        assert len(valid) == keep.sum() and np.all(dropped[len(valid):] == -1)
        assert keep[valid].all()
        np.testing.assert_array_equal(valid, perm[keep[perm]])  # the seed's permutation, unkept removed
        np.testing.assert_array_equal(order[1, s], perm)  # the oracle condition keeps every pair
        for n1, n2 in zip(n_values, n_values[1:]):
            assert set(valid[:n1]) < set(valid[:n2])  # N1 ⊂ N2
    # different seeds draw different subsets of the kept pairs
    assert set(order[0, 0, :20]) != set(order[0, 1, :20])


def test_sweep_refuses_more_pairs_than_the_source_keeps(tiny_preference_data):
    pref = tiny_preference_data
    n_pool = len(pref.train.idx_a)
    src = DropEvery(k=2)  # keeps about half of the pool
    with pytest.raises(SplitError, match="oracle_drop"):
        make_sweep_data(pref, [src], (10, n_pool - 1), (0,), members=1)
