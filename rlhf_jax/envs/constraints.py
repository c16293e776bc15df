"""Rule-based safety constraints on simulator state: violation indicators, penalties, projection.

PPO counts every constraint's violations in its rollouts (``rlhf_jax.train.ppo``); a constraint
with a non-zero weight also costs reward, and mode "projection" clips the actions instead.
"""
from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from rlhf_jax.errors import ConfigError, describe
from rlhf_jax.envs import simulator as S

CONSTRAINTS = ("joint_limit", "speed", "workspace", "obstacle")
SAFETY_MODES = ("penalty", "projection")
_COL = {c: i for i, c in enumerate(S.REWARD_COMPONENTS)}


class SafetySpec(NamedTuple):
    """Rule-based constraints; a weight of 0 disables a constraint's penalty (it is still counted).

    joint_margin: rad from a joint limit; speed_frac: max |action| in units of qd_max;
    workspace: [6] box (lo xyz, hi xyz) the flange must stay in; clearance: m between the
    flange and the obstacle surface (link contact counts via the gold collision component).
    weights: [4] penalty per violated step, CONSTRAINTS order. mode: "penalty" subtracts
    Σ_k w_k·1[violation_k] from the reward; "projection" also clips actions to speed_frac (the
    speed constraint then holds by construction).
    """

    joint_margin: float = 0.05
    speed_frac: float = 0.8
    workspace: tuple = (0.0, -0.8, 0.0, 0.9, 0.8, 1.0)
    clearance: float = 0.02
    weights: tuple = (1.0, 1.0, 1.0, 1.0)
    mode: str = "penalty"


def safety_spec_from_config(c) -> SafetySpec | None:
    """SafetySpec from a ConfigDict/dict (None or enabled=False gives None)."""
    if c is None or not c.get("enabled", False):
        return None
    d = {k: c[k] for k in SafetySpec._fields if k in c}
    d = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in d.items()}
    if d.get("mode", "penalty") not in SAFETY_MODES:
        raise ConfigError(describe("safety", "safety.mode", " or ".join(map(repr, SAFETY_MODES)),
                                   repr(d["mode"])))
    return SafetySpec(**d)


def project_action(spec: SafetySpec, action_norm):
    """Hard constraint by projection: clip normalised actions [..., A] to ±speed_frac."""
    return jnp.clip(action_norm, -spec.speed_frac, spec.speed_frac)


def constraint_violations(spec: SafetySpec, robot, state: S.EnvState, components, action_norm):
    """Per-step violation indicators [B, 4] (CONSTRAINTS order) of the step that reached `state`.

    state: EnvState [B] after the step; components [B, C]; action_norm [B, A] requested action
    in units of qd_max (before any projection, so a projected policy's *intent* is visible).
    """
    q_min, q_max = jnp.asarray(robot.q_min), jnp.asarray(robot.q_max)
    to_limit = jnp.minimum(state.q - q_min, q_max - state.q).min(-1)
    joint = to_limit < spec.joint_margin
    speed = (jnp.abs(action_norm) > spec.speed_frac + 1e-6).any(-1)
    box = jnp.asarray(spec.workspace, jnp.float32)
    outside = ((state.eef_pos < box[:3]) | (state.eef_pos > box[3:])).any(-1)
    gap = jnp.linalg.norm(state.eef_pos - state.obstacle[..., :3], axis=-1) - state.obstacle[..., 3]
    obstacle = (gap < spec.clearance) | (components[..., _COL["collision"]] < 0) & (state.obstacle[..., 3] > 0)
    return jnp.stack([joint, speed, outside, obstacle], -1).astype(jnp.float32)


def constraint_penalty(spec: SafetySpec, violations):
    """Σ_k w_k·v_k per step: violations [B, 4] -> [B] (≥ 0; subtract it from the reward)."""
    return violations @ jnp.asarray(spec.weights, jnp.float32)
