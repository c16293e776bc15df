"""Downstream scaling: policy quality vs the number of preference pairs N behind its reward model.

  python -m experiments.downstream_scaling --config configs/downstream_scaling.py:quick --workdir runs/downstream

Reads top to bottom: checks → the pipeline's SFT, π_SFT-rollout and reward-model stages (the
sweep saving an ensemble per (N, seed)) → reward-model parameters of every point stacked as
[points, members, ...] → one vmapped PPO program over (N, reward-model seed, PPO seed) from π_SFT
→ deterministic evaluation of every point's policy (gold, success, reward-model accuracy on
pairs of its own episodes) → downstream.csv, fit.json (per-doubling gains with bootstrap
intervals, against the literature's "8–12% accuracy → 5–8% policy" claim), downstream.png.
"""
from __future__ import annotations

import functools
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import cli
from experiments.downstream_report import write_outputs
from experiments.stages import rlhf
from experiments.stages.ppo import load_reference
from experiments.stages.ppo_points import make_points_train
from experiments.stages.runner import open_run, run_stage
from experiments.stages.sweep_outputs import reward_model_relpath
from rlhf_jax.envs import simulator as S
from rlhf_jax.envs.robots import EMBODIMENTS
from rlhf_jax.evaluation.reward_accuracy import episode_pair_accuracy
from rlhf_jax.evaluation.rollout_eval import arm_key, episodes
from rlhf_jax.reward_artifact import load_reward_model
from rlhf_jax.train import ppo


def validate(config, config_file: str) -> None:
    """The pipeline block's fields and this job's own, before anything is loaded or written."""
    rlhf.prefixed("pipeline.", rlhf.validate, config.pipeline, config_file)
    if config.arm not in EMBODIMENTS:
        cli.fail(config_file, "arm", f"one of {EMBODIMENTS}", config.arm)
    if not config.ppo_seeds or len(set(config.ppo_seeds)) != len(config.ppo_seeds):
        cli.fail(config_file, "ppo_seeds", "distinct integers", list(config.ppo_seeds))
    if len(config.pipeline.reward_model.n_values) < 2:
        cli.fail(config_file, "pipeline.reward_model.n_values", "at least two N to compare", list(config.pipeline.reward_model.n_values))


def _save_every_point(rm):
    """The sweep saves an ensemble per (N, seed), not only the pipeline's largest N."""
    rm.save_models.seeds, rm.save_models.n_values = tuple(rm.seeds), tuple(rm.n_values)
    return rm


def reward_model_path(sweep_dir: str, condition: str, n: int, seed: int) -> str:
    """Where the reward-model stage saved the ensemble of (condition, N, seed)."""
    return os.path.join(sweep_dir, reward_model_relpath(condition, n, seed))


def _points(config):
    rm = config.pipeline.reward_model
    return [(n, s, p) for n in rm.n_values for s in rm.seeds for p in config.ppo_seeds]


def evaluate_point(config, model, variables, rm, dt) -> dict:
    """Gold return, success and the reward model's accuracy on pairs of this policy's own episodes."""
    ep = episodes(config.arm, config.pipeline.tasks, arm_key(config.pipeline.eval.seed, config.arm),
                  int(config.pipeline.eval.n_episodes), model=model, variables=variables, reward=rm, dt=dt)
    gold = ep["components"].sum(2) @ S.rubric_vector()  # [tasks, E]
    success = ep["components"][:, :, -1, S.REWARD_COMPONENTS.index("success")] > 0
    acc = [episode_pair_accuracy(ep["proxy"][t], gold[t]) for t in range(gold.shape[0])]
    return {"gold_return": float(gold.mean()), "success": float(success.mean()),
            "rm_accuracy_on_policy": float(np.nanmean(acc))}


def run(config, workdir: str, resume: bool = False, config_file: str = "configs/downstream_scaling.py") -> dict:
    t0 = time.time()
    validate(config, config_file)
    pc = config.pipeline
    eps, dt = open_run(config, workdir, resume, pc.sft.dataset)
    st = {"sft": run_stage(workdir, "sft", rlhf.sft_stage(pc, eps, dt))}
    st["rollouts"] = run_stage(workdir, "rollouts", rlhf.rollout_stage(pc, st["sft"]["checkpoint"], dt))
    sweep_dir = os.path.join(workdir, "reward_model")
    run_stage(workdir, "reward_model", rlhf.reward_stage(pc, st["rollouts"]["path"], config_file, _save_every_point))

    # --- Reward models of every point, stacked [P, K, ...]; π_SFT --------------------------------
    points = _points(config)
    rms = {(n, s): load_reward_model(reward_model_path(sweep_dir, pc.annotator, n, s), aggregation=pc.eval.aggregation)
           for n, s, _ in points}
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *[rms[(n, s)].stacked_variables for n, s, _ in points])
    ppo_config = rlhf.ppo_config(pc, config.arm, "ppo_rlhf", st["sft"]["checkpoint"], "")
    ref_vars, policy_model, _ = load_reference(ppo_config)  # π_SFT, with ppo.log_std_floor when set

    # --- One vmapped PPO program over the points --------------------------------------------------
    t_ppo = time.time()
    train = make_points_train(ppo_config, rms[points[0][:2]].model, ref_vars, policy_model, pc.eval.aggregation)
    keys = jnp.stack([jax.random.key(pc.seed + 1000 * p) for _, _, p in points])
    state, metrics = jax.jit(jax.vmap(train, in_axes=(0, None, 0, None)))(keys, ppo.default_hparams(ppo_config), stacked,
                                                                         jnp.asarray(False))
    state, metrics = jax.device_get((state, metrics))
    cli.log(f"PPO: {len(points)} points in one program, {time.time() - t_ppo:.0f} s")

    # --- Evaluation and outputs -------------------------------------------------------------------
    with open(os.path.join(sweep_dir, "results.csv"), encoding="utf-8") as f:
        import csv

        acc = {(int(r["n"]), int(r["seed"])): float(r["test_accuracy"]) for r in csv.DictReader(f)
               if r["member"] == "ensemble"}
    sft_eval = evaluate_point(config, policy_model, ref_vars, rms[points[-1][:2]], dt)
    rows = []
    for i, (n, s, p) in enumerate(points):
        ev = evaluate_point(config, policy_model, jax.tree.map(lambda x: x[i], ppo.policy_variables(state)),
                            rms[(n, s)], dt)
        rows.append({"n": n, "seed": s, "ppo_seed": p, "rm_test_accuracy": acc[(n, s)], **ev,
                     "kl_final": float(metrics["kl"][i, -1]), "train_gold_final": float(metrics["gold_return"][i, -1])})
        cli.log(f"N={n} seed={s} ppo_seed={p}: rm acc {acc[(n, s)]:.3f}, gold {ev['gold_return']:.2f}, "
                f"success {ev['success']:.3f}, on-policy rm acc {ev['rm_accuracy_on_policy']:.3f}")
    fit = write_outputs(workdir, rows, sft_eval, config, wall_s=time.time() - t0, ppo_s=time.time() - t_ppo)
    return fit


def _body(inv: cli.Invocation) -> None:
    run(inv.config, inv.workdir, resume=inv.resume, config_file=inv.config_file)


main = functools.partial(cli.run_main, body=_body)

if __name__ == "__main__":
    sys.exit(main(sys.argv))
