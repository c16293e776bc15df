"""Preference data: equal-length segments cut from episodes, pairs of them, labels, splits.

Segments are stored once (`SegmentTable`, leading axis S); pairs are row indices into it
(`PreferencePairs`), so 50k+ pairs cost a few hundred kB on top of the table.

Feature kinds and their layout (the D columns of `SegmentTable.obs`, the A of `act`) are
defined once in `rlhf_jax.features`; act_mask marks the real joints ("joint") or is all ones.

Splits are episode-disjoint: episodes are assigned to train/val/test once from `split_seed`
(stratified over (task, embodiment) groups), so the held-out test set does not move when the
pair seed or the number of training pairs changes. Each split samples its pairs from its own
random stream: train from `seed`, val and test from `split_seed`, so the held-out pairs (and their
labels) are identical across training seeds and sizes.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from rlhf_jax import features as F
from rlhf_jax.preferences import annotators as ann
from rlhf_jax.errors import SegmentError, SplitError, describe
from rlhf_jax.preferences.pair_sampling import pair_key, pair_pool, sample_pairs
from rlhf_jax.features import FEATURE_KINDS

SPLITS = ("train", "val", "test")
FEATURE_DIMS = {kind: F.feature_dim(kind) for kind in FEATURE_KINDS}


@dataclasses.dataclass
class SegmentTable:
    """S segments of T steps (numpy).

    obs [S, T, D] f32, act [S, T, A] f32, act_mask [S, A] f32, task_id / embodiment_id /
    episode_index / start [S] int32, gold_components [S, C] f32 (per-component sums over the
    segment), gold_return [S] f32 (sum of the RLDS gold reward), episode_ids [E] (episode_index ->
    RLDS episode_id). Extras: gold_step_rewards [S, T, C] f32 (per-step components, for myopic and
    rubric teachers), component_names [C], gold_weights [C], feature_kind, episode_split [E] int8
    (0 train, 1 val, 2 test, -1 unassigned), image [S, T, 64, 64, 3] uint8 or None; frames
    [F, H, W, 3] uint8 (one camera frame per episode step, ``rlhf_jax.data.frames``) with
    frame_rows [S, T] int32 the frames of each segment's stored steps, or None (no camera).

    margin w > 0 (for SURF's temporal crops): obs/act/image hold T + 2w steps around each segment;
    the segment itself — start, gold fields, what annotators judge — is the centre window
    [start, start + T), so obs[:, w:w + T] is what a model scores outside of training crops.
    """
    obs: np.ndarray
    act: np.ndarray
    act_mask: np.ndarray
    task_id: np.ndarray
    embodiment_id: np.ndarray
    episode_index: np.ndarray
    start: np.ndarray
    gold_components: np.ndarray
    gold_return: np.ndarray
    image: np.ndarray | None = None
    episode_ids: list = dataclasses.field(default_factory=list)
    gold_step_rewards: np.ndarray | None = None
    component_names: tuple = ()
    gold_weights: np.ndarray | None = None
    feature_kind: str = "joint"
    episode_split: np.ndarray | None = None
    margin: int = 0
    frames: np.ndarray | None = None
    frame_rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.obs)

    @property
    def length(self) -> int:
        """Segment length T (the centre window when the table keeps a margin)."""
        return self.obs.shape[1] - 2 * self.margin

    def nbytes(self) -> int:
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))


@dataclasses.dataclass
class PreferencePairs:
    """P labelled pairs of SegmentTable rows.

    idx_a, idx_b [P] int32; label [P] f32 in {0, 0.5, 1} (1 = a preferred, 0.5 = tie); weight [P]
    f32; annotator [P] int32 (index into provenance); provenance: one dict per annotator
    (annotator_id, interface_version, source, teacher params). Extras: confidence [P] f32,
    timestamp [P] f64 (unix seconds).
    """
    idx_a: np.ndarray
    idx_b: np.ndarray
    label: np.ndarray
    weight: np.ndarray
    annotator: np.ndarray
    provenance: list = dataclasses.field(default_factory=list)
    confidence: np.ndarray | None = None
    timestamp: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.idx_a)
        if self.confidence is None:
            self.confidence = np.ones(n, np.float32)
        if self.timestamp is None:
            self.timestamp = np.zeros(n, np.float64)

    def __len__(self) -> int:
        return len(self.idx_a)

    def subset(self, rows: np.ndarray) -> "PreferencePairs":
        """The pairs at `rows` (e.g. perm[:N] from nested_subsets)."""
        pick = lambda x: x[rows]
        return PreferencePairs(pick(self.idx_a), pick(self.idx_b), pick(self.label),
                               pick(self.weight), pick(self.annotator), list(self.provenance),
                               pick(self.confidence), pick(self.timestamp))

    def nbytes(self) -> int:
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))


@dataclasses.dataclass
class PreferenceData:
    """segments + episode-disjoint train/val/test pairs; config records how it was made."""
    segments: SegmentTable
    train: PreferencePairs
    val: PreferencePairs
    test: PreferencePairs
    config: dict = dataclasses.field(default_factory=dict)

    def nbytes(self) -> int:
        return self.segments.nbytes() + sum(p.nbytes() for p in (self.train, self.val, self.test))


# ----------------------------------------------------------------------------- segments

def episode_features(ep: Mapping[str, Any], kind: str, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-step features of one episode: obs [T, D], act [T, A] (layout: rlhf_jax.features)."""
    if kind not in FEATURE_KINDS:
        raise SegmentError(describe("episode_features", "feature_kind", f"one of {FEATURE_KINDS}",
                                    repr(kind)))
    steps, dof = ep["steps"], int(ep["episode_metadata"]["dof"])
    o = steps["observation"]
    return F.features(o, dof, kind, xp=np), F.actions(o, steps.get("action"), kind, dt, xp=np)


def segment_starts(length: int, segment_length: int, stride: int) -> np.ndarray:
    """Starts 0, stride, 2·stride, … plus the last window (so episode ends are covered)."""
    if length < segment_length:
        return np.zeros(0, np.int64)
    starts = np.arange(0, length - segment_length + 1, stride)
    if starts[-1] != length - segment_length:
        starts = np.append(starts, length - segment_length)
    return starts


def build_segment_table(episodes: Sequence[Mapping[str, Any]], segment_length: int, *,
                        stride: int | None = None, feature_kind: str = "joint",
                        ranges: Sequence[tuple[int, int]] | None = None,
                        component_names: Sequence[str] = (), gold_weights=None,
                        dt: float = 0.05, include_image: bool = False) -> SegmentTable:
    """Cuts equal-length segments from episodes into one SegmentTable.

    ranges: explicit (episode_index, start) rows (e.g. from a label file); otherwise every
    episode is cut at `segment_starts(T_e, segment_length, stride or segment_length // 2)`;
    episodes shorter than segment_length give no segments.
    Raises SegmentError if segment_length exceeds every episode or a range runs past its episode.
    """
    if feature_kind not in FEATURE_KINDS:
        raise SegmentError(describe("build_segment_table", "feature_kind",
                                    f"one of {FEATURE_KINDS}", repr(feature_kind)))
    lengths = np.array([len(ep["steps"]["reward"]) for ep in episodes], np.int64)
    if segment_length < 1 or not len(lengths) or segment_length > lengths.max():
        raise SegmentError(describe("build_segment_table", "segment_length",
                                    f"between 1 and the longest episode ({lengths.max(initial=0)} "
                                    f"steps)", segment_length))
    if ranges is None:
        stride = stride or max(1, segment_length // 2)
        per_ep = [segment_starts(int(n), segment_length, stride) for n in lengths]
        ep_idx = np.concatenate([np.full(len(s), i) for i, s in enumerate(per_ep)]).astype(np.int64)
        starts = np.concatenate(per_ep).astype(np.int64)
    else:
        ep_idx = np.array([r[0] for r in ranges], np.int64).reshape(-1)
        starts = np.array([r[1] for r in ranges], np.int64).reshape(-1)
        bad = (starts < 0) | (starts + segment_length > lengths[ep_idx])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            eid = episodes[ep_idx[i]]["episode_metadata"]["episode_id"]
            raise SegmentError(describe(f"episode {eid!r}", "start/length",
                                        f"0 <= start and start + length <= {lengths[ep_idx[i]]}",
                                        f"start {starts[i]}, length {segment_length}"))
    # Concatenate every episode's per-step arrays once, then gather all segments in one index op.
    feats = [episode_features(ep, feature_kind, dt) for ep in episodes]
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    obs_all = np.concatenate([f[0] for f in feats])
    act_all = np.concatenate([f[1] for f in feats])
    comp_all = np.concatenate([np.asarray(ep["steps"]["reward_components"], np.float32)
                               for ep in episodes])
    rew_all = np.concatenate([np.asarray(ep["steps"]["reward"], np.float32) for ep in episodes])
    rows = (offsets[ep_idx] + starts)[:, None] + np.arange(segment_length)[None, :]  # [S, T]
    meta = [ep["episode_metadata"] for ep in episodes]
    dofs = np.array([int(m["dof"]) for m in meta])
    act_mask = F.action_mask(dofs[ep_idx], feature_kind, xp=np)
    image = None
    if include_image:
        img_all = np.concatenate([ep["steps"]["observation"]["image"] for ep in episodes])
        image = img_all[rows]
    steps = comp_all[rows]
    n_comp = steps.shape[-1]
    return SegmentTable(
        obs=obs_all[rows], act=act_all[rows], act_mask=act_mask,
        task_id=np.array([m["task_id"] for m in meta], np.int32)[ep_idx],
        embodiment_id=np.array([m["embodiment_id"] for m in meta], np.int32)[ep_idx],
        episode_index=ep_idx.astype(np.int32), start=starts.astype(np.int32),
        gold_components=steps.sum(1), gold_return=rew_all[rows].sum(1), image=image,
        episode_ids=[m["episode_id"] for m in meta], gold_step_rewards=steps,
        component_names=tuple(component_names) or tuple(f"c{i}" for i in range(n_comp)),
        gold_weights=(np.ones(n_comp, np.float32) if gold_weights is None
                      else np.asarray(gold_weights, np.float32)),
        feature_kind=feature_kind)


# ----------------------------------------------------------------------------- splits & pairs

def split_episodes(task_id: np.ndarray, embodiment_id: np.ndarray, fractions: Sequence[float],
                   seed: int) -> np.ndarray:
    """Episode -> split [E] int8 (0 train, 1 val, 2 test), stratified round-robin.

    Episodes are shuffled within each (task, embodiment) group and ordered by their rank in the
    group (ties broken randomly), so every prefix of the order mixes all groups; the order is then
    cut by `fractions` (train, val, test).
    """
    e = len(task_id)
    rng = np.random.default_rng(seed)
    group = np.asarray(task_id, np.int64) * 1000 + np.asarray(embodiment_id, np.int64)
    perm = rng.permutation(e)
    order = perm[np.argsort(group[perm], kind="stable")]  # shuffled within each group
    g_sorted = group[order]
    first = np.searchsorted(g_sorted, g_sorted, side="left")
    rank = np.arange(e) - first
    mix = order[np.lexsort((rng.random(e), rank))]
    f = np.asarray(fractions, np.float64)
    bounds = np.round(np.cumsum(f / f.sum()) * e).astype(np.int64)
    split = np.empty(e, np.int8)
    split[mix] = np.searchsorted(bounds, np.arange(e), side="right").clip(0, 2).astype(np.int8)
    return split


def nested_subsets(n_pool: int, sizes: Sequence[int], seed: int) -> np.ndarray:
    """One seeded permutation [n_pool]; the subset for size N is perm[:N], so N1 ⊂ N2 ⊂ …."""
    sizes = [int(s) for s in sizes]
    if any(s < 1 for s in sizes):
        raise SplitError(describe("nested_subsets", "sizes", "positive integers", sizes))
    if sizes and max(sizes) > n_pool:
        raise SplitError(describe("nested_subsets", "sizes", f"at most the pool size {n_pool}",
                                  max(sizes)))
    return np.random.default_rng(seed).permutation(n_pool)


def nested_masks(n_pool: int, sizes: Sequence[int], seed: int) -> np.ndarray:
    """[len(sizes), n_pool] bool; row k marks perm[:sizes[k]] (for a vmapped sweep over N)."""
    perm = nested_subsets(n_pool, sizes, seed)
    rank = np.empty(n_pool, np.int64)
    rank[perm] = np.arange(n_pool)
    return rank[None, :] < np.asarray(sizes, np.int64)[:, None]


def _labelled_pairs(table: SegmentTable, rows: np.ndarray, group: np.ndarray, n: int,
                    teachers, seed: int, split: str) -> PreferencePairs:
    """Samples and labels pairs until n are kept (skip teachers drop some)."""
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    _, _, _, pool = pair_pool(np.asarray(rows, np.int64), np.asarray(group, np.int64))
    total = int(pool.sum())
    if n > total:
        raise SplitError(describe(f"split {split!r}", f"n_{split}",
                                  f"at most the {total} distinct same-task pairs of this split", n))
    if n == 0:
        z = np.zeros(0, np.int32)
        return PreferencePairs(z, z, np.zeros(0, np.float32), np.zeros(0, np.float32), z, [])
    parts, have, tried = [], 0, set()
    while have < n:
        want = min(total - len(tried), int((n - have) * 1.25) + 16)
        if want <= 0:
            raise SplitError(describe(f"split {split!r}", f"n_{split}", f"at most the {have} pairs "
                                      "this teacher does not skip", n))
        a, b = sample_pairs(rows, group, want, rng, exclude=tried)
        tried.update(pair_key(a, b).tolist())
        lab = ann.label_pairs(teachers, table, a, b, seed=int(rng.integers(1 << 31)))
        k = np.flatnonzero(lab.keep)[: n - have]
        parts.append((a[k], b[k], lab, k))
        have += len(k)
    prov = parts[0][2].provenance
    cat = lambda f: np.concatenate([f(p) for p in parts])
    return PreferencePairs(
        idx_a=cat(lambda p: p[0]).astype(np.int32), idx_b=cat(lambda p: p[1]).astype(np.int32),
        label=cat(lambda p: p[2].label[p[3]]), weight=np.ones(n, np.float32),
        annotator=cat(lambda p: p[2].annotator[p[3]]), provenance=prov,
        confidence=cat(lambda p: p[2].confidence[p[3]]),
        timestamp=cat(lambda p: p[2].timestamp[p[3]]))


def with_margin(table: SegmentTable, margin: int) -> SegmentTable:
    """A table cut at T + 2·margin turned into segments of T with `margin` steps either side."""
    if margin <= 0:
        return table
    t = table.obs.shape[1] - 2 * margin
    steps = table.gold_step_rewards[:, margin:margin + t]
    w = np.asarray(table.gold_weights, np.float64)
    return dataclasses.replace(
        table, start=(table.start + margin).astype(np.int32), gold_step_rewards=steps,
        gold_components=steps.sum(1), gold_return=np.einsum("stc,c->s", steps, w).astype(np.float32),
        margin=int(margin))


def make_preference_data(episodes: Sequence[Mapping[str, Any]], *, segment_length: int,
                         n_train: int, n_val: int, n_test: int, teacher: Any = "oracle",
                         feature_kind: str = "joint", cross_embodiment: bool = False,
                         seed: int = 0, split_seed: int = 0, stride: int | None = None,
                         split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
                         component_names: Sequence[str] = (), gold_weights=None,
                         dt: float = 0.05, include_image: bool = False, margin: int = 0) -> PreferenceData:
    """Episodes -> PreferenceData with episode-disjoint train/val/test pairs.

    Pairs are distinct unordered pairs of segments of the same task (and same embodiment unless
    cross_embodiment). teacher: preset name, Teacher, or a pool (sequence). Raises SegmentError /
    SplitError for impossible requests (segment longer than every episode, an empty split, more
    pairs than a split can supply).
    """
    table = with_margin(build_segment_table(episodes, segment_length + 2 * margin, stride=stride,
                                            feature_kind=feature_kind, component_names=component_names,
                                            gold_weights=gold_weights, dt=dt, include_image=include_image),
                        margin)
    meta = [ep["episode_metadata"] for ep in episodes]
    ep_split = split_episodes(np.array([m["task_id"] for m in meta]),
                              np.array([m["embodiment_id"] for m in meta]), split_fractions,
                              split_seed)
    table.episode_split = ep_split
    seg_split = ep_split[table.episode_index]
    group = table.task_id.astype(np.int64) * (1 if cross_embodiment else 1000)
    if not cross_embodiment:
        group = group + table.embodiment_id
    out = {}
    for s, (name, n) in enumerate(zip(SPLITS, (n_train, n_val, n_test))):
        rows = np.flatnonzero(seg_split == s)
        if n > 0 and not len(rows):
            raise SplitError(describe(f"split {name!r}", "segments", "at least one episode with a "
                                      f"segment of length {segment_length}",
                                      f"0 (of {len(episodes)} episodes, "
                                      f"fractions {split_fractions})"))
        # val/test pairs and labels come from split_seed only: a fixed held-out set across seeds.
        pair_seed = seed if name == "train" else split_seed
        out[name] = _labelled_pairs(table, rows, group[rows], n, teacher, pair_seed, name)
    config = dict(segment_length=segment_length, margin=margin, stride=stride, n_train=n_train, n_val=n_val,
                  n_test=n_test, feature_kind=feature_kind, cross_embodiment=cross_embodiment,
                  seed=seed, split_seed=split_seed, split_fractions=list(split_fractions),
                  teacher=[t.params() for t in ann.resolve_teachers(teacher)])
    return PreferenceData(segments=table, config=config, **out)


def pair_batch(segments: SegmentTable, pairs: PreferencePairs, rows=None) -> dict:
    """Reward-model batch: obs_a/act_a/obs_b/act_b [B, T, ...], task_a/b, embodiment_a/b [B] int32,
    label, weight [B] f32, gathered for pairs[rows] (all pairs if rows is None)."""
    rows = np.arange(len(pairs)) if rows is None else np.asarray(rows)
    a, b = pairs.idx_a[rows], pairs.idx_b[rows]
    return {"obs_a": segments.obs[a], "act_a": segments.act[a], "obs_b": segments.obs[b],
            "act_b": segments.act[b], "task_a": segments.task_id[a], "task_b": segments.task_id[b],
            "embodiment_a": segments.embodiment_id[a], "embodiment_b": segments.embodiment_id[b],
            "label": pairs.label[rows], "weight": pairs.weight[rows]}
