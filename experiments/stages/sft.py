"""The SFT stage: behaviour cloning of pi_SFT from RLDS demonstrations, then DAgger rounds
against the scripted expert, a policy checkpoint and its simulator evaluation.

Used by the `train_sft` job and by every job that starts from pi_SFT (the pipeline, downstream
scaling, online RLHF, DPO, the SFT ablation).
"""
from __future__ import annotations

import os
import time
from typing import Callable

import jax
import numpy as np

from configs import sft as sft_fields
from experiments import cli
from rlhf_jax import config_schema
from rlhf_jax.checkpoint import save_policy
from rlhf_jax.data import ensure_dataset, load_metadata, load_rlds
from rlhf_jax.data.variants import dataset_config
from rlhf_jax.envs.robots import EMBODIMENTS
from rlhf_jax.envs.tasks import TASKS
from rlhf_jax.evaluation.policy_eval import evaluate_policy
from rlhf_jax.metric_writer import MetricWriter
from rlhf_jax.models.policy import make_policy
from rlhf_jax.normalizer import stats
from rlhf_jax.sharding import data_mesh, data_parallel, init_replicated, shard_batch
from rlhf_jax.train import dagger, sft
from rlhf_jax.train.chunks import run_chunks
from rlhf_jax.train.state import TrainState, make_optimizer


def validate(config, config_file: str, prefix: str = "") -> None:
    """The SFT fields, checked before anything is loaded or written (``prefix``: "sft." inside DPO):
    each field's domain (``configs/sft.py`` FIELDS), then the dataset variant and cache it names."""
    config_schema.validate(config, config_file, sft_fields.FIELDS, prefix=prefix)
    dataset_config(config.dataset.variant, config_file, prefix + "dataset.variant")
    cli.check_data_dir(config_file, prefix + "dataset.data_dir", config.dataset.get("data_dir", ""))


def load_episodes(dataset) -> tuple[list[dict], float, str]:
    """(RLDS episodes, control period dt, dataset path) of the configured variant (built on
    first use and cached, rlhf_jax.data.ensure_dataset), or of the RLDS directory dataset.path."""
    path = dataset.get("path") or ensure_dataset(dataset.variant, dataset.get("data_dir"))
    return load_rlds(path), float(load_metadata(path)["dt"]), path


def total_steps(config) -> int:
    """Optimiser steps of the whole run: train.steps, plus every DAgger round's (SFT configs)."""
    dagger = config.get("dagger")
    return int(config.train.steps + (dagger.rounds * dagger.steps_per_round if dagger else 0))


def optimizer_for(config):
    """The optax optimiser of an SFT or DPO config, its schedule over the whole run."""
    return make_optimizer(config.optimizer, total_steps=config.optimizer.total_steps or total_steps(config))


def run_sft(config, workdir: str, episodes: list[dict], dt: float, log: Callable[[str], None] = cli.log):
    """Trains, checkpoints and evaluates π_ref. Returns (model, variables, summary)."""
    t0 = time.time()
    # --- Data: demonstration transitions ------------------------------------------------------
    data, info = sft.demonstration_arrays(episodes, config.demos.policies, config.demos.only_successful, dt)
    log(f"SFT demos: {info}")

    # --- Model & optimiser --------------------------------------------------------------------
    model = make_policy(config.model, len(TASKS), len(EMBODIMENTS))
    key = jax.random.PRNGKey(config.seed)
    obs_dim, obs_stats = data["obs"].shape[-1], stats(data["obs"])
    tx = optimizer_for(config)

    def create_state(key):
        variables = sft.init_policy_variables(model, key, obs_dim, *obs_stats)
        return TrainState.create(variables, tx, jax.random.fold_in(key, 1))

    # --- Mesh & sharded update: batch split over ("data",), state created replicated --------
    mesh = data_mesh()
    state = init_replicated(create_state, mesh, key)
    update = data_parallel(sft.make_sft_update(config, model, tx), mesh)

    # --- Train loop: behaviour cloning, then DAgger rounds on the policy's own states -------
    rng = np.random.default_rng(config.seed)
    writer = MetricWriter(workdir, "sft", tensorboard=config.log.tensorboard, wandb=config.log.wandb,
                          config=config.to_dict())

    def train(state, data, first, last):
        """Steps first..last, a metric row every log_every steps (and at last), through the chunk
        runner's non-finite check: a poisoned loss stops the run before a policy is saved."""
        chunk, at = int(config.train.log_every), [first - 1]

        def run_chunk(state):
            losses = []
            for step in range(at[0] + 1, min(at[0] + chunk, last) + 1):
                batch = shard_batch(sft.sample_minibatch(data, rng, config.train.batch_size), mesh)
                state, metrics = update(state, batch)
                losses.append(metrics["loss"])
            at[0] = step
            return state, {"loss": np.asarray(jax.device_get(losses)), "metrics": jax.device_get(metrics),
                           "step": step}

        def write_row(c, history):
            metrics = {k: float(v) for k, v in history["metrics"].items()}
            row = writer.write(history["step"], {"time_s": round(time.time() - t0, 2),
                                                 "transitions": len(data["obs"]), **metrics})
            log(f"sft {row}")

        n = last - first + 1
        return run_chunks(run_chunk, state, n_chunks=-(-n // chunk), steps_per_chunk=chunk, total_steps=n,
                          on_chunk=write_row, log=lambda line: None,
                          name="sft" if first == 1 else f"sft (a DAgger round's steps, counted from {first - 1})")

    state = train(state, data, 1, config.train.steps)
    state, data, step, info["dagger_rounds"] = dagger_rounds(config, model, train, state, data, dt, log)
    train_time = time.time() - t0

    # --- Checkpoint ---------------------------------------------------------------------------
    variables = jax.device_get(state.variables)
    meta = {"model": config.model.to_dict(), "num_tasks": len(TASKS), "num_embodiments": len(EMBODIMENTS),
            "obs_dim": int(data["obs"].shape[-1]), "action_clip": config.train.action_clip,
            "demos": config.demos.to_dict(), "step": step}
    ckpt = save_policy(os.path.join(workdir, "checkpoints", "sft"), variables, meta, step)

    # --- Evaluation in the simulator ---------------------------------------------------------
    t1 = time.time()
    ev = evaluate_policy(model, variables, embodiments=config.eval.embodiments, tasks=config.eval.tasks,
                         n_episodes=config.eval.n_episodes, seed=config.eval.seed, dt=dt,
                         deterministic=config.eval.deterministic)
    summary = {"demos": info, "final": writer.rows[-1], "eval": ev, "checkpoint": ckpt,
               "train_time_s": round(train_time, 1), "eval_time_s": round(time.time() - t1, 1),
               "config": config.to_dict()}
    writer.close(summary)
    log(f"SFT eval (mean over embodiment×task): {ev['mean']}")
    return model, variables, summary


def dagger_rounds(config, model, train: Callable, state, data: dict, dt: float, log: Callable[[str], None]):
    """After behaviour cloning: each round relabels the policy's own noisy rollouts with the expert
    and trains on all transitions so far. Returns (state, data, last step, per-round info)."""
    step, rounds = config.train.steps, []
    for r in range(config.dagger.rounds):
        fresh, success = dagger.relabelled_rollouts(
            model, jax.device_get(state.variables), EMBODIMENTS, TASKS, config.dagger.episodes_per_task,
            jax.random.PRNGKey(config.dagger.seed + r), noise=config.dagger.noise, dt=dt)
        data = dagger.concat_transitions([data, fresh])
        rounds.append({"round": r + 1, "rollout_success": success, "transitions": len(data["obs"])})
        log(f"DAgger round {r + 1}: learner success with noise {success}; {len(data['obs'])} transitions")
        last = step + config.dagger.steps_per_round
        state, step = train(state, data, step + 1, last), last
    return state, data, step, rounds
