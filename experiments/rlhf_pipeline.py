"""The RLHF pipeline end to end, each stage consuming the artefact the previous one saved.

  python -m experiments.rlhf_pipeline --config configs/rlhf_pipeline.py:quick --workdir runs/pipeline

Reads top to bottom: checks → SFT (π_SFT, checkpoints/sft) → π_SFT rollouts at several noise
levels (an RLDS dataset, policy "sft@<noise>") → annotator labels and a reward-model ensemble
(the scaling sweep on those rollouts, saved as a reward-model artefact) → per arm: PPO-RLHF from
π_SFT on the loaded reward model with the safety constraints, the same without constraints, and
PPO on the gold reward (the upper bound) → DPO from π_SFT on pairs of the same rollouts →
evaluation of every policy and the scripted expert on the same episodes → pipeline.json,
pipeline.md, pipeline.png. A finished stage leaves ``<stage>/stage.json``; rerunning the command
on the same workdir with ``--resume`` reuses every finished stage and runs the rest.
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


def validate(config, config_file: str) -> None:
    """Every stage's fields, before anything is loaded or written."""
    rlhf.validate(config, config_file)


# --- The experiment -------------------------------------------------------------------------------


def run_pipeline(config, workdir: str, resume: bool = False, config_file: str = "configs/rlhf_pipeline.py") -> dict:
    """The pipeline's stages in order, each reused on ``resume`` once finished; returns pipeline.json's dict."""
    t0 = time.time()
    validate(config, config_file)
    episodes, dt = open_run(config, workdir, resume, config.sft.dataset)
    stages = {"sft": run_stage(workdir, "sft", rlhf.sft_stage(config, episodes, dt))}
    sft_ckpt = stages["sft"]["checkpoint"]
    stages["rollouts"] = run_stage(workdir, "rollouts", rlhf.rollout_stage(config, sft_ckpt, dt))
    stages["reward_model"] = run_stage(workdir, "reward_model",
                                       rlhf.reward_stage(config, stages["rollouts"]["path"], config_file))
    rm_path = stages["reward_model"]["checkpoint"]
    for run_name in rlhf.PPO_RUNS:
        for arm in config.arms:
            stages[f"{run_name}/{arm}"] = run_stage(workdir, os.path.join(run_name, arm),
                                                    rlhf.ppo_stage(config, arm, run_name, sft_ckpt, rm_path, config_file))
    stages["dpo"] = run_stage(workdir, "dpo", rlhf.dpo_stage(config, os.path.join(workdir, "sft"),
                                                              stages["rollouts"]["path"]))
    t_eval = time.time()
    result = evaluate_all(config, stages, dt)
    result["stages"] = {k: v.get("wall_s") for k, v in stages.items()}
    result["eval_wall_s"], result["wall_s"] = round(time.time() - t_eval, 1), round(time.time() - t0, 1)
    write_report(result, workdir)
    for name, p in result["policies"].items():
        cli.log(f"{name:<24s} gold {p['gold_return']:7.2f}  success {p['success']:.3f}  "
                f"violations {p['violations']:.3f}  kl_to_sft {p['kl_to_sft']}")
    return result


def _body(inv: cli.Invocation) -> None:
    run_pipeline(inv.config, inv.workdir, resume=inv.resume, config_file=inv.config_file)


main = functools.partial(cli.run_main, body=_body)

if __name__ == "__main__":
    sys.exit(main(sys.argv))
