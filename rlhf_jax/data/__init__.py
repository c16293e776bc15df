"""Episodes: RLDS write/read, Open X-Embodiment, LeRobot v3.0/v2.1 (read) and v3.0 (write), the
cached embedded dataset and its generation, and rollouts of learned policies as episodes.

TensorFlow is imported only inside the functions that read or write TFRecords.
"""
from rlhf_jax.data.dataset import (default_data_dir, ensure_dataset, load_episodes,
                                   load_preference_data)
from rlhf_jax.data.rlds import load_metadata, load_rlds, write_rlds

__all__ = ["default_data_dir", "ensure_dataset", "load_episodes", "load_preference_data", "load_metadata",
           "load_rlds", "write_rlds"]
