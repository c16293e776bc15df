"""Validation of a PPO config (``configs/ppo.py`` and configs built on it) before anything runs.

``validate_ppo_config(config, config_file)`` raises ``ConfigError`` with one line naming the
config file, the field, what was expected and what was found, so a bad value costs no compile
and no write (``num_envs=0`` used to surface as a non-finite loss after the first chunk).
"""
from __future__ import annotations

import math
import numbers
import os

from rlhf_jax.config_checks import FieldChecker
from rlhf_jax.ensemble import AGGREGATIONS
from rlhf_jax.envs import robots as R
from rlhf_jax.envs import tasks as T
from rlhf_jax.envs.constraints import CONSTRAINTS, SAFETY_MODES
from rlhf_jax.losses import kl as K
from rlhf_jax.preferences.objectives import OBJECTIVE_NAMES

REWARD_KINDS = ("gold", "learned", "objectives")


def _check_env_and_ppo(c: FieldChecker) -> int:
    c.choice("env.robot", tuple(R.ROBOTS))
    tasks = c.get("env.tasks")
    if isinstance(tasks, str) or not tasks or any(t not in T.TASKS for t in tasks):
        c.fail("env.tasks", "a non-empty sequence of " + ", ".join(map(repr, T.TASKS)), repr(tasks))
    c.real("env.dt", 0.0, open_lo=True)
    horizon = c.integer("env.horizon")
    envs, steps = c.integer("ppo.num_envs"), c.integer("ppo.num_steps")
    for f in ("num_updates", "update_epochs"):
        c.integer(f"ppo.{f}")
    mbs = c.integer("ppo.num_minibatches")
    if (envs * steps) % mbs:
        c.fail("ppo.num_minibatches", f"a divisor of ppo.num_envs * ppo.num_steps = {envs * steps}", mbs)
    for f in ("gamma", "gae_lambda"):
        c.real(f"ppo.{f}", 0.0, 1.0)
    for f in ("clip_eps", "max_grad_norm", "adam_eps"):
        c.real(f"ppo.{f}", 0.0, open_lo=True)
    for f in ("learning_rate", "weight_decay", "vf_coef"):
        c.real(f"ppo.{f}", 0.0)
    c.real("ppo.ent_coef")
    if c.get("ppo.vf_clip") is not None:
        c.real("ppo.vf_clip", 0.0, open_lo=True)
    c.widths("ppo.value_hidden")
    if c.get("ppo.value_warmup_updates", None) is not None:
        c.integer("ppo.value_warmup_updates", lo=0)
    c.widths("model.hidden")
    if c.get("ppo.log_std_floor", None) is not None:
        c.real("ppo.log_std_floor", c.get("model.log_std_min", -5.0), c.get("model.log_std_max", 1.0))
    if c.get("log_every", None) is not None:
        c.integer("log_every")
    ref = c.get("ref_checkpoint", "")
    if ref and not os.path.isdir(ref):
        c.fail("ref_checkpoint", "'' or an SFT checkpoint directory", f"{ref!r} (not a directory)")
    return horizon


def _check_kl(c: FieldChecker) -> None:
    schedule = c.choice("kl.schedule", K.KL_SCHEDULES)
    c.choice("kl.estimator", K.KL_ESTIMATORS)
    if schedule == "annealed":  # a geometric anneal needs both ends > 0
        c.real("kl.beta", 0.0, open_lo=True)
        c.real("kl.beta_end", 0.0, open_lo=True)
        c.integer("kl.total_updates")
    else:
        c.real("kl.beta", 0.0)
    if schedule == "adaptive":
        c.real("kl.target", 0.0, open_lo=True)
        c.real("kl.horizon", 0.0, open_lo=True)


def _check_objective_heads(c: FieldChecker) -> None:
    """reward.objectives: {objective: {checkpoint, weight}}; every objective of nonzero weight names a
    reward-model directory, and at least one does."""
    heads = c.get("reward.objectives", None)
    if heads is None or not set(heads) <= set(OBJECTIVE_NAMES):
        c.fail("reward.objectives", f"a block of objectives from {list(OBJECTIVE_NAMES)}",
               None if heads is None else sorted(heads))
    used = 0
    for o in heads:
        if c.real(f"reward.objectives.{o}.weight") == 0:
            continue
        used += 1
        ckpt = c.get(f"reward.objectives.{o}.checkpoint", "")
        if not ckpt or not os.path.isdir(ckpt):
            c.fail(f"reward.objectives.{o}.checkpoint", "a reward-model directory (the head of that objective) "
                   "where its weight is not 0", repr(ckpt))
    if not used:
        c.fail("reward.objectives", "at least one objective with a nonzero weight", "every weight 0")


def _check_reward(c: FieldChecker, horizon: int) -> None:
    kind = c.choice("reward.kind", REWARD_KINDS)
    if kind == "gold":
        return
    ckpt = c.get("reward.checkpoint", "")
    c.choice("reward.aggregation", tuple(a for a in AGGREGATIONS if a != "std"))
    c.real("reward.lam")
    c.real("reward.scale")
    if kind == "objectives":  # saved heads, one per objective (the sweep's `objectives` option)
        _check_objective_heads(c)
        return
    if ckpt:  # a saved ensemble (rlhf_jax.reward_artifact); its fit fields are not read
        if not os.path.isdir(ckpt):
            c.fail("reward.checkpoint", "'' or a reward-model directory (the sweep writes reward_models/*)",
                   f"{ckpt!r} (not a directory)")
        return
    for f in ("ensemble_size", "fit_episodes", "fit_steps", "pairs_per_step"):
        c.integer(f"reward.{f}")
    length = c.integer("reward.segment_length")
    if length > horizon:
        c.fail("reward.segment_length", f"<= env.horizon = {horizon}", length)
    c.widths("reward.hidden")
    c.choice("reward.optimizer.schedule", ("constant", "cosine"))
    c.real("reward.optimizer.learning_rate", 0.0, open_lo=True)
    c.real("reward.optimizer.grad_clip", 0.0, open_lo=True)
    c.real("reward.optimizer.weight_decay", 0.0)
    c.integer("reward.optimizer.warmup_steps", lo=0)
    for f in ("margin", "label_smoothing", "center_coef"):
        c.real(f"reward.loss.{f}", 0.0, 1.0 if f == "label_smoothing" else math.inf)


def _check_safety(c: FieldChecker) -> None:
    if not c.get("safety.enabled", False):
        return
    c.choice("safety.mode", SAFETY_MODES)
    for f in ("joint_margin", "clearance"):
        c.real(f"safety.{f}", 0.0)
    c.real("safety.speed_frac", 0.0, open_lo=True)
    weights = c.get("safety.weights")
    if len(weights) != len(CONSTRAINTS) or any(not isinstance(w, numbers.Real) or w < 0 for w in weights):
        c.fail("safety.weights", f"{len(CONSTRAINTS)} numbers >= 0 ({', '.join(CONSTRAINTS)})", repr(weights))
    box = c.get("safety.workspace")
    if len(box) != 6 or any(lo >= hi for lo, hi in zip(box[:3], box[3:])):
        c.fail("safety.workspace", "6 numbers (lo x, y, z, hi x, y, z) with lo < hi", repr(box))


def validate_ppo_config(config, config_file: str = "configs/ppo.py") -> None:
    """Raises ConfigError naming the first invalid field of a PPO config; returns None if valid.

    Checks the fields ``rlhf_jax.train.ppo`` and the PPO experiments read: env, ppo (positive
    sizes, num_envs·num_steps divisible by num_minibatches, coefficients in range), model,
    kl (schedule and estimator names, the schedule's own fields), reward (kind; the in-run fit's
    fields for "learned" without a checkpoint), safety (mode, weights, workspace) and log_every.
    """
    c = FieldChecker(config, config_file)
    horizon = _check_env_and_ppo(c)
    _check_kl(c)
    _check_reward(c, horizon)
    _check_safety(c)
