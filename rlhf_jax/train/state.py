"""TrainState: the pytree every update function consumes and returns."""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
    """params are optimised; ``norm`` (input statistics) and ``rng`` ride along unoptimised."""

    step: jax.Array
    params: Any
    norm: Any
    opt_state: Any
    rng: jax.Array

    @classmethod
    def create(cls, variables: dict, tx: optax.GradientTransformation, rng: jax.Array) -> "TrainState":
        params = variables["params"]
        return cls(step=jnp.zeros((), jnp.int32), params=params, norm=variables.get("norm", {}),
                   opt_state=tx.init(params), rng=rng)

    @property
    def variables(self) -> dict:
        return {"params": self.params, "norm": self.norm}


def global_norm(tree) -> jax.Array:
    return optax.global_norm(tree)


def apply_gradients(state, tx: optax.GradientTransformation, grads, metrics: dict):
    """One optimiser step on ``state.params``; adds grad/param/update norms to ``metrics``.

    Shared by every update function so that all of them report the same diagnostics.
    """
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics, grad_norm=global_norm(grads), param_norm=global_norm(params),
                   update_norm=global_norm(updates))
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


def make_optimizer(config, total_steps: int | None = None, inject: bool = False) -> optax.GradientTransformation:
    """optax chain from config: clip → adamw with warmup-cosine (or constant) schedule.

    ``total_steps`` (the cosine decay length) overrides ``config.total_steps``, so a run can pass
    its own length without copying the optimiser config. An optional ``config.adam_eps`` sets
    Adam's ε (optax's 1e-8 without it). ``inject=True`` wraps the chain in
    ``optax.inject_hyperparams``: the learning rate then lives in the optimiser state, where
    ``set_learning_rate`` can give each state of a vmapped sweep its own (constant schedule).
    """
    total = int(config.total_steps if total_steps is None else total_steps)
    if config.schedule == "cosine":
        lr = optax.warmup_cosine_decay_schedule(0.0, config.learning_rate, max(config.warmup_steps, 1),
                                                max(total, config.warmup_steps + 1),
                                                end_value=config.learning_rate * 0.1)
    elif config.schedule == "constant":
        lr = config.learning_rate
    else:
        raise ValueError(f"optimizer.schedule must be 'cosine' or 'constant', got {config.schedule!r}")
    eps = {"eps": config.adam_eps} if "adam_eps" in config else {}

    def chain(learning_rate):
        return optax.chain(optax.clip_by_global_norm(config.grad_clip),
                           optax.adamw(learning_rate, weight_decay=config.weight_decay, **eps))

    return optax.inject_hyperparams(chain)(learning_rate=lr) if inject else chain(lr)


def set_learning_rate(opt_state, lr):
    """The state of an ``inject=True`` optimiser with its (constant) learning rate set to ``lr``.

    lr may be traced, so a sweep over learning rates is a vmap over states, not a recompile.
    """
    return opt_state._replace(hyperparams=dict(opt_state.hyperparams, learning_rate=jnp.asarray(lr, jnp.float32)))
