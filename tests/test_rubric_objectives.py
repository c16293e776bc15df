"""A label file's rubric answers read as the objectives' sub-answers (rlhf_jax/labels/rubric_objectives.py),
on hand-built label sets: a skipped sub-question is NaN (not a tie), gold rows keep their main answer,
and the refusals name the field."""
import dataclasses

import numpy as np
import pytest

from rlhf_jax.errors import ConfigError
from rlhf_jax.labels import rubric_objectives
from tests import qc_fixtures


def _labels(rubrics, gold=None, meta=None):
    rows = [qc_fixtures.row(i, "a", 1.0, gold=bool(gold and gold[i]), gold_label=1.0) for i in range(len(rubrics))]
    return dataclasses.replace(qc_fixtures.make(rows), rubric=list(rubrics), meta=dict(meta or {}))


def test_objective_view_reads_the_sub_answer_and_leaves_skips_as_nan():
    ls = _labels([{"safety": 0.0, "task": 1.0}, {"task": 0.5}, None, {"safety": 1.0}], gold=[0, 0, 0, 1])
    safety = rubric_objectives.objective_view(ls, "safety")
    # row 1 and 2 skip safety (NaN, not 0.5); the gold row keeps its main answer (1.0), not its rubric's
    np.testing.assert_array_equal(np.isnan(safety.label), [False, True, True, False])
    assert safety.label[0] == 0.0 and safety.label[3] == 1.0
    task = rubric_objectives.objective_view(ls, "task")
    assert task.label[1] == 0.5 and np.isnan(task.label[2])
    assert ls.label.tolist() == [1.0, 1.0, 1.0, 1.0]  # the source is not modified


def test_check_counts_answering_training_rows_and_refuses_unknown_keys_and_unanswered_objectives():
    ls = _labels([{"safety": 0.0}, {"safety": 1.0, "task": 1.0}, {"task": 0.0}, {"smoothness": 1.0}],
                 gold=[0, 0, 0, 1], meta={"rubric": ["avoids the obstacle better"]})
    assert rubric_objectives.check_rubric_objectives(ls, ("safety", "task"), "cfg.py", "conditions", "f") == \
        {"safety": 2, "task": 2}
    with pytest.raises(ConfigError, match=r"no answers to \['smoothness'\]"):  # only a gold row answers it
        rubric_objectives.check_rubric_objectives(ls, ("smoothness",), "cfg.py", "conditions", "f")
    ls.rubric[0] = {"comfort": 1.0}
    with pytest.raises(ConfigError, match=r"rubric keys \['comfort'\]"):
        rubric_objectives.check_rubric_objectives(ls, ("task",), "cfg.py", "conditions", "f")
    ls.rubric[0] = {"avoids the obstacle better": 0.5}  # a free-text question the header names is accepted
    assert rubric_objectives.free_text_questions(ls) == ("avoids the obstacle better",)
    assert rubric_objectives.check_rubric_objectives(ls, ("task",), "cfg.py", "conditions", "f") == {"task": 2}
