"""The rubric's objectives: four groups of gold reward components, each with its own sub-question.

    objective_returns(components [..., C]) -> [..., O]        per-objective gold returns
    sub_answers(teachers, table, idx_a, idx_b, seed)          each objective's simulated answers

The gold rubric (``envs.simulator.DEFAULT_RUBRIC``) sums nine components; an annotator can also be
asked about one group of them at a time. The groups partition the components, so the objectives'
returns add up to the gold return:

===========  ===================================================  ==============================
objective    components                                           sub-question
===========  ===================================================  ==============================
task         progress, success                                    which is closer to the goal?
safety       collision, clearance, joint_limit, speed_violation   which is safer?
smoothness   jerk                                                 which is smoother?
efficiency   time, energy                                         which is faster?
===========  ===================================================  ==============================

R_o = Σ_t Σ_{c ∈ o} w_c r[t, c] (w: the rubric's weights). A simulated annotator answers
objective o's sub-question with its usual teacher model (``annotators.label_pairs``: β, γ, ε,
skip and equal thresholds, its own rubric multipliers) applied to R_o alone, on R_o's own scale
(a relative teacher's s = mean |R_o|), with its own random stream per objective.
"""
from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np

from rlhf_jax.envs.simulator import REWARD_COMPONENTS, rubric_vector
from rlhf_jax.errors import ConfigError, describe
from rlhf_jax.preferences import annotators
from rlhf_jax.preferences.teacher_model import discounted_returns

OBJECTIVES: dict[str, tuple[str, ...]] = {
    "task": ("progress", "success"),
    "safety": ("collision", "clearance", "joint_limit", "speed_violation"),
    "smoothness": ("jerk",),
    "efficiency": ("time", "energy"),
}
OBJECTIVE_NAMES = tuple(OBJECTIVES)
SUB_QUESTIONS = {
    "task": "which is closer to the goal?",
    "safety": "which is safer?",
    "smoothness": "which is smoother?",
    "efficiency": "which is faster?",
}


def check_objectives(names: Sequence[str], where: str = "objectives", field: str = "objectives") -> tuple[str, ...]:
    """Distinct objective names from OBJECTIVE_NAMES, as a tuple; ConfigError naming ``field``."""
    names = tuple(names)
    if len(set(names)) != len(names) or not set(names) <= set(OBJECTIVE_NAMES):
        raise ConfigError(describe(where, field, f"distinct objectives from {list(OBJECTIVE_NAMES)}", list(names)))
    return names


def objective_mask(objective: str, component_names: Sequence[str] = REWARD_COMPONENTS) -> np.ndarray:
    """[C] 1.0 for the components of ``objective``, 0.0 elsewhere (in ``component_names`` order)."""
    check_objectives((objective,))
    return np.asarray([c in OBJECTIVES[objective] for c in component_names], np.float32)


def objective_weights(rubric: dict | None = None, objectives: Sequence[str] = OBJECTIVE_NAMES) -> np.ndarray:
    """[O, C] rubric weights restricted to each objective's components (rows sum to the rubric)."""
    w = rubric_vector(rubric)
    return np.stack([w * objective_mask(o) for o in check_objectives(objectives)])


def objective_returns(components, rubric: dict | None = None, objectives: Sequence[str] = OBJECTIVE_NAMES):
    """Per-objective gold returns: components [..., C] (per-step or per-segment sums, in
    REWARD_COMPONENTS order) -> [..., O] with R_o = Σ_{c ∈ o} w_c r_c."""
    return np.asarray(components, np.float64) @ objective_weights(rubric, objectives).T.astype(np.float64)


def objective_table(table: Any, objective: str) -> Any:
    """A shallow copy of a segment table whose rubric keeps only ``objective``'s components:
    gold_weights masked, gold_return = R_o. What a teacher reads to answer the sub-question."""
    names = tuple(getattr(table, "component_names", ()) or REWARD_COMPONENTS)
    mask = objective_mask(objective, names)
    weights = np.ones(len(names)) if getattr(table, "gold_weights", None) is None else table.gold_weights
    view = copy.copy(table)
    view.gold_weights = (np.asarray(weights, np.float64) * mask).astype(np.float32)
    steps = getattr(table, "gold_step_rewards", None)
    if steps is not None:
        view.gold_return = discounted_returns(steps, view.gold_weights).astype(np.float32)
    else:
        view.gold_return = (np.asarray(table.gold_components, np.float64) @ view.gold_weights).astype(np.float32)
    return view


def objective_seed(seed: int, objective: str) -> int:
    """The label seed of ``objective``'s sub-answers: its own stream, distinct from ``seed``'s."""
    index = OBJECTIVE_NAMES.index(objective)
    return int(np.random.SeedSequence([int(seed), 1 + index]).generate_state(1)[0])


def sub_answers(teachers: Any, table: Any, idx_a, idx_b, seed: int, objectives: Sequence[str] = OBJECTIVE_NAMES, *,
                annotator: np.ndarray | None = None, timestamp: float | None = 0.0) -> dict[str, annotators.Labels]:
    """Each objective's answers to pairs (idx_a[p], idx_b[p]): objective -> Labels [P].

    The same annotator (``annotator`` [P], as ``label_pairs`` drew it for the main question)
    answers every sub-question, with its teacher model applied to that objective's returns.
    """
    return {o: annotators.label_pairs(teachers, objective_table(table, o), idx_a, idx_b, objective_seed(seed, o),
                                      annotator=annotator, timestamp=timestamp)
            for o in check_objectives(objectives)}


def rubric_answers(answers: dict[str, annotators.Labels]) -> list[dict | None]:
    """Per-pair rubric sub-answers {objective: 0 | 0.5 | 1} (a skipped sub-question left out;
    None where every one was skipped): the LabelSet ``rubric`` column."""
    if not answers:
        return []
    n = len(next(iter(answers.values())).label)
    rows = []
    for p in range(n):
        row = {o: float(lab.label[p]) for o, lab in answers.items() if lab.keep[p]}
        rows.append(row or None)
    return rows


def question_scales(teachers: Any, table: Any, objectives: Sequence[str] = OBJECTIVE_NAMES) -> dict[str, np.ndarray]:
    """The return scale each annotator divides by per question: {"rubric": [K], objective: [K]}.

    What ``annotators.label_pairs`` computes and records (``return_scale``): a relative teacher's
    s = mean |R| over every segment of ``table`` (R_o's for objective o's sub-question), 1 for an
    absolute one. Read from label_pairs itself on one pair, so it is the teacher's own number."""
    def scales(view):
        lab = annotators.label_pairs(teachers, view, np.zeros(1, np.int64), np.zeros(1, np.int64), 0, timestamp=0.0)
        return np.asarray([p["teacher"]["return_scale"] for p in lab.provenance], np.float64)

    return {"rubric": scales(table), **{o: scales(objective_table(table, o)) for o in check_objectives(objectives)}}


def scale_weights(teachers: Any, table: Any, objectives: Sequence[str] = OBJECTIVE_NAMES) -> dict[str, float]:
    """Weights w_o = mean over annotators of s_o / s that put per-objective heads back on the scalar
    reward model's scale: a Bradley-Terry fit to σ(β ΔR / s) estimates β R / s, one to σ(β ΔR_o / s_o)
    estimates β R_o / s_o, and Σ_o R_o = R, so Σ_o (s_o / s) · β R_o / s_o = β R / s."""
    s = question_scales(teachers, table, objectives)
    return {o: float(np.mean(s[o] / s["rubric"])) for o in check_objectives(objectives)}
