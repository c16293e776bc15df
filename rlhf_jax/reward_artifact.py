"""Reward-model ensembles as artefacts: saved by the sweep, loaded by PPO and evaluations.

    path = save_reward_model(directory, model_config, {"params": [K, ...], "norm": ...}, meta)
    rm = load_reward_model(path, aggregation="mean")
    rm.check_compatible("joint", feature_dim("joint"), TASKS[:4], "panda", where=..., field=...)
    r = rm.reward_fn(obs [B, D], act [B, A], task [B], emb [B], components [B, C])   # [B]

An artefact is an orbax checkpoint (``rlhf_jax.checkpoint.Checkpointer``) of the ensemble's
variables — ``params`` stacked over K members, ``norm`` (the obs/act statistics every member
shares) unstacked — plus a JSON meta record: the model config, the feature spec it reads
(feature kind, widths, task and embodiment vocabularies), and where it came from (label source,
N, seed, dataset, best step per member, test accuracy). Nothing else is needed to rebuild it.
Like every checkpoint it records its kind (``artifact`` = "reward_model") and ``format_version``;
loading a policy or a training state here is refused in one line naming the path.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rlhf_jax import checkpoint, features
from rlhf_jax.errors import DataError, describe
from rlhf_jax.ensemble import AGGREGATIONS, aggregate, ensemble_apply
from rlhf_jax.envs.robots import EMBODIMENTS, ROBOTS
from rlhf_jax.envs.tasks import TASKS
from rlhf_jax.models.reward import reward_model_from_config
from rlhf_jax.models.reward_inference import learned_reward_fn

ARTIFACT = "reward_model"  # the checkpoint kind (rlhf_jax.checkpoint.ARTIFACT_KINDS)
FORMAT_VERSION = checkpoint.FORMAT_VERSION
PER_STEP_AGGREGATIONS = tuple(a for a in AGGREGATIONS if a != "std")
SEGMENT_LEVEL_KINDS = ("transformer", "previous_step")  # no per-step reward: a step alone is not a segment to them
MODEL_KEYS = ("kind", "hidden", "context_dim", "aggregate", "num_tasks", "num_embodiments")
FEATURE_KEYS = ("kind", "feature_dim", "action_dim", "tasks", "embodiments", "cross_embodiment")


class RewardModelError(DataError):
    """A reward-model artefact that is missing, unreadable, refused or does not fit the run.

    A ``DataError`` (hence a ``ValueError``): entry points report it as one line, exit code 2.
    """


def feature_spec(kind: str, num_tasks: int, cross_embodiment: bool = False) -> dict:
    """The ``features`` meta entry of a model reading ``kind`` features with ``num_tasks`` task ids:
    {"kind", "feature_dim" D, "action_dim" A, "tasks" (names of ids 0..num_tasks-1),
    "embodiments" (names of the embodiment ids), "cross_embodiment"}."""
    return {"kind": kind, "feature_dim": features.feature_dim(kind), "action_dim": features.action_dim(kind),
            "tasks": tuple(TASKS[:num_tasks]), "embodiments": tuple(EMBODIMENTS),
            "cross_embodiment": bool(cross_embodiment)}


def point_variables(best_params, norm: dict, p: int) -> dict:
    """The ensemble of sweep point ``p``: {"params": best_params[p] ([K, ...] from [P, K, ...]),
    "norm": norm} as host arrays, the layout ``save_reward_model`` takes."""
    return jax.device_get({"params": jax.tree.map(lambda x: x[p], best_params), "norm": norm})


def _plain(x):
    if isinstance(x, (np.generic, np.ndarray)):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def _members(params) -> int:
    sizes = {int(np.shape(x)[0]) for x in jax.tree.leaves(params)}
    if len(sizes) != 1:
        raise RewardModelError(f"reward-model params: expected one leading member axis [K, ...] on every leaf, "
                               f"got sizes {sorted(sizes)}")
    return sizes.pop()


def save_reward_model(directory: str, model_config: dict, variables: dict, meta: dict) -> str:
    """Writes an ensemble and its meta record as an orbax checkpoint; returns the directory.

    model_config: kind, hidden, context_dim, aggregate, num_tasks, num_embodiments (+ any other
    module field). variables: {"params": [K, ...] stacked members, "norm": shared, unstacked}.
    meta: at least "features" (``feature_spec``); the sweep adds members' provenance — "n",
    "seed", "condition", "label_source" {"name", "label_seed", "label_set_hash", "answers",
    "gold_answers", "dollars"} (``label_sources.provenance_record``: the content hash of every
    answer the condition trained and validated on), "dataset", "dataset_path" (the RLDS directory the
    pairs came from, when one was given), "segment_length", "best_step" [K],
    "test_accuracy", "trained_on" {"embodiments", "tasks"} (the names in its training pairs,
    which ``RewardModel.check_trained_on`` holds a run to). Saving again replaces the artefact.
    """
    missing = [k for k in MODEL_KEYS if k not in model_config]
    missing += [f"features.{k}" for k in FEATURE_KEYS if k not in meta.get("features", {})]
    if missing:
        raise RewardModelError(f"save_reward_model({directory}): meta is missing {', '.join(missing)}")
    members = _members(variables["params"])
    if "best_step" in meta and len(meta["best_step"]) != members:
        raise RewardModelError(f"save_reward_model({directory}): {len(meta['best_step'])} best steps for "
                               f"{members} members")
    record = dict(meta, artifact=ARTIFACT, format_version=FORMAT_VERSION, model=dict(model_config), members=members)
    record = json.loads(json.dumps(record, default=_plain))
    ckpt = checkpoint.Checkpointer(directory, max_to_keep=1, kind=ARTIFACT)
    step = max(ckpt.steps(), default=-1) + 1  # a re-save (a resumed run) supersedes the old one
    ckpt.save(step, jax.device_get({"params": variables["params"], "norm": variables["norm"]}), record)
    ckpt.close()
    return ckpt.directory


@dataclasses.dataclass(frozen=True, eq=False)
class RewardModel:
    """A loaded ensemble: ``model`` (Flax module), ``variables`` {"params" [K, ...], "norm"},
    ``meta`` (the saved record), and how ``reward_fn`` combines members."""

    model: Any
    variables: dict
    meta: dict
    path: str
    aggregation: str = "mean"
    lam: float = 1.0
    scale: float = 1.0

    @property
    def members(self) -> int:
        return int(self.meta["members"])

    @property
    def segment_level(self) -> bool:
        return self.meta["model"]["kind"] in SEGMENT_LEVEL_KINDS

    @functools.cached_property
    def stacked_variables(self) -> dict:
        """Variables with ``norm`` broadcast to [K, ...] too, as vmapped member applies take them."""
        k = self.members
        norm = jax.tree.map(lambda x: jnp.broadcast_to(x, (k,) + x.shape), self.variables["norm"])
        return {"params": self.variables["params"], "norm": norm}

    @functools.cached_property
    def reward_fn(self) -> Callable:
        """reward_fn(obs [B, D], act [B, A], task [B], emb [B], components [B, C]) -> [B]: the
        members' per-step rewards combined by ``aggregation``, times ``scale`` (pure, jit-able)."""
        if self.segment_level:
            raise RewardModelError(f"reward model {self.path}: a {self.meta['model']['kind']} scores whole "
                                   "segments and has no per-step reward for PPO")
        return learned_reward_fn(self.model, self.stacked_variables, ensemble=True, aggregation=self.aggregation,
                                 lam=self.lam, scale=self.scale)

    @functools.cached_property
    def _apply(self) -> Callable:
        return jax.jit(lambda v, segs: ensemble_apply(self.model, v, segs))

    def segment_returns(self, segments: dict) -> jax.Array:
        """Member returns [K, B] of segments {obs [B, T, D], act [B, T, A], task [B], embodiment
        [B], optional image, mask}; unscaled, as the members were trained."""
        return self._apply(self.stacked_variables, {k: v for k, v in segments.items() if v is not None})

    def aggregate(self, member_returns: jax.Array) -> jax.Array:
        """[K, ...] -> [...]: ``aggregation`` over members (λ = lam), times ``scale``."""
        return self.scale * aggregate(member_returns, self.aggregation, self.lam)

    def check_trained_on(self, embodiment: str, tasks: Sequence[str], *, zero_shot: bool = False,
                         where: str = "reward model", field: str = "reward_model") -> None:
        """Raises RewardModelError unless the arm and every task of a run were in the model's
        training pairs (``meta["trained_on"]``): a reward model scores what it never saw with
        confidence, and a policy optimised against it reports a gain that means nothing.
        ``zero_shot=True`` (transfer's case) allows an unseen arm; the caller records it.
        Artefacts saved before the record existed are not checked."""
        seen = self.meta.get("trained_on")
        if not seen:
            return
        if not zero_shot and embodiment not in seen["embodiments"]:
            raise RewardModelError(describe(where, field, f"a reward model whose training pairs contain the "
                                            f"arm {embodiment!r}", f"pairs of {seen['embodiments']} only "
                                            f"in {self.path} (zero-shot use must be asked for)"))
        missing = [t for t in tasks if t not in seen["tasks"]]
        if missing:
            raise RewardModelError(describe(where, field, f"a reward model whose training pairs contain the "
                                            f"tasks {list(tasks)}", f"pairs of {seen['tasks']} only in {self.path}"))

    def check_compatible(self, feature_kind: str, feature_dim: int, tasks: Sequence[str],
                         embodiment: str | Sequence[str] | None = None, *, action_dim: int | None = None,
                         where: str = "reward model", field: str = "reward_model") -> None:
        """Raises RewardModelError (one line naming ``where``, ``field``, the path, what the run
        has and what the model was trained with) unless the run's inputs fit the model.

        tasks: the run's task vocabulary (name of task id 0, 1, ...); it must be a prefix of the
        model's. embodiment: a robot name (must be in the model's embodiment vocabulary, with
        every joint within the model's action width for joint features) or a vocabulary
        (a prefix of the model's). action_dim: checked when given.
        """
        spec = self.meta["features"]

        def refuse(what, mine, theirs):
            raise RewardModelError(describe(where, field, f"a reward model with {what} {mine!r}",
                                            f"{theirs!r} in {self.path}"))

        if feature_kind != spec["kind"]:
            refuse("feature kind", feature_kind, spec["kind"])
        if int(feature_dim) != spec["feature_dim"]:
            refuse("feature_dim", int(feature_dim), spec["feature_dim"])
        if action_dim is not None and int(action_dim) != spec["action_dim"]:
            refuse("action_dim", int(action_dim), spec["action_dim"])
        if tuple(spec["tasks"][:len(tasks)]) != tuple(tasks):
            refuse("task vocabulary (tasks) starting", tuple(tasks), tuple(spec["tasks"]))
        if embodiment is None:
            return
        vocab = tuple(spec["embodiments"])
        if not isinstance(embodiment, str):
            if vocab[:len(embodiment)] != tuple(embodiment):
                refuse("embodiment vocabulary (embodiments) starting", tuple(embodiment), vocab)
            return
        n_emb = int(self.meta["model"]["num_embodiments"])
        if embodiment not in vocab or (n_emb and vocab.index(embodiment) >= n_emb):
            refuse("embodiment", embodiment, vocab[:n_emb] if n_emb else vocab)
        dof = ROBOTS[embodiment].dof if embodiment in ROBOTS else None
        if spec["kind"] == "joint" and dof is not None and dof > spec["action_dim"]:
            refuse("DoF", dof, f"at most {spec['action_dim']} joints")


def _read(path: str) -> tuple[dict, dict]:
    """(variables, meta) of an artefact directory; RewardModelError when it is not one."""
    try:
        return checkpoint.restore_artifact(path, "reward_model")
    except checkpoint.ArtifactError as err:
        raise RewardModelError(f"reward model {path}: expected {err.expected}, found {err.found}") from err
    except Exception as err:  # orbax's own errors: a directory it cannot open as a checkpoint
        raise RewardModelError(f"reward model {path}: not readable ({type(err).__name__}: "
                               f"{(str(err).splitlines() or [''])[0][:200]})") from err


def load_reward_model(path: str, aggregation: str = "mean", lam: float = 1.0, scale: float = 1.0, *,
                      allow_segment_level: bool = False) -> RewardModel:
    """The saved ensemble at ``path`` as a RewardModel whose ``reward_fn`` PPO optimises.

    aggregation: how member step rewards combine — "mean", "min" or "mean_minus_std" (mean −
    lam·std); scale multiplies the reward. A segment-level model (transformer, previous_step) has no per-step
    reward and is refused unless ``allow_segment_level`` (evaluation: ``segment_returns`` only).
    Raises RewardModelError for a missing or unreadable path and for refused models.
    """
    if aggregation not in PER_STEP_AGGREGATIONS:
        raise RewardModelError(f"reward model {path}: aggregation expected one of {PER_STEP_AGGREGATIONS}, "
                               f"got {aggregation!r}")
    variables, meta = _read(path)
    cfg = dict(meta["model"])
    if cfg["kind"] in SEGMENT_LEVEL_KINDS and not allow_segment_level:
        raise RewardModelError(f"reward model {path}: a {cfg['kind']} model scores whole segments; PPO needs "
                               "per-step rewards (a Markovian model); load_reward_model(..., "
                               "allow_segment_level=True) loads it for evaluation only")
    meta["features"] = dict(meta["features"], tasks=tuple(meta["features"]["tasks"]),
                            embodiments=tuple(meta["features"]["embodiments"]))
    hidden = tuple(int(h) for h in cfg.pop("hidden"))
    num_tasks, num_emb = int(cfg.pop("num_tasks")), int(cfg.pop("num_embodiments"))
    model = reward_model_from_config(cfg, hidden, num_tasks=num_tasks, num_embodiments=num_emb)
    return RewardModel(model=model, variables=variables, meta=meta, path=os.path.abspath(path),
                       aggregation=aggregation, lam=float(lam), scale=float(scale))
