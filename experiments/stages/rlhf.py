"""The RLHF stages over one pipeline config (``configs/rlhf_pipeline.py``): pi_SFT → its rollouts →
annotator labels and a reward-model ensemble per reward-model seed → PPO from pi_SFT over (reward-
model seed × PPO seed) points, beside PPO on gold, in one vmapped program per arm, or per arm and
task with ``ppo_program_per_task`` (``stages.ppo_points``, ``ppo_programs``) → an iterated round (the fine-tuned policies' rollouts → labels → refit →
PPO again) → DPO; with ``compare_objectives``, per reward-model seed also one head per objective
on the same pairs (the annotator's sub-answers) and PPO on their weighted sum. Each is a resumable
stage (``run_stage``) consuming the artefact the previous one saved. The pipeline,
downstream-scaling and PPO-tuning jobs compose them.
"""
from __future__ import annotations

import json
import os
from typing import Callable

from configs import rlhf_pipeline as pipeline_fields
from experiments import cli
from experiments.stages import dpo, ppo, sft, sweep
from experiments.stages.ppo_points import Point, points_stage
from experiments.stages.rollouts import fine_tuned_episodes, write_policy_rollouts
from experiments.stages.sweep_outputs import reward_model_relpath
from rlhf_jax import config_schema
from rlhf_jax.data.policy_rollouts import Behaviour
from rlhf_jax.envs.robots import EMBODIMENTS
from rlhf_jax.labels.label_sources import TeacherSource, as_label_source
from rlhf_jax.objective_heads import load_objective_heads, write_objective_heads
from rlhf_jax.preferences import annotators
from rlhf_jax.preferences.objectives import OBJECTIVE_NAMES, scale_weights
from rlhf_jax.reward_artifact import load_reward_model
from rlhf_jax.train.sweep_data import objective_condition

PPO_RUNS = ("ppo_rlhf", "ppo_rlhf_no_constraints", "ppo_gold")
# Sets of PPO points per arm: the headline (learned rewards without constraints, with PPO on gold
# under the same PPO seeds), the same with the safety constraints, the iterated round, and the
# combined objective heads (``compare_objectives``: no constraints, the headline's PPO seeds).
POINT_SETS = ("headline", "constraints", "round2", "objectives")
HEADS_STAGE = "reward_model_objectives"   # per reward-model seed: seed_<r>


# --- Sub-configs: what each stage reads ------------------------------------------------------------


def sweep_config(config, rollouts_path: str, rm_seed: int | None = None):
    """The reward-model sweep on pi_SFT's rollouts, saving the largest N of ``rm_seed`` (default:
    the first seed). With ``rm_seed`` the sweep runs that seed alone, its labels drawn with it as
    label seed: a reward-model seed's own pairs, labels and initialisation."""
    rm = config.reward_model.copy_and_resolve_references()
    rm.conditions, rm.dataset_path = (config.annotator,), rollouts_path
    if rm_seed is not None:
        rm.seeds, rm.label_seed = (int(rm_seed),), int(rm_seed)
    rm.save_models.condition, rm.save_models.seeds, rm.save_models.n_values = "", (rm.seeds[0],), (max(rm.n_values),)
    return rm


def ppo_config(config, arm: str, run: str, sft_ckpt: str, rm_path: str):
    """One PPO run of the pipeline: ``run`` in PPO_RUNS, from pi_SFT, on one arm."""
    c = config.ppo.copy_and_resolve_references()
    c.env.robot, c.env.tasks, c.ref_checkpoint = arm, tuple(config.tasks), sft_ckpt
    c.kl.beta = float(config.get("kl_beta_by_arm", {}).get(arm, c.kl.beta))  # each arm's budget curve
    if run == "ppo_gold":
        c.reward.kind = "gold"
    else:
        c.reward.kind, c.reward.checkpoint = "learned", rm_path
    if run == "ppo_rlhf_no_constraints":
        c.safety.weights = (0.0,) * len(c.safety.weights)  # still counted, no longer penalised
    return c


def points(config, point_set: str, rm_paths: dict) -> list[Point]:
    """The PPO points of ``point_set`` (POINT_SETS) on reward models {rm_seed: path}."""
    seeds = config.ppo_seeds if point_set in ("headline", "objectives") else config.secondary_ppo_seeds
    out = [Point(rm_paths[r], int(p)) for r in config.reward_model.seeds for p in seeds]
    return out + ([Point("gold", int(p)) for p in config.ppo_seeds] if point_set == "headline" else [])


def objectives_sweep_config(config, rollouts_path: str, rm_seed: int | None = None):
    """The reward-model seed's own sweep (``sweep_config``: same pool, label seed, pairs, model and
    members) asking the annotator every objective's sub-question instead, at the largest N only,
    saving every objective's head."""
    rm = sweep_config(config, rollouts_path, rm_seed)
    rm.objectives, rm.n_values = OBJECTIVE_NAMES, (max(rm.n_values),)
    rm.save_models.condition = "*"
    return rm


def points_config(config, arm: str, point_set: str, sft_ckpt: str, tasks: tuple | None = None):
    """The PPO config of a point set on ``arm``: constraints penalised only in "constraints". With
    ``tasks`` a share of the pipeline's tasks (one program per task, ``ppo_programs``), the program
    trains those alone at their share of the shape: ``num_envs`` and ``num_minibatches`` divided by
    the number of programs, so each task keeps the environments and minibatch size it had."""
    # Its reward fields are unused: each point names its reward (stages.ppo_points).
    c = ppo_config(config, arm, "ppo_rlhf" if point_set == "constraints" else "ppo_rlhf_no_constraints",
                   sft_ckpt, "")
    if tasks is not None and tuple(tasks) != tuple(config.tasks):
        share = len(config.tasks) // len(tasks)
        c.env.tasks = tuple(tasks)
        c.ppo.num_envs, c.ppo.num_minibatches = c.ppo.num_envs // share, c.ppo.num_minibatches // share
    return c


def ppo_programs(config) -> list[tuple[str, str, tuple]]:
    """(name, arm, tasks) of every PPO program of a point set: per arm, one program over all tasks,
    or with ``ppo_program_per_task`` and several tasks one per task (name "<arm>/<task>"; a
    one-task pipeline is the same either way). The default pipeline's two-task program diverged
    on gold too where each task alone, at its share of the shape, trained stably
    (results/ppo_two_task_default_panda vs results/ppo_budget_default_panda{,_reach})."""
    tasks = tuple(config.tasks)
    groups = [(t,) for t in tasks] if config.get("ppo_program_per_task", False) and len(tasks) > 1 else [tasks]
    return [(arm if g == tasks else f"{arm}/{g[0]}", arm, g) for arm in config.arms for g in groups]


def dpo_config(config, sft_dir: str, rollouts_path: str):
    """DPO from pi_SFT (its sft stage's workdir) on pairs of pi_SFT's rollouts, labelled by the annotator."""
    c = config.dpo.copy_and_resolve_references()
    c.sft_workdir, c.dataset.path, c.preferences.teacher = sft_dir, rollouts_path, config.annotator
    c.eval.embodiments, c.eval.tasks = tuple(config.arms), tuple(config.tasks)
    return c


def resolved_stage_configs(config, st: dict, workdir: str) -> dict:
    """{stage name: the config that stage ran with, as a dict}: what the pipeline fills in at run
    time (the reward model's condition and dataset, each PPO point set's arm, tasks, π_SFT and
    reward per point, DPO's teacher and dataset) beside the fields ``config.json`` holds.
    ``st``: the stages' infos as ``experiments.rlhf_pipeline.run_pipeline`` collects them."""
    sft_ckpt = st["sft"]["checkpoint"]
    out = {"sft": config.sft.to_dict()}
    rounds = [("reward_model", st["reward_models"], lambda r: st["rollouts"]["path"])]
    if "round2" in st:
        rounds.append(("round2/reward_model", st["round2_reward_models"], lambda r: st["round2_rollouts"][r]["path"]))
    for prefix, rms, rollouts_of in rounds:
        for r in rms:
            out[f"{prefix}/seed_{r}"] = sweep_config(config, rollouts_of(r), r).to_dict()
    for r in st.get("objective_heads", {}):
        out[f"{HEADS_STAGE}/seed_{r}"] = objectives_sweep_config(config, st["rollouts"]["path"], r).to_dict()
    for point_set in (p for p in POINT_SETS if p in st):
        stage = "round2/ppo" if point_set == "round2" else f"ppo/{point_set}"
        rms = point_set_rewards(st, point_set)
        for name, arm, tasks in ppo_programs(config):
            c = points_config(config, arm, point_set, sft_ckpt, tasks).to_dict()
            c["points"] = [{"reward": p.reward, "seed": p.seed} for p in points(config, point_set, rms)]
            out[f"{stage}/{name}"] = c
    if "dpo" in st:
        out["dpo"] = dpo_config(config, os.path.join(workdir, "sft"), st["rollouts"]["path"]).to_dict()
    return out


def point_set_rewards(st: dict, point_set: str) -> dict:
    """{rm_seed: reward path} a point set trains on: the round's reward models, or the seeds'
    objective heads (directories of ``objective_heads.json``)."""
    return {"round2": st.get("round2_reward_models"), "objectives": st.get("objective_heads")}.get(point_set) \
        or st["reward_models"]


def prefixed(prefix: str, check, *args) -> None:
    """Runs a stage's own validator; its errors name the pipeline's field (``prefix`` + field)."""
    try:
        check(*args)
    except cli.ConfigError as e:
        raise cli.ConfigError(str(e).replace("field '", f"field '{prefix}", 1)) from None


def validate(config, config_file: str) -> None:
    """Every stage's fields, with placeholder paths, before anything is loaded or written: each
    field's domain (``configs/rlhf_pipeline.py`` FIELDS, the stages' tables under their blocks),
    then the label source, the per-arm β's arm names, the seeds and each stage's relations."""
    config_schema.validate(config, config_file, pipeline_fields.FIELDS)
    as_label_source(config.annotator, "annotator", config_file)
    by_arm = config.get("kl_beta_by_arm", {})
    if any(arm not in EMBODIMENTS for arm in by_arm):
        cli.fail(config_file, "kl_beta_by_arm", "{arm name: β >= 0} over arm names "
                 f"{list(EMBODIMENTS)}", by_arm.to_dict() if hasattr(by_arm, "to_dict") else by_arm)
    validate_seeds(config, config_file)
    prefixed("sft.", sft.validate, config.sft, config_file)
    prefixed("reward_model.", sweep.validate, sweep_config(config, ""), config_file)
    for run in PPO_RUNS:  # reward.checkpoint is checked once the reward model exists
        c = ppo_config(config, config.arms[0], run, "", "")
        c.reward.checkpoint = ""
        prefixed("ppo.", ppo.check_fields, c, config_file)
    validate_programs(config, config_file)
    prefixed("dpo.", dpo.validate, dpo_config(config, "", ""), config_file)  # pi_SFT comes from the sft stage
    if config.get("compare_objectives"):
        if not isinstance(as_label_source(config.annotator, "annotator", config_file), TeacherSource):
            cli.fail(config_file, "annotator", "a teacher preset when compare_objectives is on (simulated "
                     "annotators answer the objectives' sub-questions)", config.annotator)
        prefixed("reward_model.", sweep.validate, objectives_sweep_config(config, ""), config_file)


def validate_programs(config, config_file: str) -> None:
    """With one PPO program per task, the shape splits evenly over the tasks and each share is a
    valid PPO shape."""
    programs = ppo_programs(config)
    if len(programs) == len(config.arms):
        return
    n = len(config.tasks)
    for field in ("num_envs", "num_minibatches"):
        value = config.ppo.ppo[field]
        if value % n:
            cli.fail(config_file, f"ppo.ppo.{field}", f"a multiple of the number of tasks ({n}) with "
                     f"ppo_program_per_task (each task's program gets ppo.ppo.{field} / {n})", value)
    for run in ("constraints", "headline"):
        prefixed("ppo.", ppo.check_fields, points_config(config, config.arms[0], run, "", programs[0][2]), config_file)


def validate_seeds(config, config_file: str) -> None:
    """PPO seeds, the iterated round, and a pool from which reward-model seeds draw different pairs."""
    for field in ("ppo_seeds", "secondary_ppo_seeds"):
        seeds = list(config[field])
        if len(set(seeds)) != len(seeds):
            cli.fail(config_file, field, "distinct integers, at least one", seeds)
    if not set(config.secondary_ppo_seeds) <= set(config.ppo_seeds):
        cli.fail(config_file, "secondary_ppo_seeds", f"a subset of ppo_seeds {list(config.ppo_seeds)} (runs are paired "
                 "with the headline's)", list(config.secondary_ppo_seeds))


def validate_pool(config, config_file: str) -> None:
    """With several reward-model seeds, the largest N is below the pool, so each seed draws its own pairs."""
    rm = config.reward_model
    if len(rm.seeds) > 1 and max(rm.n_values) >= rm.n_train_pool:
        cli.fail(config_file, "reward_model.n_values", f"a largest N below n_train_pool {rm.n_train_pool}, so each "
                 "reward-model seed draws its own pairs", list(rm.n_values))


# --- Stages: run(stage_dir) -> info, for run_stage ----------------------------------------------------


def sft_stage(config, episodes, dt, log: Callable[[str], None] = cli.log):
    """pi_SFT trained in the stage dir; info: its checkpoint, success rate and the control period dt."""
    def run(stage_dir):
        _, _, summary = sft.run_sft(config.sft, stage_dir, episodes, dt, log)
        return {"checkpoint": os.path.join(stage_dir, "checkpoints", "sft"),
                "success_rate": summary["eval"]["mean"]["success_rate"], "dt": float(dt)}
    return run


def behaviours(config) -> list:
    """pi_SFT's stage-2 behaviours: every noise level, then the first level with each speed factor
    and each goal shift (``rlhf_jax.data.policy_rollouts.Behaviour``)."""
    r = config.rollouts
    base = float(r.noise_levels[0])
    return ([Behaviour(float(x)) for x in r.noise_levels] + [Behaviour(base, speed=float(v)) for v in r.get("speed_factors", ())]
            + [Behaviour(base, goal_shift=float(g)) for g in r.get("goal_shifts", ())])


def rollout_stage(config, sft_ckpt: str, dt: float, extra: Callable[[], list] | None = None):
    """pi_SFT's rollouts of every behaviour as an RLDS dataset, with ``extra()``'s episodes (the
    iterated round's) added; info: its path, counts, policies."""
    def run(stage_dir):
        r = config.rollouts
        return write_policy_rollouts(sft_ckpt, stage_dir, config.arms, config.tasks, behaviours(config),
                                     r.episodes_per_combo, r.seed, dt, extra_episodes=extra() if extra else ())
    return run


def round_rollout_stage(config, sft_ckpt: str, headline: dict, rm_seed: int, dt: float):
    """The iterated round's data for one reward-model seed: pi_SFT's rollouts plus those of the
    headline policies trained on that seed's reward model (``headline``: program name -> points
    stage info, ``ppo_programs``), under the secondary PPO seeds; each task's episodes come from
    the policy of the program that trained on it."""
    def extra():
        eps = []
        for name, arm, tasks in ppo_programs(config):
            info = headline[name]
            idx = [i for i, p in enumerate(info["points"]) if p["reward"] != "gold"
                   and p["rm_seed"] == rm_seed and p["seed"] in config.secondary_ppo_seeds]
            eps += fine_tuned_episodes(info["checkpoint"], idx, arm, config.tasks, config.iterate.noise,
                                       int(config.iterate.episodes_per_policy), config.rollouts.seed, dt,
                                       name=f"ppo_round1_rm{rm_seed}", keep_tasks=tasks)
        return eps
    return rollout_stage(config, sft_ckpt, dt, extra)


def ppo_points_stage(config, arm: str, point_set: str, sft_ckpt: str, rm_paths: dict,
                     log: Callable[[str], None] = cli.log, tasks: tuple | None = None):
    """One PPO program's points of ``point_set`` on ``arm`` and ``tasks`` (default: every task; see
    ``ppo_programs``) in one vmapped program (``stages.ppo_points``); info: the stacked policies'
    checkpoint and a row per point (reward, rm_seed, seed, final metrics). The "objectives" set's
    rewards are directories of combined heads (``objective_heads_stage``)."""
    pts = points(config, point_set, rm_paths)
    seed_of = {path: r for r, path in rm_paths.items()}
    agg = config.eval.aggregation
    load = (lambda path: load_objective_heads(path, aggregation=agg)) if point_set == "objectives" else None
    tasks = tuple(config.tasks) if tasks is None else tuple(tasks)
    # A program of one task among several keys its runs by PPO seed and task (ppo_points.point_keys),
    # not by which other tasks the pipeline has; the one program of every task keeps the PPO seed's key.
    run_points = points_stage(points_config(config, arm, point_set, sft_ckpt, tasks), pts, agg, int(config.seed),
                              log=log, load_reward=load, task=tasks[0] if tasks != tuple(config.tasks) else None)

    def run(stage_dir):
        info = run_points(stage_dir)
        for row in info["points"]:
            row["rm_seed"] = seed_of.get(row["reward"])   # None: PPO on gold
        return info
    return run


def reward_stage(config, rollouts_path: str, config_file: str, adjust=None, rm_seed: int | None = None,
                 log: Callable[[str], None] = cli.log):
    """The sweep on pi_SFT's rollouts (one reward-model seed's with ``rm_seed``); ``adjust(sweep_config)``
    may change what it saves. Its errors name ``config_file``. info: the last saved reward model
    (checkpoint) and every saved one."""
    def run(stage_dir):
        rm = sweep_config(config, rollouts_path, rm_seed)
        rm = adjust(rm) if adjust else rm
        sweep.run_sweep(rm, stage_dir, log=log, config_file=config_file)
        with open(os.path.join(stage_dir, "run_info.json"), encoding="utf-8") as f:
            saved = json.load(f)["reward_models"]
        return {"checkpoint": os.path.join(stage_dir, saved[-1]), "saved": saved}
    return run


def objective_heads_stage(config, rollouts_path: str, scalar_rm: str, config_file: str, rm_seed: int,
                          log: Callable[[str], None] = cli.log):
    """One head per objective on the pairs of reward-model seed ``rm_seed`` (``objectives_sweep_config``),
    weighted by w_o = s_o / s (``objectives.scale_weights``: the annotator's return scales on the
    pool's segments) and written as combined heads (``objective_heads.json`` in the stage dir).
    The heads' training pairs must be the scalar reward model's (``scalar_rm``): same pairs hash.
    info: the heads' directory (checkpoint), each head, its weight, the pairs hash."""
    def run(stage_dir):
        rm = objectives_sweep_config(config, rollouts_path, rm_seed)
        sweep.run_sweep(rm, stage_dir, log=log, config_file=config_file)
        n, seed = max(rm.n_values), rm.seeds[0]
        heads = {o: os.path.join(stage_dir, reward_model_relpath(objective_condition(config.annotator, o), n, seed))
                 for o in OBJECTIVE_NAMES}
        scalar_hash = load_reward_model(scalar_rm).meta.get("pairs_hash")
        if scalar_hash is None:
            raise ValueError(f"scalar reward model {scalar_rm}: saved before training pairs were recorded "
                             "(no pairs_hash); rerun its stage in a fresh workdir to compare the objective heads with it")
        hashes = {o: load_reward_model(path).meta.get("pairs_hash") for o, path in heads.items()}
        if set(hashes.values()) != {scalar_hash}:
            raise ValueError(f"objective heads of reward-model seed {rm_seed}: trained on other pairs than the "
                             f"scalar reward model {scalar_rm} (pairs hashes {hashes} vs {scalar_hash!r})")
        pool = sweep.load_pool(rm, config_file, None)
        weights = scale_weights(annotators.resolve_teachers(config.annotator), pool.segments)
        write_objective_heads(stage_dir, {o: (heads[o], weights[o]) for o in OBJECTIVE_NAMES},
                              {"weights_rule": "s_o / s: the annotator's return scale on objective o's sub-question "
                               "over its scale on the main question (mean |R| over the pool's segments)",
                               "pairs_hash": scalar_hash, "scalar_reward_model": scalar_rm, "n": n, "seed": seed})
        log(f"objective heads of reward-model seed {rm_seed}: weights "
            + ", ".join(f"{o} {w:.3f}" for o, w in weights.items()))
        return {"checkpoint": stage_dir, "heads": heads, "weights": weights, "pairs_hash": scalar_hash}
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
