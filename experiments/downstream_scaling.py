"""Downstream scaling: policy quality vs the number of preference pairs N behind its reward model.

  python -m experiments.downstream_scaling --config configs/downstream_scaling.py:quick --workdir runs/downstream

Reads top to bottom: checks → the pipeline's SFT and π_SFT-rollout stages → per reward-model seed,
its own sweep (pairs, labels, initialisation) saving an ensemble at every N
(reward_model/seed_<r>) → one vmapped PPO program from π_SFT over every (N, reward-model seed,
PPO seed) beside PPO on gold under the same PPO seeds (ppo/<arm>, chunked and resumable) →
deterministic evaluation of every policy, π_SFT and the expert on the pipeline's evaluation
states → per N: reward-model accuracy on its test pairs and on the policy's own episodes, gold
gain and fraction of PPO-on-gold's gain recovered, with intervals over seeds; a saturating fit
of the fraction recovered vs N; the literature's per-doubling claim judged in every reading →
downstream.csv, fit.json, downstream.png.
"""
from __future__ import annotations

import functools
import os
import sys
import time

from configs import downstream_scaling as downstream_config
from experiments import cli
from experiments.downstream_report import write_outputs
from experiments.stages import point_eval as E
from experiments.stages import rlhf
from experiments.stages.ppo_points import Point, points_stage
from experiments.stages.runner import open_run, run_stage
from experiments.stages.sweep_outputs import reward_model_relpath
from rlhf_jax import config_schema
from rlhf_jax.checkpoint import atomic_write_json, restore_policy
from rlhf_jax.models.policy import make_policy
from rlhf_jax.reward_artifact import load_reward_model


def validate(config, config_file: str) -> None:
    """The pipeline block's fields and this job's own, before anything is loaded or written: each
    field's domain (``configs/downstream_scaling.py`` FIELDS), the pipeline's relations, then the
    arm among the pipeline's, distinct PPO seeds and at least three N for the fit."""
    config_schema.validate(config, config_file, downstream_config.FIELDS)
    rlhf.prefixed("pipeline.", rlhf.validate, config.pipeline, config_file)
    rlhf.prefixed("pipeline.", rlhf.validate_pool, config.pipeline, config_file)
    if config.arm not in config.pipeline.arms:
        cli.fail(config_file, "arm", f"one of pipeline.arms {list(config.pipeline.arms)}", config.arm)
    if len(set(config.ppo_seeds)) != len(config.ppo_seeds):
        cli.fail(config_file, "ppo_seeds", "distinct integers", list(config.ppo_seeds))
    if len(config.pipeline.reward_model.n_values) < 3:
        cli.fail(config_file, "pipeline.reward_model.n_values", "at least three N (the fit has two parameters)",
                 list(config.pipeline.reward_model.n_values))


def reward_model_path(sweep_dir: str, condition: str, n: int, seed: int) -> str:
    """Where a reward-model sweep saved the ensemble of (condition, N, seed)."""
    return os.path.join(sweep_dir, reward_model_relpath(condition, n, seed))


def _save_every_n(rm):
    """The sweep saves an ensemble at every N, not only the largest."""
    rm.save_models.n_values = tuple(rm.n_values)
    return rm


def points(config, workdir: str) -> list[tuple]:
    """(N, reward-model seed or None for gold, PPO seed, Point) of every PPO run."""
    pc, out = config.pipeline, []
    for n in pc.reward_model.n_values:
        for r in pc.reward_model.seeds:
            path = reward_model_path(os.path.join(workdir, "reward_model", f"seed_{r}"), pc.annotator, n, r)
            out += [(int(n), int(r), int(p), Point(path, int(p))) for p in config.ppo_seeds]
    return out + [(None, None, int(p), Point("gold", int(p))) for p in config.ppo_seeds]


def stage_configs(config, workdir: str, sft_ckpt: str, rollouts_path: str) -> dict:
    """{stage name: the config it runs with} (stage_configs.json): what the run fills in beside
    config.json (each reward-model seed's condition, rollouts and saved N; PPO's arm, tasks, π_SFT
    and the list of points with their reward models and seeds)."""
    pc = config.pipeline
    out = {"sft": pc.sft.to_dict()}
    for r in pc.reward_model.seeds:
        out[f"reward_model/seed_{r}"] = _save_every_n(rlhf.sweep_config(pc, rollouts_path, r)).to_dict()
    ppo = rlhf.points_config(pc, config.arm, "headline", sft_ckpt).to_dict()
    ppo["points"] = [{"n": n, "rm_seed": r, "reward": point.reward, "seed": point.seed}
                     for n, r, _, point in points(config, workdir)]
    out[f"ppo/{config.arm}"] = ppo
    return out


def run(config, workdir: str, resume: bool = False, config_file: str = "configs/downstream_scaling.py",
        prepare_only: bool = False) -> dict | None:
    """The experiment; with ``prepare_only`` it stops after the reward-model stages (the part that
    needs TensorFlow), so that ``--resume`` on another machine runs only PPO and the evaluation."""
    t0 = time.time()
    validate(config, config_file)
    pc = config.pipeline
    eps, dt = open_run(config, workdir, resume, pc.sft.dataset)
    sft_ckpt = run_stage(workdir, "sft", rlhf.sft_stage(pc, eps, dt))["checkpoint"]
    rollouts = run_stage(workdir, "rollouts", rlhf.rollout_stage(pc, sft_ckpt, dt))
    for r in pc.reward_model.seeds:
        run_stage(workdir, f"reward_model/seed_{r}",
                  rlhf.reward_stage(pc, rollouts["path"], config_file, _save_every_n, rm_seed=r))
    if prepare_only:
        cli.log(f"prepared {workdir}: SFT, rollouts and reward models; rerun with --resume for PPO and evaluation")
        return None
    pts = points(config, workdir)
    atomic_write_json(os.path.join(workdir, "stage_configs.json"),
                      stage_configs(config, workdir, sft_ckpt, rollouts["path"]))
    t_ppo = time.time()
    ppo_config = rlhf.points_config(pc, config.arm, "headline", sft_ckpt)
    ppo = run_stage(workdir, f"ppo/{config.arm}",
                    points_stage(ppo_config, [p[3] for p in pts], pc.eval.aggregation, int(pc.seed)), resumable=True)
    ppo_s = time.time() - t_ppo

    # --- Evaluation: every policy on the pipeline's states; proxy under its own reward model ------
    sft_vars, sft_meta = restore_policy(sft_ckpt)
    sft = (make_policy(sft_meta["model"], sft_meta["num_tasks"], sft_meta["num_embodiments"]), sft_vars)
    model, stacked, _ = E.load_stacked(ppo["checkpoint"])
    rms, sft_raw = {}, {}
    rows = []
    for i, (n, r, p, point) in enumerate(pts):
        key = point.reward if r is not None else pts[0][3].reward
        if key not in rms:
            rms[key] = load_reward_model(key, aggregation=pc.eval.aggregation)
            sft_raw[key] = E.policy_episodes(pc, config.arm, dt, rms[key], sft, *sft)
        raw = E.policy_episodes(pc, config.arm, dt, rms[key], sft, model, E.point(stacked, i))
        row = E.policy_row(raw, sft_raw[key])
        rows.append({"n": n, "seed": r, "ppo_seed": p, "rm_test_accuracy": rms[key].meta["test_accuracy"] if r is not None
                     else None, "gold_return": row["gold_return"], "success": row["success"],
                     "rm_accuracy_on_policy": row["rm_accuracy_on_own_episodes"], "kl_to_sft": row["kl_to_sft"]})
        cli.log(f"N={n} seed={r} ppo_seed={p}: gold {row['gold_return']:.2f}, success {row['success']:.3f}")
    first = next(iter(sft_raw.values()))
    sft_row = E.policy_row(first, first)
    expert_row = E.policy_row(E.policy_episodes(pc, config.arm, dt, rms[pts[0][3].reward], sft), first, expert=True)
    return write_outputs(workdir, rows, {"sft": sft_row["gold_return"], "expert": expert_row["gold_return"]}, config,
                         wall_s=time.time() - t0, ppo_s=ppo_s)


def _body(inv: cli.Invocation) -> None:
    run(inv.config, inv.workdir, resume=inv.resume, config_file=inv.config_file,
        prepare_only=bool(inv.extra["prepare_only"]))


main = functools.partial(cli.run_main, body=_body, extra={
    "prepare_only": (False, "stop after the SFT, rollout and reward-model stages (they need TensorFlow); "
                            "--resume on another machine then runs PPO and the evaluation")})

if __name__ == "__main__":
    sys.exit(main(sys.argv))
