"""PPO on the gold reward from π_SFT, over a grid of learning rate × β × log-σ floor × seed: the
bound a learned reward is measured against, tuned on gold only (never on a learned reward).

  python -m experiments.ppo_tuning --config configs/ppo_tuning.py:quick --workdir runs/ppo_tuning_quick

π_SFT and the PPO settings are the RLHF pipeline's (configs/rlhf_pipeline.py, under ``pipeline``).
For each log-σ floor (a module setting: one compile each), every (learning rate, β, seed) runs in
one vmapped program; every policy is then evaluated deterministically on the pipeline's
evaluation states, beside π_SFT and the scripted expert. A floor equal to the policy's
``log_std_min`` (−5) is no floor at all. Variants: quick (Panda on reach_avoid, the task with
headroom; the settings the grid was run with), budget (the chosen learning rate and β on the
current quick pipeline, with larger β beside it, 5 seeds, evaluated every 100 updates up to 600:
the budget choice), budget_default (the same curve on the default pipeline's π_SFT, for one arm
on reach_avoid: the default pipeline's budget choice; run it once per arm, the second with
``--config.arm=ur5 --config.sft_checkpoint=<the first run>/sft/checkpoints/sft`` so both share one
π_SFT) and tiny (tests).

sft_checkpoint: a π_SFT checkpoint of the same pipeline config to start from instead of training
one (an earlier run's ``sft/checkpoints/sft``); empty: train it in the run.
"""
import ml_collections

from configs import rlhf_pipeline
from rlhf_jax.config_schema import Field, choice, choices, integer, integers, prefixed, real, reals

VARIANTS = ("quick", "budget", "budget_default", "tiny")


def get_config(arg: str = "quick") -> ml_collections.ConfigDict:
    if arg not in VARIANTS:
        raise ValueError(f"configs/ppo_tuning.py: field 'variant': expected one of {VARIANTS}, got {arg!r}")
    tiny = arg == "tiny"
    c = ml_collections.ConfigDict()
    c.variant = arg
    c.eval_every = 0   # evaluate every run after this many updates too (0: at the end only)
    c.sft_checkpoint = ""
    if arg in ("budget", "budget_default"):   # the grid's choice on the current quick pipeline, evaluated along the way
        c.pipeline = rlhf_pipeline.get_config("quick" if arg == "budget" else "default")
        c.arm, c.tasks = "panda", ("reach_avoid",)
        c.num_updates, c.eval_every = 600, 100
        # One task: the default pipeline's per-task shape (64 environments, minibatches of 800
        # steps), so an update here is what an update of one task is there.
        c.pipeline.ppo.ppo.num_envs, c.pipeline.ppo.ppo.num_minibatches = 64, 4
        # β beyond the grid's choice too: gold cannot be over-optimised, so the largest β that still
        # keeps the bound is the most protection a learned reward can get from gold-only tuning.
        # The grid's choice (β 0.01) and two larger β; the pipeline takes its β from this curve.
        c.learning_rates, c.betas = (c.pipeline.ppo.ppo.learning_rate,), (0.01, 0.05, 0.2)
        c.log_std_floors, c.seeds = (c.pipeline.sft.model.log_std_min,), (0, 1, 2, 3, 4)
        c.target_fraction = 0.7
        return c
    c.pipeline = rlhf_pipeline.single_seed_settings(rlhf_pipeline.get_config("quick"))
    c.arm, c.tasks = "panda", ("reach_avoid",)
    c.num_updates = 4 if tiny else 120
    c.learning_rates = (2e-5, 1e-4) if tiny else (2e-5, 1e-4, 3e-4)
    c.betas = (0.05,) if tiny else (0.0, 0.01, 0.05)
    c.log_std_floors = (-5.0, -2.0) if tiny else (-5.0, -2.5, -1.5)
    c.seeds = (0, 1) if tiny else (0, 1, 2)
    c.target_fraction = 0.7   # the bound is usable when PPO-gold recovers this share of the SFT → expert gap
    if tiny:
        p = c.pipeline
        p.sft.dataset.variant, p.sft.train.steps, p.sft.model.hidden = "tiny", 20, (16,)
        p.sft.dagger.rounds, p.sft.eval.n_episodes = 0, 1
        p.sft.eval.embodiments, p.sft.eval.tasks = ("panda",), ("reach_avoid",)
        p.ppo.ppo.num_envs, p.ppo.ppo.num_steps, p.ppo.ppo.num_minibatches = 4, 10, 2
        p.ppo.ppo.update_epochs, p.ppo.ppo.value_warmup_updates, p.ppo.ppo.value_hidden = 1, 1, (16,)
        p.eval.n_episodes = 3
    return c


# --- Field descriptions (rlhf_jax.config_schema): checked before the job writes or compiles ------
# The pipeline's table under "pipeline."; relations (tasks among pipeline.tasks, floors within the
# policy's log-sigma clip, eval_every dividing num_updates, distinct seeds) stay in
# experiments.ppo_tuning.validate.
FIELDS = (
    choice("variant", "the variant this config was built from", VARIANTS),
    integer("eval_every", "updates between evaluations (0 = at the end only)", lo=0, optional=True),
    Field("sft_checkpoint", "string", "a pi_SFT checkpoint directory ('' = train pi_SFT here)", optional=True),
    *prefixed("pipeline.", rlhf_pipeline.FIELDS),
    choice("arm", "the arm PPO runs on", rlhf_pipeline.ALL_ARMS),
    choices("tasks", "tasks of the grid (among pipeline.tasks)", rlhf_pipeline.ALL_TASKS, nonempty=True),
    integer("num_updates", "PPO updates per run"),
    reals("learning_rates", "PPO learning rates of the grid", 0.0, open_lo=True, nonempty=True),
    reals("betas", "KL betas of the grid", 0.0, nonempty=True),
    reals("log_std_floors", "log-sigma floors of the grid", nonempty=True),
    integers("seeds", "seeds per grid point (at least two)", lo=0, nonempty=True),
    real("target_fraction", "share of the SFT -> expert gap PPO-gold must recover", 0.0, 1.0, open_lo=True),
)
UNCHECKED = {f"pipeline.{path}": reason for path, reason in rlhf_pipeline.UNCHECKED.items()}
