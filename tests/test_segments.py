"""Segments, pairs, episode-disjoint splits and nested subsets."""
from __future__ import annotations

import numpy as np
import pytest

from rlhf_jax.preferences import segments as P
from rlhf_jax.errors import SegmentError, SplitError
from rlhf_jax.envs.robots import MAX_DOF


def make(eps, **kw):
    args = dict(segment_length=8, stride=4, n_train=200, n_val=20, n_test=20, seed=0)
    args.update(kw)
    return P.make_preference_data(eps, **args)


def test_segment_table_shapes_and_features(tiny_preference_data, tiny_episodes):
    seg = tiny_preference_data.segments
    s = len(seg)
    assert s == len(tiny_episodes) * 4  # starts 0, 4, 8, 12 in 20-step episodes
    assert seg.obs.shape == (s, 8, P.FEATURE_DIMS["joint"]) and seg.obs.dtype == np.float32
    assert seg.act.shape == (s, 8, MAX_DOF) and seg.act_mask.shape == (s, MAX_DOF)
    assert seg.gold_step_rewards.shape == (s, 8, 9) and seg.component_names[0] == "progress"
    ur5 = seg.embodiment_id == 1
    assert (seg.act_mask[ur5].sum(1) == 6).all() and (seg.act_mask[~ur5].sum(1) == 7).all()
    assert (seg.act[ur5][..., 6] == 0).all()  # padding, not data
    # Row 5 = episode 1, start 4: obs/act/rewards are that slice of the episode.
    i = 5
    ep = tiny_episodes[seg.episode_index[i]]
    t0 = seg.start[i]
    assert seg.episode_ids[seg.episode_index[i]] == ep["episode_metadata"]["episode_id"]
    np.testing.assert_array_equal(seg.act[i, :, :7], ep["steps"]["action"][t0:t0 + 8])
    sl = slice(t0, t0 + 8)
    np.testing.assert_array_equal(seg.obs[i, :, 14:17], ep["steps"]["observation"]["eef_pos"][sl])
    np.testing.assert_allclose(seg.gold_return[i], ep["steps"]["reward"][sl].sum(), rtol=1e-5)
    np.testing.assert_allclose(seg.gold_components[i], seg.gold_step_rewards[i].sum(0))
    np.testing.assert_allclose(seg.gold_return, seg.gold_components @ seg.gold_weights,
                               rtol=1e-4, atol=1e-4)


def test_eef_features_are_embodiment_agnostic(tiny_episodes):
    seg = P.build_segment_table(tiny_episodes, 8, stride=4, feature_kind="eef")
    assert seg.obs.shape[-1] == P.FEATURE_DIMS["eef"] and seg.act.shape[-1] == 3
    ep = tiny_episodes[0]
    pos = ep["steps"]["observation"]["eef_pos"]
    np.testing.assert_allclose(seg.act[0, :, :], (pos[1:9] - pos[0:8]) / 0.05, rtol=1e-4, atol=1e-5)


def test_splits_are_episode_disjoint_and_pairs_same_task(tiny_preference_data):
    d = tiny_preference_data
    seg = d.segments
    episodes = {}
    for name in P.SPLITS:
        pr = getattr(d, name)
        ep_a, ep_b = seg.episode_index[pr.idx_a], seg.episode_index[pr.idx_b]
        episodes[name] = set(ep_a) | set(ep_b)
        assert (seg.episode_split[ep_a] == P.SPLITS.index(name)).all()
        assert (seg.task_id[pr.idx_a] == seg.task_id[pr.idx_b]).all()
        assert (seg.embodiment_id[pr.idx_a] == seg.embodiment_id[pr.idx_b]).all()
        assert (pr.idx_a != pr.idx_b).all()
        keys = np.minimum(pr.idx_a, pr.idx_b) * 10**6 + np.maximum(pr.idx_a, pr.idx_b)
        assert len(np.unique(keys)) == len(pr)  # distinct pairs
        assert set(np.unique(pr.label)) <= {0.0, 0.5, 1.0}
    assert not episodes["train"] & episodes["val"]
    assert not episodes["train"] & episodes["test"]
    assert not episodes["val"] & episodes["test"]
    assert [len(d.train), len(d.val), len(d.test)] == [600, 100, 100]  # configs/dataset.py:tiny


def test_cross_embodiment_pairs(tiny_episodes):
    d = make(tiny_episodes, cross_embodiment=True, n_val=0, n_test=0)
    seg = d.segments
    assert (seg.task_id[d.train.idx_a] == seg.task_id[d.train.idx_b]).all()
    assert (seg.embodiment_id[d.train.idx_a] != seg.embodiment_id[d.train.idx_b]).mean() > 0.3


def test_deterministic_and_test_set_fixed_across_seeds(tiny_episodes):
    d1, d2 = make(tiny_episodes, seed=0), make(tiny_episodes, seed=0)
    d3 = make(tiny_episodes, seed=1, n_train=100)
    for name in P.SPLITS:
        np.testing.assert_array_equal(getattr(d1, name).idx_a, getattr(d2, name).idx_a)
        np.testing.assert_array_equal(getattr(d1, name).label, getattr(d2, name).label)
    assert not np.array_equal(d1.train.idx_a[:100], d3.train.idx_a)
    for name in ("val", "test"):  # held-out pairs do not move with the seed or n_train
        np.testing.assert_array_equal(getattr(d1, name).idx_a, getattr(d3, name).idx_a)
        np.testing.assert_array_equal(getattr(d1, name).idx_b, getattr(d3, name).idx_b)


def test_nested_subsets_are_nested():
    sizes = [10, 50, 200, 1000]
    perm = P.nested_subsets(1000, sizes, seed=3)
    assert sorted(perm.tolist()) == list(range(1000))
    subsets = [set(perm[:n].tolist()) for n in sizes]
    assert all(a < b for a, b in zip(subsets, subsets[1:]))
    np.testing.assert_array_equal(perm, P.nested_subsets(1000, sizes, seed=3))
    assert not np.array_equal(perm, P.nested_subsets(1000, sizes, seed=4))
    masks = P.nested_masks(1000, sizes, seed=3)
    assert (masks.sum(1) == sizes).all() and (masks[:-1] <= masks[1:]).all()
    assert set(np.flatnonzero(masks[1]).tolist()) == subsets[1]


def test_pairs_subset_and_batch(tiny_preference_data):
    d = tiny_preference_data
    perm = P.nested_subsets(len(d.train), [50], seed=0)
    sub = d.train.subset(perm[:50])
    assert len(sub) == 50 and sub.provenance == d.train.provenance
    batch = P.pair_batch(d.segments, sub)
    assert batch["obs_a"].shape == (50, 8, P.FEATURE_DIMS["joint"])
    np.testing.assert_array_equal(batch["label"], d.train.label[perm[:50]])
    np.testing.assert_array_equal(batch["embodiment_a"], batch["embodiment_b"])


def test_sampling_dense_pool_enumerates(tiny_episodes):
    # Ask for every distinct pair of a small split: exercises the enumeration path.
    seg = P.build_segment_table(tiny_episodes[:3], 8, stride=4)  # 12 segments, one group
    rows, group = np.arange(12), np.zeros(12, np.int64)
    a, b = P.sample_pairs(rows, group, 66, np.random.default_rng(0))
    assert len(set(zip(np.minimum(a, b), np.maximum(a, b)))) == 66 == len(seg) * 11 // 2
    with pytest.raises(SplitError, match="at most the 66"):
        P.sample_pairs(rows, group, 67, np.random.default_rng(0))


def test_segment_longer_than_every_episode(tiny_episodes):
    with pytest.raises(SegmentError, match=r"'segment_length'.*longest episode \(20 steps\).*21"):
        make(tiny_episodes, segment_length=21)


def test_segment_running_past_its_episode(tiny_episodes):
    with pytest.raises(SegmentError, match=r"start/length.*start \+ length <= 20.*start 15"):
        P.build_segment_table(tiny_episodes, 8, ranges=[(0, 0), (1, 15)])


def test_empty_split(tiny_episodes):
    with pytest.raises(SplitError, match=rf"split 'val'.*'segments'.*0 \(of {len(tiny_episodes)} episodes"):
        make(tiny_episodes, split_fractions=(1.0, 0.0, 0.0))


def test_n_larger_than_pool(tiny_episodes):
    with pytest.raises(SplitError, match=r"split 'test'.*'n_test'.*at most the \d+ distinct"):
        make(tiny_episodes, n_test=100_000)
    with pytest.raises(SplitError, match=r"'sizes'.*pool size 300.*301"):
        P.nested_subsets(300, [100, 301], seed=0)


def test_skip_teacher_still_delivers_n_pairs(tiny_episodes):
    d = make(tiny_episodes, teacher="skip", n_val=0, n_test=0)
    assert len(d.train) == 200
    assert d.train.provenance[0]["teacher"]["skip_threshold_abs"] is not None
