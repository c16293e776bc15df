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

import numpy as np

from experiments import cli, ppo_rlhf, scaling_sweep, train_dpo, train_sft
from rlhf_jax.checkpoint import atomic_write_json, prepare_run_dir
from rlhf_jax.data.dataset import enable_compilation_cache
from rlhf_jax.labels.label_sources import as_label_source
from rlhf_jax.envs.robots import EMBODIMENTS
from rlhf_jax.envs.tasks import TASKS
from rlhf_jax.train import ppo

PPO_RUNS = ("ppo_rlhf", "ppo_rlhf_no_constraints", "ppo_gold")


# --- Sub-configs: what each stage's own experiment reads ----------------------------------------


def _sweep_config(config, rollouts_path: str):
    rm = config.reward_model.copy_and_resolve_references()
    rm.conditions, rm.dataset_path = (config.annotator,), rollouts_path
    rm.save_models.condition, rm.save_models.seeds, rm.save_models.n_values = "", (rm.seeds[0],), (max(rm.n_values),)
    return rm


def _ppo_config(config, arm: str, run: str, sft_ckpt: str, rm_path: str):
    c = config.ppo.copy_and_resolve_references()
    c.env.robot, c.env.tasks, c.ref_checkpoint = arm, tuple(config.tasks), sft_ckpt
    if run == "ppo_gold":
        c.reward.kind = "gold"
    else:
        c.reward.kind, c.reward.checkpoint = "learned", rm_path
    if run == "ppo_rlhf_no_constraints":
        c.safety.weights = (0.0,) * len(c.safety.weights)  # still counted, no longer penalised
    return c


def _dpo_config(config, sft_dir: str, rollouts_path: str):
    c = config.dpo.copy_and_resolve_references()
    c.sft_workdir, c.dataset.path, c.preferences.teacher = sft_dir, rollouts_path, config.annotator
    c.eval.embodiments, c.eval.tasks = tuple(config.arms), tuple(config.tasks)
    return c


def _prefixed(prefix: str, check, *args):
    """Runs a stage's own validator; its errors name the pipeline's field (``prefix`` + field)."""
    try:
        check(*args)
    except cli.ConfigError as e:
        raise cli.ConfigError(str(e).replace("field '", f"field '{prefix}", 1)) from None


def validate(config, where: str) -> None:
    """Every stage's fields, with placeholder paths, before anything is loaded or written."""
    for field, names in (("arms", EMBODIMENTS), ("tasks", TASKS)):
        if not config[field] or any(v not in names for v in config[field]):
            cli.fail(where, field, f"a non-empty subset of {names}", list(config[field]))
    as_label_source(config.annotator, "annotator", where)
    levels = config.rollouts.noise_levels
    if not levels or any(not 0.0 <= x <= 1.0 for x in levels):
        cli.fail(where, "rollouts.noise_levels", "numbers in [0, 1] (× qd_max)", list(levels))
    if int(config.rollouts.episodes_per_combo) < 1:
        cli.fail(where, "rollouts.episodes_per_combo", "a positive integer", config.rollouts.episodes_per_combo)
    if int(config.eval.n_episodes) < 1:
        cli.fail(where, "eval.n_episodes", "a positive integer", config.eval.n_episodes)
    _prefixed("sft.", train_sft.validate, config.sft, where)
    _prefixed("reward_model.", scaling_sweep.validate, _sweep_config(config, ""), where)
    for run in PPO_RUNS:  # reward.checkpoint is checked once the reward model exists
        c = _ppo_config(config, config.arms[0], run, "", "")
        c.reward.checkpoint = ""
        _prefixed("ppo.", ppo.validate_ppo_config, c, where)
    dpo = _dpo_config(config, "", "")  # π_SFT comes from the sft stage; its own sft block is not read
    _prefixed("dpo.", train_dpo.validate, dpo, where)


# --- Stages ---------------------------------------------------------------------------------------


def _stage(workdir: str, name: str, run, log=cli.log) -> dict:
    """``run(stage_dir) -> info`` unless ``<stage_dir>/stage.json`` says it finished; returns info."""
    import json

    stage_dir = os.path.join(workdir, name)
    done = os.path.join(stage_dir, "stage.json")
    if os.path.isfile(done):
        with open(done, encoding="utf-8") as f:
            log("stage %s: finished earlier, reused", name)
            return json.load(f)
    if os.path.isdir(stage_dir):  # an interrupted stage starts again from scratch
        import shutil

        shutil.rmtree(stage_dir)
    t0 = time.time()
    log("stage %s ...", name)
    info = dict(run(stage_dir), wall_s=round(time.time() - t0, 1))
    atomic_write_json(done, info)
    log("stage %s done in %.0f s", name, info["wall_s"])
    return info


def _sft_stage(config, episodes, dt):
    def run(stage_dir):
        _, _, summary = train_sft.run_sft(config.sft, stage_dir, episodes, dt)
        return {"checkpoint": os.path.join(stage_dir, "checkpoints", "sft"),
                "success_rate": summary["eval"]["mean"]["success_rate"]}
    return run


def _rollout_stage(config, sft_ckpt: str, dt: float):
    def run(stage_dir):
        from rlhf_jax.checkpoint import restore_policy
        from rlhf_jax.data.generate import dataset_metadata
        from rlhf_jax.data.policy_rollouts import policy_episodes, policy_name
        from rlhf_jax.data.rlds import write_rlds
        from rlhf_jax.models.policy import make_policy

        variables, meta = restore_policy(sft_ckpt)
        model = make_policy(meta["model"], meta["num_tasks"], meta["num_embodiments"])
        r = config.rollouts
        eps = policy_episodes(model, variables, config.arms, config.tasks, r.noise_levels, r.episodes_per_combo,
                              r.seed, dt=dt)
        names = [policy_name(x) for x in r.noise_levels]
        md = dataset_metadata({"dt": dt, "horizon": 50, "seed": r.seed, "variant": "sft_rollouts",
                               "embodiments": config.arms, "tasks": config.tasks, "policies": names,
                               "episodes_per_combo": r.episodes_per_combo})
        md["behaviour_checkpoint"] = sft_ckpt
        path = write_rlds(eps, os.path.join(stage_dir, "rlds"), metadata=md)
        return {"path": path, "episodes": len(eps), "policies": names}
    return run


def _reward_stage(config, rollouts_path: str, adjust=None):
    """The sweep on π_SFT's rollouts; ``adjust(sweep_config)`` may change what it saves."""
    def run(stage_dir):
        import json

        rm = _sweep_config(config, rollouts_path)
        rm = adjust(rm) if adjust else rm
        scaling_sweep.run_sweep(rm, stage_dir, log=lambda m: cli.log("%s", m), where="configs/rlhf_pipeline.py")
        with open(os.path.join(stage_dir, "run_info.json"), encoding="utf-8") as f:
            saved = json.load(f)["reward_models"]
        return {"checkpoint": os.path.join(stage_dir, saved[-1]), "saved": saved}
    return run


def _ppo_stage(config, arm: str, run_name: str, sft_ckpt: str, rm_path: str, where: str):
    def run(stage_dir):
        c = _ppo_config(config, arm, run_name, sft_ckpt, rm_path)
        summary = ppo_rlhf.run_ppo(c, stage_dir, config_file=where)
        return {"checkpoint": os.path.join(stage_dir, "checkpoints", "ppo"), "final": summary["final"]}
    return run


def _dpo_stage(config, sft_dir: str, rollouts_path: str):
    def run(stage_dir):
        summary = train_dpo.run_dpo(_dpo_config(config, sft_dir, rollouts_path), stage_dir)
        return {"checkpoint": os.path.join(stage_dir, "checkpoints", "dpo"), "points": summary["points"],
                "implicit_reward": summary["implicit_reward"]}
    return run


# --- The experiment -------------------------------------------------------------------------------


def run_pipeline(config, workdir: str, resume: bool = False, where: str = "configs/rlhf_pipeline.py") -> dict:
    from experiments.pipeline_report import evaluate_all, write_report

    t0 = time.time()
    validate(config, where)
    if cli.check_workdir(workdir, resume, config) == "fresh":
        cli.log("--resume: no earlier run in %s; starting fresh", workdir)
    enable_compilation_cache(config.sft.dataset.get("data_dir"))
    episodes, dt, _ = train_sft.load_episodes(config.sft.dataset)
    prepare_run_dir(workdir, config.to_json(indent=2, sort_keys=True), resume, error=cli.ConfigError)
    stages = {"sft": _stage(workdir, "sft", _sft_stage(config, episodes, dt))}
    sft_ckpt = stages["sft"]["checkpoint"]
    stages["rollouts"] = _stage(workdir, "rollouts", _rollout_stage(config, sft_ckpt, dt))
    stages["reward_model"] = _stage(workdir, "reward_model", _reward_stage(config, stages["rollouts"]["path"]))
    rm_path = stages["reward_model"]["checkpoint"]
    for run_name in PPO_RUNS:
        for arm in config.arms:
            stages[f"{run_name}/{arm}"] = _stage(workdir, os.path.join(run_name, arm),
                                                 _ppo_stage(config, arm, run_name, sft_ckpt, rm_path, where))
    stages["dpo"] = _stage(workdir, "dpo", _dpo_stage(config, os.path.join(workdir, "sft"), stages["rollouts"]["path"]))
    t_eval = time.time()
    result = evaluate_all(config, stages, dt)
    result["stages"] = {k: v.get("wall_s") for k, v in stages.items()}
    result["eval_wall_s"], result["wall_s"] = round(time.time() - t_eval, 1), round(time.time() - t0, 1)
    write_report(result, workdir)
    for name, p in result["policies"].items():
        cli.log("%-24s gold %7.2f  success %.3f  violations %.3f  kl_to_sft %s", name, p["gold_return"],
                p["success"], p["violations"], p["kl_to_sft"])
    return result


def _body(inv: cli.Invocation) -> None:
    run_pipeline(inv.config, inv.workdir, resume=inv.resume, where=inv.config_file)


main = functools.partial(cli.run_main, body=_body)

if __name__ == "__main__":
    sys.exit(main(sys.argv))
