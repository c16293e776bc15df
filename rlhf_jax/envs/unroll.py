"""The one rollout program: a policy stepping a batch of simulated environments under `lax.scan`.

Every rollout in the codebase -- scripted-policy dataset generation, policy evaluation, the
expert / learned-reward evaluation, π_SFT rollouts for stage-2 data and DAgger, PPO's batches --
calls `unroll`, in the spirit of brax's ``generate_unroll``. Callers keep their own random
streams: they build the per-step inputs ``xs`` [T, B, ...] (keys, uniforms, noise) exactly as
before and pass them in; `unroll` hands x_t to the policy and, for auto-reset, to ``reset_fn``.

One step, over an EnvState [B] (the simulator's per-environment functions vmapped inside)::

    obs = observe(state)                           # observation before the action
    action, extras = policy_fn(x_t, state, obs)    # action [B, dof] rad/s, extras: dict of [B, ...]
    next_state, next_obs, components, done = step(state, action)
    reward = reward_fn(transition)                 # optional, [B]
    state' = reset_fn(x_t) where done else next_state   # optional auto-reset

What is kept per step is the caller's choice (``record``); everything else is dead code to XLA.
Compiled programs built on `unroll` share one cache, `compiled`.
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Sequence, Union

import jax
import jax.numpy as jnp

from rlhf_jax.envs import robots as R
from rlhf_jax.envs import simulator as S


class Transition(NamedTuple):
    """One step of B environments, as the reward and record functions see it.

    x: the step's input (x_t of ``xs``); state, next_state: EnvState [B] before and after the
    step (next_state before any auto-reset); obs, next_obs: observation dicts [B, ...] of them;
    action: [B, dof] rad/s as executed; extras: the policy's dict of [B, ...]; components:
    [B, C] gold reward components; done: [B] time limit reached; reward: [B] (None without a
    reward function).
    """

    x: object
    state: S.EnvState
    obs: dict
    action: jax.Array
    extras: dict
    next_state: S.EnvState
    next_obs: dict
    components: jax.Array
    done: jax.Array
    reward: jax.Array | None


Record = Union[Sequence[str], Callable[[Transition], dict]]


def recorded(record: Record, transition: Transition) -> dict:
    """The per-step dict kept by `unroll`: ``record(transition)`` when it is a function, else
    {name: value} for each name, a Transition field or a key of the policy's extras."""
    if callable(record):
        return record(transition)
    fields = transition._asdict()
    out = {}
    for name in record:
        value = fields.get(name, transition.extras.get(name))
        if value is None:
            raise KeyError(f"cannot record {name!r}: not a Transition field {Transition._fields} and not in "
                           f"the policy's extras {sorted(transition.extras)}")
        out[name] = value
    return out


def where_done(done, fresh: S.EnvState, state: S.EnvState) -> S.EnvState:
    """Per environment, ``fresh`` where done [B] else ``state`` (EnvState [B] each)."""
    return jax.tree.map(lambda r, s: jnp.where(done.reshape((-1,) + (1,) * (s.ndim - 1)), r, s), fresh, state)


def unroll(robot: R.Robot, policy_fn: Callable, state: S.EnvState, xs, *, dt: float, horizon: int,
           image: bool = False, length: int | None = None, reward_fn: Callable | None = None,
           reset_fn: Callable | None = None, record: Record = ("obs", "action", "components")):
    """Steps B environments of one arm len(xs) (or ``length``) times: the only env-stepping scan.

    policy_fn(x_t, state [B], obs [B]) -> (action [B, dof] rad/s, extras dict of [B, ...]);
    reward_fn(Transition) -> [B] (recorded as "reward"); reset_fn(x_t) -> EnvState [B], used for
    the environments whose episode just hit the time limit (no reset_fn: they keep stepping).
    xs: pytree with leading [T, B, ...] (None with ``length``). Returns (EnvState [B] after the
    last step, the recorded dict with leaves [T, B, ...]; see `recorded` and `batch_major`).
    """
    observe = jax.vmap(functools.partial(S.observe_state, robot, image))
    step = jax.vmap(functools.partial(S.step_state, robot, dt, horizon, image))

    def body(state, x):
        obs = observe(state)
        action, extras = policy_fn(x, state, obs)
        next_state, next_obs, components, done = step(state, action)
        transition = Transition(x=x, state=state, obs=obs, action=action, extras=extras, next_state=next_state,
                                next_obs=next_obs, components=components, done=done, reward=None)
        if reward_fn is not None:
            transition = transition._replace(reward=reward_fn(transition))
        if reset_fn is not None:
            next_state = where_done(done, reset_fn(x), next_state)
        return next_state, recorded(record, transition)

    return jax.lax.scan(body, state, xs, length=length)


def batch_major(tree):
    """Leaves [T, B, ...] -> [B, T, ...] (episode-major, as datasets and metrics store them)."""
    return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), tree)


def time_major(tree):
    """Leaves [B, T, ...] -> [T, B, ...]: per-episode step inputs arranged as `unroll`'s xs."""
    return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), tree)


def reset_batch(robot: R.Robot, task_ids, keys) -> S.EnvState:
    """Initial EnvState [B] of one arm: task_ids [B] int32 (or [] for all), keys [B]."""
    if jnp.ndim(task_ids) == 0:
        return jax.vmap(lambda k: S.reset_state(robot, task_ids, k))(keys)
    return jax.vmap(lambda t, k: S.reset_state(robot, t, k))(task_ids, keys)


@functools.lru_cache(maxsize=128)
def compiled(build: Callable, *static) -> Callable:
    """``jax.jit(build(*static))``, cached by the builder and its static arguments.

    The one cache of compiled rollout programs: each caller's builder takes what fixes shapes and
    program structure (arm, dt, horizon, batch size, Flax modules, flags) and returns a function of
    arrays only, so parameters, tasks and keys stay traced and reuse the program.
    """
    return jax.jit(build(*static))
