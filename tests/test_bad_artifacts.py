"""Artefacts given where another kind is expected, empty or missing, through the real entry
points (``main(argv)`` in-process, nothing trained): exit code 2, one error line naming the
config file, the field, the path and what was expected, and nothing written."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from experiments import online_rlhf, overoptimization, ppo_rlhf, train_dpo
from rlhf_jax.checkpoint import Checkpointer, save_policy
from tests.bad_input_utils import fails_cleanly, snapshot


def _fails_cleanly(capsys, main, argv, *needles) -> str:
    return fails_cleanly(capsys, main, argv, None, *needles)


def _save(directory: str, kind: str, meta: dict, legacy: bool = False) -> str:
    """A tiny checkpoint of ``kind``; ``legacy`` drops the kind record, as older saves lacked it."""
    ckpt = Checkpointer(directory, max_to_keep=1, kind=kind)
    ckpt.save(0, {"w": np.ones((2, 3), np.float32)}, meta)
    ckpt.close()
    if legacy:
        path = os.path.join(directory, "0", "meta", "metadata")
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        del record["artifact"], record["format_version"]
        with open(path, "w", encoding="utf-8") as f:
            json.dump(record, f)
    return directory


_REWARD_META = {"features": {}, "members": 1, "model": {"kind": "mlp"}}
_POLICY_META = {"model": {"kind": "mlp"}, "action_clip": 0.9}


def _artefact(tmp_path, what: str) -> str:
    """The path of one kind of bad artefact."""
    path = str(tmp_path / "given")
    if what == "empty":
        os.makedirs(path)
    elif what == "missing file":  # a directory with a stray file and no checkpoint step
        os.makedirs(path)
        (tmp_path / "given" / "README").write_text("x")
    elif what == "reward model":
        _save(path, "reward_model", _REWARD_META)
    elif what == "legacy reward model":
        _save(path, "reward_model", _REWARD_META, legacy=True)
    elif what == "train state":
        _save(path, "train_state", {"chunk": 1})
    elif what == "policy":
        save_policy(path, {"params": {"w": np.ones(2, np.float32)}}, _POLICY_META)
    return path


FOUND = {"empty": "an empty directory", "missing file": "no checkpoint step", "reward model": "a reward_model checkpoint",
         "legacy reward model": "a reward_model checkpoint (saved without a kind record)",
         "train state": "a train_state checkpoint", "policy": "a policy checkpoint"}
POLICY_CASES = ["empty", "missing file", "reward model", "legacy reward model", "train state"]


@pytest.mark.parametrize("what", POLICY_CASES)
def test_ppo_ref_checkpoint_must_be_a_policy(capsys, tmp_path, what):
    given, workdir = _artefact(tmp_path, what), str(tmp_path / "run")
    before = snapshot(given)
    _fails_cleanly(capsys, ppo_rlhf.main, ["--config=configs/ppo.py:quick", "--config.reward.kind=gold",
                                           f"--config.ref_checkpoint={given}", f"--workdir={workdir}"],
                   "configs/ppo.py: field 'ref_checkpoint'", "expected a policy checkpoint", FOUND[what], given)
    assert not os.path.exists(workdir) and snapshot(given) == before


@pytest.mark.parametrize("what", ["empty", "reward model"])
def test_online_ref_checkpoint_must_be_a_policy(capsys, tmp_path, what):
    given, workdir = _artefact(tmp_path, what), str(tmp_path / "run")
    _fails_cleanly(capsys, online_rlhf.main, ["--config=configs/online_rlhf.py:quick", "--config.reference=sft",
                                              f"--config.ref_checkpoint={given}", f"--workdir={workdir}"],
                   "configs/online_rlhf.py: field 'ref_checkpoint'", "expected a policy checkpoint", FOUND[what])
    assert not os.path.exists(workdir)


@pytest.mark.parametrize("what", ["empty", "train state"])
def test_dpo_sft_workdir_must_hold_a_policy(capsys, tmp_path, what):
    sft_workdir, workdir = tmp_path / "sft", str(tmp_path / "run")
    os.makedirs(sft_workdir / "checkpoints")
    os.replace(_artefact(tmp_path, what), sft_workdir / "checkpoints" / "sft")
    _fails_cleanly(capsys, train_dpo.main, ["--config=configs/dpo.py:quick", f"--config.sft_workdir={sft_workdir}",
                                            f"--workdir={workdir}"],
                   "configs/dpo.py: field 'sft_workdir'", "expected a policy checkpoint", FOUND[what])
    assert not os.path.exists(workdir)


@pytest.mark.parametrize("what", ["policy", "train state", "empty"])
def test_ppo_reward_checkpoint_must_be_a_reward_model(capsys, tmp_path, what):
    given, workdir = _artefact(tmp_path, what), str(tmp_path / "run")
    _fails_cleanly(capsys, ppo_rlhf.main, ["--config=configs/ppo.py:quick", "--config.reward.kind=learned",
                                           f"--config.reward.checkpoint={given}", f"--workdir={workdir}"],
                   "configs/ppo.py: field 'reward.checkpoint'", "expected a reward-model artefact", FOUND[what])
    assert not os.path.exists(workdir)


@pytest.mark.parametrize("sft, rm, needles", [
    ("empty", "reward model", ("expected a policy checkpoint", "an empty directory")),
    ("policy", "policy", ("expected a reward-model artefact", "a policy checkpoint")),
])
def test_overoptimization_pipeline_workdir_artefacts_are_checked(capsys, tmp_path, sft, rm, needles):
    pipeline, workdir = tmp_path / "pipeline", str(tmp_path / "run")
    os.makedirs(pipeline / "sft" / "checkpoints")
    os.makedirs(pipeline / "reward_model" / "seed_0")
    os.replace(_artefact(tmp_path, sft), pipeline / "sft" / "checkpoints" / "sft")
    os.replace(_artefact(tmp_path, rm), pipeline / "reward_model" / "seed_0" / "rm")
    (pipeline / "reward_model" / "seed_0" / "stage.json").write_text(json.dumps({"saved": ["rm"]}))
    _fails_cleanly(capsys, overoptimization.main, ["--config=configs/overoptimization.py:quick_from_sft",
                                                   f"--config.pipeline_workdir={pipeline}", f"--workdir={workdir}"],
                   "field 'pipeline_workdir'", *needles)
    assert not os.path.exists(workdir)
