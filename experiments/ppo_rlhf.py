"""PPO-RLHF: optimise a policy against a learned reward with a KL penalty to π_ref.

  python -m experiments.ppo_rlhf --config configs/ppo.py:quick --workdir runs/ppo_quick

Reads top to bottom: reward (learned ensemble or gold) → π_ref → one jitted update (environments
split over the devices of a ("data",) mesh), run in chunks of `log_every` updates (lax.scan),
each chunk checkpointed → metrics CSV, plots, final checkpoint. After a crash, rerun the same
command with ``--resume``: training continues from the last readable chunk checkpoint and the
final metrics equal those of an uninterrupted run.
"""
from __future__ import annotations

import functools
import os
import sys
import time

import jax
import numpy as np

from experiments import cli
from rlhf_jax.checkpoint import Checkpointer, prepare_run_dir, restore_policy, save_policy
from rlhf_jax.envs.constraints import CONSTRAINTS
from rlhf_jax.plotting import new_figure, save_figure
from rlhf_jax.sharding import data_mesh
from rlhf_jax.train import ppo
from rlhf_jax.models.reward_inference import gold_reward_fn, learned_reward_fn
from rlhf_jax.metric_writer import MetricWriter
from rlhf_jax.train.chunks import run_chunks

PLOTS = (("returns", ("gold_return", "proxy_return")), ("kl", ("kl",)), ("beta", ("beta",)),
         ("violations", tuple(f"violations/{c}" for c in CONSTRAINTS)))


def build_learned_reward(rc, robot_name: str, tasks, key):
    """Fits a Markovian reward ensemble in-run on gold-labelled scripted-policy segments.

    rc: config.reward (ensemble_size, hidden, fit_episodes, fit_steps, pairs_per_step,
    segment_length, optimizer, loss, aggregation, lam, scale). The fit is the project's one
    Bradley-Terry trainer (``make_reward_fit`` over ``make_reward_update``). Returns (reward_fn,
    model, variables stacked [K], info {segments, bt_loss [K]: mean loss of the last 20 steps}).
    """
    from rlhf_jax.data.scripted import scripted_segments
    from rlhf_jax.envs.policies import POLICIES
    from rlhf_jax.envs.robots import EMBODIMENTS
    from rlhf_jax.envs.tasks import TASKS
    from rlhf_jax import normalizer
    from rlhf_jax.models.encoders import set_norm_stats
    from rlhf_jax.models.reward import MarkovianReward
    from rlhf_jax.train.reward import make_reward_fit
    from rlhf_jax.train.state import TrainState, make_optimizer

    k_data, k_init, k_fit = jax.random.split(key, 3)
    seg = scripted_segments(robot_name, tasks, POLICIES, int(rc.fit_episodes), int(rc.segment_length), k_data)
    model = MarkovianReward(num_tasks=len(TASKS), num_embodiments=len(EMBODIMENTS), hidden=tuple(rc.hidden))
    k = int(rc.ensemble_size)
    sample = tuple(jax.numpy.asarray(seg[f][:1]) for f in ("obs", "act", "task", "embodiment"))
    variables = jax.vmap(lambda kk: dict(model.init(kk, *sample)))(jax.random.split(k_init, k))
    variables = set_norm_stats(variables, normalizer.stats(seg["obs"]), normalizer.stats(seg["act"]))
    tx = make_optimizer(rc.optimizer, total_steps=int(rc.fit_steps))
    states = jax.vmap(lambda v: TrainState.create(v, tx, k_init))(variables)
    fit = jax.jit(make_reward_fit(rc.loss, model, tx, int(rc.fit_steps), int(rc.pairs_per_step)))
    states, metrics = fit(states, seg, jax.random.split(k_fit, k))
    loss = np.asarray(metrics["loss"][:, -20:].mean(1))
    fn = learned_reward_fn(model, states.variables, ensemble=True, aggregation=rc.aggregation,
                           lam=float(rc.lam), scale=float(rc.scale))
    return fn, model, states.variables, {"segments": int(len(seg["gold"])), "bt_loss": loss.tolist()}


def load_learned_reward(rc, robot_name: str, tasks, where: str):
    """A saved reward-model ensemble (rc.checkpoint) as a per-step reward, checked against this
    run's features, task vocabulary and arm. Returns (reward_fn, info)."""
    from rlhf_jax.envs.tasks import TASKS
    from rlhf_jax.features import feature_dim
    from rlhf_jax.reward_artifact import load_reward_model

    rm = load_reward_model(rc.checkpoint, aggregation=rc.aggregation, lam=float(rc.lam), scale=float(rc.scale))
    needed = TASKS[:max(TASKS.index(t) for t in tasks) + 1]
    rm.check_compatible("joint", feature_dim("joint"), needed, robot_name, where=where, field="reward.checkpoint")
    keep = ("n", "seed", "condition", "label_source", "test_accuracy", "members")
    return rm.reward_fn, {"checkpoint": rc.checkpoint, **{k: rm.meta.get(k) for k in keep}}


def build_reward(config, key, where: str = "configs/ppo.py"):
    """(reward_fn, info) for config.reward.kind 'gold' or 'learned' (a validated config): a saved
    ensemble when reward.checkpoint is set, else one fitted in the run."""
    if config.reward.kind == "gold":
        return gold_reward_fn(config.get("rubric")), {"kind": "gold"}
    if config.reward.checkpoint:
        fn, info = load_learned_reward(config.reward, config.env.robot, tuple(config.env.tasks), where)
        return fn, dict(info, kind="learned")
    fn, _, _, info = build_learned_reward(config.reward, config.env.robot, tuple(config.env.tasks), key)
    return fn, dict(info, kind="learned")


def load_reference(config):
    """(π_ref variables or None, policy module or None, π_ref's model config or None) from
    config.ref_checkpoint."""
    if not config.ref_checkpoint:
        return None, None, None
    from rlhf_jax.envs.robots import EMBODIMENTS
    from rlhf_jax.envs.tasks import TASKS
    from rlhf_jax.models.policy import make_policy

    variables, meta = restore_policy(config.ref_checkpoint)
    return variables, make_policy(meta["model"], len(TASKS), len(EMBODIMENTS)), meta


def plot_history(history: list[dict], workdir: str) -> None:
    steps = [h["env_steps"] for h in history]
    fig, axes = new_figure(1, len(PLOTS), figsize=(4 * len(PLOTS), 3.2))
    for ax, (title, keys) in zip(axes, PLOTS):
        for k in keys:
            ax.plot(steps, [h[k] for h in history], label=k)
        ax.set_xlabel("environment steps")
        ax.set_title(title)
        ax.legend(fontsize=7)
    save_figure(fig, os.path.join(workdir, "ppo_curves.png"), dpi=110)


def run_ppo(config, workdir: str, log=cli.log, resume: bool = False,
            config_file: str = "configs/ppo.py") -> dict:
    """The PPO-RLHF experiment; config, π_ref path and workdir are checked before anything is written."""
    t0 = time.time()
    ppo.validate_ppo_config(config, config_file)
    if config.ref_checkpoint and not os.path.isdir(config.ref_checkpoint):
        cli.fail(config_file, "ref_checkpoint", "a policy checkpoint directory (train_sft writes checkpoints/sft)",
                 config.ref_checkpoint)
    if cli.check_workdir(workdir, resume, config) == "fresh":
        log("--resume: no earlier run in %s; starting fresh", workdir)
    key = jax.random.key(config.seed)
    k_reward, k_train = jax.random.split(key)
    # --- Reward -----------------------------------------------------------------------------
    reward_fn, reward_info = build_reward(config, k_reward, config_file)
    log("reward: %s (%.1f s)", reward_info, time.time() - t0)
    # --- π_ref and the training step (rollout, then update) ---------------------------------
    ref_vars, policy_model, ref_meta = load_reference(config)
    init, train_step = ppo.make_ppo(config, reward_fn, ref_vars, policy_model)
    hp = ppo.default_hparams(config)
    chunk = int(config.log_every)
    prepare_run_dir(workdir, config.to_json(indent=2, sort_keys=True), resume, error=cli.ConfigError)
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints", "ppo_train"))

    # --- Mesh: environments split over ("data",), parameters and optimiser replicated; the
    # state is created already placed, and each chunk keeps those shardings ------------------
    def chunk_of_updates(state):
        state, m = jax.lax.scan(lambda s, _: train_step(s), state, None, length=chunk)
        return state, dict(m, loss=m["ppo/loss"])

    run_chunk, shardings = ppo.shard_update(chunk_of_updates, data_mesh(), jax.eval_shape(init, k_train, hp))
    state = jax.jit(init, out_shardings=shardings)(k_train, hp)
    steps_per_update = config.ppo.num_envs * config.ppo.num_steps
    history, start = [], 0
    # --- Resume: the reward and π_ref above are rebuilt deterministically from the seed; the
    # state (params, optimiser, environments, rng) and the metric history come from the last
    # readable chunk checkpoint (Checkpointer falls back past a corrupted newest one).
    restored = ckpt.restore(state) if resume else None
    if restored is not None:
        step, tree, meta = restored
        state = jax.device_put(tree, shardings)
        history, start = list(meta["history"]), int(meta["chunk"])
        log("resumed from update %d (chunk %d)", step, start)
    writer = MetricWriter(workdir, "ppo", tensorboard=config.log.tensorboard, wandb=config.log.wandb,
                          config=config.to_dict(), rows=history)

    # --- Train loop: run_chunks checks the loss, checkpoints and prints progress -------------
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
                       log=lambda line: log("%s", line), name="PPO", describe_point=lambda _: "")
    ckpt.close()
    # --- Checkpoint, metrics, plots ---------------------------------------------------------
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
    log("done: %s", {k: summary[k] for k in ("gold_gain", "proxy_gain", "wall_s")})
    return summary


def _body(inv: cli.Invocation) -> None:
    run_ppo(inv.config, inv.workdir, resume=inv.resume, config_file=inv.config_file)


main = functools.partial(cli.run_main, body=_body)

if __name__ == "__main__":
    sys.exit(main(sys.argv))
