"""DPO variants from π_SFT on a finished RLHF pipeline workdir: the log-σ floor and the action clip
the pair log-probs are computed with, and summed or per-step log-probs with their β, each over
several DPO seeds, against π_SFT.

  python -m experiments.rlhf_pipeline --config configs/rlhf_pipeline.py:quick --workdir runs/pipeline_quick
  python -m experiments.dpo_variants --config configs/dpo_variants.py:quick \
      --config.pipeline_workdir=runs/pipeline_quick --workdir runs/dpo_variants_quick

Reads top to bottom: checks (the variants, the seeds, the pipeline workdir's sft and rollouts
stages) → per (variant, seed), one resumable stage ``<variant>/seed_<s>``: ``stages.dpo.run_dpo``
from π_SFT on pairs of its rollouts (the pipeline's DPO config with the variant's
``dpo.log_std_floor``, ``train.action_clip``, ``dpo.logp_reduction`` and ``dpo.betas`` = (β,),
the seed as pair seed and training seed), then the policy evaluated deterministically on the
pipeline's evaluation states (arms × tasks) → π_SFT on the same states → runs.csv, summary.json
(per variant, its reduction and β, the gold gain over π_SFT with a t-interval over seeds, and a
verdict), dpo_variants.png. ``--resume`` reuses finished stages.
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
import time

import numpy as np

from configs import dpo_variants as dpo_variants_config
from experiments import cli
from experiments import dpo_variants_report as report
from experiments.stages import dpo, rlhf
from experiments.stages.point_eval import point
from experiments.stages.runner import run_stage
from rlhf_jax import config_schema
from rlhf_jax.checkpoint import prepare_run_dir, restore_policy
from rlhf_jax.data import load_metadata
from rlhf_jax.evaluation.policy_eval import episode_metrics
from rlhf_jax.evaluation.rollout_eval import arm_key, episodes
from rlhf_jax.models.policy import make_policy

NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")   # a variant's name is its stage directory
RECORD = "(name, log_std_floor or None, action_clip, logp_reduction, beta)"
REDUCTIONS = ("sum", "mean")


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def validate(config, config_file: str) -> None:
    """The pipeline block, the seeds and the variants, then the pipeline workdir's stages, before
    anything is written (each field's domain: ``configs/dpo_variants.py`` FIELDS)."""
    config_schema.validate(config, config_file, dpo_variants_config.FIELDS)
    rlhf.prefixed("pipeline.", rlhf.validate, config.pipeline, config_file)
    loss_types = list(config.pipeline.dpo.dpo.loss_types)
    if len(loss_types) != 1:   # a variant is one DPO point (its β is the variant's); its seeds are the replicates
        cli.fail(config_file, "pipeline.dpo.dpo.loss_types", "one loss type (one DPO point per run)", loss_types)
    seeds = list(config.seeds)
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        cli.fail(config_file, "seeds", "at least two distinct integers (the interval is over seeds)", seeds)
    validate_variants(config, config_file)
    sft_dir, rollouts = pipeline_inputs(config, config_file)
    for variant in config.variants:   # DPO's own checks on each run's config, with the real inputs
        rlhf.prefixed("pipeline.dpo.", dpo.validate, variant_config(config, sft_dir, rollouts, variant, seeds[0]),
                      config_file)


def validate_variants(config, config_file: str) -> None:
    """Each variant a (name, log-σ floor or None, action clip, log-prob reduction, β) with a distinct
    directory-safe name, a floor within the policy's log-σ bounds, a clip in (0, 1), a reduction of
    'sum' or 'mean' and a β > 0."""
    variants, model = list(config.variants), config.pipeline.sft.model
    names = [v[0] for v in variants if isinstance(v, (tuple, list)) and len(v) == 5]
    if not variants or len(names) != len(variants) or len(set(names)) != len(names):
        cli.fail(config_file, "variants", f"{RECORD} tuples with distinct names", variants)
    for name, floor, clip, reduction, beta in variants:
        if not isinstance(name, str) or not NAME.match(name):
            cli.fail(config_file, "variants", "names of letters, digits and ._+- (each is a stage directory)", name)
        if floor is not None and not (_number(floor) and model.log_std_min <= floor < model.log_std_max):
            cli.fail(config_file, "variants", f"a log_std_floor of None or a number in [{model.log_std_min}, "
                     f"{model.log_std_max}) (variant {name})", floor)
        if not (_number(clip) and 0.0 < clip < 1.0):
            cli.fail(config_file, "variants", f"an action_clip in (0, 1) (variant {name})", clip)
        if reduction not in REDUCTIONS:
            cli.fail(config_file, "variants", f"a logp_reduction of 'sum' or 'mean' (variant {name})", reduction)
        if not (_number(beta) and beta > 0):
            cli.fail(config_file, "variants", f"a beta > 0 (variant {name})", beta)


def pipeline_inputs(config, config_file: str) -> tuple[str, str]:
    """(π_SFT's stage dir, rollouts dataset path) of ``pipeline_workdir``; refuses a workdir
    without finished sft and rollouts stages, or one made for other arms or tasks."""
    workdir = config.pipeline_workdir
    sft_dir, stage = os.path.join(workdir, "sft"), os.path.join(workdir, "rollouts", "stage.json")
    if not workdir or not os.path.isdir(os.path.join(sft_dir, "checkpoints", "sft")) or not os.path.isfile(stage):
        cli.fail(config_file, "pipeline_workdir", "an rlhf_pipeline workdir whose sft and rollouts stages finished "
                 "(sft/checkpoints/sft, rollouts/stage.json)", workdir)
    with open(stage, encoding="utf-8") as f:
        path = json.load(f)["path"]
    if not os.path.isdir(path):   # recorded relative to where the pipeline ran: find it under this workdir
        path = os.path.join(workdir, "rollouts", path.rsplit("rollouts" + os.sep, 1)[-1])
    if not os.path.isdir(path):
        cli.fail(config_file, "pipeline_workdir", "a workdir whose rollouts/stage.json names its dataset", workdir)
    saved = os.path.join(workdir, "config.json")
    if os.path.isfile(saved):
        with open(saved, encoding="utf-8") as f:
            made = json.load(f)
        for field in ("arms", "tasks"):   # pairs come from the rollouts of these arms and tasks only
            if list(made.get(field, ())) != list(config.pipeline[field]):
                cli.fail(config_file, f"pipeline.{field}", f"the {field} {made.get(field)} that {workdir} was made "
                         "with", list(config.pipeline[field]))
    return sft_dir, path


def variant_config(config, sft_dir: str, rollouts: str, variant, seed: int):
    """The pipeline's DPO config with the variant's log-σ floor, action clip, log-prob reduction
    and β (its one sweep point); ``seed`` is both the pairs' seed (their draw and labels) and the
    training seed (init key, minibatches)."""
    _, floor, clip, reduction, beta = variant
    c = rlhf.dpo_config(config.pipeline, sft_dir, rollouts)
    c.dpo.log_std_floor = None if floor is None else float(floor)
    c.train.action_clip = float(clip)
    c.dpo.logp_reduction, c.dpo.betas = str(reduction), (float(beta),)
    c.seed = c.preferences.seed = int(seed)
    return c


def evaluate(config, dt: float, model, variables) -> dict:
    """{gold_return, success_rate}: means over the pipeline's arms × tasks of deterministic
    episodes on its evaluation states (``pipeline.eval``: the states every pipeline policy sees)."""
    p, per = config.pipeline, []
    for arm in p.arms:
        ep = episodes(arm, tuple(p.tasks), arm_key(p.eval.seed, arm), int(p.eval.n_episodes), model=model,
                      variables=variables, dt=dt)
        per += [episode_metrics(ep["components"][i]) for i in range(len(p.tasks))]   # [E, T, C] each
    return {k: float(np.mean([m[k] for m in per])) for k in ("gold_return", "success_rate")}


def sft_policy(sft_dir: str, floor=None):
    """(module, variables) of π_SFT; with ``floor`` the module a DPO run with that log-σ floor trained."""
    variables, meta = restore_policy(os.path.join(sft_dir, "checkpoints", "sft"))
    model_config = dict(meta["model"], **({"log_std_floor": float(floor)} if floor is not None else {}))
    return make_policy(model_config, meta["num_tasks"], meta["num_embodiments"]), variables


def variant_stage(config, sft_dir: str, rollouts: str, variant, seed: int, dt: float):
    """run(stage_dir) -> one row: DPO of (variant, seed) and its evaluation."""
    def run(stage_dir):
        name, floor, clip, reduction, beta = variant
        summary = dpo.run_dpo(variant_config(config, sft_dir, rollouts, variant, seed), stage_dir)
        stacked, meta = restore_policy(summary["checkpoint"])
        model, _ = sft_policy(sft_dir, meta.get("log_std_floor"))   # the module the policy was trained as
        name_of = dpo.point_name(summary["points"][0])
        ev = evaluate(config, dt, model, point(stacked, 0))   # the checkpoint stacks one DPO point
        acc = summary["implicit_reward"]
        return {"variant": name, "log_std_floor": floor, "action_clip": float(clip), "logp_reduction": reduction,
                "beta": float(beta), "seed": int(seed), **ev,
                "implicit_accuracy": acc["test"][name_of]["accuracy"],
                "implicit_accuracy_val": acc["val"][name_of]["accuracy"],
                # relative to the working directory: orbax hands back an absolute path, which
                # would tie the committed runs.csv to the machine that made it
                "checkpoint": os.path.relpath(summary["checkpoint"])}
    return run


def run(config, workdir: str, resume: bool = False, config_file: str = "configs/dpo_variants.py") -> dict:
    """Every (variant, seed), π_SFT's evaluation and the outputs; returns summary.json's dict."""
    t0 = time.time()
    validate(config, config_file)
    sft_dir, rollouts = pipeline_inputs(config, config_file)
    if cli.check_workdir(workdir, resume, config) == "fresh":
        cli.log(f"--resume: no earlier run in {workdir}; starting fresh")
    prepare_run_dir(workdir, config.to_json(indent=2, sort_keys=True), resume, error=cli.ConfigError)
    dt = float(load_metadata(rollouts)["dt"])
    rows = [run_stage(workdir, os.path.join(v[0], f"seed_{s}"), variant_stage(config, sft_dir, rollouts, v, s, dt))
            for v in config.variants for s in config.seeds]
    sft = evaluate(config, dt, *sft_policy(sft_dir))
    summary = report.write_outputs(workdir, rows, sft, config, wall_s=time.time() - t0)
    for v in summary["variants"]:
        cli.log(f"{v['variant']:<22s} gain over π_SFT {v['gain']['mean']:+.2f} "
                f"[{v['gain']['ci95'][0]:+.2f}, {v['gain']['ci95'][1]:+.2f}] ({v['verdict']})")
    return summary


main = cli.job_main(run)

if __name__ == "__main__":
    sys.exit(main(sys.argv))
