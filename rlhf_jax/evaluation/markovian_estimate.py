"""The Markovian-gold estimate: how well the Markovian part of the gold return ranks test pairs.

A Markovian reward model scores a segment as sum_t r(obs_t, act_t). The gold reward is not in
that class: its ``jerk`` component, -sum_j ((qd_{t+1} - 2 qd_t + qd_{t-1}) / qd_max_j)^2,
needs the previous step's joint velocity, which no feature of step t carries. The estimate is
the test accuracy of the gold return with the components the inputs do not determine removed:

    estimate = accuracy( sign(G'(a) - G'(b)), label ),  G'(s) = sum_t sum_{c not in dropped} w_c r_{c,t}(s)

over the decided (non-tie) test pairs, with the labels the sweep scores against (oracle).
It is an estimate, not a bound, and the sweeps' reward models exceed it (the medium sweep
reaches 0.903 against 0.9005): the squares and the qd_{t+1}·qd_t, qd_t·qd_{t-1} cross terms
of jerk are Markovian, so a model recovers part of the dropped term, and ``time`` (-1 until the
first success) also reads one bit of history. It therefore enters no fit and no claim; the
reports state it beside the measured accuracies.
"""
from __future__ import annotations

import numpy as np

from rlhf_jax import metrics
from rlhf_jax.preferences import objectives

NON_MARKOVIAN = ("jerk",)


def segment_returns(segments, drop: tuple[str, ...] = ()) -> np.ndarray:
    """[S] weighted gold returns of every segment with the components ``drop`` left out."""
    names = tuple(segments.component_names)
    keep = np.array([c not in drop for c in names], np.float32)
    per_component = np.asarray(segments.gold_step_rewards, np.float64).sum(1)  # [S, C]
    return per_component @ (np.asarray(segments.gold_weights, np.float64) * keep)


def ranking_accuracy(returns, idx_a, idx_b, label) -> float:
    """Accuracy of ranking pairs by ``returns`` [S] against labels [P], over the decided labels
    (as metrics.preference_metrics); a tie in returns is a coin flip and counts one half."""
    diff = returns[np.asarray(idx_a)] - returns[np.asarray(idx_b)]
    label = np.asarray(label, np.float64)
    decided = np.abs(label - 0.5) > metrics.TIE
    right = np.where(diff == 0, 0.5, ((diff > 0) == (label > 0.5)).astype(np.float64))
    return float(right[decided].mean())


def markovian_gold_accuracy(pref, drop: tuple[str, ...] = NON_MARKOVIAN) -> dict:
    """{"estimate", "gold", "dropped"}: test accuracy of the Markovian part of the gold return and
    of the full gold return (1 when the test labels are the oracle's)."""
    seg, test = pref.segments, pref.test
    markovian = segment_returns(seg, drop)
    full = segment_returns(seg)
    return {"estimate": ranking_accuracy(markovian, test.idx_a, test.idx_b, test.label),
            "gold": ranking_accuracy(full, test.idx_a, test.idx_b, test.label), "dropped": list(drop)}


def objective_step_returns(segments, objective: str, first_steps_dropped: tuple[str, ...] = (),
                           drop: tuple[str, ...] = ()) -> np.ndarray:
    """[S] returns of ``objective``'s components, with ``drop`` left out entirely and
    ``first_steps_dropped`` left out of each segment's first step only."""
    names = tuple(segments.component_names)
    weights = np.asarray(segments.gold_weights, np.float64) * objectives.objective_mask(objective, names)
    steps = np.asarray(segments.gold_step_rewards, np.float64).copy()  # [S, T, C]
    steps[..., [names.index(c) for c in drop if c in names]] = 0.0
    steps[:, 0, [names.index(c) for c in first_steps_dropped if c in names]] = 0.0
    return steps.sum(1) @ weights


def objective_estimates(pref, objective_names) -> dict:
    """objective -> {"per_step", "previous_step"}: test accuracy, against the objective's oracle
    sub-answers, of its return with what the inputs do not determine left out — for per-step
    inputs the non-Markovian components (jerk), for inputs that also hold the previous step
    (``models.reward.PreviousStepReward``) only each segment's first-step jerk. Estimates, as
    ``markovian_gold_accuracy``: a model can recover part of what is left out."""
    seg, test = pref.segments, pref.test
    out = {}
    for o in objective_names:
        label = objectives.sub_answers("oracle", seg, test.idx_a, test.idx_b, 0, (o,))[o].label

        def rank(returns):  # NaN when every test pair ties on this objective (nothing to rank)
            decided = np.abs(label - 0.5) > metrics.TIE
            return ranking_accuracy(returns, test.idx_a, test.idx_b, label) if decided.any() else float("nan")

        out[o] = {"per_step": rank(objective_step_returns(seg, o, drop=NON_MARKOVIAN)),
                  "previous_step": rank(objective_step_returns(seg, o, first_steps_dropped=NON_MARKOVIAN))}
    return out
