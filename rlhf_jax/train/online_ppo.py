"""Online and offline RLHF as one compiled PPO program, vmapped over runs (seeds), and PPO on
the gold rubric as their reference under the same seeds.

    program = make_program(config, "online", ref_variables, policy_model)   # or "offline", "gold"
    state = program.init(keys [R], hparams {beta, clip_eps, lr: [R]})       # R runs
    state, metrics = program.chunk(state, start)                             # metrics [R, chunk]
    program.policy_variables(state, r), program.reward_model(state, r)      # run r's final policy, reward
    program.labels(state), program.env_steps(state)                         # [R]: what each run spent

Evaluation is not here: the experiment rolls every final policy out deterministically on the
RLHF pipeline's evaluation states (``experiments.stages.point_eval``).

init: π_ref's (π_SFT's) reference rollouts → the annotator's scale s (fixed from them, so its
noise does not drift as the policy moves) and the reward model's input statistics → the
schedule's initial labels, pairs of reference segments labelled by the JAX annotator, pushed
into the window → the ensemble fitted on them (reward.init_steps).

One update (``online_step``): rollout of the policy against the current ensemble → the PPO update →
at a collection update: q pairs from that rollout (uniform or active), labelled, queued → the
labels collected d updates ago arrive, enter the window, and the ensemble is refitted on the
window, warm-started (reward.refit_steps); PPO then continues against the new reward.

Schedule (host side, static): offline spends the whole budget N before PPO (q = 0, no refit);
online spends N₀ = round(f·N) before PPO and q = ⌊(N − N₀)/n_c⌋ at each of its n_c collections
(the rounding remainder goes to N₀, so both spend exactly N). A collection happens at update u
(0-based) when (u + 1)·T is a multiple of rm_every (environment steps per environment), as
long as its labels arrive (u + d) before the last update. The global update index is a scan
input, not part of the (vmapped) state, so these tests stay real conditionals under vmap.

Gold (``make_gold_program``): the same PPO from the same PPO key per seed (``run_keys``), on the
gold rubric; it spends no labels and makes no reference rollouts.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np

from rlhf_jax import normalizer
from rlhf_jax.ensemble import init_ensemble
from rlhf_jax.preferences.annotators import resolve_teachers
from rlhf_jax.envs import robots as R
from rlhf_jax.envs import simulator as S
from rlhf_jax.envs import tasks as T
from rlhf_jax.envs.constraints import project_action
from rlhf_jax.models.encoders import set_norm_stats
from rlhf_jax.models.policy import make_policy
from rlhf_jax.models.reward import MarkovianReward
from rlhf_jax.models.reward_inference import gold_reward_fn, learned_reward_fn
from rlhf_jax.reward_artifact import RewardModel
from rlhf_jax.train import online as O
from rlhf_jax.train import ppo
from rlhf_jax.train.ppo_rollout import OBS_DIM, make_ppo_env, reset_envs, rollout, running_norm
from rlhf_jax.train.reward import pair_returns
from rlhf_jax.train.state import TrainState, make_optimizer

MODES = ("offline", "online")  # the learned-reward modes, compared at equal labels and steps
GOLD = "gold"  # PPO on the gold rubric: the reference, no labels
# Per-update metrics of the label side; the gold program reports them as zeros.
LABEL_METRICS = ("labels_collected", "labels_arrived", "refit", "rm/accuracy", "rm/loss", "labels_spent", "window",
                 "labels_evicted")


class Schedule(NamedTuple):
    """The label schedule of one mode (static). collect: 0-based updates that collect q labels."""

    mode: str
    budget: int
    initial: int
    per_collect: int
    every: int  # updates between collections (rm_every / num_steps)
    delay: int
    collect: tuple
    capacity: int
    num_updates: int

    @property
    def arrive(self) -> tuple:
        return tuple(u + self.delay for u in self.collect)


def make_schedule(config, mode: str) -> Schedule:
    """The Schedule of ``mode`` from config.online {budget, initial_fraction, rm_every, window,
    latency} and config.ppo {num_steps, num_updates} (see the module docstring)."""
    o, updates = config.online, int(config.ppo.num_updates)
    every, delay, budget = max(int(o.rm_every) // int(config.ppo.num_steps), 1), int(o.latency), int(o.budget)
    if mode == GOLD:  # no labels at all
        return Schedule(mode, 0, 0, 0, every, 0, (), 0, updates)
    if mode == "offline":  # the whole budget before PPO; the window keeps every label
        return Schedule(mode, budget, budget, 0, every, delay, (), budget, updates)
    collect = tuple(u for u in range(updates) if (u + 1) % every == 0 and u + delay < updates - 1)
    initial = int(round(float(o.initial_fraction) * budget))
    q = (budget - initial) // len(collect) if collect else 0
    collect = collect if q > 0 else ()
    return Schedule(mode, budget, budget - q * len(collect), q, every, delay, collect, int(o.window), updates)


class RunKeys(NamedTuple):
    """The keys one run's key splits into. ``ppo`` alone seeds PPO (policy, value net,
    environments, sampling), so the learned modes and gold share it per seed."""

    ppo: jax.Array
    reference: jax.Array
    scale: jax.Array
    members: jax.Array
    pairs: jax.Array
    labels: jax.Array
    fit: jax.Array
    rest: jax.Array


def run_keys(rng) -> RunKeys:
    return RunKeys(*jax.random.split(rng, 8))


@flax.struct.dataclass
class OnlineState:
    """One run: PPO, the reward ensemble [K], the label window, the latency queue, the
    annotator's fixed scale s and the labels spent so far."""

    ppo: ppo.PPOState
    rm: TrainState
    window: O.RingBuffer
    queue: dict | None
    scale: jax.Array
    labels: jax.Array
    rng: jax.Array


class OnlineProgram(NamedTuple):
    """Jitted programs over R stacked runs, and what the driver reads from a final state."""

    init: Callable  # (keys [R], hparams {[R]}) -> state [R]
    chunk: Callable  # (state [R], start) -> (state, metrics [R, chunk_len])
    schedule: Schedule
    chunk_len: int
    policy: Any  # the policy module (π and π_ref share it)
    policy_variables: Callable  # (state [R], r) -> run r's policy {"params", "norm"}
    reward_model: Callable  # (state [R], r) -> run r's final ensemble as a RewardModel, None for gold
    labels: Callable  # state [R] -> labels spent [R]
    env_steps: Callable  # state [R] -> environment steps taken [R] (PPO's and the reference rollouts')


def random_reference(config) -> tuple[dict, Any]:
    """(variables, policy module) of a randomly initialised π_ref, fixed by config.seed and shared
    by every run and mode (the tiny variants' stand-in for π_SFT); the identity normaliser."""
    policy = make_policy(config.model, len(T.TASKS), len(R.EMBODIMENTS))
    ids = jnp.zeros((1,), jnp.int32)
    params = policy.init(jax.random.key(int(config.seed)), jnp.zeros((1, OBS_DIM), jnp.float32), ids, ids)["params"]
    return {"params": params, "norm": running_norm(jnp.zeros((OBS_DIM,)), jnp.ones((OBS_DIM,)))}, policy


def traj_view(env, traj: dict) -> dict:
    """What pair sampling reads from a rollout: feats, act (rad/s, the reward model's action
    layout), rc [T, E, ...] and task [E]."""
    a = project_action(env.safety, traj["action"]) if env.safety is not None and env.safety.mode == "projection" \
        else traj["action"]
    return {"feats": traj["feats"], "act": a * env.qd_max, "rc": traj["rc"], "task": env.task_ids}


def _zero_reward(obs, act, task, emb, components):
    return jnp.zeros(obs.shape[:1], jnp.float32)


def _fixed_stats(x):
    """(mean, std) [D] of x [..., D] in jnp (``normalizer.stats``' rule, traceable)."""
    flat = x.reshape(-1, x.shape[-1])
    std = flat.std(0)
    return flat.mean(0), jnp.where(std < normalizer.MIN_STD, 1.0, std)


class Parts(NamedTuple):
    """The static pieces of one mode's program (closed over, never traced)."""

    env: Any
    model: ppo.ActorCritic
    ppo_init: Callable
    update: Callable
    sched: Schedule
    ann: O.Annotator
    rm_model: MarkovianReward
    rm_tx: Any
    init_fit: Callable
    refit: Callable
    members: int
    length: int
    n_tasks: int
    reward: Any  # config.reward
    online: Any  # config.online


def make_parts(config, mode: str, ref_variables: dict | None = None, policy_model=None) -> Parts:
    """Parts of ``mode`` from config (as ``configs/online_rlhf.py``, validated by
    ``experiments.online_rlhf.validate``); ref_variables: π_ref's {"params", "norm"} (None: a
    random init is π_ref)."""
    rc = config.reward
    model = ppo.make_actor_critic(config, policy_model, from_ref=ref_variables is not None)
    tx = ppo.make_ppo_optimizer(config)
    teacher = resolve_teachers(config.annotator)[0]
    rm_model = MarkovianReward(num_tasks=len(T.TASKS), num_embodiments=len(R.EMBODIMENTS), hidden=tuple(rc.hidden))
    rm_tx = make_optimizer(rc.optimizer, total_steps=int(rc.init_steps))
    fit = lambda steps: O.make_window_fit(rc.loss, rm_model, rm_tx, steps, int(rc.batch_size), float(rc.stop_accuracy))
    return Parts(env=make_ppo_env(config), model=model, ppo_init=ppo.make_init(config, model, tx, ref_variables),
                 update=ppo.make_ppo_update(config, model, tx), sched=make_schedule(config, mode),
                 ann=O.annotator_of(teacher, S.REWARD_COMPONENTS, S.rubric_vector(config.get("rubric"))),
                 rm_model=rm_model, rm_tx=rm_tx, init_fit=fit(int(rc.init_steps)), refit=fit(int(rc.refit_steps)),
                 members=int(rc.ensemble_size), length=int(rc.segment_length), n_tasks=len(config.env.tasks),
                 reward=rc, online=config.online)


def proxy_fn(parts: Parts, rm_vars) -> Callable:
    """The ensemble (variables stacked [K]) as PPO's per-step reward."""
    rc = parts.reward
    return learned_reward_fn(parts.rm_model, rm_vars, ensemble=True, aggregation=rc.aggregation, lam=float(rc.lam),
                             scale=float(rc.scale))


def sample(parts: Parts, key, view: dict, n: int) -> dict:
    return O.sample_pairs(key, view, n, parts.length, parts.n_tasks, parts.env.emb_id)


def labelled(parts: Parts, pairs: dict, key, scale) -> dict:
    """The window entries (PAIR_KEYS) of pairs, labelled by the annotator at scale s."""
    label = O.boltzmann_label(key, parts.ann, pairs["rc_a"], pairs["rc_b"], scale)
    return {k: pairs[k] for k in O.PAIR_KEYS[:-1]} | {"label": label}


def reference_rollouts(parts: Parts, ref_vars: dict, key) -> dict:
    """``traj_view`` of online.reference_rollouts rollouts of π_ref, environments side by side:
    [T, n_ref·E, ...] (environment r·E + e still runs task e mod n_tasks)."""
    env, n_ref = parts.env, int(parts.online.reference_rollouts)

    def one(k):
        k_reset, k_roll = jax.random.split(k)
        _, traj = rollout(env, parts.model.policy, _zero_reward, ref_vars, ref_vars, reset_envs(env, k_reset), k_roll)
        return traj_view(env, traj)

    views = jax.lax.map(one, jax.random.split(key, n_ref))  # [n_ref, T, E, ...]
    cat = lambda x: jnp.moveaxis(x, 0, 1).reshape((x.shape[1], -1) + x.shape[3:])
    return {k: cat(views[k]) for k in ("feats", "act", "rc")} | {"task": jnp.tile(env.task_ids, n_ref)}


def init_state(parts: Parts, rng, hparams) -> OnlineState:
    """PPO state, reference rollouts → scale s and input statistics → initial labels → fit."""
    sched, length, k_members, q = parts.sched, parts.length, parts.members, parts.sched.per_collect
    keys = run_keys(rng)
    ps = parts.ppo_init(keys.ppo, hparams)
    ref = reference_rollouts(parts, {"params": ps.ref_params, "norm": ps.norm}, keys.reference)
    probe = sample(parts, keys.scale, ref, 1024)
    scale = O.reference_scale(parts.ann, jnp.concatenate([probe["rc_a"], probe["rc_b"]]))
    ids = jnp.zeros((1,), jnp.int32)
    example = (ref["feats"][:length, :1].swapaxes(0, 1), ref["act"][:length, :1].swapaxes(0, 1), ids, ids)
    variables = init_ensemble(parts.rm_model, jax.random.split(keys.members, k_members), *example)
    variables = set_norm_stats(variables, _fixed_stats(ref["feats"]), _fixed_stats(ref["act"]))
    states = jax.vmap(lambda v, k: TrainState.create(v, parts.rm_tx, k))(variables,
                                                                         jax.random.split(keys.members, k_members))
    first = labelled(parts, sample(parts, keys.pairs, ref, sched.initial), keys.labels, scale)
    window = O.ring_push(O.ring_init(first, sched.capacity), first, jnp.ones((sched.initial,), bool))
    states, _ = parts.init_fit(states, window, jax.random.split(keys.fit, k_members))
    batch = jax.tree.map(lambda x: jnp.zeros((q,) + x.shape[1:], x.dtype), first)  # one collection
    queue = O.queue_init(batch, sched.delay) if q else None
    return OnlineState(ppo=ps, rm=states, window=window, queue=queue, scale=scale,
                       labels=jnp.asarray(sched.initial, jnp.int32), rng=keys.rest)


def _at(updates: tuple, n: int) -> jax.Array:
    """bool [n]: which 0-based updates are in ``updates`` (indexed by the unbatched update index)."""
    return jnp.asarray(np.isin(np.arange(n), updates))


def collect_and_refit(parts: Parts, state: OnlineState, traj: dict, u) -> tuple[OnlineState, dict]:
    """Collection, latency queue, window and refit of update u (an unbatched scalar, so the
    conditionals stay conditionals under vmap). Returns (state, metrics)."""
    sched, q, o = parts.sched, parts.sched.per_collect, parts.online
    collect, arrive = _at(sched.collect, sched.num_updates)[u], _at(sched.arrive, sched.num_updates)[u]
    k_sel, k_lab, k_fit = jax.random.split(jax.random.fold_in(state.rng, u), 3)
    members = lambda p: jax.vmap(lambda v: pair_returns(parts.rm_model, v, p | {"label": p["task_a"]}))(
        state.rm.variables)  # each member's (R_a, R_b) [K, M], for the active methods
    empty = jax.tree.map(lambda x: jnp.zeros((q,) + x.shape[1:], x.dtype), state.window.items)
    gather = lambda: labelled(parts, O.select_pairs(k_sel, traj_view(parts.env, traj), q, parts.length, parts.n_tasks,
                                                    parts.env.emb_id, o.query, members, float(o.oversampling)),
                              k_lab, state.scale)
    items = jax.lax.cond(collect, gather, lambda: empty)
    queue, arrived, valid = O.queue_step(state.queue, items, jnp.full((q,), collect))
    window = O.ring_push(state.window, arrived, valid)
    keys = jax.random.split(k_fit, parts.members)
    no_fit = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(parts.refit, state.rm, window, keys)[1])
    rm, fm = jax.lax.cond(arrive, lambda r: parts.refit(r, window, keys), lambda r: (r, no_fit), state.rm)
    collected = q * collect.astype(jnp.int32)
    m = {"labels_collected": collected, "labels_arrived": valid.sum(), "refit": arrive.astype(jnp.int32),
         "rm/accuracy": fm["accuracy"].mean(), "rm/loss": fm["loss"].mean()}
    return state.replace(rm=rm, window=window, queue=queue, labels=state.labels + collected), m


def online_step(parts: Parts, state: OnlineState, u) -> tuple[OnlineState, dict]:
    """One update u: rollout against the current ensemble, PPO update, then (online) collection,
    arrival and refit. metrics: PPO's, the label counters, the refit's accuracy and loss, and the
    window: labels it holds and labels evicted from it so far (pushed beyond its capacity)."""
    ps, traj = ppo.collect_rollout(parts.env, parts.model, proxy_fn(parts, state.rm.variables), state.ppo)
    ps, m = parts.update(ps, traj)
    state = state.replace(ppo=ps)
    if parts.sched.per_collect:
        state, extra = collect_and_refit(parts, state, traj, u)
    else:
        zero = jnp.zeros((), jnp.int32)
        extra = {"labels_collected": zero, "labels_arrived": zero, "refit": zero,
                 "rm/accuracy": jnp.zeros(()), "rm/loss": jnp.zeros(())}
    cap = parts.sched.capacity
    return state, dict(m, **extra, labels_spent=state.labels, window=jnp.minimum(state.window.count, cap),
                       labels_evicted=jnp.maximum(state.window.count - cap, 0))


def _run(tree, r: int):
    """Run r's slice of a tree stacked over runs, on the host."""
    return jax.device_get(jax.tree.map(lambda x: x[r], tree))


def final_reward_model(parts: Parts, state: OnlineState, r: int) -> RewardModel:
    """Run r's final ensemble as a ``reward_artifact.RewardModel`` (what the pipeline's evaluation
    scores episodes with), combined per step as PPO combined it."""
    v = _run(state.rm.variables, r)
    # Every member holds the same input statistics (set once from π_ref's rollouts, never trained).
    norm = jax.tree.map(lambda x: x[0], v["norm"])
    rc = parts.reward
    return RewardModel(model=parts.rm_model, variables={"params": v["params"], "norm": norm},
                       meta={"members": parts.members, "model": {"kind": "markovian"}}, path="",
                       aggregation=rc.aggregation, lam=float(rc.lam), scale=float(rc.scale))


def _steps_per_update(config) -> int:
    return int(config.ppo.num_envs) * int(config.ppo.num_steps)


def make_online_program(config, mode: str, ref_variables: dict | None = None, policy_model=None) -> OnlineProgram:
    """``init_state`` and ``online_step`` scanned over a chunk of config.log_every updates, each
    vmapped over runs and jitted."""
    parts = make_parts(config, mode, ref_variables, policy_model)
    chunk_len, per_update = int(config.log_every), _steps_per_update(config)
    reference_steps = int(config.online.reference_rollouts) * per_update

    def chunk(state, start):
        return jax.lax.scan(functools.partial(online_step, parts), state,
                            start + jnp.arange(chunk_len, dtype=jnp.int32))

    return OnlineProgram(init=jax.jit(jax.vmap(functools.partial(init_state, parts))),
                         chunk=jax.jit(jax.vmap(chunk, in_axes=(0, None))), schedule=parts.sched, chunk_len=chunk_len,
                         policy=parts.model.policy,
                         policy_variables=lambda s, r: _run(ppo.policy_variables(s.ppo), r),
                         reward_model=functools.partial(final_reward_model, parts),
                         labels=lambda s: np.asarray(s.labels, np.int64),
                         env_steps=lambda s: np.asarray(s.ppo.update, np.int64) * per_update + reference_steps)


def make_gold_program(config, ref_variables: dict | None = None, policy_model=None) -> OnlineProgram:
    """PPO on the gold rubric with the learned modes' PPO settings, from each seed's same PPO key
    (``run_keys(rng).ppo``): a learned run and its gold reference differ only in the reward.
    Its states are ``ppo.PPOState`` [R]; its label metrics are zeros."""
    model = ppo.make_actor_critic(config, policy_model, from_ref=ref_variables is not None)
    tx = ppo.make_ppo_optimizer(config)
    env, init, update = make_ppo_env(config), ppo.make_init(config, model, tx, ref_variables), \
        ppo.make_ppo_update(config, model, tx)
    reward_fn, chunk_len, per_update = gold_reward_fn(config.get("rubric")), int(config.log_every), \
        _steps_per_update(config)

    def step(ps, u):
        ps, traj = ppo.collect_rollout(env, model, reward_fn, ps)
        ps, m = update(ps, traj)
        return ps, dict(m, **{k: jnp.zeros((), jnp.int32) for k in LABEL_METRICS})

    def chunk(ps, start):
        return jax.lax.scan(step, ps, start + jnp.arange(chunk_len, dtype=jnp.int32))

    return OnlineProgram(init=jax.jit(jax.vmap(lambda rng, hp: init(run_keys(rng).ppo, hp))),
                         chunk=jax.jit(jax.vmap(chunk, in_axes=(0, None))), schedule=make_schedule(config, GOLD),
                         chunk_len=chunk_len, policy=model.policy,
                         policy_variables=lambda s, r: _run(ppo.policy_variables(s), r),
                         reward_model=lambda s, r: None, labels=lambda s: np.zeros(s.update.shape, np.int64),
                         env_steps=lambda s: np.asarray(s.update, np.int64) * per_update)


def make_program(config, mode: str, ref_variables: dict | None = None, policy_model=None) -> OnlineProgram:
    """The program of ``mode``: one of MODES, or GOLD."""
    if mode == GOLD:
        return make_gold_program(config, ref_variables, policy_model)
    return make_online_program(config, mode, ref_variables, policy_model)
