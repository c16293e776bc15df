"""The RLHF pipeline end to end, each stage consuming the artefact the previous one saved.

  python -m experiments.rlhf_pipeline --config configs/rlhf_pipeline.py:quick --workdir runs/pipeline

Reads top to bottom: checks → SFT (π_SFT, sft/checkpoints/sft) → π_SFT's rollouts (noise levels,
speeds, shifted goals; an RLDS dataset) → per reward-model seed: its own pairs, annotator labels
and ensemble (reward_model/seed_<r>) → per arm, one vmapped PPO program from π_SFT over (reward-
model seed × PPO seed) without constraints beside PPO on gold under the same PPO seeds
(ppo/headline/<arm>; with ``ppo_program_per_task`` and several tasks one program per arm and task,
ppo/headline/<arm>/<task>), the same with the safety constraints (ppo/constraints/<arm>) → the
iterated round: each seed's fine-tuned policies rolled out, their episodes added to the pool,
the reward model refitted and PPO run again from π_SFT (round2/...) → with ``compare_objectives``,
per reward-model seed one head per objective on that seed's pairs (reward_model_objectives/seed_<r>)
and PPO on their weighted sum under the headline's PPO seeds (ppo/objectives/<arm>) → DPO from π_SFT → every
policy, π_SFT and the scripted expert evaluated on the same episodes, gains with intervals over
seeds (reward-model seed a cluster, PPO seed within it) → pipeline.json, pipeline.md,
pipeline.png, and stage_configs.json (each stage's config as it ran). A finished stage leaves
``<stage>/stage.json``; rerunning the command on the same workdir with ``--resume`` reuses every
finished stage and runs the rest.
"""
from __future__ import annotations

import functools
import os
import sys
import time

from experiments import cli
from experiments.rlhf_pipeline_report import evaluate_all, write_report
from experiments.stages import rlhf
from experiments.stages.runner import open_run, run_stage
from rlhf_jax.checkpoint import atomic_write_json

# Every stage's config as it ran (run-time paths, conditions, tasks and points filled in), beside
# config.json, which holds the pipeline config as given.
STAGE_CONFIGS = "stage_configs.json"


def validate(config, config_file: str) -> None:
    """Every stage's fields, before anything is loaded or written."""
    rlhf.validate(config, config_file)
    rlhf.validate_pool(config, config_file)


def reward_models(config, workdir: str, prefix: str, rollouts: dict, config_file: str) -> dict:
    """{rm_seed: saved ensemble} of one round: a sweep per reward-model seed on ``rollouts``."""
    return {r: run_stage(workdir, os.path.join(prefix, f"seed_{r}"),
                         rlhf.reward_stage(config, rollouts["path"], config_file, rm_seed=r))["checkpoint"]
            for r in config.reward_model.seeds}


def objective_heads(config, workdir: str, rollouts: dict, scalar_rms: dict, config_file: str) -> dict:
    """{rm_seed: combined heads' directory}: per reward-model seed, one head per objective on its pairs."""
    return {r: run_stage(workdir, os.path.join(rlhf.HEADS_STAGE, f"seed_{r}"),
                         rlhf.objective_heads_stage(config, rollouts["path"], scalar_rms[r], config_file, r))["checkpoint"]
            for r in config.reward_model.seeds}


def ppo_points(config, workdir: str, point_set: str, sft_ckpt: str, rms: dict) -> dict:
    """program name -> info of the point set's stage: one vmapped PPO program per arm ("<arm>"), or
    per arm and task with ``ppo_program_per_task`` ("<arm>/<task>", ``rlhf.ppo_programs``)."""
    stage = "round2/ppo" if point_set == "round2" else os.path.join("ppo", point_set)
    return {name: run_stage(workdir, os.path.join(stage, name),
                            rlhf.ppo_points_stage(config, arm, point_set, sft_ckpt, rms, tasks=tasks), resumable=True)
            for name, arm, tasks in rlhf.ppo_programs(config)}


def run_pipeline(config, workdir: str, resume: bool = False, config_file: str = "configs/rlhf_pipeline.py") -> dict:
    """The pipeline's stages in order, each reused on ``resume`` once finished; returns pipeline.json's dict."""
    t0 = time.time()
    validate(config, config_file)
    episodes, dt = open_run(config, workdir, resume, config.sft.dataset)
    st = {"sft": run_stage(workdir, "sft", rlhf.sft_stage(config, episodes, dt))}
    sft_ckpt = st["sft"]["checkpoint"]
    st["rollouts"] = run_stage(workdir, "rollouts", rlhf.rollout_stage(config, sft_ckpt, dt))
    st["reward_models"] = reward_models(config, workdir, "reward_model", st["rollouts"], config_file)
    st["headline"] = ppo_points(config, workdir, "headline", sft_ckpt, st["reward_models"])
    st["constraints"] = ppo_points(config, workdir, "constraints", sft_ckpt, st["reward_models"])
    if config.get("compare_objectives", False):
        st["objective_heads"] = objective_heads(config, workdir, st["rollouts"], st["reward_models"], config_file)
        st["objectives"] = ppo_points(config, workdir, "objectives", sft_ckpt, st["objective_heads"])
    if config.iterate.rounds:
        rms, st["round2_rollouts"] = {}, {}
        for r in config.reward_model.seeds:
            st["round2_rollouts"][r] = rollouts = run_stage(
                workdir, f"round2/rollouts/seed_{r}", rlhf.round_rollout_stage(config, sft_ckpt, st["headline"], r, dt))
            rms[r] = run_stage(workdir, f"round2/reward_model/seed_{r}",
                               rlhf.reward_stage(config, rollouts["path"], config_file, rm_seed=r))["checkpoint"]
        st["round2_reward_models"] = rms
        st["round2"] = ppo_points(config, workdir, "round2", sft_ckpt, rms)
    st["dpo"] = run_stage(workdir, "dpo", rlhf.dpo_stage(config, os.path.join(workdir, "sft"), st["rollouts"]["path"]))
    t_eval = time.time()
    result = evaluate_all(config, st, dt, workdir)
    result["eval_wall_s"], result["wall_s"] = round(time.time() - t_eval, 1), round(time.time() - t0, 1)
    write_report(result, workdir)
    atomic_write_json(os.path.join(workdir, STAGE_CONFIGS), rlhf.resolved_stage_configs(config, st, workdir))
    h = result["headline"]
    cli.log(f"PPO-RLHF without constraints − SFT: {h['gain']['mean']:+.2f} gold {h['gain']['ci95']}; "
            f"PPO-gold − SFT {h['gold_gain']['mean']:+.2f}; fraction recovered {h['fraction_recovered']['fraction']:.2f} "
            f"{h['fraction_recovered']['ci95']}")
    return result


def _body(inv: cli.Invocation) -> None:
    run_pipeline(inv.config, inv.workdir, resume=inv.resume, config_file=inv.config_file)


main = functools.partial(cli.run_main, body=_body)

if __name__ == "__main__":
    sys.exit(main(sys.argv))
