"""Per-objective reward heads combined into one reward model: Σ_o w_o r_o, each head an ensemble.

    write_objective_heads(directory, {objective: (head directory, weight)}, meta)
    heads = load_objective_heads(directory, aggregation="min")
    r = heads.reward_fn(obs [B, D], act [B, A], task [B], emb [B], components [B, C])   # [B]

A saved set of heads is a directory holding ``objective_heads.json``: each objective's head (a
reward-model artefact, ``rlhf_jax.reward_artifact``; a path relative to the directory) and its
weight, plus whatever the caller records (the weights' rule, the pairs the heads were trained on).

``ObjectiveHeads`` presents the combination as a reward model of one member, so every consumer
of a loaded ``RewardModel`` — PPO points (``model`` + ``stacked_variables``), the evaluation's
proxy return (``model``, ``stacked_variables``, ``aggregation``, ``lam``, ``scale``) — takes it as
it is. Its one "member" holds every head's members [O, K, ...] and the weights [O]; each head's
members are combined by the heads' own aggregation first (the pipeline's minimum over members),
then the heads by ``ensemble.combine_objectives``. Aggregating a single member is the identity,
whatever aggregation the consumer asks for.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from rlhf_jax.checkpoint import atomic_write_json
from rlhf_jax.ensemble import aggregate, combine_objectives
from rlhf_jax.models.reward_inference import learned_reward_fn
from rlhf_jax.reward_artifact import RewardModel, RewardModelError, load_reward_model
from rlhf_jax.strict_json import read_json

HEADS_FILE = "objective_heads.json"


class CombinedApply:
    """A module-like ``apply`` of the combined heads (``head_model`` shared by every head):
    apply({"heads": [O, K, ...], "weights": [O]}, obs [B, T, D], act [B, T, A], task [B], emb [B])
    -> (returns [B], step rewards [B, T]) with step rewards Σ_o w_o agg_k r_{o,k}[B, T]."""

    def __init__(self, head_model, aggregation: str, lam: float):
        self.head_model, self.aggregation, self.lam = head_model, aggregation, float(lam)

    def apply(self, variables, obs, act, task, emb):
        def member(v):
            return self.head_model.apply(v, obs, act, task, emb)[1]

        per_member = jax.vmap(jax.vmap(member))(variables["heads"])               # [O, K, B, T]
        per_head = jax.vmap(lambda m: aggregate(m, self.aggregation, self.lam))(per_member)   # [O, B, T]
        steps = combine_objectives(per_head, variables["weights"])                  # [B, T]
        return steps.sum(-1), steps


@dataclasses.dataclass(frozen=True, eq=False)
class ObjectiveHeads:
    """Loaded heads {objective: RewardModel} and weights {objective: w}, as one reward model."""

    heads: dict
    weights: dict
    meta: dict
    path: str
    head_aggregation: str = "mean"
    head_lam: float = 1.0
    # What a consumer combines the single member with: the identity for one member.
    aggregation: str = "mean"
    lam: float = 1.0
    scale: float = 1.0
    members: int = 1

    @functools.cached_property
    def model(self) -> CombinedApply:
        return CombinedApply(next(iter(self.heads.values())).model, self.head_aggregation, self.head_lam)

    @functools.cached_property
    def stacked_variables(self) -> dict:
        """{"heads": [1, O, K, ...], "weights": [1, O]}: one member holding every head."""
        heads = jax.tree.map(lambda *x: jnp.stack(x), *[h.stacked_variables for h in self.heads.values()])
        weights = jnp.asarray([self.weights[o] for o in self.heads], jnp.float32)
        return jax.tree.map(lambda x: x[None], {"heads": heads, "weights": weights})

    @functools.cached_property
    def reward_fn(self) -> Callable:
        """reward_fn(obs [B, D], act [B, A], task [B], emb [B], components [B, C]) -> [B]: Σ_o w_o r_o."""
        return learned_reward_fn(self.model, self.stacked_variables, ensemble=True)

    def check_trained_on(self, embodiment: str, tasks: Sequence[str], **kw) -> None:
        """Every head must have seen the arm and tasks (``RewardModel.check_trained_on``)."""
        for head in self.heads.values():
            head.check_trained_on(embodiment, tasks, **kw)


def write_objective_heads(directory: str, heads: dict, meta: dict | None = None) -> str:
    """Writes ``directory``/objective_heads.json for heads {objective: (head directory, weight)}
    (head paths stored relative to ``directory``) and ``meta``; returns the file's path."""
    record = {"heads": {o: {"checkpoint": os.path.relpath(path, directory), "weight": float(w)}
                        for o, (path, w) in heads.items()}, **(meta or {})}
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, HEADS_FILE)
    atomic_write_json(path, record)
    return path


def load_objective_heads(directory: str, aggregation: str = "mean", lam: float = 1.0) -> ObjectiveHeads:
    """The heads saved under ``directory`` (``write_objective_heads``), their members combined by
    ``aggregation``. Heads of weight 0 are not loaded. RewardModelError when the file is missing or
    the heads differ in architecture or ensemble size (one compiled apply serves them all)."""
    file = os.path.join(directory, HEADS_FILE)
    if not os.path.isfile(file):
        raise RewardModelError(f"objective heads {directory}: expected {HEADS_FILE}, found none")
    record = read_json(file)
    used = {o: h for o, h in record["heads"].items() if float(h["weight"]) != 0}
    if not used:
        raise RewardModelError(f"objective heads {directory}: every weight is 0")
    heads: dict[str, RewardModel] = {o: load_reward_model(os.path.join(directory, h["checkpoint"]), aggregation, lam)
                                     for o, h in used.items()}
    shapes = {o: (h.meta["model"], h.members) for o, h in heads.items()}
    if len({repr(s) for s in shapes.values()}) != 1:
        raise RewardModelError(f"objective heads {directory}: expected one architecture and ensemble size, got {shapes}")
    meta = {k: v for k, v in record.items() if k != "heads"}
    return ObjectiveHeads(heads=heads, weights={o: float(h["weight"]) for o, h in used.items()},
                          meta=dict(meta, objectives={o: dict(h) for o, h in used.items()}),
                          path=os.path.abspath(directory), head_aggregation=aggregation, head_lam=float(lam))
