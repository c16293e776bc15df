"""Active preference learning on one pool, as rounds of the compiled sweep program.

Every (strategy, seed) run keeps its labelled set as an ordered list of pool indices (its
acquisition order). A round trains every run at once — strategies are the sweep's conditions,
and labels, confidence weights and the labelled order may differ per (strategy, seed) — then
scores the pool with each run's best-validation ensemble and buys its next k labels:

  candidates   `oversampling`·k unlabelled pool pairs drawn uniformly (B-Pref's large_batch)
  selection    `rlhf_jax.query.select_queries` on the members' returns of both segments
  routing      `rlhf_jax.preferences.routing.route`: each selected query to a human or the AI labeller
  pseudo       optionally, DROID-style pseudo-labels for the next round: unlabelled pool pairs
               whose segments the ensemble puts in its top and bottom 20%, labelled top-wins and
               weighted by the ensemble's confidence (they cost nothing and do not count in N);
               or SURF (`rlhf_jax.train.sweep.SurfSpec`): confident pseudo-labels of the run's
               unlabelled pool pairs and temporal crops, inside every training step

The first round is uniform for every strategy (the same initial set per seed: a paired start).
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from rlhf_jax.ensemble import disagreement
from rlhf_jax.errors import ConfigError, describe
from rlhf_jax.losses.bradley_terry import preference_probability
from rlhf_jax.preferences.segments import nested_subsets
from rlhf_jax.query import METHODS, select_queries
from rlhf_jax.preferences.routing import ROUTES, route
from rlhf_jax.train.sweep import SweepGrid

PSEUDO = ("", "droid", "surf")


@dataclasses.dataclass(frozen=True)
class Strategy:
    """How one run buys labels: selection method, routing, pseudo-labels, and how many per round.

    per_round_multiple: the run buys this many times the common per-round count (a routed run
    buying cheaper labels can buy more of them for a comparable cost). reference: the run extends
    uniform's curve; it buys enough per round to reach `reach` times the largest budget of the
    other runs (`strategy_schedules`), so effective sizes up to that reach are measurable.
    """
    name: str
    select: str = "uniform"
    route: str = "all_human"
    human_fraction: float = 1.0
    pseudo: str = ""
    per_round_multiple: int = 1
    reference: bool = False

    def __post_init__(self):
        where = f"strategy {self.name!r}"
        if self.select not in METHODS:
            raise ConfigError(describe(where, "select", f"one of {METHODS}", repr(self.select)))
        if self.route not in ROUTES:
            raise ConfigError(describe(where, "route", f"one of {ROUTES}", repr(self.route)))
        if not 0.0 <= self.human_fraction <= 1.0:
            raise ConfigError(describe(where, "human_fraction", "a fraction in [0, 1]", self.human_fraction))
        if self.pseudo not in PSEUDO:
            raise ConfigError(describe(where, "pseudo", f"one of {PSEUDO}", repr(self.pseudo)))
        if int(self.per_round_multiple) != self.per_round_multiple or self.per_round_multiple < 1:
            raise ConfigError(describe(where, "per_round_multiple", "a positive integer", self.per_round_multiple))


def schedule(initial: int, per_round: int, rounds: int, kind: str = "constant") -> list[int]:
    """Cumulative labelled pairs after each round (round 0 = the uniform initial set).

    constant: k = per_round every round. hyperbolic (imitation's query schedule): k_t ∝ 1/(1 + t)
    for t = 1..rounds−1, scaled so the total budget equals the constant schedule's.
    """
    if kind not in ("constant", "hyperbolic"):
        raise ConfigError(describe("schedule", "kind", "'constant' or 'hyperbolic'", repr(kind)))
    if initial < 1 or per_round < 1 or rounds < 1:
        raise ConfigError(describe("schedule", "rounds", "initial, per_round, rounds >= 1",
                                   (initial, per_round, rounds)))
    steps = np.full(rounds - 1, float(per_round))
    if kind == "hyperbolic" and rounds > 1:
        w = 1.0 / (1.0 + np.arange(1, rounds))
        steps = w / w.sum() * per_round * (rounds - 1)
    counts = initial + np.concatenate([[0.0], np.cumsum(steps)])
    return [int(math.floor(c + 0.5)) for c in counts]


def strategy_schedules(strategies, initial: int, per_round: int, rounds: int, kind: str = "constant",
                       reach: float = 3.0) -> list[list[int]]:
    """Cumulative labelled pairs after each round, per strategy (``schedule`` at its own per-round count).

    An ordinary strategy buys per_round · per_round_multiple a round. A reference strategy buys
    k = ⌈(reach · B − initial) / (rounds − 1)⌉ a round, where B is the largest final budget of the
    ordinary strategies, so its last round holds at least reach · B labels.
    """
    plain = [schedule(initial, per_round * int(s.per_round_multiple), rounds, kind) for s in strategies
             if not s.reference]
    largest = max((c[-1] for c in plain), default=initial)
    if any(s.reference for s in strategies) and rounds < 2:
        raise ConfigError(describe("schedule", "rounds", "at least 2 rounds for a reference strategy", rounds))
    k_ref = max(1, math.ceil((reach * largest - initial) / max(rounds - 1, 1)))
    return [schedule(initial, k_ref, rounds, kind) if s.reference else
            schedule(initial, per_round * int(s.per_round_multiple), rounds, kind) for s in strategies]


def initial_sets(n_pool: int, initial: int, seeds) -> list[np.ndarray]:
    """The uniform first round: `initial` pool indices per seed (shared by every strategy) — the
    same first N pairs, in the same order, as the plain sweep's nested subset of that seed."""
    return [nested_subsets(n_pool, [initial], int(s))[:initial] for s in seeds]


def choose(strategy: Strategy, member_returns: np.ndarray, pool_a: np.ndarray, pool_b: np.ndarray,
           labelled: np.ndarray, k: int, oversampling: float, seed: int, round_index: int,
           features: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(next k pool indices, their ensemble disagreement) for one run.

    member_returns [K, S]: each member's return of every segment row; pool_a/b [P] the pool's
    segment rows; labelled [L] pool indices already bought; features [S, F] segment features
    for the k-center methods (a pair's feature is both segments' concatenated).
    """
    rng = np.random.default_rng([seed, round_index, 37])
    free = np.setdiff1d(np.arange(len(pool_a)), labelled)
    m = min(len(free), max(k, int(math.ceil(k * oversampling))))
    cand = np.sort(rng.choice(free, size=m, replace=False))
    ra, rb = member_returns[:, pool_a[cand]], member_returns[:, pool_b[cand]]
    feats = lab_feats = None
    if strategy.select.startswith("kcenter"):
        pair = lambda idx: np.concatenate([features[pool_a[idx]], features[pool_b[idx]]], axis=1)  # noqa: E731
        feats, lab_feats = pair(cand), pair(labelled)
    key = jax.random.PRNGKey(int(rng.integers(1 << 31)))
    pick = np.asarray(select_queries(jnp.asarray(ra), jnp.asarray(rb), k, strategy.select, key,
                                     features=None if feats is None else jnp.asarray(feats),
                                     labelled_features=None if lab_feats is None else jnp.asarray(lab_feats)))
    return cand[pick], disagreement(ra[:, pick], rb[:, pick], xp=np)


def routed_answers(chosen: np.ndarray, disagreement: np.ndarray, strategy: Strategy, human: dict, ai: dict,
                   seed: int, round_index: int) -> dict:
    """Labels, confidences and who answered the chosen queries (humans or the AI labeller)."""
    to_human = route(disagreement, strategy.route, strategy.human_fraction, seed * 1000 + round_index)
    pick = lambda key: np.where(to_human, human[key][chosen], ai[key][chosen])  # noqa: E731
    return {"label": pick("label"), "confidence": pick("confidence"), "human": to_human}


def droid_pseudo_labels(mean_returns: np.ndarray, pool_a: np.ndarray, pool_b: np.ndarray,
                        unlabelled: np.ndarray, fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pool indices, labels, weights) of DROID-style pseudo-labels.

    Segments are ranked by the ensemble-mean return over the pool's segments; an unlabelled pool
    pair whose one segment is in the top `fraction` and the other in the bottom `fraction` gets
    label "top wins" and weight = the ensemble-mean probability of that label.
    """
    rows = np.unique(np.concatenate([pool_a, pool_b]))
    r = mean_returns[rows]
    lo, hi = np.quantile(r, fraction), np.quantile(r, 1.0 - fraction)
    ra, rb = mean_returns[pool_a[unlabelled]], mean_returns[pool_b[unlabelled]]
    a_top, b_top = (ra >= hi) & (rb <= lo), (rb >= hi) & (ra <= lo)
    sel = a_top | b_top
    label = np.where(a_top, 1.0, 0.0)[sel]
    p_a = preference_probability(ra, rb, xp=np)[sel]
    return unlabelled[sel], label.astype(np.float32), np.where(label == 1.0, p_a, 1.0 - p_a).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class ActiveGrid(SweepGrid):
    """A sweep grid whose points are (strategy, seed) runs, each with its own labelled count
    (pseudo-labels make the training sets of one round differ in size)."""
    n_per_point: tuple = ()

    @property
    def points(self) -> list[tuple[int, int, int]]:
        runs = [(c, s) for c in range(len(self.conditions)) for s in range(len(self.seeds))]
        return [(c, int(n), s) for (c, s), n in zip(runs, self.n_per_point)]


@dataclasses.dataclass(frozen=True)
class PointGrid(SweepGrid):
    """A sweep grid with an explicit point list (condition row, N, seed index) — one label row per
    point, as when every point of a sweep gets its own pseudo-labels."""
    explicit: tuple = ()

    @property
    def points(self) -> list[tuple[int, int, int]]:
        return [tuple(int(v) for v in p) for p in self.explicit]


def droid_second_pass(inputs, member_returns: np.ndarray, fraction: float = 0.2):
    """(sweep inputs of the DROID second pass, pseudo-label count per point).

    inputs: a plain sweep's SweepInputs; member_returns [P, K, S]: each point's best ensemble's
    return of every segment. Point p = (c, N, s) keeps its N labelled pairs (labels and weights of
    condition c) and adds DROID pseudo-labels of its unlabelled usable pool pairs (past N in its
    order). Each point becomes its own label row; init, order and seeds are unchanged, so a point
    without pseudo-labels trains exactly as in the first pass.
    """
    data, grid = inputs.data, inputs.grid
    order = np.asarray(data.order)
    label, pool_a, pool_b = np.asarray(data.train_label), np.asarray(data.train_a), np.asarray(data.train_b)
    weight = None if data.train_weight is None else np.asarray(data.train_weight)
    n_pool, n_seeds = order.shape[-1], order.shape[1]
    rows = len(grid.points)
    order2 = -np.ones((rows, n_seeds, n_pool), np.int64)
    label2 = np.zeros((rows, n_pool), np.float32)
    weight2 = np.zeros((rows, n_pool), np.float32)
    explicit, counts = [], []
    for p, (c, n, s) in enumerate(grid.points):
        seq = order[c, s][order[c, s] >= 0]
        idx, lab, w = droid_pseudo_labels(member_returns[p].mean(0), pool_a, pool_b, seq[n:], fraction)
        keep = np.concatenate([seq[:n], idx])
        order2[p, s, :len(keep)] = keep
        label2[p, seq[:n]] = label[c, seq[:n]]
        weight2[p, seq[:n]] = 1.0 if weight is None else weight[c, seq[:n]]
        label2[p, idx], weight2[p, idx] = lab, w
        explicit.append((p, len(keep), s))
        counts.append(len(idx))
    pick = np.asarray([c for c, _, _ in grid.points])
    new = data.replace(order=order2.astype(np.int32), train_label=label2, train_weight=weight2,
                       val_label=np.asarray(data.val_label)[pick], val_weight=np.asarray(data.val_weight)[pick],
                       surf_on=None if data.surf_on is None else np.asarray(data.surf_on)[pick])
    new = jax.tree.map(jnp.asarray, new)
    point_grid = PointGrid(conditions=tuple(f"point{p}" for p in range(rows)), n_values=grid.n_values,
                           seeds=grid.seeds, members=grid.members, explicit=tuple(explicit))
    return dataclasses.replace(inputs, grid=point_grid, data=new), counts
