"""Reward-model update: Bradley-Terry on segment pairs, as a pure ``update(state, batch)``.

Batch layout (all leading [B]): ``obs_a, act_a, obs_b, act_b`` [B, T, ·], ``task_a, task_b,
embodiment_a, embodiment_b`` int32, ``label`` P(a ≻ b) in [0, 1], ``weight`` [B]; optional ``image_a,
image_b`` [B, T, H, W, 3] uint8, ``mask_a, mask_b`` [B, T], ``margin`` [B].
"""
from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from rlhf_jax import normalizer
from rlhf_jax.ensemble import init_ensemble
from rlhf_jax.data.scripted import scripted_segments
from rlhf_jax.envs.policies import POLICIES
from rlhf_jax.envs.robots import EMBODIMENTS
from rlhf_jax.envs.tasks import TASKS
from rlhf_jax.losses.bradley_terry import bradley_terry_loss, surf_pseudo_labels
from rlhf_jax.models.encoders import set_norm_stats
from rlhf_jax.models.reward import MarkovianReward
from rlhf_jax.models.reward_inference import learned_reward_fn
from rlhf_jax.train.state import TrainState, apply_gradients, make_optimizer


def segment_view(batch: dict, side: str) -> dict:
    """The segment dict of one side ('a' or 'b') of a pair batch."""
    return {"obs": batch[f"obs_{side}"], "act": batch[f"act_{side}"], "task": batch[f"task_{side}"],
            "embodiment": batch[f"embodiment_{side}"], "image": batch.get(f"image_{side}"),
            "mask": batch.get(f"mask_{side}")}


def pair_returns(model: nn.Module, variables, batch: dict) -> tuple[jax.Array, jax.Array]:
    """(r_a, r_b), each [B]: both sides go through the model in one call (one batched matmul)."""
    a, b = segment_view(batch, "a"), segment_view(batch, "b")
    both = jax.tree.map(lambda x, y: jnp.concatenate([x, y], 0), a, b)
    ret, _ = model.apply(variables, both["obs"], both["act"], both["task"], both["embodiment"],
                         both["image"], both["mask"])
    n = batch["label"].shape[0]
    return ret[:n], ret[n:]


def reward_loss_fn(model: nn.Module, config, surf: tuple[float, float] | None = None) -> Callable:
    """loss(params, norm, batch) -> (loss, metrics) with the BT options of ``config``.

    surf = (tau, lam): SURF's semi-supervised term. The batch then also holds ``unlabelled`` =
    {"centre": pairs, "crop": the same pairs temporally cropped, "weight" [U]}; pseudo-labels
    come from the centre windows (`surf_pseudo_labels`) and train the cropped ones:
    loss = BT(labelled) + lam · Σ_u m_u w_u nll_u / Σ_u m_u w_u.
    """

    def loss_fn(params, norm, batch):
        variables = {"params": params, "norm": norm}
        r_a, r_b = pair_returns(model, variables, batch)
        loss, metrics = bradley_terry_loss(r_a, r_b, batch["label"], batch.get("weight"),
                                           margin=batch.get("margin", config.margin),
                                           label_smoothing=config.label_smoothing, center_coef=config.center_coef)
        if surf is None or "unlabelled" not in batch:
            return loss, metrics
        tau, lam = surf
        u = batch["unlabelled"]
        label, mask = surf_pseudo_labels(*pair_returns(model, variables, u["centre"]), tau)
        u_a, u_b = pair_returns(model, variables, u["crop"])
        u_loss, _ = bradley_terry_loss(u_a, u_b, label, mask * u["weight"])
        metrics = dict(metrics, surf_loss=u_loss, surf_fraction=jnp.mean(mask * u["weight"]))
        return loss + lam * u_loss, metrics

    return loss_fn


def make_reward_update(config, model: nn.Module, tx: optax.GradientTransformation,
                       surf: tuple[float, float] | None = None) -> Callable:
    """Returns the pure ``update(state, batch) -> (state, metrics)`` for a Bradley-Terry RM.

    ``config`` needs ``margin``, ``label_smoothing`` and ``center_coef``. Metrics: the BT
    metrics plus ``grad_norm``, ``param_norm`` and ``update_norm``. Jit it directly, or shard
    it with ``rlhf_jax.sharding.data_parallel``; vmap it for ensembles and sweeps.
    """
    loss_fn = reward_loss_fn(model, config, surf)

    def update(state: TrainState, batch: dict):
        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, state.norm, batch)
        return apply_gradients(state, tx, grads, metrics)

    return update


def gold_pair_batch(segments: dict, idx_a: jax.Array, idx_b: jax.Array) -> dict:
    """Pair batch (this module's layout) of segments idx_a vs idx_b [P], labelled by gold return.

    segments: {obs [S, L, D], act [S, L, A], task, embodiment [S] int32, gold [S]}. label is 1 where
    segment a has the strictly higher gold return, else 0 (an ideal annotator; exact ties,
    almost only a segment paired with itself, count as b winning).
    """
    side = lambda i, s: {f"obs_{s}": segments["obs"][i], f"act_{s}": segments["act"][i],
                         f"task_{s}": segments["task"][i], f"embodiment_{s}": segments["embodiment"][i]}
    label = (segments["gold"][idx_a] > segments["gold"][idx_b]).astype(jnp.float32)
    return {**side(idx_a, "a"), **side(idx_b, "b"), "label": label}


def make_reward_fit(config, model: nn.Module, tx: optax.GradientTransformation, steps: int,
                    pairs_per_step: int) -> Callable:
    """Returns the pure ``fit(states, segments, keys) -> (states, metrics)`` of a reward ensemble.

    states: a TrainState stacked over K members (leading [K]); segments as ``gold_pair_batch``
    (shared by all members); keys [K]. Each of ``steps`` steps, every member draws its own
    ``pairs_per_step`` random pairs (with replacement: a bootstrap-like diversity between
    members) and takes one ``make_reward_update`` step on them. metrics: that update's metrics,
    each [K, steps]. Jittable and free of host work, so it can also run inside a scan.
    """
    update = make_reward_update(config, model, tx)

    def member(state, segments, key):
        n = segments["gold"].shape[0]

        def step(state, k):
            idx_a, idx_b = jax.random.randint(k, (2, pairs_per_step), 0, n)
            return update(state, gold_pair_batch(segments, idx_a, idx_b))

        return jax.lax.scan(step, state, jax.random.split(key, steps))

    def fit(states: TrainState, segments: dict, keys: jax.Array):
        segments = {k: jnp.asarray(segments[k]) for k in ("obs", "act", "task", "embodiment", "gold")}
        return jax.vmap(member, in_axes=(0, None, 0))(states, segments, keys)

    return fit


def build_learned_reward(rc, robot_name: str, tasks, key):
    """Fits a Markovian reward ensemble in-run on gold-labelled scripted-policy segments.

    rc: config.reward (ensemble_size, hidden, fit_episodes, fit_steps, pairs_per_step,
    segment_length, optimizer, loss, aggregation, lam, scale). The fit is the project's one
    Bradley-Terry trainer (``make_reward_fit`` over ``make_reward_update``). Returns (reward_fn,
    model, variables stacked [K], info {segments, bt_loss [K]: mean loss of the last 20 steps}).
    """
    k_data, k_init, k_fit = jax.random.split(key, 3)
    seg = scripted_segments(robot_name, tasks, POLICIES, int(rc.fit_episodes), int(rc.segment_length), k_data)
    model = MarkovianReward(num_tasks=len(TASKS), num_embodiments=len(EMBODIMENTS), hidden=tuple(rc.hidden))
    k = int(rc.ensemble_size)
    sample = tuple(jnp.asarray(seg[f][:1]) for f in ("obs", "act", "task", "embodiment"))
    variables = dict(init_ensemble(model, jax.random.split(k_init, k), *sample))
    variables = set_norm_stats(variables, normalizer.stats(seg["obs"]), normalizer.stats(seg["act"]))
    tx = make_optimizer(rc.optimizer, total_steps=int(rc.fit_steps))
    states = jax.vmap(lambda v: TrainState.create(v, tx, k_init))(variables)
    fit = jax.jit(make_reward_fit(rc.loss, model, tx, int(rc.fit_steps), int(rc.pairs_per_step)))
    states, metrics = fit(states, seg, jax.random.split(k_fit, k))
    loss = np.asarray(metrics["loss"][:, -20:].mean(1))
    fn = learned_reward_fn(model, states.variables, ensemble=True, aggregation=rc.aggregation,
                           lam=float(rc.lam), scale=float(rc.scale))
    return fn, model, states.variables, {"segments": int(len(seg["gold"])), "bt_loss": loss.tolist()}

