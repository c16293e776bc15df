"""The PPO stage: a policy optimised against a reward (a saved reward-model ensemble, one fitted
in the run, or the gold rubric) with a KL penalty to pi_ref, in checkpointed chunks of updates.

Used by the `ppo_rlhf` job, the pipeline (PPO-RLHF with and without constraints, PPO on gold) and
over-optimisation. After a crash the same call with ``resume=True`` continues from the last
readable chunk checkpoint, and the final metrics equal those of an uninterrupted run.
"""
from __future__ import annotations

import os
import time
from typing import Callable

import jax

from configs import ppo as ppo_fields
from experiments import cli
from rlhf_jax import config_schema
from rlhf_jax.checkpoint import Checkpointer, prepare_run_dir, restore_policy, save_policy
from rlhf_jax.envs.constraints import CONSTRAINTS
from rlhf_jax.envs.robots import EMBODIMENTS
from rlhf_jax.envs.tasks import TASKS
from rlhf_jax.features import feature_dim
from rlhf_jax.metric_writer import MetricWriter
from rlhf_jax.models.policy import make_policy
from rlhf_jax.models.reward_inference import combined_reward_fn, gold_reward_fn
from rlhf_jax.plotting import new_figure, save_figure
from rlhf_jax.reward_artifact import load_reward_model
from rlhf_jax.sharding import data_mesh
from rlhf_jax.train import ppo
from rlhf_jax.train.chunks import run_chunks
from rlhf_jax.train.reward import build_learned_reward


PLOTS = (("returns", ("gold_return", "proxy_return")), ("kl", ("kl",)), ("beta", ("beta",)),
         ("violations", tuple(f"violations/{c}" for c in CONSTRAINTS)))


def load_learned_reward(rc, robot_name: str, tasks, config_file: str, checkpoint: str | None = None,
                        field: str = "reward.checkpoint"):
    """A saved reward-model ensemble (``checkpoint``, default rc.checkpoint) as a per-step reward,
    checked against this run's features, task vocabulary and arm (errors name ``field``).
    Returns (reward_fn, info)."""
    checkpoint = rc.checkpoint if checkpoint is None else checkpoint
    rm = load_reward_model(checkpoint, aggregation=rc.aggregation, lam=float(rc.lam), scale=float(rc.scale))
    needed = TASKS[:max(TASKS.index(t) for t in tasks) + 1]
    rm.check_compatible("joint", feature_dim("joint"), needed, robot_name, where=config_file, field=field)
    rm.check_trained_on(robot_name, tasks, where=config_file, field=field)
    keep = ("n", "seed", "condition", "label_source", "test_accuracy", "members")
    return rm.reward_fn, {"checkpoint": checkpoint, **{k: rm.meta.get(k) for k in keep}}


def load_objective_heads(rc, robot_name: str, tasks, config_file: str):
    """The saved heads of rc.objectives (objective -> {checkpoint, weight}; weight 0 skipped) combined
    as Σ_o w_o r_o. A head saved by a per-objective sweep must be of its objective (its condition
    ``<teacher>@<objective>``). Returns (reward_fn, info)."""
    fns, weights, info = [], [], {}
    for o, head in rc.objectives.items():
        if float(head.weight) == 0:
            continue
        field = f"reward.objectives.{o}.checkpoint"
        fn, meta = load_learned_reward(rc, robot_name, tasks, config_file, head.checkpoint, field)
        trained_for = str(meta.get("condition") or "").rpartition("@")[2]
        if "@" in str(meta.get("condition") or "") and trained_for != o:
            cli.fail(config_file, field, f"a head trained on {o!r} sub-answers", f"one of {trained_for!r} "
                     f"(condition {meta['condition']!r})")
        fns.append(fn)
        weights.append(float(head.weight))
        info[o] = dict(meta, weight=float(head.weight))
    return combined_reward_fn(fns, weights), {"objectives": info}


def build_reward(config, key, config_file: str = "configs/ppo.py"):
    """(reward_fn, info) for config.reward.kind 'gold', 'learned' (a validated config: a saved
    ensemble when reward.checkpoint is set, else one fitted in the run) or 'objectives' (saved
    per-objective heads, weighted)."""
    if config.reward.kind == "gold":
        return gold_reward_fn(config.get("rubric")), {"kind": "gold"}
    if config.reward.kind == "objectives":
        fn, info = load_objective_heads(config.reward, config.env.robot, tuple(config.env.tasks), config_file)
        return fn, dict(info, kind="objectives")
    if config.reward.checkpoint:
        fn, info = load_learned_reward(config.reward, config.env.robot, tuple(config.env.tasks), config_file)
        return fn, dict(info, kind="learned")
    fn, _, _, info = build_learned_reward(config.reward, config.env.robot, tuple(config.env.tasks), key)
    return fn, dict(info, kind="learned")


def load_reference(config):
    """(π_ref variables or None, policy module or None, π_ref's metadata or None) from
    config.ref_checkpoint; ``ppo.log_std_floor``, when set, joins π_ref's model config (the
    fine-tuned policy and π_ref share the module, and the saved policy records it)."""
    if not config.ref_checkpoint:
        return None, None, None
    variables, meta = restore_policy(config.ref_checkpoint)
    floor = config.ppo.get("log_std_floor")
    if floor is not None:
        meta = dict(meta, model=dict(meta["model"], log_std_floor=float(floor)))
    return variables, make_policy(meta["model"], len(TASKS), len(EMBODIMENTS)), meta


def plot_history(history: list[dict], workdir: str) -> None:
    """ppo_curves.png: returns, KL, β and constraint violations against environment steps."""
    steps = [h["env_steps"] for h in history]
    fig, axes = new_figure(1, len(PLOTS), figsize=(4 * len(PLOTS), 3.2))
    for ax, (title, keys) in zip(axes, PLOTS):
        for k in keys:
            ax.plot(steps, [h[k] for h in history], label=k)
        ax.set_xlabel("environment steps")
        ax.set_title(title)
        ax.legend(fontsize=7)
    save_figure(fig, os.path.join(workdir, "ppo_curves.png"), dpi=110)


def check_fields(config, config_file: str) -> None:
    """Each PPO field's domain (``configs/ppo.py`` FIELDS), then the relations between them
    (``rlhf_jax.train.ppo_config.validate_ppo_config``); raises ConfigError."""
    config_schema.validate(config, config_file, ppo_fields.FIELDS)
    ppo.validate_ppo_config(config, config_file)


def validate(config, config_file: str) -> None:
    """The PPO fields and pi_ref's path, checked before anything is loaded or written."""
    check_fields(config, config_file)
    if config.ref_checkpoint:
        cli.check_artifact(config_file, "ref_checkpoint", config.ref_checkpoint, "policy")
    if config.reward.kind == "learned" and config.reward.get("checkpoint"):
        cli.check_artifact(config_file, "reward.checkpoint", config.reward.checkpoint, "reward_model")
    if config.reward.kind == "objectives":
        for o, head in config.reward.objectives.items():
            if float(head.weight) != 0:
                cli.check_artifact(config_file, f"reward.objectives.{o}.checkpoint", head.checkpoint, "reward_model")


def train_chunks(config, workdir: str, init, train_step, key, resume: bool, log: Callable[[str], None]):
    """Runs ``config.ppo.num_updates`` updates in chunks of ``log_every`` (lax.scan), each chunk
    checkpointed under ``workdir/checkpoints/ppo_train``; returns (state, metric rows).

    Environments are split over the ("data",) mesh, parameters and optimiser replicated; the state
    is created already placed. On resume, the reward and pi_ref are rebuilt deterministically from
    the seed; the state (params, optimiser, environments, rng) and the metric history come from
    the last readable chunk checkpoint (Checkpointer falls back past a corrupted newest one).
    """
    hp, chunk = ppo.default_hparams(config), int(config.log_every)

    def chunk_of_updates(state):
        state, m = jax.lax.scan(lambda s, _: train_step(s), state, None, length=chunk)
        return state, dict(m, loss=m["ppo/loss"])

    run_chunk, shardings = ppo.shard_update(chunk_of_updates, data_mesh(), jax.eval_shape(init, key, hp))
    state = jax.jit(init, out_shardings=shardings)(key, hp)
    steps_per_update = config.ppo.num_envs * config.ppo.num_steps
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints", "ppo_train"))
    history, start = [], 0
    restored = ckpt.restore(state) if resume else None
    if restored is not None:
        step, tree, meta = restored
        state = jax.device_put(tree, shardings)
        history, start = list(meta["history"]), int(meta["chunk"])
        log(f"resumed from update {step} (chunk {start})")
    writer = MetricWriter(workdir, "ppo", tensorboard=config.log.tensorboard, wandb=config.log.wandb,
                          config=config.to_dict(), rows=history)

    def record(c, m):
        for i in range(chunk):
            update = c * chunk + i + 1
            writer.write(update, {"env_steps": update * steps_per_update,
                                  **{k: float(v[i]) for k, v in m.items() if k != "loss"}}, step_key="update")

    def progress(c, m):
        last = writer.rows[-1]
        return f"gold {last['gold_return']:.3f} proxy {last['proxy_return']:.3f} kl {last['kl']:.3f} " \
               f"beta {last['beta']:.4f}"

    # The history rides in the JSON meta: Python floats round-trip through JSON exactly.
    state = run_chunks(run_chunk, state, n_chunks=config.ppo.num_updates // chunk, steps_per_chunk=chunk,
                       start_chunk=start, checkpointer=ckpt, on_chunk=record, progress=progress,
                       checkpoint_meta=lambda c: {"chunk": c, "history": writer.rows},
                       log=log, name="PPO", describe_point=lambda _: "")
    ckpt.close()
    return state, writer


def run_ppo(config, workdir: str, log: Callable[[str], None] = cli.log, resume: bool = False,
            config_file: str = "configs/ppo.py") -> dict:
    """The PPO-RLHF stage; config, pi_ref path and workdir are checked before anything is written.
    Writes checkpoints/ppo (the policy), the metric CSV/summary and ppo_curves.png; returns the summary."""
    t0 = time.time()
    validate(config, config_file)
    if cli.check_workdir(workdir, resume, config) == "fresh":
        log(f"--resume: no earlier run in {workdir}; starting fresh")
    k_reward, k_train = jax.random.split(jax.random.key(config.seed))
    reward_fn, reward_info = build_reward(config, k_reward, config_file)
    log(f"reward: {reward_info} ({time.time() - t0:.1f} s)")
    ref_vars, policy_model, ref_meta = load_reference(config)
    init, train_step = ppo.make_ppo(config, reward_fn, ref_vars, policy_model)
    prepare_run_dir(workdir, config.to_json(indent=2, sort_keys=True), resume, error=cli.ConfigError)
    state, writer = train_chunks(config, workdir, init, train_step, k_train, resume, log)
    history = writer.rows
    # The trained policy has π_ref's architecture when it started from one (config.model is then unused).
    meta = {"model": dict(ref_meta["model"]) if ref_meta else dict(config.model.to_dict()),
            "obs_dim": ref_meta.get("obs_dim") if ref_meta else None,
            "action_clip": ref_meta.get("action_clip", 0.999) if ref_meta else 0.999,
            "init": config.ref_checkpoint or "random", "robot": config.env.robot, "tasks": list(config.env.tasks)}
    save_policy(os.path.join(workdir, "checkpoints", "ppo"), ppo.policy_variables(state), meta,
                step=len(history))
    first, final = history[0], history[-1]
    summary = {"reward": reward_info, "updates": len(history), "env_steps": final["env_steps"],
               "wall_s": time.time() - t0, "initial": first, "final": final,
               "gold_gain": final["gold_return"] - first["gold_return"],
               "proxy_gain": final["proxy_return"] - first["proxy_return"]}
    writer.close(summary)
    plot_history(history, workdir)
    log(f"done: { {k: summary[k] for k in ('gold_gain', 'proxy_gain', 'wall_s')} }")
    return summary
