"""Online RLHF pieces: a label window, a latency queue, a JAX annotator, pair sampling and a
warm-started refit of the reward ensemble on the window. All pure and jittable.

The compiled online program (``rlhf_jax.train.online_ppo``) composes them:

    pairs  = select_pairs(key, traj, q, length, n_tasks, method, score_fn)   # from the latest rollout
    labels = boltzmann_label(key, ann, rc_a, rc_b, scale)                    # simulated annotator
    queue, arrived, valid = queue_step(queue, pairs + labels, collected)     # latency: d updates
    window = ring_push(window, arrived, valid)                               # FIFO of capacity C
    states, m = refit(states, window, keys)                                  # K Bradley-Terry steps

Shapes: C window capacity, n items pushed at once, L segment length, D = OBS_DIM, A = MAX_DOF,
Cc = len(REWARD_COMPONENTS), T × E a rollout (steps × environments), K ensemble members.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np

from rlhf_jax.preferences.annotators import Teacher
from rlhf_jax.preferences.teacher_model import (discounted_returns, label_probability, mistake_flip, rational_label,
                                                return_scale)
from rlhf_jax.query import candidate_count, select_queries
from rlhf_jax.train.reward import make_reward_update

# What a window entry holds: one labelled pair in ``rlhf_jax.train.reward``'s batch layout.
PAIR_KEYS = ("obs_a", "act_a", "task_a", "embodiment_a", "obs_b", "act_b", "task_b", "embodiment_b", "label")


# --- The label window: a fixed-capacity FIFO ring buffer ----------------------------------------


@flax.struct.dataclass
class RingBuffer:
    """The C most recent items pushed (imitation's ``comparison_queue_size``, a FIFO).

    items: leaves [C, ...]; slot (count − 1) mod C holds the newest item. count: int32, items
    ever pushed (so the window holds min(count, C) of them).
    """

    items: dict
    count: jax.Array

    @property
    def capacity(self) -> int:
        return jax.tree.leaves(self.items)[0].shape[0]


def ring_init(example: dict, capacity: int) -> RingBuffer:
    """An empty window of ``capacity`` slots shaped like one item of example (leaves [n, ...])."""
    items = jax.tree.map(lambda x: jnp.zeros((capacity,) + x.shape[1:], x.dtype), example)
    return RingBuffer(items=items, count=jnp.zeros((), jnp.int32))


def ring_push(buf: RingBuffer, items: dict, valid) -> RingBuffer:
    """buf with the valid items of items (leaves [n, ...]) appended in order; valid: [n] bool.

    The j-th valid item goes to slot (count + j) mod C. When more than C are valid, only the
    last C are written (a scatter with repeated slots has no defined order).
    """
    cap = buf.capacity
    valid = jnp.asarray(valid, bool)
    n_valid = valid.sum().astype(jnp.int32)
    rank = jnp.cumsum(valid) - 1
    keep = valid & (rank >= n_valid - cap)
    slot = jnp.where(keep, (buf.count + rank) % cap, cap)  # cap = out of range: dropped
    new = jax.tree.map(lambda b, x: b.at[slot].set(x.astype(b.dtype), mode="drop"), buf.items, items)
    return RingBuffer(items=new, count=buf.count + n_valid)


def _window_start(buf: RingBuffer):
    size = jnp.minimum(buf.count, buf.capacity)
    return size, buf.count - size


def ring_window(buf: RingBuffer) -> tuple[dict, jax.Array]:
    """(items [C, ...] oldest first, valid [C]): the window's contents in insertion order."""
    size, start = _window_start(buf)
    idx = (start + jnp.arange(buf.capacity)) % buf.capacity
    return jax.tree.map(lambda x: x[idx], buf.items), jnp.arange(buf.capacity) < size


def ring_sample(buf: RingBuffer, key, n: int) -> tuple[dict, jax.Array]:
    """(items [n, ...] drawn uniformly with replacement from the window, weight [n]: 1, or 0
    for every draw when the window is empty)."""
    size, start = _window_start(buf)
    i = jax.random.randint(key, (n,), 0, jnp.maximum(size, 1))
    slot = (start + i) % buf.capacity
    weight = jnp.full((n,), size > 0, jnp.float32)
    return jax.tree.map(lambda x: x[slot], buf.items), weight


# --- Label latency: a queue of d slots that shifts once per update ------------------------------


def queue_init(example: dict, delay: int) -> dict | None:
    """An empty latency queue of ``delay`` slots, each a batch shaped like example (leaves
    [n, ...]); None for delay 0 (labels arrive in the update that collected them)."""
    if delay == 0:
        return None
    items = jax.tree.map(lambda x: jnp.zeros((delay,) + x.shape, x.dtype), example)
    n = jax.tree.leaves(example)[0].shape[0]
    return {"items": items, "valid": jnp.zeros((delay, n), bool)}


def queue_step(queue: dict | None, items: dict, valid) -> tuple[dict | None, dict, jax.Array]:
    """One update of the queue: items (leaves [n, ...], valid [n]) enter at the back, the batch
    that entered d updates ago leaves at the front. Returns (queue, arrived items, arrived valid)."""
    if queue is None:
        return None, items, jnp.asarray(valid, bool)
    out = jax.tree.map(lambda q: q[0], queue["items"]), queue["valid"][0]
    shift = lambda q, x: jnp.concatenate([q[1:], x[None].astype(q.dtype)], 0)
    queue = {"items": jax.tree.map(shift, queue["items"], items), "valid": shift(queue["valid"], jnp.asarray(valid))}
    return queue, out[0], out[1]


# --- The simulated annotator, ported to JAX -----------------------------------------------------


class Annotator(NamedTuple):
    """The JAX part of one ``preferences.annotators.Teacher``: rubric weights [Cc], rationality β
    (inf = a perfect comparer), mistake rate ε and myopia γ."""

    weights: np.ndarray
    beta: float
    eps: float
    gamma: float


def annotator_of(teacher: Teacher, component_names, gold_weights) -> Annotator:
    """The Teacher's B-Pref parameters (its skip/equal thresholds and careless behaviours are
    not ported: experiments.online_rlhf.validate refuses teachers that use them)."""
    return Annotator(np.asarray(teacher.weights(component_names, gold_weights), np.float32), float(teacher.beta),
                     float(teacher.eps), float(teacher.gamma))


def teacher_returns(ann: Annotator, rc, myopic: bool = False) -> jax.Array:
    """R [...] = Σ_t γ^(L−1−t) Σ_c w_c rc[..., t, c] of segment components rc [..., L, Cc]
    (γ = 1 unless myopic): ``preferences.teacher_model.discounted_returns`` in float32."""
    return discounted_returns(rc, ann.weights, ann.gamma if myopic else 1.0, xp=jnp)


def reference_scale(ann: Annotator, rc) -> jax.Array:
    """s = mean |R| over reference segments rc [S, L, Cc] (Teacher.relative's scale). Computed
    once, from π_SFT's rollouts, so the annotator's noise does not drift with the policy."""
    return return_scale(teacher_returns(ann, rc), xp=jnp)


def annotator_delta(ann: Annotator, rc_a, rc_b, scale) -> jax.Array:
    """Δ [n] = (R^γ_a − R^γ_b) / s of segment pairs rc_a, rc_b [n, L, Cc]: what the annotator
    compares."""
    return (teacher_returns(ann, rc_a, True) - teacher_returns(ann, rc_b, True)) / scale


def boltzmann_label(key, ann: Annotator, rc_a, rc_b, scale) -> jax.Array:
    """Labels [n] in {0, ½, 1} (1: a preferred) of segment pairs rc_a, rc_b [n, L, Cc].

    ``label_pairs``' model, from ``preferences.teacher_model``: the rational label ~
    Bernoulli(σ(βΔ)) (for β = inf: 1[Δ > 0], ½ at Δ = 0), then each decided label is flipped
    with probability ε. One uniform per pair from each half of key decides each step.
    """
    k_u, k_flip = jax.random.split(key)
    delta = annotator_delta(ann, rc_a, rc_b, scale)
    p_a = label_probability(delta, ann.beta, xp=jnp)
    rational = rational_label(jax.random.uniform(k_u, delta.shape), p_a, delta, ann.beta, xp=jnp)
    return mistake_flip(rational, jax.random.uniform(k_flip, delta.shape) < ann.eps, xp=jnp)


# --- Segment pairs from a rollout ---------------------------------------------------------------


def sample_pairs(key, traj: dict, n: int, length: int, n_tasks: int, emb_id: int) -> dict:
    """n segment pairs of ``length`` steps from a rollout traj {feats [T, E, D], act [T, E, A],
    rc [T, E, Cc], task [E]}; both sides of a pair share a task.

    Environment e runs task e mod n_tasks (``make_ppo_env`` cycles the tasks), so side b's
    environment is drawn among those ≡ e_a (mod n_tasks). Starts are uniform in [0, T − L].
    Returns the window's pair layout (PAIR_KEYS but label) plus rc_a, rc_b [n, L, Cc].
    """
    t, e = traj["feats"].shape[:2]
    k_ea, k_eb, k_sa, k_sb = jax.random.split(key, 4)
    e_a = jax.random.randint(k_ea, (n,), 0, e)
    e_b = e_a % n_tasks + n_tasks * jax.random.randint(k_eb, (n,), 0, e // n_tasks)
    out = {}
    for side, env_idx, k in (("a", e_a, k_sa), ("b", e_b, k_sb)):
        rows = jax.random.randint(k, (n,), 0, t - length + 1)[:, None] + jnp.arange(length)
        take = lambda x: x[rows, env_idx[:, None]]
        out.update({f"obs_{side}": take(traj["feats"]), f"act_{side}": take(traj["act"]),
                    f"rc_{side}": take(traj["rc"]), f"task_{side}": traj["task"][env_idx],
                    f"embodiment_{side}": jnp.full((n,), emb_id, jnp.int32)})
    return out


def select_pairs(key, traj: dict, n: int, length: int, n_tasks: int, emb_id: int, method: str = "uniform",
                 score_fn: Callable | None = None, oversampling: float = 10.0) -> dict:
    """n pairs to label: uniform (``sample_pairs``), or the n of ``candidate_count(n)``
    uniform candidates that ``query.select_queries`` ranks first by the ensemble's returns
    score_fn(pairs) -> (R_a, R_b) [K, M] (B-Pref's active sampling from recent rollouts)."""
    if method == "uniform":
        return sample_pairs(key, traj, n, length, n_tasks, emb_id)
    k_cand, k_sel = jax.random.split(key)
    cands = sample_pairs(k_cand, traj, candidate_count(n, oversampling), length, n_tasks, emb_id)
    ra, rb = score_fn(cands)
    idx = select_queries(ra, rb, n, method, k_sel)
    return jax.tree.map(lambda x: x[idx], cands)


# --- Refit of the ensemble on the window --------------------------------------------------------


def make_window_fit(loss_config, model, tx, steps: int, batch_size: int, stop_accuracy: float = 1.0) -> Callable:
    """Returns ``fit(states [K], window, keys [K]) -> (states, metrics)``: warm-started Bradley-
    Terry training of every member on minibatches drawn from the window.

    Each of ``steps`` steps, each member draws its own ``batch_size`` pairs (with replacement,
    bootstrap-like) and takes one ``make_reward_update`` step, unless its minibatch accuracy
    has reached stop_accuracy (PEBBLE stops reward training at 97 % train accuracy; ≥ 1 never
    stops). metrics {loss, accuracy: mean of the last min(20, steps) steps, steps: steps taken}, each [K].
    """
    update = make_reward_update(loss_config, model, tx)
    tail = min(20, steps)

    def member(state, window: RingBuffer, key):
        def step(carry, k):
            state, stopped = carry
            batch, weight = ring_sample(window, k, batch_size)
            new, m = update(state, dict(batch, weight=weight))
            # Measured on the minibatch before this step's change; stop_accuracy >= 1 never stops.
            stop = stopped | (m["accuracy"] >= stop_accuracy) if stop_accuracy < 1.0 else stopped
            state = jax.tree.map(lambda old, nw: jnp.where(stop, old, nw), state, new)
            return (state, stop), {"loss": m["loss"], "accuracy": m["accuracy"], "taken": 1 - stop}

        (state, _), m = jax.lax.scan(step, (state, jnp.zeros((), bool)), jax.random.split(key, steps))
        return state, {"loss": m["loss"][-tail:].mean(), "accuracy": m["accuracy"][-tail:].mean(),
                       "steps": m["taken"].sum()}

    return jax.vmap(member, in_axes=(0, None, 0))
