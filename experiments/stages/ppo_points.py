"""PPO over points: many PPO runs from one π_SFT in one vmapped program, each run ("point") on its
own reward — a saved reward-model ensemble, whose parameters are a traced input stacked as
[points, members, ...], or the gold rubric (the PPO-on-gold reference) — and its own PPO seed.

    stage = points_stage(ppo_config, points, aggregation, seed)   # run(stage_dir) for run_stage

Runs that share a PPO seed share their PPO key (environments, initial states, sampling noise), so
a learned-reward run and its gold reference differ only in the reward. The program runs in
checkpointed chunks of ``log_every`` updates (``rlhf_jax.train.chunks``); a stage interrupted
mid-way resumes from its last chunk to the numbers of an uninterrupted run. The stage saves the
trained policies as one stacked checkpoint (``policies``), its rows in the checkpoint's metadata.
A run whose loss turns non-finite keeps its last finite chunk's state and its row says after how
many updates (``frozen_after_updates``); the other runs go on. The RLHF pipeline and downstream
scaling use it.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from experiments import cli
from experiments.stages.ppo import load_reference
from rlhf_jax.checkpoint import Checkpointer, save_policy
from rlhf_jax.envs.tasks import TASKS
from rlhf_jax.models.reward_inference import learned_or_gold_reward_fn
from rlhf_jax.reward_artifact import load_reward_model
from rlhf_jax.train import ppo
from rlhf_jax.train.chunks import run_chunks


class Point(NamedTuple):
    """One PPO run: ``reward`` a saved reward-model directory, or "gold"; ``seed`` its PPO seed."""

    reward: str
    seed: int


def make_points_train_step(ppo_config, rm_model, ref_vars, policy_model, aggregation: str):
    """(init(rng, hparams, rm_variables, use_gold), train_step(state, rm_variables, use_gold)) of one
    run whose reward-model parameters and gold switch are traced inputs (``jax.vmap`` stacks them)."""

    def parts(rm_variables, use_gold):
        reward_fn = learned_or_gold_reward_fn(rm_model, rm_variables, use_gold, aggregation=aggregation,
                                              rubric=ppo_config.get("rubric"))
        return ppo.make_ppo(ppo_config, reward_fn, ref_vars, policy_model)

    def init(rng, hparams, rm_variables, use_gold):
        return parts(rm_variables, use_gold)[0](rng, hparams)

    def train_step(state, rm_variables, use_gold):
        return parts(rm_variables, use_gold)[1](state)

    return init, train_step


def make_points_train(ppo_config, rm_model, ref_vars, policy_model, aggregation: str):
    """``train(rng, hparams, rm_variables [K, ...], use_gold) -> (PPOState, metrics [num_updates])``:
    one whole run as a single scan (what the chunked stage computes, for tests and benchmarks)."""
    init, step = make_points_train_step(ppo_config, rm_model, ref_vars, policy_model, aggregation)

    def train(rng, hparams, rm_variables, use_gold):
        state = init(rng, hparams, rm_variables, use_gold)
        return jax.lax.scan(lambda s, _: step(s, rm_variables, use_gold), state, None,
                            length=int(ppo_config.ppo.num_updates))

    return train


def stacked_rewards(points: Sequence[Point], aggregation: str, robot: str | None = None, tasks: Sequence[str] = (),
                    load_reward: Callable[[str], Any] | None = None):
    """(reward-model module, variables stacked [points, K, ...], use_gold [points]) for ``points``;
    a gold point carries the first learned point's parameters, which it never reads. With
    ``robot``, every model must have seen that arm and ``tasks`` in its training pairs.
    ``load_reward(path)`` loads a point's reward (default: a saved ensemble, members combined by
    ``aggregation``); every point's must share one module (e.g. ``objective_heads.load_objective_heads``
    for combined per-objective heads)."""
    paths = [p.reward for p in points if p.reward != "gold"]
    if not paths:
        raise ValueError("points: at least one run on a learned reward model (gold-only grids: experiments.ppo_tuning)")
    load_reward = load_reward or (lambda path: load_reward_model(path, aggregation=aggregation))
    models = {path: load_reward(path) for path in dict.fromkeys(paths)}
    for model in models.values() if robot else ():
        model.check_trained_on(robot, tasks, where="points", field="reward")
    first = models[paths[0]]
    variables = [models[p.reward if p.reward != "gold" else paths[0]].stacked_variables for p in points]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *variables)
    return first.model, stacked, jnp.asarray([p.reward == "gold" for p in points])


def point_keys(points: Sequence[Point], seed: int, task: str | None = None) -> jax.Array:
    """The PPO key of every point: ``seed + 1000 · ppo_seed`` (points sharing a PPO seed share it),
    folded with ``task``'s index in ``rlhf_jax.envs.tasks.TASKS`` for a program of one task among
    several (the RLHF pipeline's ``ppo_program_per_task``): a task's runs then draw their own
    environments and noise, and the same ones whichever other tasks the pipeline trains."""
    keys = [jax.random.key(seed + 1000 * p.seed) for p in points]
    return jnp.stack([jax.random.fold_in(k, TASKS.index(task)) for k in keys] if task else keys)


def train_points(ppo_config, points: Sequence[Point], aggregation: str, seed: int, ckpt_dir: str,
                 resume: bool = True, log: Callable[[str], None] = cli.log,
                 load_reward: Callable[[str], Any] | None = None, task: str | None = None):
    """Trains every point in one vmapped program, in checkpointed chunks under ``ckpt_dir``.

    Returns (policy variables stacked [points, ...], metric rows: one dict per update of per-point
    lists, π_ref's metadata). ``ppo_config.log_every`` updates per chunk; ``load_reward`` as in
    ``stacked_rewards``; ``task`` as in ``point_keys``."""
    ref_vars, policy_model, ref_meta = load_reference(ppo_config)
    rm_model, rm_vars, use_gold = stacked_rewards(points, aggregation, ppo_config.env.robot, tuple(ppo_config.env.tasks),
                                                  load_reward)
    init, step = make_points_train_step(ppo_config, rm_model, ref_vars, policy_model, aggregation)
    hp = jax.tree.map(lambda x: jnp.broadcast_to(x, (len(points),)), ppo.default_hparams(ppo_config))
    chunk = int(ppo_config.log_every)

    def one_chunk(state, v, g):
        new, m = jax.lax.scan(lambda s, _: step(s, v, g), state, None, length=chunk)
        # A run whose loss or parameters turn non-finite keeps its last finite state (its key and
        # update count too, so it stays there: the run ends at its last good chunk) instead of
        # stopping every other run of the program; the history flags it.
        ok = jnp.isfinite(m["ppo/loss"]).all() & jnp.all(jnp.asarray(
            [jnp.isfinite(x).all() for x in jax.tree.leaves(new.params)]))
        return jax.tree.map(lambda a, b: _select(ok, a, b), new, state), dict(m, diverged=jnp.broadcast_to(~ok, (chunk,)))

    run_chunk = jax.jit(lambda s: _steps_first(jax.vmap(one_chunk)(s, rm_vars, use_gold)))
    state = jax.jit(jax.vmap(init))(point_keys(points, seed, task), hp, rm_vars, use_gold)
    ckpt, history, start = Checkpointer(ckpt_dir), [], 0
    restored = ckpt.restore(state) if resume else None
    if restored is not None:
        _, state, meta = restored
        history, start = list(meta["history"]), int(meta["chunk"])
        log(f"PPO points: resumed at chunk {start}")

    def record(c, m):
        for i in range(chunk):
            history.append({k: [float(x) if np.isfinite(x) else None for x in np.asarray(v[i], np.float64)]
                            for k, v in m.items() if k != "loss"})

    def progress(c, m):
        gold, kl = np.asarray(m["gold_return"][-1]), np.asarray(m["kl"][-1])
        frozen = int(np.asarray(m["diverged"][-1]).sum())
        return (f"{len(points)} runs: train gold {np.nanmean(gold):.3f} [{np.nanmin(gold):.2f}, {np.nanmax(gold):.2f}], "
                f"kl {np.nanmean(kl):.1f}" + (f", {frozen} frozen at a non-finite loss" if frozen else ""))

    state = run_chunks(run_chunk, state, n_chunks=int(ppo_config.ppo.num_updates) // chunk, steps_per_chunk=chunk,
                       start_chunk=start, checkpointer=ckpt, on_chunk=record, progress=progress,
                       checkpoint_meta=lambda c: {"chunk": c, "history": history}, log=log, name="PPO points",
                       describe_point=lambda index: f"point {points[index[0]]}" if index else "")
    ckpt.close()
    return ppo.policy_variables(jax.device_get(state)), history, ref_meta


def _select(ok, new, old):
    """``new`` where ``ok`` else ``old``, for any leaf (typed PRNG keys through their key data)."""
    if jnp.issubdtype(new.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(jnp.where(ok, jax.random.key_data(new), jax.random.key_data(old)),
                                        impl=jax.random.key_impl(new))
    return jnp.where(ok, new, old)


def _steps_first(out):
    """vmap(scan) gives metrics [points, steps]; the chunk runner reads [steps, points]. The loss it
    checks is zero for a diverged run's chunk (that run is frozen, see ``one_chunk``)."""
    state, metrics = out
    metrics = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), metrics)
    return state, dict(metrics, loss=jnp.where(metrics["diverged"], 0.0, metrics["ppo/loss"]))


def points_stage(ppo_config, points: Sequence[Point], aggregation: str, seed: int,
                 log: Callable[[str], None] = cli.log, load_reward: Callable[[str], Any] | None = None,
                 task: str | None = None):
    """run(stage_dir) -> {"checkpoint", "points", "final", "wall_s"} for ``runner.run_stage``: trains
    ``points`` and saves the stacked policies (meta: π_ref's model, the points, the final metrics);
    ``task`` as in ``point_keys``."""
    def run(stage_dir):
        t0 = time.time()
        variables, history, ref_meta = train_points(ppo_config, points, aggregation, seed,
                                                     os.path.join(stage_dir, "checkpoints", "ppo_train"), log=log,
                                                     load_reward=load_reward, task=task)
        final = history[-1]
        rows = [{"reward": p.reward, "seed": p.seed, **{k: final[k][i] for k in ("gold_return", "proxy_return", "kl")},
                 "frozen_after_updates": next((u for u, h in enumerate(history) if h.get("diverged", [0] * len(points))[i]),
                                              None)}
                for i, p in enumerate(points)]
        meta = {"model": dict(ref_meta["model"]), "obs_dim": ref_meta.get("obs_dim"),
                "action_clip": ref_meta.get("action_clip", 0.999), "init": ppo_config.ref_checkpoint,
                "robot": ppo_config.env.robot, "tasks": list(ppo_config.env.tasks), "points": rows}
        ckpt = os.path.join(stage_dir, "checkpoints", "policies")
        save_policy(ckpt, variables, meta, step=len(history))
        return {"checkpoint": ckpt, "points": rows, "updates": len(history), "wall_s": round(time.time() - t0, 1)}
    return run
