"""A label file's rubric answers as the sub-answers of the rubric's objectives.

    check_rubric_objectives(ls, objectives, where, field, source) -> {objective: answered rows}
    objective_view(ls, objective) -> LabelSet whose training answers are that objective's

The labelling page writes each objective's sub-answer to the row's ``rubric`` column under the
objective's name ({"safety": 0.0}: the right segment is safer; a skipped sub-question left out),
beside the answers to its free-text rubric questions, which the file's header names (meta
"rubric"). Simulated annotators write their sub-answers the same way (``TeacherSource``).

A rubric key that is neither an objective of ``preferences.objectives`` nor one of the file's
free-text questions is refused (a misspelt or unknown objective would otherwise be dropped
silently), as is an objective none of the file's training rows answers.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from rlhf_jax.errors import ConfigError, describe
from rlhf_jax.labels.label_sets import LabelSet
from rlhf_jax.preferences.objectives import OBJECTIVE_NAMES


def free_text_questions(ls: LabelSet) -> tuple[str, ...]:
    """The free-text rubric questions the file's header names (meta "rubric"; none if absent)."""
    questions = ls.meta.get("rubric") or ()
    return tuple(str(q) for q in questions) if isinstance(questions, (list, tuple)) else ()


def check_rubric_objectives(ls: LabelSet, objectives: Sequence[str], where: str, field: str,
                            source: str) -> dict[str, int]:
    """{objective: training rows that answer it} for ``objectives``; ConfigError naming ``where``'s
    ``field`` for a rubric key that is no known objective (nor a free-text question of the file),
    or an objective no training row answers."""
    free = set(free_text_questions(ls))
    known = set(OBJECTIVE_NAMES) | free
    keys = sorted({str(k) for row in ls.rubric if row for k in row})
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ConfigError(describe(where, field, f"rubric answers of label file {source!r} keyed by objectives "
                                   f"from {list(OBJECTIVE_NAMES)} (or the file's free-text questions "
                                   f"{sorted(free)})", f"rubric keys {unknown}"))
    train = ~np.asarray(ls.gold, bool)
    answered = {o: int(sum(1 for row, t in zip(ls.rubric, train) if t and row and o in row)) for o in objectives}
    missing = [o for o, n in answered.items() if n == 0]
    if missing:
        raise ConfigError(describe(where, field, f"objectives that training rows of label file {source!r} answer "
                                   f"(its rubric keys {[k for k in keys if k in OBJECTIVE_NAMES]})",
                                   f"no answers to {missing}"))
    return answered


def objective_view(ls: LabelSet, objective: str) -> LabelSet:
    """``ls`` whose training rows answer ``objective``'s sub-question: label = the row's
    rubric[objective], NaN (a skip) where the row leaves it out. Gold rows keep their answer to
    the main question, so a QC policy judges an annotator by its gold accuracy as for the scalar
    labels; the rubric, annotators and meta are unchanged (the same provenance)."""
    label = np.array([lab if gold else (row or {}).get(objective, np.nan)
                      for lab, gold, row in zip(ls.label, ls.gold, ls.rubric)], np.float64)
    return dataclasses.replace(ls, label=label, rubric=list(ls.rubric), annotators=dict(ls.annotators),
                               meta=dict(ls.meta))
