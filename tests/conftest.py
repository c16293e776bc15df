"""Shared session fixtures: the `tiny` RLDS dataset (built once per session) and its pairs."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_data_root(tmp_path_factory):
    """Data-dir root holding the session's tiny dataset (what `data_dir` config fields take)."""
    return str(tmp_path_factory.mktemp("rlds_tiny"))


@pytest.fixture(scope="session")
def tiny_dataset_dir(tiny_data_root):
    """TFDS builder dir of configs/dataset.py:tiny, built into a session temp dir.

    The persistent JAX compilation cache (under the default data dir) makes the rollout compile a
    one-off per machine; the dataset itself is rebuilt each session to test the build path.
    """
    from rlhf_jax.data import dataset
    dataset.enable_compilation_cache()
    return dataset.ensure_dataset("tiny", tiny_data_root)


@pytest.fixture(scope="session")
def tiny_episodes(tiny_dataset_dir):
    """The tiny dataset's episodes, read back through tfds.builder_from_directory."""
    from rlhf_jax.data import rlds
    return rlds.load_rlds(tiny_dataset_dir)


@pytest.fixture(scope="session")
def tiny_preference_data(tiny_dataset_dir, tiny_episodes):
    """PreferenceData of the tiny dataset with configs/dataset.py:tiny preference defaults."""
    from rlhf_jax.data import dataset
    return dataset.load_preference_data("tiny", path=tiny_dataset_dir, episodes=tiny_episodes)


@pytest.fixture(scope="session")
def tiny_sweep_reference(tmp_path_factory, tiny_data_root, tiny_dataset_dir):
    """``results.csv`` rows of ``subprocess_utils.tiny_sweep_cmd`` run as one process on one
    device: the reference every multi-device and multi-process sweep test compares against."""
    import os

    from tests.results_compare import read_rows
    from tests.subprocess_utils import run_checked, tiny_sweep_cmd

    del tiny_dataset_dir  # built (once per session) into tiny_data_root
    workdir = str(tmp_path_factory.mktemp("sweep_reference") / "run")
    run_checked(tiny_sweep_cmd(tiny_data_root, workdir))
    return read_rows(os.path.join(workdir, "results.csv"))
