"""Label sources: where the labels of a sweep condition come from.

A sweep condition is a label source. Anything with a ``name`` and

    label(segments, idx_a [P], idx_b [P], seed) -> annotators.Labels   (label, keep, provenance)

is one, so the compiled sweep trains on simulated teachers, human label files, QC-filtered
pools, SFT-rollout data or pseudo-labels through the same interface. ``keep`` marks the pairs the
source answered (a skipping teacher, a QC filter or a missing label leaves ``keep = False``);
the sweep draws its nested subsets from the kept pairs only.

Today's source is a simulated teacher preset (``TeacherSource``); ``as_label_source`` turns a
preset name into one, so configs keep naming conditions by string.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rlhf_jax.data import annotators
from rlhf_jax.data.errors import ConfigError, describe


@runtime_checkable
class LabelSource(Protocol):
    """The interface every label source implements."""

    name: str

    def label(self, segments: Any, idx_a: np.ndarray, idx_b: np.ndarray, seed: int) -> annotators.Labels:
        ...


@dataclasses.dataclass(frozen=True)
class TeacherSource:
    """A simulated annotator preset (``annotators.TEACHER_PRESETS``) labelling the pairs."""

    preset: str

    @property
    def name(self) -> str:
        return self.preset

    def label(self, segments, idx_a, idx_b, seed: int) -> annotators.Labels:
        # timestamp=0: labels (and so results) are a pure function of the seed.
        return annotators.label_pairs(self.preset, segments, idx_a, idx_b, seed=seed, timestamp=0.0)


def as_label_source(spec: Any, field: str = "conditions", where: str = "label source") -> LabelSource:
    """A LabelSource from a source object or a teacher-preset name (ConfigError naming ``field``)."""
    if isinstance(spec, LabelSource):
        return spec
    if isinstance(spec, str) and spec in annotators.TEACHER_PRESETS:
        return TeacherSource(spec)
    raise ConfigError(describe(where, field,
                               f"teacher presets from {sorted(annotators.TEACHER_PRESETS)} or a LabelSource",
                               repr(spec)))
