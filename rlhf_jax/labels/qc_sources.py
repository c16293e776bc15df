"""QC policies and human label files as label sources of a sweep condition.

Condition strings (``as_label_source`` parses them; every field is checked with a clear error):

  qc:<pool>/<policy>[,r=R][,gold=G][,threshold=T][,size=S][,pool_seed=K]
      a simulated team (`label_pools.POOLS`) answering each pair r times with gold questions at
      rate G, turned into one training label per pair by the QC policy:
        raw          no QC: one answer per pair (default r = 1; a random one of r > 1)
        filtered     annotators below T gold accuracy are removed and their pairs re-answered by
                     the others (default r = 1)
        majority     majority vote of r answers (default r = 3)
        confidence   vote of r answers weighted by each answer's reported confidence (r = 3)
        downweighted vote of r answers, annotators below T gold accuracy down-weighted
                     linearly to 0 at chance (`qc.filter_weights` mode "downweight"; r = 3)
        dawid_skene  Dawid–Skene posterior of r answers (default r = 3)
        adjudicated  double annotation; a senior annotator decides every pair the two do not
                     agree on (default r = 2)
  file:<path> | file+<policy>:<path>
      a label file (`label_set_io`): its answers on the asked pairs, aggregated by the policy
      (majority by default; `filtered` uses the file's gold questions). Pairs the file does not
      answer are not usable (keep = False); a call on pairs the file does not answer at all is
      an error (e.g. a file without validation labels).

N counts distinct pairs: a policy aggregates its answers to one label per pair, while the cost
(`Labels.cost`, from `rlhf_jax.labels.costs`) counts every answer bought, gold and adjudication
included.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from rlhf_jax.preferences import annotators as ann
from rlhf_jax.labels import costs, label_pools, label_sets, qc, rubric_objectives
from rlhf_jax.errors import ConfigError, SplitError, describe

POLICY_R = {"raw": 1, "filtered": 1, "majority": 3, "confidence": 3, "downweighted": 3, "dawid_skene": 3,
            "adjudicated": 2}
FILE_POLICIES = ("majority", "confidence", "downweighted", "dawid_skene", "filtered", "raw")
POOLS = {"crowd": label_pools.crowd_pool}


def _pair_key_list(segments, idx_a, idx_b) -> tuple[list, np.ndarray]:
    """Sorted (episode, start) keys of pool pairs and whether (a, b) is the reverse of the key."""
    ids, ep, st = segments.episode_ids, segments.episode_index, segments.start
    keys, flipped = [], []
    for a, b in zip(np.asarray(idx_a), np.asarray(idx_b)):
        ka, kb = (ids[int(ep[a])], int(st[a])), (ids[int(ep[b])], int(st[b]))
        keys.append(tuple(sorted((ka, kb))))
        flipped.append(ka != keys[-1][0])
    return keys, np.array(flipped, bool)


def pair_labels(agg: dict, segments, idx_a, idx_b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aggregated item labels -> (label [P], keep [P], confidence [P]) in the pool's orientation."""
    at = {k: i for i, k in enumerate(agg["keys"])}
    keys, flipped = _pair_key_list(segments, idx_a, idx_b)
    label, conf = np.full(len(keys), np.nan), np.zeros(len(keys))
    for p, k in enumerate(keys):
        if k in at:
            label[p], conf[p] = agg["label"][at[k]], agg["confidence"][at[k]]
    label = np.where(flipped, 1.0 - label, label)
    keep = ~np.isnan(label)
    return np.where(keep, label, 0.5), keep, np.where(keep, conf, 0.0)


def _one_answer(ls: label_sets.LabelSet, seed: int) -> label_sets.LabelSet:
    """One answer per training pair, drawn at random; gold rows kept for the record.

    Random, not the earliest: careless annotators are fast, so "first answer" would favour them.
    """
    item, _, _ = ls.items()
    order = np.lexsort((np.random.default_rng([seed, 17]).random(len(ls)), item))
    first = order[np.r_[True, item[order][1:] != item[order][:-1]]]
    return ls.subset(np.sort(np.union1d(first, np.flatnonzero(ls.gold))))


def _refill(ls, weights, teachers, segments, seed):
    """Pairs left without a kept answer are re-answered by a random kept annotator."""
    keep_w = np.array([weights.get(a, 1.0) > 0 for a in ls.annotator_id])
    item, _, _ = ls.items()
    train = ~ls.gold
    covered = np.zeros(item.max() + 1, bool)
    covered[item[train & keep_w & ~ls.skipped]] = True
    orphan_rows = [np.flatnonzero((item == i) & train)[0] for i in np.flatnonzero(~covered)
                   if np.any((item == i) & train)]
    ok = [j for j, t in enumerate(teachers) if weights.get(t.annotator_id, 1.0) > 0]
    if not orphan_rows or not ok:
        return ls
    rng = np.random.default_rng([seed, 13])
    rows = label_sets.segment_rows(ls.subset(orphan_rows), segments)
    who = np.asarray(ok)[rng.integers(0, len(ok), len(orphan_rows))]
    extra = label_pools.answer(teachers, segments, rows[0], rows[1], who, seed + 1,
                               start_time=float(ls.timestamp.max()) + 3600.0)
    return label_sets.concat([ls, extra])


def apply_policy(ls, policy: str, *, threshold: float = 0.8, teachers=(), segments=None, seed: int = 0,
                 senior: ann.Teacher | None = None) -> tuple[label_sets.LabelSet, dict]:
    """(every answer bought, aggregated labels per training pair) under a QC policy."""
    if policy == "raw":
        return ls, qc.aggregate(_one_answer(ls, seed), "majority")
    if policy == "majority":
        return ls, qc.aggregate(ls, "majority")
    if policy == "confidence":
        return ls, qc.aggregate(ls, "confidence")
    if policy == "downweighted":
        weights = qc.filter_weights(qc.gold_accuracy(ls), threshold, "downweight")
        return ls, qc.aggregate(ls, "majority", weights=weights)
    if policy == "dawid_skene":
        return ls, qc.aggregate(ls, "dawid_skene", seed=seed)
    if policy == "filtered":
        weights = qc.filter_weights(qc.gold_accuracy(ls), threshold, "remove")
        if teachers:
            ls = _refill(ls, weights, teachers, segments, seed)
        return ls, qc.aggregate(ls, "majority", weights=weights)
    if policy == "adjudicated":
        agg = qc.aggregate(ls, "majority")
        r = int(ls.meta.get("r", 2))
        disputed = np.flatnonzero(~agg["unanimous"] | (agg["n_labels"] < r))
        if senior is None or not len(disputed):
            return ls, agg
        keys = [agg["keys"][i] for i in disputed]
        where = label_sets.segment_keys(segments)
        ra = np.array([where[k[0]] for k in keys], np.int64)
        rb = np.array([where[k[1]] for k in keys], np.int64)
        extra = label_pools.answer((senior,), segments, ra, rb, np.zeros(len(keys), np.int64), seed + 2,
                                   start_time=float(ls.timestamp.max()) + 3600.0)
        agg = dict(agg, label=agg["label"].copy(), confidence=agg["confidence"].copy())
        agg["label"][disputed] = extra.label
        agg["confidence"][disputed] = extra.confidence
        return label_sets.concat([ls, extra]), agg
    raise ConfigError(describe("apply_policy", "policy", f"one of {sorted(POLICY_R)}", repr(policy)))


def _labels(label, keep, conf, ls, cost_model) -> ann.Labels:
    prov = [{"annotator_id": a, **v} for a, v in sorted(ls.annotators.items())]
    return ann.Labels(label=label.astype(np.float32), keep=keep, confidence=conf.astype(np.float32),
                      annotator=np.zeros(len(label), np.int32), timestamp=np.full(len(label), ls.timestamp.max()),
                      provenance=prov, label_set=ls, cost=costs.label_cost(ls, cost_model))


@dataclasses.dataclass(frozen=True)
class PoolSource:
    """A simulated team labelling under a QC policy (see the module docstring)."""
    pool: str = "crowd"
    policy: str = "raw"
    r: int = 0
    gold_rate: float = 0.12
    threshold: float = 0.8
    size: int = 10
    pool_seed: int = 0
    spec: str = ""
    cost_model: costs.CostModel = costs.CostModel()

    def __post_init__(self):
        where = f"label source {self.spec or self.pool!r}"
        if self.pool not in POOLS:
            raise ConfigError(describe(where, "pool", f"one of {sorted(POOLS)}", repr(self.pool)))
        if self.policy not in POLICY_R:
            raise ConfigError(describe(where, "policy", f"one of {sorted(POLICY_R)}", repr(self.policy)))
        if not 0.0 <= self.gold_rate < 0.5:
            raise ConfigError(describe(where, "gold", "a gold rate in [0, 0.5)", self.gold_rate))
        if not 0.5 < self.threshold <= 1.0:
            raise ConfigError(describe(where, "threshold", "a gold accuracy in (0.5, 1]", self.threshold))
        if self.policy == "filtered" and self.gold_rate == 0:
            raise ConfigError(describe(where, "gold", "> 0 (filtering needs gold questions)", self.gold_rate))
        if self.pool_seed < 0:  # NumPy's generators refuse it deep inside the pool's draw
            raise ConfigError(describe(where, "pool_seed", "an integer >= 0", self.pool_seed))
        if self.r == 0:
            object.__setattr__(self, "r", POLICY_R[self.policy])
        if not 1 <= self.r <= self.size:
            raise ConfigError(describe(where, "r", f"labels per pair in [1, size={self.size}]", self.r))
        if self.policy == "adjudicated" and self.r < 2:
            raise ConfigError(describe(where, "r", ">= 2 (adjudication needs two answers)", self.r))
        self.teachers()  # pool size problems surface here, before any data is read

    @property
    def name(self) -> str:
        return self.spec or f"qc:{self.pool}/{self.policy}"

    def teachers(self) -> tuple[ann.Teacher, ...]:
        return POOLS[self.pool](self.size, self.pool_seed)

    def answers(self, segments, idx_a, idx_b, seed: int) -> label_sets.LabelSet:
        """Every answer of the team on these pairs plus its gold questions, before QC."""
        n_gold = label_pools.n_gold_pairs(len(idx_a), self.gold_rate)
        gold = label_pools.gold_pool(segments, idx_a, idx_b, n_gold, seed) if n_gold else None
        return label_pools.simulate_label_set(self.teachers(), segments, idx_a, idx_b, r=self.r, seed=seed,
                                              gold=gold, meta={"source": self.name})

    def label(self, segments, idx_a, idx_b, seed: int) -> ann.Labels:
        ls = self.answers(segments, idx_a, idx_b, seed)
        ls, agg = apply_policy(ls, self.policy, threshold=self.threshold, teachers=self.teachers(),
                               segments=segments, seed=seed, senior=label_pools.senior_annotator())
        label, keep, conf = pair_labels(agg, segments, idx_a, idx_b)
        return _labels(label, keep, conf, ls, self.cost_model)


@dataclasses.dataclass(frozen=True)
class LabelFileSource:
    """A label file's answers on the asked pairs, aggregated by `policy`."""
    path: str
    policy: str = "majority"
    spec: str = ""
    threshold: float = 0.8
    cost_model: costs.CostModel = costs.CostModel()

    def __post_init__(self):
        where = f"label source {self.spec or self.path!r}"
        if self.policy not in FILE_POLICIES:
            raise ConfigError(describe(where, "policy", f"one of {list(FILE_POLICIES)}", repr(self.policy)))
        if not os.path.isfile(self.path):
            raise ConfigError(describe(where, "path", "an existing label file (.jsonl or .parquet)",
                                       repr(self.path)))

    @property
    def name(self) -> str:
        return self.spec or f"file:{self.path}"

    def read(self) -> label_sets.LabelSet:
        from rlhf_jax.labels import label_set_io  # pylint: disable=g-import-not-at-top
        return label_set_io.read_label_set(self.path)

    def _used(self, segments, idx_a, idx_b) -> label_sets.LabelSet:
        """The file's answers on the asked pairs, and its gold questions."""
        from rlhf_jax.labels import label_set_io  # pylint: disable=g-import-not-at-top
        ls = self.read()
        label_set_io.check_pairs_exist(ls, segments)
        keys, _ = _pair_key_list(segments, idx_a, idx_b)
        wanted = set(keys)
        used = ls.subset(np.array([k in wanted or g for k, g in zip(ls.pair_keys(), ls.gold)], bool))
        if not np.any(~used.gold):
            raise SplitError(describe(self.path, "pairs", f"answers on some of the {len(keys)} pairs asked for "
                                      "(validation pairs need labels in the file too)", "none"))
        return used

    def label(self, segments, idx_a, idx_b, seed: int) -> ann.Labels:
        used, agg = apply_policy(self._used(segments, idx_a, idx_b), self.policy, threshold=self.threshold, seed=seed)
        label, keep, conf = pair_labels(agg, segments, idx_a, idx_b)
        return _labels(label, keep, conf, used, self.cost_model)

    def check_objectives(self, objectives, where: str, field: str = "conditions") -> dict[str, int]:
        """{objective: training rows answering it} of the whole file (``rubric_objectives``)."""
        return rubric_objectives.check_rubric_objectives(self.read(), objectives, where, field, self.name)

    def sub_labels(self, segments, idx_a, idx_b, seed: int, objectives) -> dict[str, ann.Labels]:
        """Each objective's answers to the pairs from the file's rubric column: objective -> Labels
        [P], aggregated by the policy as the main answers are. A pair whose rows all leave the
        objective out (a skipped sub-question) is not usable for it (keep = False), not a tie.
        Every objective's Labels carry the answers used (label set, hash, cost, annotators)."""
        used = self._used(segments, idx_a, idx_b)
        rubric_objectives.check_rubric_objectives(used, (), self.name, "rubric", self.name)  # unknown keys
        out = {}
        for o in objectives:
            _, agg = apply_policy(rubric_objectives.objective_view(used, o), self.policy, threshold=self.threshold,
                                  seed=seed)
            label, keep, conf = pair_labels(agg, segments, idx_a, idx_b)
            if not keep.any():
                raise SplitError(describe(self.path, f"rubric[{o!r}]", f"answers on some of the {len(keep)} pairs "
                                          "asked for (validation pairs need sub-answers in the file too)", "none"))
            out[o] = _labels(label, keep, conf, used, self.cost_model)
        return out


def _parse_options(spec: str, opts: list[str], where: str, field: str) -> dict:
    types = {"r": int, "gold": float, "threshold": float, "size": int, "pool_seed": int}
    out = {}
    for opt in opts:
        key, eq, val = opt.partition("=")
        if not eq or key not in types:
            raise ConfigError(describe(where, field, f"options key=value with keys {sorted(types)} in {spec!r}",
                                       repr(opt)))
        try:
            out["gold_rate" if key == "gold" else key] = types[key](val)
        except ValueError as e:
            raise ConfigError(describe(where, field, f"{key} as a {types[key].__name__} in {spec!r}",
                                       repr(val))) from e
    return out


def parse_condition(spec: str, field: str = "conditions", where: str = "label source"):
    """A PoolSource / LabelFileSource from a condition string, or None if it is neither kind."""
    if spec.startswith("qc:"):
        head, *opts = spec[3:].split(",")
        pool, slash, policy = head.partition("/")
        if not slash:
            raise ConfigError(describe(where, field, "'qc:<pool>/<policy>' with policy one of "
                                       f"{sorted(POLICY_R)}", repr(spec)))
        return PoolSource(pool=pool, policy=policy, spec=spec, **_parse_options(spec, opts, where, field))
    if spec.startswith("file:") or spec.startswith("file+"):
        head, colon, path = spec.partition(":")
        policy = head.partition("+")[2] or "majority"
        if not colon or not path:
            raise ConfigError(describe(where, field, "'file:<path>' or 'file+<policy>:<path>'", repr(spec)))
        return LabelFileSource(path=path, policy=policy, spec=spec)
    return None
