"""The DPO stage: DPO-family optimisation of pi_SFT on segment preferences, every (loss type, beta)
point of the sweep in one vmapped program, then held-out implicit-reward accuracy and simulator
rollouts of pi_ref and every point on identical episodes.

Reads top to bottom: episodes → pi_ref (restored or trained by the SFT stage) → preference pairs →
reference log-probs (once) → sweep states → mesh & sharded vmapped update → train loop →
held-out implicit-reward accuracy → rollouts → files.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable

import jax
import numpy as np

from configs import dpo as dpo_fields
from experiments import cli
from experiments.stages.sft import load_episodes, optimizer_for, run_sft
from experiments.stages.sft import validate as validate_sft
from rlhf_jax import config_schema
from rlhf_jax.checkpoint import restore_policy, save_policy
from rlhf_jax.data import load_preference_data
from rlhf_jax.evaluation.policy_eval import evaluate_policy, implicit_reward_accuracy
from rlhf_jax.losses.dpo import loss_weights
from rlhf_jax.metric_writer import MetricWriter
from rlhf_jax.models.policy import make_policy
from rlhf_jax.sharding import shard_batch, sweep_mesh, sweep_parallel, sweep_points
from rlhf_jax.train import dpo
from rlhf_jax.train.chunks import run_chunks


def reference_policy(config, workdir: str, episodes, dt, log: Callable[[str], None] = cli.log):
    """(model, variables, action_clip) of π_ref: restored from config.sft_workdir, else trained; with
    ``dpo.log_std_floor`` set, the module (the policy's and π_ref's) floors log σ there."""
    if config.sft_workdir:
        variables, meta = restore_policy(os.path.join(config.sft_workdir, "checkpoints", "sft"))
        model = make_policy(meta["model"], meta["num_tasks"], meta["num_embodiments"])
        clip = float(meta["action_clip"])
    else:
        model, variables, _ = run_sft(config.sft, os.path.join(workdir, "sft"), episodes, dt, log)
        clip = float(config.sft.train.action_clip)
    floor = config.dpo.get("log_std_floor")
    if floor is not None:
        model = dataclasses.replace(model, log_std_floor=float(floor))
    return model, variables, clip


def point_name(p: dict) -> str:
    """A sweep point's name in metrics and summaries: ``<loss_type>@beta=<beta>``."""
    return f"{p['loss_type']}@beta={p['beta']:g}"


def validate(config, config_file: str) -> None:
    """The DPO fields (and π_ref's, when it is trained here), checked before anything is written:
    each field's domain (``configs/dpo.py`` FIELDS), then the relations (the floor within the
    policy's log-σ clip, loss types that parse, the mesh) and the checkpoint sft_workdir names."""
    config_schema.validate(config, config_file, dpo_fields.FIELDS)
    if config.sft_workdir:
        cli.check_artifact(config_file, "sft_workdir", os.path.join(config.sft_workdir, "checkpoints", "sft"),
                           "policy")
    else:
        validate_sft(config.sft, config_file, "sft.")
    floor, bounds = config.dpo.get("log_std_floor"), config.sft.model
    if floor is not None and not bounds.log_std_min <= floor < bounds.log_std_max:
        cli.fail(config_file, "dpo.log_std_floor", f"None or a number in [{bounds.log_std_min}, {bounds.log_std_max})",
                 floor)
    for loss_type in config.dpo.loss_types:
        try:
            loss_weights(loss_type)
        except (ValueError, KeyError):
            cli.fail(config_file, "dpo.loss_types", "names from rlhf_jax.losses.dpo.LOSS_TYPES or blends "
                     "such as 'sigmoid:0.8+bco_pair:0.2'", loss_type)
    dpo_mesh(config, config_file)


def dpo_mesh(config, config_file: str = "configs/dpo.py"):
    """("ensemble", "data") mesh with ``config.mesh.ensemble`` device groups (1 = pure data
    parallelism: every point's state on every device)."""
    num_points = len(config.dpo.betas) * len(config.dpo.loss_types)
    ensemble, devices = int(config.mesh.ensemble), jax.device_count()
    if ensemble < 1 or devices % ensemble or num_points % ensemble:
        cli.fail(config_file, "mesh.ensemble", f"a divisor of both the {devices} devices and the {num_points} "
                 "sweep points (loss types × betas)", ensemble)
    if config.train.batch_size % (devices // ensemble):
        cli.fail(config_file, "train.batch_size", f"a multiple of the {devices // ensemble} devices of the 'data' "
                 "mesh axis", config.train.batch_size)
    return sweep_mesh(data=devices // ensemble)


def held_out_accuracy(model, variables, segs, clip, ref_logp, data, hp, points) -> dict:
    """{split: {point name: {accuracy, margin}}} of each sweep point's implicit reward on val/test."""
    logp = dpo.segment_log_probs(model, variables, segs, action_clip=clip, stacked=True)  # [P, S]
    out = {}
    for split in ("val", "test"):
        pairs = getattr(data, split)
        acc = implicit_reward_accuracy(logp, ref_logp, pairs.idx_a, pairs.idx_b, pairs.label, hp["beta"])
        out[split] = {point_name(p): {"accuracy": float(acc["accuracy"][i]), "margin": float(acc["margin"][i])}
                      for i, p in enumerate(points)}
    return out


def train_points(config, model, ref_vars, segs, ref_logp, data, mesh, workdir: str, log: Callable[[str], None]):
    """Every (loss type, beta) point from pi_ref on the same minibatches; returns (variables
    stacked [P, ...], hparams, points, metric writer). Points are split over the mesh's "ensemble"
    axis, each point's batch over "data"; the states are created already placed."""
    t0 = time.time()
    hp, points = dpo.sweep_hparams(config.dpo.betas, config.dpo.loss_types, config.dpo.label_smoothing,
                                   config.dpo.rpo_alpha)
    tx = optimizer_for(config)
    state = jax.jit(lambda v, h, k: dpo.init_dpo_state(v, tx, h, k), out_shardings=sweep_points(mesh))(
        ref_vars, hp, jax.random.PRNGKey(config.seed))
    update = sweep_parallel(jax.vmap(dpo.make_dpo_update(config, model, tx), in_axes=(0, None)), mesh)
    rng = np.random.default_rng(config.seed)
    tr = data.train
    writer = MetricWriter(workdir, "dpo", tensorboard=config.log.tensorboard, wandb=config.log.wandb,
                          config=config.to_dict())
    steps, chunk, at = int(config.train.steps), int(config.train.log_every), [0]

    def run_chunk(state):
        losses = []
        for step in range(at[0] + 1, min(at[0] + chunk, steps) + 1):
            rows = rng.integers(0, len(tr), config.train.batch_size)
            batch = dpo.dpo_batch(segs, ref_logp, tr.idx_a[rows], tr.idx_b[rows], tr.label[rows], tr.weight[rows])
            state, metrics = update(state, shard_batch(batch, mesh))
            losses.append(metrics["loss"])  # [P]: one loss per (loss type, beta) point
        at[0] = step
        return state, {"loss": np.asarray(jax.device_get(losses)), "metrics": jax.device_get(metrics), "step": step}

    def write_rows(c, history):
        metrics, step = history["metrics"], history["step"]
        for i, p in enumerate(points):
            writer.write(step, {"point": point_name(p), "time_s": round(time.time() - t0, 2),
                                **{k: float(v[i]) for k, v in metrics.items()}}, tag_prefix=point_name(p) + "/")
        log(f"dpo step {step}: loss {metrics['loss']} acc {metrics['rewards/accuracies']}")

    # The chunk runner's non-finite check: a NaN in any point's loss stops before a policy is saved.
    state = run_chunks(run_chunk, state, n_chunks=-(-steps // chunk), steps_per_chunk=chunk, total_steps=steps,
                       on_chunk=write_rows, log=lambda line: None, name="dpo",
                       describe_point=lambda index: f"point {point_name(points[index[0]])}" if index else "")
    return jax.device_get(state.variables), hp, points, writer


def run_dpo(config, workdir: str, log: Callable[[str], None] = cli.log) -> dict:
    """The DPO stage on a validated config; writes checkpoints/dpo and the metric files, returns the summary."""
    t0 = time.time()
    mesh = dpo_mesh(config)
    episodes, dt, path = load_episodes(config.dataset)
    model, ref_vars, sft_clip = reference_policy(config, workdir, episodes, dt, log)
    # The policy and π_ref score every segment with DPO's own clip (one value for both, so their
    # log-ratio is consistent); it may differ from the clip π_SFT was cloned with.
    clip = float(config.train.action_clip)
    if clip != sft_clip:
        log(f"DPO log-probs with train.action_clip {clip} (π_SFT was cloned with {sft_clip})")
    t_sft = time.time()
    # Policies need joint-space segments (the actions they emit), whatever the RM experiments use.
    data = load_preference_data(config.dataset.variant, path=path, episodes=episodes, feature_kind="joint",
                                **config.preferences.to_dict())
    segs = dpo.segment_arrays(data.segments)
    log(f"segments {len(data.segments)}, pairs train/val/test {len(data.train)}/{len(data.val)}/{len(data.test)}")
    t_pairs = time.time()
    ref_logp = dpo.segment_log_probs(model, ref_vars, segs, action_clip=clip)  # once, stored beside the pairs
    t_ref = time.time()
    variables, hp, points, writer = train_points(config, model, ref_vars, segs, ref_logp, data, mesh, workdir, log)
    train_time = time.time() - t_ref
    pref_eval = held_out_accuracy(model, variables, segs, clip, ref_logp, data, hp, points)
    ckpt = save_policy(os.path.join(workdir, "checkpoints", "dpo"), variables,
                       {"points": points, "step": config.train.steps, "log_std_floor": model.log_std_floor,
                        "action_clip": clip},
                       config.train.steps)
    t1 = time.time()
    ev_kw = dict(embodiments=config.eval.embodiments, tasks=config.eval.tasks, n_episodes=config.eval.n_episodes,
                 seed=config.eval.seed, dt=dt, deterministic=config.eval.deterministic)
    rollouts = {"sft": evaluate_policy(model, ref_vars, **ev_kw)}
    for i, p in enumerate(points):
        rollouts[point_name(p)] = evaluate_policy(model, jax.tree.map(lambda x: x[i], variables), **ev_kw)
    summary = {
        "points": points, "implicit_reward": pref_eval,
        "rollouts_mean": {k: v["mean"] for k, v in rollouts.items()}, "rollouts": rollouts,
        "final": {point_name(p): dict(writer.rows[-len(points) + i]) for i, p in enumerate(points)},
        "pairs": {"train": len(data.train), "val": len(data.val), "test": len(data.test),
                  "segments": len(data.segments)},
        "checkpoint": ckpt, "sft_time_s": round(t_sft - t0, 1),
        "pairs_time_s": round(t_pairs - t_sft, 1), "ref_logp_time_s": round(t_ref - t_pairs, 1),
        "train_time_s": round(train_time, 1),
        "eval_time_s": round(time.time() - t1, 1), "total_time_s": round(time.time() - t0, 1),
        "config": config.to_dict(),
    }
    writer.close(summary)
    for name, m in summary["rollouts_mean"].items():
        implicit = pref_eval["test"].get(name, {}).get("accuracy", "-")
        log(f"{name:<22s} gold {m['gold_return']:.2f} success {m['success_rate']:.2f} violations "
            f"{m['violations/any_rate']:.2f} | test implicit acc {implicit}")
    return summary
