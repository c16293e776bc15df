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


def make_optimizer(config, total_steps: int | None = None) -> optax.GradientTransformation:
    """optax chain from config: clip → adamw with warmup-cosine (or constant) schedule.

    ``total_steps`` (the cosine decay length) overrides ``config.total_steps``, so a run can pass
    its own length without copying the optimiser config.
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
    return optax.chain(optax.clip_by_global_norm(config.grad_clip),
                       optax.adamw(lr, weight_decay=config.weight_decay))
