"""Data layer: RLDS episodes (write/read), the cached embedded dataset, preference pairs,
simulated annotators and label files.

TensorFlow is imported only inside the functions that read or write TFRecords.
"""
from rlhf_jax.data.dataset import (default_data_dir, ensure_dataset, load_episodes,
                                   load_preference_data)
from rlhf_jax.data.errors import (ConfigError, DataError, LabelFileError, NonFiniteError,
                                  SchemaError, SegmentError, SplitError, UnknownEpisodeError)
from rlhf_jax.data.rlds import load_metadata, load_rlds, write_rlds

__all__ = [
    "default_data_dir", "ensure_dataset", "load_episodes", "load_preference_data",
    "ConfigError", "DataError", "LabelFileError", "NonFiniteError", "SchemaError",
    "SegmentError", "SplitError", "UnknownEpisodeError", "load_metadata", "load_rlds",
    "write_rlds",
]
