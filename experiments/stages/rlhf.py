"""The RLHF stages over one pipeline config (``configs/rlhf_pipeline.py``): pi_SFT → its rollouts →
annotator labels and a reward-model ensemble → PPO (on the learned reward, without constraints,
on gold) and DPO, each a resumable stage (``run_stage``) consuming the artefact the previous one
saved. The pipeline, downstream-scaling and online-RLHF jobs compose them.
"""
from __future__ import annotations

import json
import os
from typing import Callable

from experiments import cli
from experiments.stages import dpo, ppo, sft, sweep
from experiments.stages.rollouts import write_policy_rollouts
from rlhf_jax.envs.robots import EMBODIMENTS
from rlhf_jax.envs.tasks import TASKS
from rlhf_jax.labels.label_sources import as_label_source
from rlhf_jax.train import ppo as ppo_lib

PPO_RUNS = ("ppo_rlhf", "ppo_rlhf_no_constraints", "ppo_gold")


# --- Sub-configs: what each stage reads ------------------------------------------------------------


def sweep_config(config, rollouts_path: str):
    """The reward-model sweep on pi_SFT's rollouts, saving the largest N of the first seed."""
    rm = config.reward_model.copy_and_resolve_references()
    rm.conditions, rm.dataset_path = (config.annotator,), rollouts_path
    rm.save_models.condition, rm.save_models.seeds, rm.save_models.n_values = "", (rm.seeds[0],), (max(rm.n_values),)
    return rm


def ppo_config(config, arm: str, run: str, sft_ckpt: str, rm_path: str):
    """One PPO run of the pipeline: ``run`` in PPO_RUNS, from pi_SFT, on one arm."""
    c = config.ppo.copy_and_resolve_references()
    c.env.robot, c.env.tasks, c.ref_checkpoint = arm, tuple(config.tasks), sft_ckpt
    if run == "ppo_gold":
        c.reward.kind = "gold"
    else:
        c.reward.kind, c.reward.checkpoint = "learned", rm_path
    if run == "ppo_rlhf_no_constraints":
        c.safety.weights = (0.0,) * len(c.safety.weights)  # still counted, no longer penalised
    return c


def dpo_config(config, sft_dir: str, rollouts_path: str):
    """DPO from pi_SFT (its sft stage's workdir) on pairs of pi_SFT's rollouts, labelled by the annotator."""
    c = config.dpo.copy_and_resolve_references()
    c.sft_workdir, c.dataset.path, c.preferences.teacher = sft_dir, rollouts_path, config.annotator
    c.eval.embodiments, c.eval.tasks = tuple(config.arms), tuple(config.tasks)
    return c


def prefixed(prefix: str, check, *args) -> None:
    """Runs a stage's own validator; its errors name the pipeline's field (``prefix`` + field)."""
    try:
        check(*args)
    except cli.ConfigError as e:
        raise cli.ConfigError(str(e).replace("field '", f"field '{prefix}", 1)) from None


def validate(config, config_file: str) -> None:
    """Every stage's fields, with placeholder paths, before anything is loaded or written."""
    for field, names in (("arms", EMBODIMENTS), ("tasks", TASKS)):
        if not config[field] or any(v not in names for v in config[field]):
            cli.fail(config_file, field, f"a non-empty subset of {names}", list(config[field]))
    as_label_source(config.annotator, "annotator", config_file)
    levels = config.rollouts.noise_levels
    if not levels or any(not 0.0 <= x <= 1.0 for x in levels):
        cli.fail(config_file, "rollouts.noise_levels", "numbers in [0, 1] (× qd_max)", list(levels))
    if int(config.rollouts.episodes_per_combo) < 1:
        cli.fail(config_file, "rollouts.episodes_per_combo", "a positive integer", config.rollouts.episodes_per_combo)
    if int(config.eval.n_episodes) < 1:
        cli.fail(config_file, "eval.n_episodes", "a positive integer", config.eval.n_episodes)
    prefixed("sft.", sft.validate, config.sft, config_file)
    prefixed("reward_model.", sweep.validate, sweep_config(config, ""), config_file)
    for run in PPO_RUNS:  # reward.checkpoint is checked once the reward model exists
        c = ppo_config(config, config.arms[0], run, "", "")
        c.reward.checkpoint = ""
        prefixed("ppo.", ppo_lib.validate_ppo_config, c, config_file)
    prefixed("dpo.", dpo.validate, dpo_config(config, "", ""), config_file)  # pi_SFT comes from the sft stage


# --- Stages: run(stage_dir) -> info, for run_stage ----------------------------------------------------


def sft_stage(config, episodes, dt, log: Callable[[str], None] = cli.log):
    """pi_SFT trained in the stage dir; info: its checkpoint (absolute path) and success rate."""
    def run(stage_dir):
        _, _, summary = sft.run_sft(config.sft, stage_dir, episodes, dt, log)
        return {"checkpoint": os.path.join(stage_dir, "checkpoints", "sft"),
                "success_rate": summary["eval"]["mean"]["success_rate"]}
    return run


def rollout_stage(config, sft_ckpt: str, dt: float):
    """pi_SFT's rollouts at every noise level as an RLDS dataset; info: its path, counts, policies."""
    def run(stage_dir):
        r = config.rollouts
        return write_policy_rollouts(sft_ckpt, stage_dir, config.arms, config.tasks, r.noise_levels,
                                     r.episodes_per_combo, r.seed, dt)
    return run


def reward_stage(config, rollouts_path: str, config_file: str, adjust=None, log: Callable[[str], None] = cli.log):
    """The sweep on pi_SFT's rollouts; ``adjust(sweep_config)`` may change what it saves. Its errors
    name ``config_file``. info: the last saved reward model (checkpoint) and every saved one."""
    def run(stage_dir):
        rm = sweep_config(config, rollouts_path)
        rm = adjust(rm) if adjust else rm
        sweep.run_sweep(rm, stage_dir, log=log, config_file=config_file)
        with open(os.path.join(stage_dir, "run_info.json"), encoding="utf-8") as f:
            saved = json.load(f)["reward_models"]
        return {"checkpoint": os.path.join(stage_dir, saved[-1]), "saved": saved}
    return run


def ppo_stage(config, arm: str, run_name: str, sft_ckpt: str, rm_path: str, config_file: str):
    """One PPO run (``run_name`` in PPO_RUNS) from pi_SFT; info: its policy checkpoint and final metrics."""
    def run(stage_dir):
        c = ppo_config(config, arm, run_name, sft_ckpt, rm_path)
        summary = ppo.run_ppo(c, stage_dir, config_file=config_file)
        return {"checkpoint": os.path.join(stage_dir, "checkpoints", "ppo"), "final": summary["final"]}
    return run


def dpo_stage(config, sft_dir: str, rollouts_path: str):
    """DPO from pi_SFT on pairs of its rollouts; info: the stacked checkpoint, points, implicit reward."""
    def run(stage_dir):
        summary = dpo.run_dpo(dpo_config(config, sft_dir, rollouts_path), stage_dir)
        return {"checkpoint": os.path.join(stage_dir, "checkpoints", "dpo"), "points": summary["points"],
                "implicit_reward": summary["implicit_reward"]}
    return run
