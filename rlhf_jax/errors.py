"""One exception hierarchy for every data-layer failure.

All errors derive from `DataError(ValueError)`, so callers can catch the whole family with
one `except DataError` (or keep catching `ValueError`). Messages name the file (or dataset
directory), the field, what was expected and what was found, so a bad input is fixed from the
message alone.
"""
from __future__ import annotations

from typing import Any


class DataError(ValueError):
    """Base class of every data-layer error."""


class SchemaError(DataError):
    """A dataset or episode does not have the RLDS schema: missing key, wrong dtype or shape."""


class NonFiniteError(DataError):
    """NaN or Inf where finite numbers are required (observations, actions, rewards)."""


class LabelFileError(DataError):
    """A preference-label file is malformed: missing field, bad value, bad type."""


class UnknownEpisodeError(LabelFileError):
    """A label refers to an episode_id that is not in the dataset."""


class SegmentError(DataError):
    """A segment does not fit its episode (runs past its end, or is longer than every episode)."""


class SplitError(DataError):
    """A split is empty, or more pairs were requested than the split can supply."""


class ConfigError(DataError):
    """An unknown config variant or an invalid config value."""


class ArtifactError(DataError):
    """A saved artefact (policy, reward model, training state) that is missing, empty, unreadable,
    of another kind, or whose shapes do not fit the run restoring it.

    ``path``, ``expected`` and ``found`` are kept apart so a config validator can name its own
    field: ``describe(config_file, field, err.expected, err.found)``.
    """

    def __init__(self, path: str, expected: str, found: str):
        self.path, self.expected, self.found = path, expected, found
        super().__init__(f"{path}: expected {expected}, found {found}")


def describe(where: str, field: str, expected: Any, got: Any) -> str:
    """Uniform message body: `<where>: field '<field>': expected <expected>, got <got>`."""
    return f"{where}: field '{field}': expected {expected}, got {got}"
