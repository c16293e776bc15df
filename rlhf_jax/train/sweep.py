"""A whole reward-model scaling sweep as one compiled program.

Every (condition, N, seed) sweep point × ensemble member is one row of a stacked TrainState
[P, K, ...]. One jitted ``lax.scan`` chunk advances all of them: each (point, member) draws its
own minibatch from its own nested subset (the first N entries of its seed's permutation of the
pairs its teacher did not skip), weights it by its member's Poisson bootstrap weights (times the
labels' confidence weights when the sweep uses them), takes a Bradley-Terry step, and every
``eval_every`` steps (or at the steps of an evaluation schedule, ``rlhf_jax.train.eval_schedule``)
scores the validation pairs and keeps the best-validation parameters. Only shape-changing axes
(model size, segment length) are looped in Python by the caller.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rlhf_jax.ensemble import bootstrap_weights
from rlhf_jax.losses.bradley_terry import bradley_terry_loss
from rlhf_jax.train.reward import make_reward_update
from rlhf_jax.train.state import TrainState


@dataclasses.dataclass(frozen=True)
class SweepGrid:
    """Host-side description of the sweep points (flattened condition × N × seed)."""

    conditions: tuple[str, ...]
    n_values: tuple[int, ...]
    seeds: tuple[int, ...]
    members: int

    @property
    def points(self) -> list[tuple[int, int, int]]:
        """(condition index, N, seed index) per point, condition-major."""
        return [(c, n, s) for c in range(len(self.conditions)) for n in self.n_values
                for s in range(len(self.seeds))]


@flax.struct.dataclass
class SweepData:
    """Device arrays every sweep point shares (passed as jit arguments, not baked constants).

    seg_*: the segment table [S, ...]; train_a/b [Ptr]; order [C, nseeds, Ptr] nested order of
    usable train pairs per (condition, seed) (−1 padding past the usable count); train_label
    [C, Ptr]; val_rows [Sv] unique segment rows of the validation pairs, val_a/b [V] positions
    into val_rows, val_label/val_weight [C, V]; train_weight [C, Ptr] per-label confidence weights
    (None: every label weighs 1, the program is then the unweighted one). train_label and
    train_weight may also be [C, nseeds, Ptr]: labels that differ per seed, as when each seed's
    active-learning run routed its own queries to other annotators.
    """

    seg_obs: jax.Array
    seg_act: jax.Array
    seg_task: jax.Array
    seg_emb: jax.Array
    train_a: jax.Array
    train_b: jax.Array
    train_label: jax.Array
    order: jax.Array
    val_rows: jax.Array
    val_a: jax.Array
    val_b: jax.Array
    val_label: jax.Array
    val_weight: jax.Array
    train_weight: jax.Array | None = None
    surf_on: jax.Array | None = None  # [C] 1 where a condition trains with SURF (see SurfSpec)
    # Camera frames of a pixels sweep: frames [F, H, W, 3] uint8, one per episode step, stored once;
    # seg_frames [S, T_f] the frames each segment's model reads (every k-th step). gather_segments
    # indexes them inside the compiled program, so no per-pair copy of a frame exists outside a
    # minibatch. None: a state sweep (its program is unchanged).
    frames: jax.Array | None = None
    seg_frames: jax.Array | None = None


@dataclasses.dataclass(frozen=True)
class SurfSpec:
    """SURF (Park et al., 2022) settings of a sweep whose segment table keeps a `margin` w.

    Every step, a SURF condition's point also draws mu·B of its unlabelled pool pairs (past its N
    in its order), pseudo-labels them from the centre windows where the model's confidence
    exceeds tau, and trains on temporally cropped windows of them with weight lam; its labelled
    pairs are cropped too. Crops are windows of `length` steps at a random offset in [0, 2w] of
    each segment, independently per segment. Validation, test and scoring use the centre.
    """
    tau: float = 0.95
    lam: float = 1.0
    mu: int = 2
    margin: int = 5
    length: int = 25


def window(segs: dict, offset: jax.Array, length: int) -> dict:
    """segs with obs/act cut to `length` steps from per-row `offset` [R] (or a scalar)."""
    offset = jnp.broadcast_to(jnp.asarray(offset, jnp.int32), segs["obs"].shape[:1])
    cut = jax.vmap(lambda x, o: jax.lax.dynamic_slice_in_dim(x, o, length, axis=0))
    return dict(segs, obs=cut(segs["obs"], offset), act=cut(segs["act"], offset))


@flax.struct.dataclass
class PointSpec:
    """Per-point traced settings [P]: condition index, subset size N, seed index."""

    condition: jax.Array
    n: jax.Array
    seed_index: jax.Array


@flax.struct.dataclass
class MemberState:
    train: TrainState
    best_params: Any
    best_val_loss: jax.Array
    best_step: jax.Array
    boot_key: jax.Array


def drop_tokens(key: jax.Array, segment_dicts: tuple, rate: float, unknown_id: int) -> tuple:
    """Each segment's embodiment id → ``unknown_id`` with probability ``rate``."""
    keys = jax.random.split(key, len(segment_dicts))
    return tuple({**segs, "embodiment": jnp.where(jax.random.bernoulli(k, rate, segs["embodiment"].shape),
                                                  unknown_id, segs["embodiment"])}
                 for k, segs in zip(keys, segment_dicts))


EVAL_BLOCK = 256  # segments scored per block: evaluation memory no longer grows with validation size


def blocked_returns(model: nn.Module, params, norm, data: SweepData, rows: jax.Array,
                    block: int | None = EVAL_BLOCK, centre: Callable = lambda segs: segs) -> jax.Array:
    """Segment returns [R] of ``rows``, ``block`` rows at a time (``lax.map``; None = all at once).

    Under the sweep's vmap over (point, member), only one block's activations per (point, member)
    are alive at a time, so memory is set by ``block``, not by the number of validation segments.
    The last block is padded with row 0 and the padding dropped.
    """
    def score(r):
        segs = centre(gather_segments(data, r))
        ret, _ = model.apply({"params": params, "norm": norm}, segs["obs"], segs["act"], segs["task"],
                             segs["embodiment"], segs.get("image"))
        return ret

    n = rows.shape[0]
    if block is None or n <= block:
        return score(rows)
    padded = jnp.concatenate([rows, jnp.zeros(((-n) % block,), rows.dtype)]).reshape(-1, block)
    return jax.lax.map(score, padded).reshape(-1)[:n]


def gather_segments(data: SweepData, rows: jax.Array) -> dict:
    """The segment dict of table rows [R] (with "image" [R, T_f, H, W, 3] when the sweep has frames)."""
    segs = {"obs": data.seg_obs[rows], "act": data.seg_act[rows], "task": data.seg_task[rows],
            "embodiment": data.seg_emb[rows]}
    if data.frames is not None:
        segs["image"] = data.frames[data.seg_frames[rows]]
    return segs


def gather_pair(data: SweepData, a: jax.Array, b: jax.Array, fused: bool) -> tuple[dict, dict]:
    """The segment dicts of pairs (a [B], b [B]); ``fused``: one gather for both sides (same values)."""
    if not fused:
        return gather_segments(data, a), gather_segments(data, b)
    both, size = gather_segments(data, jnp.concatenate([a, b])), a.shape[0]
    return tuple(jax.tree.map(lambda x, h=h: x[h * size:(h + 1) * size], both) for h in (0, 1))


def init_sweep_state(model: nn.Module, tx, grid: SweepGrid, sample_segments: dict, norm: dict,
                     base_seed: int, sharding=None) -> MemberState:
    """Stacked [P, K] member states; init keys differ per (seed, member), shared across N so
    a larger N starts from the same initialisation as a smaller one (a paired comparison).

    ``sharding`` (e.g. points split over an "ensemble" mesh axis) makes the parameters come out
    of the jitted init already placed, never materialised whole on one device.
    """
    points = grid.points

    def one(seed, member):
        init_key, rng, boot = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), member), 3)
        variables = model.init(init_key, sample_segments["obs"], sample_segments["act"],
                               sample_segments["task"], sample_segments["embodiment"], sample_segments.get("image"))
        variables = {"params": variables["params"], "norm": norm}
        train = TrainState.create(variables, tx, rng)
        return MemberState(train=train, best_params=train.params, best_val_loss=jnp.full((), jnp.inf, jnp.float32),
                           best_step=jnp.zeros((), jnp.int32), boot_key=boot)

    seeds = np.asarray([base_seed * 1_000_003 + grid.seeds[s] for _, _, s in points], np.uint32)
    members = np.arange(grid.members, dtype=np.uint32)
    return jax.jit(jax.vmap(jax.vmap(one, (None, 0)), (0, None)), out_shardings=sharding)(seeds, members)


def point_spec(grid: SweepGrid) -> PointSpec:
    c, n, s = (np.asarray(v, np.int32) for v in zip(*grid.points))
    return PointSpec(condition=jnp.asarray(c), n=jnp.asarray(n), seed_index=jnp.asarray(s))


def _per_pair(table: jax.Array, point: PointSpec, pool: jax.Array) -> jax.Array:
    """table[condition, pool] of a [C, Ptr] table, table[condition, seed, pool] of [C, nseeds, Ptr]."""
    if table.ndim == 2:
        return table[point.condition, pool]
    return table[point.condition, point.seed_index, pool]


def pair_batch(seg_a: dict, seg_b: dict, label, weight) -> dict:
    """The reward update's pair batch (``rlhf_jax.train.reward``) of two gathered segment dicts."""
    batch = {"obs_a": seg_a["obs"], "act_a": seg_a["act"], "task_a": seg_a["task"],
             "embodiment_a": seg_a["embodiment"], "obs_b": seg_b["obs"], "act_b": seg_b["act"],
             "task_b": seg_b["task"], "embodiment_b": seg_b["embodiment"], "label": label, "weight": weight}
    if "image" in seg_a:
        batch["image_a"], batch["image_b"] = seg_a["image"], seg_b["image"]
    return batch


def surf_crops(key, segs: dict, on, surf: SurfSpec) -> dict:
    """SURF crops [B, L, ...] where the condition trains with SURF (``on``), the centre window elsewhere."""
    offset = jax.random.randint(key, segs["obs"].shape[:1], 0, 2 * surf.margin + 1)
    return window(segs, jnp.where(on, offset, surf.margin), surf.length)


def unlabelled_batch(key, point: PointSpec, data: SweepData, on, surf: SurfSpec, batch_size: int) -> dict:
    """mu·B of the point's pool pairs past its N (SURF's unlabelled batch): centre windows, crops
    and per-pair weights (0 where the condition does not train with SURF or the pool is used up)."""
    k_u, k_a, k_b = jax.random.split(key, 3)
    order = data.order[point.condition, point.seed_index]
    usable = jnp.sum(order >= 0)
    u = jax.random.randint(k_u, (surf.mu * batch_size,), point.n, jnp.maximum(usable, point.n + 1))
    pool = order[u]
    a, b = gather_segments(data, data.train_a[pool]), gather_segments(data, data.train_b[pool])
    weight = jnp.full((surf.mu * batch_size,), on * (usable > point.n), jnp.float32)
    zeros = jnp.zeros((surf.mu * batch_size,), jnp.float32)
    centre = lambda segs: window(segs, surf.margin, surf.length)  # noqa: E731
    return {"centre": pair_batch(centre(a), centre(b), zeros, zeros),
            "crop": pair_batch(surf_crops(k_a, a, on > 0, surf), surf_crops(k_b, b, on > 0, surf), zeros, zeros),
            "weight": weight}


def make_sweep_chunk(model: nn.Module, tx, loss_config, *, batch_size: int, eval_every: int,
                     evals_per_chunk: int, bootstrap: bool, surf: SurfSpec | None = None,
                     token_dropout: tuple[float, int] | None = None, eval_block: int | None = EVAL_BLOCK,
                     scheduled: bool = False, donate: bool = True, fused_gather: bool = False) -> Callable:
    """Returns jitted ``chunk(states, points, data) -> (states, history)``, reusing the input states'
    buffers if ``donate``; fused_gather: see ``gather_pair``. scheduled: ``chunk(states, points, data,
    eval_mask)`` instead (``scheduled_chunk``; the mask, ``rlhf_jax.train.eval_schedule.chunk_masks``,
    is traced, so every chunk of any schedule runs one compiled program; ``eval_every`` and
    ``evals_per_chunk`` are then unused).

    token_dropout (rate, unknown_id): each training segment's embodiment id is replaced by
    ``unknown_id`` with probability ``rate`` (an independent draw per segment and step), so the
    model learns an unknown-embodiment token for arms it never saw. Validation is not dropped.

    history: ``loss`` [steps, P, K] per training step (for NaN localisation and curves), and
    ``val_loss``, ``val_accuracy`` [evals, P, K] at each evaluation.
    """
    update = make_reward_update(loss_config, model, tx, None if surf is None else (surf.tau, surf.lam))
    centre = (lambda segs: segs) if surf is None else (lambda segs: window(segs, surf.margin, surf.length))

    def val_metrics(params, norm, cond, data):
        ret = blocked_returns(model, params, norm, data, data.val_rows, eval_block, centre)
        _, m = bradley_terry_loss(ret[data.val_a], ret[data.val_b], data.val_label[cond],
                                  data.val_weight[cond])
        return -m["log_likelihood"], m["accuracy"]

    def train_step(member: MemberState, point: PointSpec, data: SweepData):
        rng, sample_key = jax.random.split(member.train.rng)
        u = jax.random.randint(sample_key, (batch_size,), 0, point.n)
        pool = data.order[point.condition, point.seed_index, u]
        seg_a, seg_b = gather_pair(data, data.train_a[pool], data.train_b[pool], fused_gather)
        if token_dropout is not None:  # own stream: the pair draw stays as without dropout
            seg_a, seg_b = drop_tokens(jax.random.fold_in(sample_key, 2), (seg_a, seg_b), *token_dropout)
        weight = bootstrap_weights(member.boot_key, pool) if bootstrap else jnp.ones((batch_size,))
        if data.train_weight is not None:  # the BT loss normalises by the summed weight
            weight = weight * _per_pair(data.train_weight, point, pool)
        label = _per_pair(data.train_label, point, pool)
        if surf is None:
            batch = pair_batch(seg_a, seg_b, label, weight)
        else:
            # Separate streams (fold_in of the step's key): the labelled draw stays as without SURF.
            k_a, k_b, k_u = jax.random.split(jax.random.fold_in(sample_key, 1), 3)
            on = data.surf_on[point.condition]
            batch = pair_batch(surf_crops(k_a, seg_a, on > 0, surf), surf_crops(k_b, seg_b, on > 0, surf), label,
                               weight)
            batch["unlabelled"] = unlabelled_batch(k_u, point, data, on, surf, batch_size)
        train, metrics = update(member.train.replace(rng=rng), batch)
        return member.replace(train=train), metrics["loss"]

    def evaluate(member: MemberState, point: PointSpec, data: SweepData):
        loss, acc = val_metrics(member.train.params, member.train.norm, point.condition, data)
        better = loss < member.best_val_loss
        pick = lambda new, old: jax.tree.map(lambda x, y: jnp.where(better, x, y), new, old)
        member = member.replace(best_params=pick(member.train.params, member.best_params),
                                best_val_loss=jnp.where(better, loss, member.best_val_loss),
                                best_step=jnp.where(better, member.train.step, member.best_step))
        return member, (loss, acc)

    over_all = lambda f: jax.vmap(jax.vmap(f, (0, None, None)), (0, 0, None))

    def chunk(states, points, data):
        def interval(states, _):
            def one_step(s, _):
                return over_all(train_step)(s, points, data)

            states, losses = jax.lax.scan(one_step, states, None, length=eval_every)
            states, (vl, va) = over_all(evaluate)(states, points, data)
            return states, (losses, vl, va)

        states, (losses, vl, va) = jax.lax.scan(interval, states, None, length=evals_per_chunk)
        losses = losses.reshape((-1,) + losses.shape[2:])
        return states, {"loss": losses, "val_loss": vl, "val_accuracy": va}

    if scheduled:
        return jax.jit(scheduled_chunk(over_all(train_step), over_all(evaluate)), donate_argnums=0 if donate else ())
    return jax.jit(chunk, donate_argnums=0 if donate else ())


def scheduled_chunk(train_all: Callable, evaluate_all: Callable) -> Callable:
    """``chunk(states, points, data, eval_mask) -> (states, history)`` of per-step programs over
    every (point, member): ``train_all(states, points, data) -> (states, loss [P, K])`` and
    ``evaluate_all(states, points, data) -> (states, (val loss, val accuracy))``. eval_mask bool
    [steps + 1]: entry 0 evaluates before the first update, entry i after update i; history
    ``loss`` [steps, P, K], ``val_loss``/``val_accuracy`` [steps + 1, P, K], NaN where not evaluated.
    """
    def maybe_evaluate(states, points, data, flag):
        # An unbatched predicate: a real branch, so steps without an evaluation do not pay for one.
        def skip(s):
            nan = jnp.full(s.best_val_loss.shape, jnp.nan, jnp.float32)
            return s, (nan, nan)

        return jax.lax.cond(flag, lambda s: evaluate_all(s, points, data), skip, states)

    def chunk(states, points, data, eval_mask):
        states, (vl0, va0) = maybe_evaluate(states, points, data, eval_mask[0])

        def one_step(s, flag):
            s, losses = train_all(s, points, data)
            s, (vl, va) = maybe_evaluate(s, points, data, flag)
            return s, (losses, vl, va)

        states, (losses, vl, va) = jax.lax.scan(one_step, states, eval_mask[1:])
        return states, {"loss": losses, "val_loss": jnp.concatenate([vl0[None], vl]),
                        "val_accuracy": jnp.concatenate([va0[None], va])}

    return chunk


def make_segment_scorer(model: nn.Module, surf: SurfSpec | None = None,
                        eval_block: int | None = EVAL_BLOCK) -> Callable:
    """Jitted ``score(params [P, K, ...], norm, data, rows [R]) -> returns [P, K, R]`` (of the centre
    windows when the table keeps a SURF margin), scored in blocks of ``eval_block`` rows."""
    centre = (lambda segs: segs) if surf is None else (lambda segs: window(segs, surf.margin, surf.length))

    def score(params, norm, data, rows):
        def one(p):
            return blocked_returns(model, p, norm, data, rows, eval_block, centre)

        return jax.vmap(jax.vmap(one))(params)

    return jax.jit(score)


def make_validation(model: nn.Module, eval_block: int | None = EVAL_BLOCK) -> Callable:
    """Jitted ``validate(params [P, K, ...], norm [P, K, ...], points, data) -> (val NLL, val
    accuracy)`` each [P, K]: what the sweep's best-validation selection compares, for parameters
    that have not been trained yet (e.g. a pretrained ensemble as step 0 of fine-tuning)."""

    def one(params, norm, cond, data):
        ret = blocked_returns(model, params, norm, data, data.val_rows, eval_block)
        _, m = bradley_terry_loss(ret[data.val_a], ret[data.val_b], data.val_label[cond], data.val_weight[cond])
        return -m["log_likelihood"], m["accuracy"]

    per_member = jax.vmap(one, (0, 0, None, None))
    return jax.jit(jax.vmap(per_member, (0, 0, 0, None)))


def grouped_chunk(chunk: Callable, groups: int) -> Callable:
    """``chunk(states, points, data, *extra)`` (extra: a scheduled chunk's eval mask) run on
    ``groups`` equal slices of the sweep points one after another, then put back together: every
    point is independent, so the results are the same (to float rounding: a slice vectorises
    differently), and the XLA temporaries (training activations of every (point, member)) are
    those of one slice. States and history are split and joined along the points axis (history leaves
    [steps | evals, P, K])."""
    if groups <= 1:
        return chunk

    def run(states, points, data, *extra):
        total = points.n.shape[0]
        if total % groups:
            raise ValueError(f"point_groups={groups} must divide the {total} sweep points")
        size = total // groups
        part = lambda tree, g, axis=0: jax.tree.map(
            lambda x: jax.lax.slice_in_dim(x, g * size, (g + 1) * size, axis=axis), tree)
        outs = [chunk(part(states, g), part(points, g), data, *extra) for g in range(groups)]
        joined = jax.tree.map(lambda *xs: jnp.concatenate(xs, 0), *[o[0] for o in outs])
        history = jax.tree.map(lambda *xs: jnp.concatenate(xs, 1), *[o[1] for o in outs])
        return joined, history

    return run
