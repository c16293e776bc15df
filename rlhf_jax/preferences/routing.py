"""Hybrid labelling: a cheap AI labeller, and routing of each query to it or to a human.

The AI labeller stands in for a vision-language model judging two robot clips. It sees the
obvious (did the arm reach the goal, did it hit the obstacle, did it get closer) and is blind to
nuance: smoothness, efficiency, clearance margins, joint and speed limits weigh nothing in its
judgement. It also has its own slips and acts in about a second. Its answers cost
`costs.CostModel.ai` each; the humans are an expert pool at `costs.CostModel.human`.

Routing policies (`route`):
  all_human     every query to the humans
  all_ai        every query to the AI labeller
  random        a `human_fraction` of queries, drawn at random, to the humans
  uncertainty   the `human_fraction` of queries with the highest ensemble disagreement to the
                humans (the hard ones), the rest to the AI labeller
"""
from __future__ import annotations

import math

import numpy as np

from rlhf_jax.preferences import annotators as ann
from rlhf_jax.errors import ConfigError, describe

ROUTES = ("all_human", "all_ai", "random", "uncertainty")
# What a VLM judging two clips cannot see: everything but the coarse outcome.
AI_BLIND_TO = ("clearance", "joint_limit", "speed_violation", "jerk", "time", "energy")


def ai_labeller(eps: float = 0.08, beta: float = 10.0) -> ann.Teacher:
    """The AI labeller: gold rubric with the nuance components zeroed, β on the relative scale,
    slips ε."""
    return ann.Teacher("ai-labeller", beta=beta, eps=eps, seconds=1.0, kind="ai",
                       annotator_id="ai/vlm-sim", rubric_scale=tuple((c, 0.0) for c in AI_BLIND_TO))


def expert_humans(n: int = 5, seed: int = 0) -> tuple[ann.Teacher, ...]:
    """The human pool of hybrid labelling: careful experts (β log-uniform 10–50, ε ≤ 0.03)."""
    rng = np.random.default_rng([seed, 23])
    return tuple(ann.Teacher(f"expert{seed}-{i}", beta=float(b), eps=float(e), seconds=25.0,
                             annotator_id=f"sim/expert{seed}-{i}")
                 for i, (b, e) in enumerate(zip(np.exp(rng.uniform(np.log(10.0), np.log(50.0), n)),
                                                rng.uniform(0.0, 0.03, n))))


def route(uncertainty: np.ndarray, policy: str, human_fraction: float, seed: int) -> np.ndarray:
    """[M] bool: True = the query goes to a human.

    uncertainty [M]: the ensemble's disagreement on each query (only `uncertainty` uses it).
    Exactly round(human_fraction · M) queries go to humans under `random` and `uncertainty`;
    `uncertainty` takes the largest scores, ties broken by lower index.
    """
    u = np.asarray(uncertainty, np.float64)
    m = len(u)
    if policy not in ROUTES:
        raise ConfigError(describe("route", "policy", f"one of {ROUTES}", repr(policy)))
    if not 0.0 <= human_fraction <= 1.0:
        raise ConfigError(describe("route", "human_fraction", "a fraction in [0, 1]", human_fraction))
    if policy == "all_human":
        return np.ones(m, bool)
    if policy == "all_ai":
        return np.zeros(m, bool)
    n_human = int(math.floor(human_fraction * m + 0.5))
    if policy == "random":
        pick = np.random.default_rng([seed, 29]).permutation(m)[:n_human]
    else:
        pick = np.lexsort((np.arange(m), -u))[:n_human]  # largest first; ties by lower index
    out = np.zeros(m, bool)
    out[pick] = True
    return out
