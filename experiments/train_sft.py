"""Behaviour cloning of the reference policy π_ref from RLDS demonstrations.

  python -m experiments.train_sft --config configs/sft.py:quick --workdir runs/sft_quick

Reads top to bottom: data → model & optimiser → mesh & sharded update → train loop →
checkpoint → simulator evaluation → metrics files.
"""
from __future__ import annotations

import os
import time

import jax
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from rlhf_jax.data import ensure_dataset, load_metadata, load_rlds
from rlhf_jax.data.dataset import enable_compilation_cache
from rlhf_jax.envs.robots import EMBODIMENTS
from rlhf_jax.envs.tasks import TASKS
from rlhf_jax.evaluation.policy_eval import evaluate_policy
from rlhf_jax.models.policy import make_policy
from rlhf_jax.normalizer import stats
from rlhf_jax.sharding import data_mesh, data_parallel, init_replicated, shard_batch
from rlhf_jax.train import sft
from rlhf_jax.train.state import TrainState, make_optimizer


def load_episodes(dataset_config) -> tuple[list[dict], float, str]:
    """(RLDS episodes, control period dt, dataset path) of the configured variant; the dataset
    is built on first use and cached (rlhf_jax.data.ensure_dataset)."""
    path = ensure_dataset(dataset_config.variant, dataset_config.get("data_dir"))
    return load_rlds(path), float(load_metadata(path)["dt"]), path


def optimizer_for(config):
    return make_optimizer(config.optimizer, total_steps=config.optimizer.total_steps or config.train.steps)


def run_sft(config, workdir: str, episodes: list[dict], dt: float):
    """Trains, checkpoints and evaluates π_ref. Returns (model, variables, summary)."""
    t0 = time.time()
    # --- Data: demonstration transitions ------------------------------------------------------
    data, info = sft.demonstration_arrays(episodes, config.demos.policies, config.demos.only_successful, dt)
    logging.info("SFT demos: %s", info)

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

    # --- Train loop ---------------------------------------------------------------------------
    rng = np.random.default_rng(config.seed)
    history = []
    for step in range(1, config.train.steps + 1):
        batch = shard_batch(sft.sample_minibatch(data, rng, config.train.batch_size), mesh)
        state, metrics = update(state, batch)
        if step % config.train.log_every == 0 or step == config.train.steps:
            row = {"step": step, "time_s": round(time.time() - t0, 2),
                   **{k: float(v) for k, v in jax.device_get(metrics).items()}}
            history.append(row)
            logging.info("sft %s", row)
    train_time = time.time() - t0

    # --- Checkpoint ---------------------------------------------------------------------------
    variables = jax.device_get(state.variables)
    meta = {"model": config.model.to_dict(), "num_tasks": len(TASKS), "num_embodiments": len(EMBODIMENTS),
            "obs_dim": int(data["obs"].shape[-1]), "action_clip": config.train.action_clip,
            "demos": config.demos.to_dict(), "step": config.train.steps}
    ckpt = sft.save_policy(os.path.join(workdir, "checkpoints", "sft"), variables, meta, config.train.steps)

    # --- Evaluation in the simulator ---------------------------------------------------------
    t1 = time.time()
    ev = evaluate_policy(model, variables, embodiments=config.eval.embodiments, tasks=config.eval.tasks,
                         n_episodes=config.eval.n_episodes, seed=config.eval.seed, dt=dt,
                         deterministic=config.eval.deterministic)
    summary = {"demos": info, "final": history[-1], "eval": ev, "checkpoint": ckpt,
               "train_time_s": round(train_time, 1), "eval_time_s": round(time.time() - t1, 1),
               "config": config.to_dict()}
    sft.write_metrics(workdir, history, summary, "sft")
    logging.info("SFT eval (mean over embodiment×task): %s", ev["mean"])
    return model, variables, summary


def main(argv):
    del argv
    config, workdir = _CONFIG.value, _WORKDIR.value
    if not workdir:
        raise app.UsageError("--workdir is required")
    # Rollout programs compile once per machine, not once per run.
    enable_compilation_cache(config.dataset.get("data_dir"))
    episodes, dt, _ = load_episodes(config.dataset)
    run_sft(config, workdir, episodes, dt)


if __name__ == "__main__":
    # Flags only when run as a program, so other experiments can import this module's functions.
    _CONFIG = config_flags.DEFINE_config_file("config", None, "configs/sft.py:<variant>", lock_config=False)
    _WORKDIR = flags.DEFINE_string("workdir", None, "where metrics and checkpoints go")
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)
