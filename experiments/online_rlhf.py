"""Online vs offline RLHF at equal label budget, from the same π_SFT and the same annotator, read
on the RLHF pipeline's footing (its PPO settings, evaluation, incident definition and PPO-on-gold
reference).

  python -m experiments.online_rlhf --config configs/online_rlhf.py:quick --workdir runs/online_quick

Reads top to bottom: checks → π_SFT (trained in the run as the pipeline's sft stage, or
ref_checkpoint) → per mode (offline, online, gold): one program vmapped over seeds
(``rlhf_jax.train.online_ppo``), run in chunks of log_every updates, each chunk checkpointed →
every run's final policy and π_SFT rolled out deterministically on the pipeline's evaluation
states (``experiments.stages.point_eval``: same seed, episodes and evaluation functions as
``rlhf_pipeline``), scored by the gold rubric, by the run's final reward ensemble (the proxy) and
by the KL to π_SFT → incidents (``rlhf_jax.evaluation.incidents``, the pipeline's definition) →
online.csv (training curves), online.json, online_rlhf.png, claims.md, run_info.json. Killed, the
same command with ``--resume`` continues from the last chunk checkpoint and ends with the same
numbers.
"""
from __future__ import annotations

import os
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from configs import online_rlhf as online_config
from experiments import cli
from experiments import online_report as report
from experiments.stages import point_eval, sft
from experiments.stages.ppo import load_reference
from experiments.stages.runner import run_stage
from rlhf_jax import config_schema
from rlhf_jax.checkpoint import Checkpointer, prepare_run_dir
from rlhf_jax.preferences.annotators import resolve_teachers
from rlhf_jax.train import ppo
from rlhf_jax.train.chunks import run_chunks
from rlhf_jax.train.online_ppo import GOLD, MODES, make_program, random_reference

WHERE = "configs/online_rlhf.py"


def _check_ppo(config, config_file: str) -> None:
    """The PPO relations (``ppo.validate_ppo_config``; its reward block stands in as the gold kind:
    the online ensemble's relations are checked here)."""
    c = config.copy_and_resolve_references()
    with c.unlocked():
        del c.reward
        c.reward = {"kind": "gold"}
    ppo.validate_ppo_config(c, config_file)


def _check_online(config, config_file: str) -> None:
    """The relations between the online fields and PPO's (each field's own domain is its record in
    ``configs/online_rlhf.py`` FIELDS)."""
    o, p, rc = config.online, config.ppo, config.reward
    if round(o.initial_fraction * o.budget) < 1:
        cli.fail(config_file, "online.initial_fraction", "a number in (0, 1] giving at least one initial label",
                 o.initial_fraction)
    if o.rm_every % p.num_steps:
        cli.fail(config_file, "online.rm_every", f"a multiple of ppo.num_steps = {p.num_steps} (environment steps "
                 "per environment)", o.rm_every)
    if p.num_steps != config.env.horizon:
        cli.fail(config_file, "ppo.num_steps", f"env.horizon = {config.env.horizon} (a rollout is one episode per "
                 "environment: segments, evaluation episodes)", p.num_steps)
    if p.num_envs % len(config.env.tasks):
        cli.fail(config_file, "ppo.num_envs", f"a multiple of the {len(config.env.tasks)} tasks (pairs share a task)",
                 p.num_envs)
    if p.num_updates % config.log_every:
        cli.fail(config_file, "log_every", f"a divisor of ppo.num_updates = {p.num_updates}", config.log_every)
    if rc.segment_length > p.num_steps:
        cli.fail(config_file, "reward.segment_length", f"in [1, ppo.num_steps = {p.num_steps}]", rc.segment_length)


def validate(config, config_file: str = WHERE) -> None:
    """Every field, before anything is loaded or written; raises the one-line ConfigError."""
    config_schema.validate(config, config_file, online_config.FIELDS)
    _check_ppo(config, config_file)
    _check_online(config, config_file)
    if len(set(config.seeds)) != len(config.seeds):
        cli.fail(config_file, "seeds", "distinct integers >= 0", list(config.seeds))
    if len(set(config.modes)) != len(config.modes):
        cli.fail(config_file, "modes", f"a non-empty subset of {MODES + (GOLD,)}", list(config.modes))
    teachers = resolve_teachers(config.annotator)
    plain = len(teachers) == 1 and teachers[0].skip_threshold is None and teachers[0].equal_threshold == 0 \
        and teachers[0].left_bias == 0 and teachers[0].skip_rate == 0
    if not plain:
        cli.fail(config_file, "annotator", "a preset of one teacher without skip/equal thresholds (e.g. 'oracle', "
                 "'stochastic', 'mistake', 'myopic')", config.annotator)
    if config.reference == "sft" and not config.ref_checkpoint:
        sft.validate(config.sft, config_file, prefix="sft.")
    elif config.reference == "sft":
        cli.check_artifact(config_file, "ref_checkpoint", config.ref_checkpoint, "policy")


# --- π_SFT ----------------------------------------------------------------------------------------


def load_sft(config, workdir: str):
    """(π_SFT variables, policy module): ref_checkpoint, or the pipeline's sft stage run in
    workdir/sft (reused on --resume once finished), read as the pipeline's PPO reads π_ref
    (``ppo.log_std_floor`` applied); a fixed random policy for reference 'random'."""
    if config.reference == "random":
        return random_reference(config)
    ckpt = config.ref_checkpoint
    if not ckpt:
        def run(stage_dir):
            episodes, dt, _ = sft.load_episodes(config.sft.dataset)
            sft.run_sft(config.sft, stage_dir, episodes, dt)
            return {"checkpoint": os.path.join("sft", "checkpoints", "sft")}

        ckpt = os.path.join(workdir, run_stage(workdir, "sft", run)["checkpoint"])
    c = config.copy_and_resolve_references()
    c.ref_checkpoint = ckpt
    variables, policy, _ = load_reference(c)
    return variables, policy


# --- Training: one mode, all runs, chunked and checkpointed ---------------------------------------


def run_hparams(config):
    """(keys [R], hparams {beta, clip_eps, lr: [R]}) of the seeds (the vmapped axis); every mode
    derives its PPO key from the same seed key (``online_ppo.run_keys``)."""
    keys = jnp.stack([jax.random.key(int(s)) for s in config.seeds])
    hp = ppo.default_hparams(config)
    return keys, jax.tree.map(lambda x: jnp.broadcast_to(x, (len(config.seeds),)), hp)


ROW_KEYS = ("gold_return", "proxy_return", "kl", "labels_spent", "labels_collected", "labels_arrived", "refit",
            "window", "labels_evicted", "rm/accuracy")


def train_mode(program, config, ckpt_dir: str | None, resume: bool = False, log=cli.log, max_chunks=None):
    """Trains every run of one mode. Returns (final state [R], rows: one dict per run and update,
    the training rollouts' metrics: stochastic actions, the curves, not the evaluation).

    ckpt_dir: a chunk checkpoint (state + rows so far) after every chunk; with resume, training
    continues from its last readable one. max_chunks stops early (as a killed run would).
    """
    keys, hp = run_hparams(config)
    state = program.init(keys, hp)
    rows, start = [], 0
    ckpt = Checkpointer(ckpt_dir) if ckpt_dir else None
    restored = ckpt.restore(state) if (ckpt and resume) else None
    if restored is not None:
        _, state, meta = restored
        rows, start = list(meta["rows"]), int(meta["chunk"])
        log(f"{program.schedule.mode}: resumed at chunk {start}")
    n, per_update = program.chunk_len, int(config.ppo.num_steps) * int(config.ppo.num_envs)
    counter = {"chunk": start}

    def chunk_fn(s):
        s, m = program.chunk(s, jnp.int32(counter["chunk"] * n))
        counter["chunk"] += 1
        return s, dict(m, loss=m["ppo/loss"].T)

    def record(c, m):
        for r, seed in enumerate(config.seeds):
            for i in range(n):
                u = c * n + i + 1
                rows.append({"mode": program.schedule.mode, "seed": int(seed), "update": u,
                             "env_steps": u * per_update,
                             **{k.replace("/", "_"): float(m[k][r, i]) for k in ROW_KEYS}})

    def progress(c, m):
        g, k = np.asarray(m["gold_return"])[:, -1].mean(), np.asarray(m["kl"])[:, -1].mean()
        return f"gold {g:.3f} kl {k:.3f} labels {int(np.asarray(m['labels_spent'])[:, -1].max())}"

    total = int(config.ppo.num_updates) // n
    n_chunks = total if max_chunks is None else min(total, start + max_chunks)
    state = run_chunks(chunk_fn, state, n_chunks=n_chunks, steps_per_chunk=n, start_chunk=start,
                       checkpointer=ckpt, on_chunk=record, progress=progress,
                       checkpoint_meta=lambda c: {"chunk": c, "rows": rows},
                       log=log, name=program.schedule.mode, describe_point=lambda _: "")
    if ckpt:
        ckpt.close()
    return state, rows


# --- Evaluation: the pipeline's ---------------------------------------------------------------------


def evaluation_config(config) -> ml_collections.ConfigDict:
    """The fields ``point_eval.policy_episodes`` reads, in the pipeline config's layout: the tasks
    and the evaluation seed and episode count (configs/rlhf_pipeline.py's by default)."""
    e = config.eval
    return ml_collections.ConfigDict({"tasks": tuple(config.env.tasks),
                                      "eval": {"seed": int(e.seed), "n_episodes": int(e.n_episodes)}})


def policy_episodes(config, policy, variables, sft_policy, reward=None) -> dict:
    """{"arm/task": {components, proxy, kl}} of one policy, deterministic actions, on the
    pipeline's evaluation states of the run's arm; proxy under ``reward`` (a RewardModel; zeros
    without), KL to π_SFT ``sft_policy`` = (module, variables)."""
    return point_eval.policy_episodes(evaluation_config(config), config.env.robot, float(config.env.dt), reward,
                                      sft_policy, policy, variables)


PROXY_KEYS = ("proxy_return", "incident_rate", "rm_accuracy_on_own_episodes")


def unscored(row: dict) -> dict:
    """A row without the fields that need a learned reward (π_SFT alone, PPO on gold)."""
    return {k: v for k, v in row.items() if k not in PROXY_KEYS}


def proxy_gold_gap(raw: dict, sft_raw: dict) -> float:
    """z_proxy − z_gold over all episodes, z = (policy's mean − π_SFT's mean) / π_SFT's std
    (> 0: the reward model sees more improvement than the gold rubric does)."""
    def z(values, ref):
        return (np.mean(values) - np.mean(ref)) / max(float(np.std(ref)), 1e-8)

    cat = lambda r, f: np.concatenate([f(e) for e in r.values()])
    gold = lambda e: point_eval.gold_returns(e["components"])
    return float(z(cat(raw, lambda e: e["proxy"]), cat(sft_raw, lambda e: e["proxy"]))
                 - z(cat(raw, gold), cat(sft_raw, gold)))


def evaluate_mode(program, config, state, sft_policy) -> list[dict]:
    """Per run: {seed, labels, env_steps, row}: ``point_eval.policy_row`` of its final policy
    against π_SFT on the same states. A learned run's proxy is its own final ensemble, which also
    scores π_SFT's episodes (the incidents' reference medians); ``sft_incident_rate`` counts π_SFT
    against itself under that ensemble, the definition's floor."""
    labels, steps, runs = program.labels(state), program.env_steps(state), []
    for r, seed in enumerate(config.seeds):
        rm = program.reward_model(state, r)
        sft_raw = policy_episodes(config, *sft_policy, sft_policy, rm)
        raw = policy_episodes(config, program.policy, program.policy_variables(state, r), sft_policy, rm)
        row = point_eval.policy_row(raw, sft_raw)
        if rm is None:
            row = unscored(row)
        else:
            row.update(sft_incident_rate=point_eval.policy_row(sft_raw, sft_raw)["incident_rate"],
                       proxy_gold_gap=proxy_gold_gap(raw, sft_raw))
        runs.append({"seed": int(seed), "labels": int(labels[r]), "env_steps": int(steps[r]), "row": row})
    return runs


def evaluate_sft(config, sft_policy) -> dict:
    """π_SFT's row on the evaluation states (no proxy; KL 0)."""
    raw = policy_episodes(config, *sft_policy, sft_policy)
    return unscored(point_eval.policy_row(raw, raw))


# --- The experiment -------------------------------------------------------------------------------


def run(config, workdir: str, resume: bool = False, config_file: str = WHERE, log=cli.log) -> dict:
    t0 = time.time()
    validate(config, config_file)
    if cli.check_workdir(workdir, resume, config) == "fresh":
        log(f"--resume: no earlier run in {workdir}; starting fresh")
    prepare_run_dir(workdir, config.to_json(indent=2, sort_keys=True), resume, error=cli.ConfigError)
    ref_vars, policy_model = load_sft(config, workdir)
    sft_policy = (policy_model, ref_vars)
    rows, evaluation, schedules = [], {"sft": evaluate_sft(config, sft_policy), "modes": {}}, {}
    for mode in config.modes:
        t_mode = time.time()
        program = make_program(config, mode, ref_vars, policy_model)
        schedules[mode] = program.schedule._asdict()
        state, mode_rows = train_mode(program, config, os.path.join(workdir, "checkpoints", mode), resume, log)
        rows += mode_rows
        evaluation["modes"][mode] = evaluate_mode(program, config, state, sft_policy)
        log(f"{mode}: {len(config.seeds)} runs trained and evaluated in {time.time() - t_mode:.0f} s")
    summary = report.write_outputs(config, workdir, rows, evaluation, schedules, wall_s=time.time() - t0)
    log(f"done in {time.time() - t0:.0f} s: {report.headline(summary)}")
    return summary


main = cli.job_main(run)

if __name__ == "__main__":
    sys.exit(main(sys.argv))
