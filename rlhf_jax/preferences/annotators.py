"""Simulated preference annotators: the B-Pref teacher family and pools of annotators.

A teacher labels a pair of equal-length segments (a, b) from their per-step gold reward
components r[t, c] (`SegmentTable.gold_step_rewards [S, T, C]`). Following B-Pref
(Lee et al., 2021, `BPref/reward_model.py::get_label`), in this order (returns, σ(βΔ), the
rational label and the mistake flip are `preferences.teacher_model`'s, which the JAX annotator
of `train.online` shares):

  rubric   w_c = gold_w_c * rubric_scale_c             (each annotator weighs components its way)
  returns  R   = sum_t sum_c w_c r[t, c]               (undiscounted; used by skip and equal)
  myopic   R^γ = sum_t γ^(T-1-t) sum_c w_c r[t, c]     (later steps weigh more; decides label)
  skip     drop the pair if max(R_a, R_b) < skip threshold       (both segments below it)
  label    β = inf: y = 1[R^γ_a > R^γ_b] (exact equality -> 0.5)
           β < inf: y ~ Bernoulli(σ(β (R^γ_a − R^γ_b)))
  mistake  y -> 1 − y with probability ε
  equal    |R_a − R_b| < equal threshold -> y = 0.5   (applied last, as in B-Pref)

y = 1 means segment a is preferred.

Threshold scale. With `relative=True` (default) the teacher works in units of its own return
scale s = mean |R| over every segment of the table (B-Pref likewise sets its thresholds as a
ratio of the average segment return): β multiplies (R^γ_a − R^γ_b) / s, and `equal_threshold`
is a ratio of s. `skip_threshold` is a quantile q ∈ [0, 1] of R over the table: B-Pref's
"ratio of the mean return" only makes sense for positive returns; ours include costs and are
often negative, so the quantile carries the same intent (skip when neither segment does well)
on any scale. With `relative=False` all three act on raw returns. The resolved absolute
thresholds and s are recorded in each label's provenance.

Confidence of a label = what the annotator could report itself: its certainty σ(β|Δ|) about
the comparison it perceived (1 for β = inf; 1 for ties from the equal threshold), blind to its own
slips. `Labels.oracle_confidence` keeps the probability that this teacher emits that label given
the returns, (1−ε)·p_y + ε·(1−p_y) with p_y = σ(±βΔ): it knows whether a label was flipped, so it
is an oracle quantity, never what a simulated annotator reports.

Careless annotators (planted in QC pools): `left_bias` answers "a" at random with that
probability whatever is shown, `skip_rate` skips pairs at random; both draw from a separate
stream, so careful teachers' labels do not depend on them.
"""
from __future__ import annotations

import dataclasses
import datetime
import math
from typing import Any, Mapping, Sequence

import numpy as np

from rlhf_jax.errors import ConfigError, describe
from rlhf_jax.preferences.teacher_model import (discounted_returns, label_probability, mistake_flip, rational_label,
                                                return_scale)

INTERFACE_VERSION = "sim-teacher/1"


@dataclasses.dataclass(frozen=True)
class Teacher:
    """One simulated annotator (B-Pref teacher parameters + its own rubric).

    rubric_scale: ((component, multiplier), ...) applied to the gold rubric weights; components
      not named keep multiplier 1.
    """
    name: str = "oracle"
    beta: float = math.inf
    gamma: float = 1.0
    eps: float = 0.0
    skip_threshold: float | None = None
    equal_threshold: float = 0.0
    relative: bool = True
    rubric_scale: tuple[tuple[str, float], ...] = ()
    annotator_id: str = ""
    source: str = "sim"
    interface_version: str = INTERFACE_VERSION
    # Behaviours of careless annotators, applied after the B-Pref steps (planted in QC pools):
    # left_bias = probability of answering "a" whatever is shown (a lazy always-left clicker);
    # skip_rate = probability of skipping a pair at random. seconds = median time per label.
    left_bias: float = 0.0
    skip_rate: float = 0.0
    seconds: float = 20.0
    kind: str = "human"

    def __post_init__(self):
        where = f"Teacher({self.name!r})"
        if not self.beta > 0:
            raise ConfigError(describe(where, "beta", "> 0 (inf = perfectly rational)", self.beta))
        if not 0.0 < self.gamma <= 1.0:
            raise ConfigError(describe(where, "gamma", "in (0, 1]", self.gamma))
        if not 0.0 <= self.eps <= 0.5:
            raise ConfigError(describe(where, "eps", "in [0, 0.5]", self.eps))
        if self.equal_threshold < 0:
            raise ConfigError(describe(where, "equal_threshold", ">= 0", self.equal_threshold))
        if self.relative and self.skip_threshold is not None and not 0 <= self.skip_threshold <= 1:
            raise ConfigError(describe(where, "skip_threshold",
                                       "a quantile in [0, 1] (relative=True)",
                                       self.skip_threshold))
        for f in ("left_bias", "skip_rate"):
            if not 0.0 <= getattr(self, f) <= 1.0:
                raise ConfigError(describe(where, f, "a probability in [0, 1]", getattr(self, f)))
        if not self.seconds > 0:
            raise ConfigError(describe(where, "seconds", "> 0", self.seconds))
        if self.kind not in ("human", "expert", "ai"):
            raise ConfigError(describe(where, "kind", "'human', 'expert' or 'ai'", repr(self.kind)))
        if self.source not in ("sim", "real"):
            raise ConfigError(describe(where, "source", "'sim' or 'real'", repr(self.source)))
        if not self.annotator_id:
            object.__setattr__(self, "annotator_id", f"sim/{self.name}")
        if isinstance(self.rubric_scale, Mapping):
            object.__setattr__(self, "rubric_scale", tuple(sorted(self.rubric_scale.items())))

    def replace(self, **kw) -> "Teacher":
        return dataclasses.replace(self, **kw)

    def params(self) -> dict:
        """JSON-safe teacher parameters (inf written as the string 'inf')."""
        return {"name": self.name, "beta": "inf" if math.isinf(self.beta) else float(self.beta),
                "gamma": self.gamma, "eps": self.eps, "skip_threshold": self.skip_threshold,
                "equal_threshold": self.equal_threshold, "relative": self.relative,
                "rubric_scale": dict(self.rubric_scale),
                # Only when set, so provenance written before these fields existed is unchanged.
                **{f: getattr(self, f) for f, d in (("left_bias", 0.0), ("skip_rate", 0.0),
                                                   ("seconds", 20.0), ("kind", "human"))
                   if getattr(self, f) != d}}

    def weights(self, component_names: Sequence[str], gold_weights: np.ndarray) -> np.ndarray:
        """Rubric weights [C] = gold weights × this annotator's multipliers."""
        names = list(component_names)
        w = np.asarray(gold_weights, np.float64).copy()
        for comp, mult in self.rubric_scale:
            if comp not in names:
                raise ConfigError(describe(f"Teacher({self.name!r})", "rubric_scale",
                                           f"component names from {names}", repr(comp)))
            w[names.index(comp)] *= mult
        return w


# Rubric personas: multipliers on the gold rubric (component names of envs.simulator).
PERSONAS: dict[str, dict[str, float]] = {
    "balanced": {},
    "safety": {"collision": 3.0, "clearance": 3.0, "joint_limit": 2.0, "speed_violation": 2.0,
               "time": 0.5},
    "speed": {"time": 3.0, "progress": 2.0, "success": 1.5, "collision": 0.5, "clearance": 0.5,
              "jerk": 0.5},
    "smooth": {"jerk": 3.0, "energy": 3.0, "speed_violation": 2.0},
}

# B-Pref's six teachers (β=1, γ=0.9, ε=0.1, skip/equal ratio 0.1) adapted to our scale rule.
TEACHER_PRESETS: dict[str, Teacher | tuple[Teacher, ...]] = {
    "oracle": Teacher("oracle"),
    "stochastic": Teacher("stochastic", beta=1.0),
    "mistake": Teacher("mistake", eps=0.1),
    "myopic": Teacher("myopic", gamma=0.9),
    "skip": Teacher("skip", skip_threshold=0.3),
    "equal": Teacher("equal", equal_threshold=0.1),
    "noisy_pool": tuple(Teacher(f"noisy{i}", beta=b, eps=e) for i, (b, e) in enumerate(
        [(math.inf, 0.0), (10.0, 0.0), (3.0, 0.05), (1.0, 0.1), (0.5, 0.2)])),
    "rubric_pool": tuple(Teacher(p, beta=5.0, eps=0.05, rubric_scale=tuple(PERSONAS[p].items()))
                         for p in PERSONAS),
}


def make_pool(n: int, seed: int, *, beta_range=(0.5, 20.0), eps_range=(0.0, 0.2),
              personas: Sequence[str] = tuple(PERSONAS), gamma: float = 1.0) -> tuple[Teacher, ...]:
    """A random pool of n annotators: log-uniform β, uniform ε, persona i mod len(personas)."""
    rng = np.random.default_rng(seed)
    betas = np.exp(rng.uniform(np.log(beta_range[0]), np.log(beta_range[1]), n))
    epss = rng.uniform(*eps_range, n)
    return tuple(Teacher(f"pool{seed}-{i}-{personas[i % len(personas)]}", beta=float(b),
                         eps=float(e), gamma=gamma,
                         rubric_scale=tuple(PERSONAS[personas[i % len(personas)]].items()))
                 for i, (b, e) in enumerate(zip(betas, epss)))


def resolve_teachers(teachers: Any) -> tuple[Teacher, ...]:
    """Preset name | Teacher | sequence of them -> tuple of Teachers."""
    if isinstance(teachers, str):
        if teachers not in TEACHER_PRESETS:
            raise ConfigError(describe("resolve_teachers", "teacher",
                                       f"one of {list(TEACHER_PRESETS)}", repr(teachers)))
        teachers = TEACHER_PRESETS[teachers]
    if isinstance(teachers, Teacher):
        return (teachers,)
    out: list[Teacher] = []
    for t in teachers:
        out.extend(resolve_teachers(t))
    if not out:
        raise ConfigError(describe("resolve_teachers", "teacher", "at least one teacher", "none"))
    return tuple(out)


def _reward_view(table: Any) -> tuple[np.ndarray, tuple, np.ndarray]:
    """(step rewards [S, T, C], component names [C], gold weights [C]) of a segment table.

    Tables without per-step rewards fall back to per-segment component sums (T = 1: myopia then
    has no effect), and tables without weights to the gold return as a single component.
    """
    steps = getattr(table, "gold_step_rewards", None)
    weights = getattr(table, "gold_weights", None)
    if steps is None and weights is None:
        return (np.asarray(table.gold_return, np.float64)[:, None, None], ("gold",),
                np.ones(1))
    if steps is None:
        steps = np.asarray(table.gold_components)[:, None, :]
    steps = np.asarray(steps, np.float64)
    names = tuple(getattr(table, "component_names", ()) or
                  (f"c{i}" for i in range(steps.shape[-1])))
    weights = np.ones(steps.shape[-1]) if weights is None else np.asarray(weights, np.float64)
    return steps, names, weights


@dataclasses.dataclass
class Labels:
    """Output of label_pairs; arrays [P] over the input pairs (skipped pairs: keep=False)."""
    label: np.ndarray       # float32 in {0, 0.5, 1}
    keep: np.ndarray        # bool
    confidence: np.ndarray  # float32 in [0, 1]: σ(β|Δ|), what the annotator could report
    annotator: np.ndarray   # int32 index into provenance
    timestamp: np.ndarray   # float64 unix seconds
    provenance: list[dict]  # per annotator
    oracle_confidence: np.ndarray | None = None  # f32 P(emitted label | returns): knows the slips
    abs_delta: np.ndarray | None = None             # f32 |Δ| in the annotator's scale (difficulty)
    label_set: Any = None   # the long-format answers behind these labels (label_sets.LabelSet)
    cost: dict | None = None  # what the answers cost (rlhf_jax.labels.costs.label_cost)
    # objective -> the same annotators' answers to that objective's sub-question
    # (rlhf_jax.preferences.objectives.sub_answers); None when no sub-questions were asked.
    sub_answers: dict | None = None


def label_pairs(teachers: Any, table: Any, idx_a: np.ndarray, idx_b: np.ndarray, seed: int, *,
                annotator: np.ndarray | None = None, timestamp: float | None = None) -> Labels:
    """Labels pairs (table rows idx_a[p] vs idx_b[p]) with one teacher or a pool.

    table: anything with gold_step_rewards [S, T, C], component_names [C], gold_weights [C]
      (a SegmentTable). With a pool, each pair goes to one annotator drawn uniformly (or as given
      by `annotator` [P]). Deterministic in `seed` (except the wall-clock timestamp).
    """
    teachers = resolve_teachers(teachers)
    idx_a, idx_b = np.asarray(idx_a, np.int64), np.asarray(idx_b, np.int64)
    rng = np.random.default_rng(seed)
    k, p = len(teachers), len(idx_a)
    if annotator is None:
        annotator = rng.integers(0, k, p) if k > 1 else np.zeros(p, np.int64)
    annotator = np.asarray(annotator, np.int64)
    steps, names, gold_w = _reward_view(table)
    ts = float(timestamp if timestamp is not None else
               datetime.datetime.now(datetime.timezone.utc).timestamp())
    # Per-annotator returns over the whole table: K is small, S×T×C einsums are cheap.
    full, myop = np.empty((k, len(steps))), np.empty((k, len(steps)))
    beta, eps, skip, equal, scale = (np.empty(k) for _ in range(5))
    provenance = []
    for j, t in enumerate(teachers):
        w = t.weights(names, gold_w)
        full[j] = discounted_returns(steps, w)
        myop[j] = full[j] if t.gamma == 1.0 else discounted_returns(steps, w, t.gamma)
        scale[j] = return_scale(full[j]) if t.relative else 1.0
        beta[j], eps[j] = t.beta, t.eps
        equal[j] = t.equal_threshold * scale[j]
        if t.skip_threshold is None:
            skip[j] = -np.inf
        else:
            skip[j] = np.quantile(full[j], t.skip_threshold) if t.relative else t.skip_threshold
        provenance.append({
            "annotator_id": t.annotator_id, "interface_version": t.interface_version,
            "source": t.source, "created": ts,
            "teacher": {**t.params(), "return_scale": float(scale[j]),
                        "equal_threshold_abs": float(equal[j]),
                        "skip_threshold_abs": None if t.skip_threshold is None else float(skip[j])},
            "confidence": "sigma(beta * |return difference|): the annotator's own certainty",
        })
    ra, rb = full[annotator, idx_a], full[annotator, idx_b]
    delta = (myop[annotator, idx_a] - myop[annotator, idx_b]) / scale[annotator]
    b = beta[annotator]
    keep = np.maximum(ra, rb) >= skip[annotator]
    # σ(βΔ); for β = inf this is the step function, with exact ties at 1/2.
    p_a = label_probability(delta, b)
    rational = rational_label(rng.random(p), p_a, delta, b)
    p_y = np.where(rational == 1.0, p_a, 1.0 - p_a)
    flip = rng.random(p) < eps[annotator]
    label = mistake_flip(rational, flip)
    e = eps[annotator]
    # p_y = P(rational label); a flipped label was emitted with prob (1-ε)(1-p_y) + ε p_y.
    conf = np.where(flip, (1 - e) * (1 - p_y) + e * p_y, (1 - e) * p_y + e * (1 - p_y))
    tie = np.abs(ra - rb) < equal[annotator]
    label = np.where(tie, 0.5, label)
    conf = np.where(tie | (rational == 0.5), 1.0, conf)
    # What the annotator itself could report: its certainty σ(β|Δ|) about the comparison it saw,
    # blind to its own slips (ε) — unlike `conf`, which knows whether the label was flipped.
    # σ(β|Δ|) = P(the segment it saw as better wins), a step at |Δ| > 0 for β = inf.
    perceived = np.where(tie, 1.0, label_probability(np.abs(delta), b))
    # Careless behaviours draw from their own stream, so labels of careful teachers are unchanged.
    lazy = np.random.default_rng([seed, 1])
    left = np.array([t.left_bias for t in teachers])[annotator]
    clicked = lazy.random(p) < left
    label = np.where(clicked, 1.0, label)
    perceived = np.where(clicked, lazy.uniform(0.5, 1.0, p), perceived)
    keep = keep & ~(lazy.random(p) < np.array([t.skip_rate for t in teachers])[annotator])
    return Labels(label=label.astype(np.float32), keep=keep, confidence=perceived.astype(np.float32),
                  annotator=annotator.astype(np.int32), timestamp=np.full(p, ts),
                  provenance=provenance, oracle_confidence=conf.astype(np.float32),
                  abs_delta=np.abs(delta).astype(np.float32))
