"""The relations between a PPO config's fields (``configs/ppo.py`` and configs built on it), checked
before anything runs.

Each field's own domain (type, range, finiteness, choices) is its record in ``configs/ppo.py``
``FIELDS``, checked first (by ``experiments.cli.run_main`` and ``experiments.stages.ppo.validate``,
through ``rlhf_jax.config_schema``). ``validate_ppo_config(config, config_file)`` adds what one
record cannot say: num_minibatches divides num_envs·num_steps, the schedule-specific KL fields, the
in-run fit's segment length within the horizon, the floor within the model's log-σ clip, a
workspace box with lo < hi, and checkpoint paths that are directories. It raises ``ConfigError``
with one line naming the config file, the field, what was expected and what was found, so a bad
value costs no compile and no write (``num_envs=0`` used to surface as a non-finite loss after the
first chunk). Fields of a switched-off part (a gold reward's fit, disabled safety) are not read.
"""
from __future__ import annotations

import os

from rlhf_jax.config_checks import FieldChecker
from rlhf_jax.preferences.objectives import OBJECTIVE_NAMES


def _check_sizes(c: FieldChecker) -> None:
    envs, steps = c.integer("ppo.num_envs"), c.integer("ppo.num_steps")
    mbs = c.integer("ppo.num_minibatches")
    if (envs * steps) % mbs:
        c.fail("ppo.num_minibatches", f"a divisor of ppo.num_envs * ppo.num_steps = {envs * steps}", mbs)
    if c.get("ppo.log_std_floor", None) is not None:
        c.real("ppo.log_std_floor", c.get("model.log_std_min", -5.0), c.get("model.log_std_max", 1.0))
    ref = c.get("ref_checkpoint", "")
    if ref and not os.path.isdir(ref):
        c.fail("ref_checkpoint", "'' or an SFT checkpoint directory", f"{ref!r} (not a directory)")


def _check_kl(c: FieldChecker) -> None:
    if c.get("kl.schedule") == "annealed":  # a geometric anneal needs both ends > 0
        c.real("kl.beta", 0.0, open_lo=True)
        c.real("kl.beta_end", 0.0, open_lo=True)


def _check_objective_heads(c: FieldChecker) -> None:
    """reward.objectives: {objective: {checkpoint, weight}} (each weight's domain is its FIELDS
    record); the block names objectives only, every objective of nonzero weight names a
    reward-model directory, and at least one does."""
    heads = c.get("reward.objectives", None)
    if heads is None or not set(heads) <= set(OBJECTIVE_NAMES):
        c.fail("reward.objectives", f"a block of objectives from {list(OBJECTIVE_NAMES)}",
               None if heads is None else sorted(heads))
    used = 0
    for o in heads:
        if c.get(f"reward.objectives.{o}.weight") == 0:
            continue
        used += 1
        ckpt = c.get(f"reward.objectives.{o}.checkpoint", "")
        if not ckpt or not os.path.isdir(ckpt):
            c.fail(f"reward.objectives.{o}.checkpoint", "a reward-model directory (the head of that objective) "
                   "where its weight is not 0", repr(ckpt))
    if not used:
        c.fail("reward.objectives", "at least one objective with a nonzero weight", "every weight 0")


def _check_reward(c: FieldChecker) -> None:
    kind = c.get("reward.kind")
    if kind == "gold":
        return
    if kind == "objectives":  # saved heads, one per objective (the sweep's `objectives` option)
        _check_objective_heads(c)
        return
    ckpt = c.get("reward.checkpoint", "")
    if ckpt:  # a saved ensemble (rlhf_jax.reward_artifact); its fit fields are not read
        if not os.path.isdir(ckpt):
            c.fail("reward.checkpoint", "'' or a reward-model directory (the sweep writes reward_models/*)",
                   f"{ckpt!r} (not a directory)")
        return
    horizon, length = c.integer("env.horizon"), c.integer("reward.segment_length")
    if length > horizon:
        c.fail("reward.segment_length", f"<= env.horizon = {horizon}", length)


def _check_safety(c: FieldChecker) -> None:
    if not c.get("safety.enabled", False):
        return
    box = c.get("safety.workspace")
    if len(box) != 6 or any(lo >= hi for lo, hi in zip(box[:3], box[3:])):
        c.fail("safety.workspace", "6 numbers (lo x, y, z, hi x, y, z) with lo < hi", repr(box))


def validate_ppo_config(config, config_file: str = "configs/ppo.py") -> None:
    """Raises ConfigError naming the first PPO field that breaks a relation; returns None if none does.

    Run after the fields' own domains (``configs/ppo.py`` FIELDS); see the module docstring."""
    c = FieldChecker(config, config_file)
    _check_sizes(c)
    _check_kl(c)
    _check_reward(c)
    _check_safety(c)
