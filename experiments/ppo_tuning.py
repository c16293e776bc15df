"""PPO on the gold reward from π_SFT over a grid of learning rate × β × log-σ floor × seed: the
bound a learned reward is judged against, with its settings chosen on gold only.

  python -m experiments.ppo_tuning --config configs/ppo_tuning.py:quick --workdir runs/ppo_tuning_quick

Reads top to bottom: checks → π_SFT (the pipeline's SFT stage) → per log-σ floor, one resumable
stage: every (learning rate, β, seed) as one vmapped PPO program on the gold reward, then each
policy evaluated deterministically on the pipeline's evaluation states (after every ``eval_every`` updates: the budget curve) → beside π_SFT and the
scripted expert on the same states: the fraction of the SFT → expert gold gap each run recovers
→ grid.csv, summary.json (per setting, a t-interval over seeds; the choice), ppo_tuning.png.
"""
from __future__ import annotations

import os
import sys
import time

import jax
import jax.numpy as jnp

from configs import ppo_tuning as ppo_tuning_config
from experiments import cli
from experiments import ppo_tuning_report as report
from experiments.stages import rlhf
from experiments.stages.ppo import load_reference
from experiments.stages.runner import open_run, run_stage
from rlhf_jax import config_schema
from rlhf_jax.envs import simulator as S
from rlhf_jax.evaluation.rollout_eval import arm_key, episodes
from rlhf_jax.models.reward_inference import gold_reward_fn
from rlhf_jax.train import ppo


def validate(config, config_file: str) -> None:
    """The pipeline block's fields (π_SFT and PPO settings) and the grid's, before anything is written:
    each field's domain (``configs/ppo_tuning.py`` FIELDS), the pipeline's own relations, then the
    grid's (tasks among the pipeline's, distinct values, floors within the policy's log-σ clip,
    eval_every dividing num_updates) and the checkpoint sft_checkpoint names."""
    config_schema.validate(config, config_file, ppo_tuning_config.FIELDS)
    rlhf.prefixed("pipeline.", rlhf.validate, config.pipeline, config_file)
    if any(t not in config.pipeline.tasks for t in config.tasks):
        cli.fail(config_file, "tasks", f"a non-empty subset of pipeline.tasks {list(config.pipeline.tasks)} (the "
                 "evaluation states are the pipeline's)", list(config.tasks))
    for field in ("learning_rates", "betas", "log_std_floors"):
        if len(set(config[field])) != len(config[field]):
            cli.fail(config_file, field, "distinct values (one grid point each)", list(config[field]))
    model = config.pipeline.sft.model
    if not model.log_std_min <= min(config.log_std_floors) <= max(config.log_std_floors) < model.log_std_max:
        cli.fail(config_file, "log_std_floors", f"floors in [{model.log_std_min}, {model.log_std_max}) (the policy's "
                 "log-σ clip)", list(config.log_std_floors))
    if len(config.seeds) < 2 or len(set(config.seeds)) != len(config.seeds):
        cli.fail(config_file, "seeds", "at least two distinct seeds (the interval is over seeds)", list(config.seeds))
    every = config.get("eval_every", 0)
    if every and config.num_updates % every:
        cli.fail(config_file, "eval_every", f"0 (at the end only) or a divisor of num_updates {config.num_updates}", every)
    ckpt = config.get("sft_checkpoint", "")
    if ckpt and not os.path.isdir(ckpt):
        cli.fail(config_file, "sft_checkpoint", "an existing π_SFT checkpoint directory (a run's sft/checkpoints/sft) "
                 "or empty", ckpt)


def gold_ppo_config(config, sft_ckpt: str, floor: float):
    """The pipeline's PPO-on-gold settings on this arm and tasks, for the grid's budget and floor."""
    c = rlhf.ppo_config(config.pipeline, config.arm, "ppo_gold", sft_ckpt, "")
    c.env.tasks = tuple(config.tasks)
    c.ppo.num_updates = c.kl.total_updates = int(config.num_updates)
    c.ppo.log_std_floor = float(floor)
    return c


def grid_points(config) -> list[tuple[float, float, int]]:
    """(learning rate, β, seed) of every run of one floor: the vmapped axis."""
    return [(float(lr), float(b), int(s)) for lr in config.learning_rates for b in config.betas for s in config.seeds]


def mean_gold(config, dt: float, model=None, variables=None) -> float:
    """Mean gold return on ``config.tasks`` of deterministic episodes on the pipeline's evaluation
    states (model None: the scripted expert). The episodes are drawn for every pipeline task, as
    the pipeline draws them, so each task's initial states are the pipeline's own."""
    tasks = tuple(config.pipeline.tasks)
    ep = episodes(config.arm, tasks, arm_key(config.pipeline.eval.seed, config.arm),
                  int(config.pipeline.eval.n_episodes), model=model, variables=variables, dt=dt)
    gold = ep["components"].sum(2) @ S.rubric_vector()  # [pipeline tasks, E]
    return float(gold[[tasks.index(t) for t in config.tasks]].mean())


def floor_stage(config, sft_ckpt: str, floor: float, dt: float):
    """run(stage_dir) -> {"rows"}: every (lr, β, seed) of one floor trained in one program and
    evaluated after every ``eval_every`` updates (0: once, at the end)."""
    def run(stage_dir):
        c = gold_ppo_config(config, sft_ckpt, floor)
        ref_vars, model, _ = load_reference(c)
        init, step = ppo.make_ppo(c, gold_reward_fn(c.get("rubric")), ref_vars, model)
        points = grid_points(config)
        hp = {"lr": jnp.asarray([p[0] for p in points], jnp.float32),
              "beta": jnp.asarray([p[1] for p in points], jnp.float32),
              "clip_eps": jnp.full((len(points),), c.ppo.clip_eps, jnp.float32)}
        keys = jnp.stack([jax.random.key(config.pipeline.seed + 1000 * s) for _, _, s in points])
        every = int(config.eval_every) or int(config.num_updates)
        chunk = jax.jit(jax.vmap(lambda st: jax.lax.scan(lambda x, _: step(x), st, None, length=every)))
        state, rows = jax.jit(jax.vmap(init))(keys, hp), []
        for updates in range(every, int(config.num_updates) + 1, every):
            state, metrics = jax.device_get(chunk(state))
            variables = ppo.policy_variables(state)
            for i, (lr, beta, seed) in enumerate(points):
                gold = mean_gold(config, dt, model, jax.tree.map(lambda x: x[i], variables))
                rows.append({"log_std_floor": float(floor), "learning_rate": lr, "beta": beta, "seed": seed,
                             "updates": updates, "gold_return": gold, "kl_final": float(metrics["kl"][i, -1]),
                             "train_gold_final": float(metrics["gold_return"][i, -1])})
            cli.log(f"floor {floor:g}: {updates} updates evaluated")
        return {"rows": rows}
    return run


def run(config, workdir: str, resume: bool = False, config_file: str = "configs/ppo_tuning.py") -> dict:
    """The grid, its evaluation and outputs; returns summary.json's dict."""
    t0 = time.time()
    validate(config, config_file)
    pc = config.pipeline
    eps, dt = open_run(config, workdir, resume, pc.sft.dataset)
    sft_ckpt = config.get("sft_checkpoint") or run_stage(workdir, "sft", rlhf.sft_stage(pc, eps, dt))["checkpoint"]
    rows = []
    for i, floor in enumerate(config.log_std_floors):
        rows += run_stage(workdir, f"floor_{i}", floor_stage(config, sft_ckpt, floor, dt))["rows"]
    ref_vars, model, _ = load_reference(gold_ppo_config(config, sft_ckpt, config.log_std_floors[0]))
    sft_gold, expert_gold = mean_gold(config, dt, model, ref_vars), mean_gold(config, dt)
    summary = report.write_outputs(workdir, rows, sft_gold, expert_gold, config, wall_s=time.time() - t0)
    best = summary["choice"]
    cli.log(f"π_SFT gold {sft_gold:.2f}, expert {expert_gold:.2f}; best setting {best['setting']}: "
            f"fraction of the gap {best['fraction']['mean']:.2f} {best['fraction']['ci95']} ({summary['verdict']})")
    return summary


main = cli.job_main(run)

if __name__ == "__main__":
    sys.exit(main(sys.argv))
