"""The small reward-model problem that the multi-device and multi-process tests train.

Imported by their subprocess scripts (run from the repository root), so every process builds
the same batch, model and optimiser from the same seeds.
"""
from __future__ import annotations

import numpy as np

SHAPES = dict(B=32, T=5, D=6, A=7)


def random_reward_batch(seed: int = 0) -> dict:
    """A preference batch of B pairs of T-step segments (obs [B, T, D], act [B, T, A])."""
    B, T, D, A = (SHAPES[k] for k in "BTDA")
    rng = np.random.default_rng(seed)
    batch = {"obs_a": rng.normal(size=(B, T, D)), "act_a": rng.normal(size=(B, T, A)),
             "obs_b": rng.normal(size=(B, T, D)), "act_b": rng.normal(size=(B, T, A)),
             "task_a": rng.integers(0, 4, B), "task_b": rng.integers(0, 4, B),
             "embodiment_a": rng.integers(0, 3, B), "embodiment_b": rng.integers(0, 3, B),
             "label": rng.choice([0.0, 0.5, 1.0], B), "weight": rng.uniform(0.5, 1.0, B)}
    return {k: np.asarray(v, np.float32 if v.dtype.kind == "f" else np.int32) for k, v in batch.items()}


def reward_problem(batch: dict):
    """(update, initial TrainState) of a 16×16 Markovian reward model trained with Adam."""
    import jax
    import ml_collections
    import optax

    from rlhf_jax.models.reward import make_reward_model
    from rlhf_jax.train.reward import make_reward_update
    from rlhf_jax.train.state import TrainState

    model = make_reward_model("markovian", num_tasks=4, num_embodiments=3, hidden=(16, 16))
    variables = model.init(jax.random.key(0), batch["obs_a"][:1], batch["act_a"][:1], batch["task_a"][:1],
                           batch["embodiment_a"][:1])
    loss_cfg = ml_collections.ConfigDict(dict(margin=0.1, label_smoothing=0.05, center_coef=1e-3))
    tx = optax.adam(1e-2)
    return make_reward_update(loss_cfg, model, tx), TrainState.create(variables, tx, jax.random.PRNGKey(0))
