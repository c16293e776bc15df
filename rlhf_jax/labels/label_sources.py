"""Label sources: where the labels of a sweep condition come from.

A sweep condition is a label source. Anything with a ``name`` and

    label(segments, idx_a [P], idx_b [P], seed) -> annotators.Labels   (label, keep, provenance)

is one, so the compiled sweep trains on simulated teachers, human label files, QC-filtered
pools, SFT-rollout data or pseudo-labels through the same interface. ``keep`` marks the pairs the
source answered (a skipping teacher, a QC filter or a missing label leaves ``keep = False``);
the sweep draws its nested subsets from the kept pairs only.

Sources: a simulated teacher preset (``TeacherSource``), a simulated team under a QC policy and a
human label file (``rlhf_jax.labels.qc_sources``: condition strings ``qc:<pool>/<policy>`` and
``file:<path>``). ``as_label_source`` turns a condition string into one, so configs name
conditions by string. Every source returns its answers as a long-format ``LabelSet``
(``Labels.label_set``, hashed into sweep results and reward-model artefacts) and their cost.

A teacher preset and a label file also answer the rubric objectives' sub-questions,
``sub_labels(segments, idx_a, idx_b, seed, objectives) -> {objective: Labels}``, on which a
per-objective sweep trains its heads.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rlhf_jax.preferences import annotators, objectives

from rlhf_jax.labels import costs, label_pools, label_sets
from rlhf_jax.errors import ConfigError, describe


@runtime_checkable
class LabelSource(Protocol):
    """The interface every label source implements."""

    name: str

    def label(self, segments: Any, idx_a: np.ndarray, idx_b: np.ndarray, seed: int) -> annotators.Labels:
        ...


@dataclasses.dataclass(frozen=True)
class TeacherSource:
    """A simulated annotator preset (``annotators.TEACHER_PRESETS``) labelling the pairs.

    objectives: the annotator also answers these objectives' sub-questions
    (``preferences.objectives``): ``Labels.sub_answers`` and the label set's ``rubric`` column
    {objective: 0 | 0.5 | 1}. The main answers do not depend on them (their own streams).
    """

    preset: str
    objectives: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.preset

    def label(self, segments, idx_a, idx_b, seed: int) -> annotators.Labels:
        teachers = annotators.resolve_teachers(self.preset)
        lab = annotators.label_pairs(teachers, segments, idx_a, idx_b, seed=seed, timestamp=0.0)
        # Not the wall clock: timestamps (and so label-set hashes) are a pure function of the seed.
        ls = label_pools.as_label_set(teachers, segments, idx_a, idx_b, lab, seed)
        lab.timestamp = ls.timestamp
        ls.meta = {"source": self.name, "r": 1}
        if self.objectives:
            lab.sub_answers = objectives.sub_answers(teachers, segments, idx_a, idx_b, seed, self.objectives,
                                                     annotator=lab.annotator)
            ls.rubric = objectives.rubric_answers(lab.sub_answers)
        lab.label_set, lab.cost = ls, costs.label_cost(ls)
        return lab

    def sub_labels(self, segments, idx_a, idx_b, seed: int, objectives) -> dict[str, annotators.Labels]:
        """Each objective's sub-answers to the pairs: objective -> Labels [P] (skipped
        sub-questions keep = False), carrying the label set (rubric column) and cost of the
        labelling that asked them, as a label file's ``sub_labels`` does."""
        lab = dataclasses.replace(self, objectives=tuple(objectives)).label(segments, idx_a, idx_b, seed)
        return {o: dataclasses.replace(lab.sub_answers[o], label_set=lab.label_set, cost=lab.cost)
                for o in objectives}


def as_label_source(spec: Any, field: str = "conditions", where: str = "label source") -> LabelSource:
    """A LabelSource from a source object or a teacher-preset name (ConfigError naming ``field``)."""
    if isinstance(spec, LabelSource):
        return spec
    if isinstance(spec, str) and spec in annotators.TEACHER_PRESETS:
        return TeacherSource(spec)
    if isinstance(spec, str):
        from rlhf_jax.labels import qc_sources  # pylint: disable=g-import-not-at-top  (imports this module's deps)
        source = qc_sources.parse_condition(spec, field, where)
        if source is not None:
            return source
    raise ConfigError(describe(where, field,
                               f"teacher presets from {sorted(annotators.TEACHER_PRESETS)}, "
                               "'qc:<pool>/<policy>', 'file:<path>' or a LabelSource", repr(spec)))


def safe_name(name: str) -> str:
    """A condition name usable as a file name (qc:crowd/majority -> qc_crowd_majority)."""
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name).strip("_") or "condition"


def provenance_record(train: annotators.Labels, val: annotators.Labels, name: str, label_seed: int) -> dict:
    """What a sweep result records about a condition's labels: its name, seed, the content hash
    of every answer it used (train and validation pools) and what they cost."""
    sets = [lab.label_set for lab in (train, val) if lab.label_set is not None]
    cost = costs.add_costs(*(lab.cost for lab in (train, val) if lab.cost is not None))
    return {"name": name, "label_seed": int(label_seed),
            "label_set_hash": label_sets.concat(sets).content_hash() if sets else None,
            "answers": cost["answers"], "gold_answers": cost["gold_answers"], "dollars": cost["dollars"]}
