"""Downstream scaling: policy quality vs the number of preference pairs N behind its reward model.

  python -m experiments.downstream_scaling --config configs/downstream_scaling.py:quick --workdir runs/downstream

The SFT and rollout stages are the RLHF pipeline's (configs/rlhf_pipeline.py, under ``pipeline``).
Every reward-model seed runs its own sweep (its own pairs from the pool, labels and
initialisation) and saves an ensemble at every N; then every (N, reward-model seed, PPO seed) runs
PPO from π_SFT, beside PPO on gold under the same PPO seeds, all in one vmapped program.

Variants: quick (Panda on reach_avoid; N from 100 to 10,000 of a 20,000-pair pool, 3 reward-model
seeds × 3 PPO seeds; about 30 minutes on 2 CPU cores), gpu (the same arm and task with many more
N and seeds, sized for one large GPU) and tiny (tests).
"""
import ml_collections

from configs import rlhf_pipeline
from rlhf_jax.config_schema import choice, integer, integers, prefixed

VARIANTS = ("quick", "gpu", "tiny")


def get_config(arg: str = "quick") -> ml_collections.ConfigDict:
    if arg not in VARIANTS:
        raise ValueError(f"configs/downstream_scaling.py: field 'variant': expected one of {VARIANTS}, got {arg!r}")
    c = ml_collections.ConfigDict()
    c.variant = arg
    c.pipeline = rlhf_pipeline.get_config("quick")
    rm = c.pipeline.reward_model
    rm.n_train_pool, rm.n_val, rm.n_test = 20000, 500, 1000
    rm.n_values = (100, 300, 1000, 3000, 10000)          # two decades, the largest half the pool
    rm.seeds = (0, 1, 2)
    # The ensemble results/downstream_quick was made with: 3 members whose per-step rewards are
    # averaged (the pipeline has since moved to 5 members and their minimum).
    rm.members, c.pipeline.eval.aggregation = 3, "mean"
    c.arm = "panda"                 # PPO closes over one robot: one vmapped program per arm
    c.ppo_seeds = (0, 1, 2)         # under every (N, reward-model seed), and for PPO on gold
    c.n_bootstrap = 2000            # two-stage resamples for the intervals and the fit
    if arg == "gpu":
        rm.n_values = (100, 200, 400, 800, 1600, 3200, 6400, 12800)
        rm.n_train_pool, rm.seeds = 25600, (0, 1, 2, 3)
        # 8 N x 4 reward-model seeds x 6 PPO seeds + 6 on gold = 198 runs of 600 updates x 256
        # environments x 50 steps: 1.5e9 environment steps, about 80 s at the 18.9M steps/s one
        # H200 runs PPO at (benchmarks/results/h200/ppo_32768.json), before the reward model's cost.
        c.pipeline.ppo.ppo.num_envs, c.pipeline.ppo.ppo.num_minibatches = 256, 8
        c.ppo_seeds = (0, 1, 2, 3, 4, 5)
    if arg == "tiny":
        p = c.pipeline
        p.sft.dataset.variant, p.sft.train.steps, p.sft.model.hidden = "tiny", 20, (16,)
        p.sft.dagger.rounds, p.sft.eval.n_episodes = 0, 1
        p.sft.eval.embodiments, p.sft.eval.tasks = ("panda",), ("reach_avoid",)
        p.rollouts.episodes_per_combo = 8
        rm.dataset, rm.segment_length, rm.stride = "tiny", 10, 5
        rm.n_train_pool, rm.n_val, rm.n_test = 60, 20, 20
        rm.n_values = (10, 20, 30)
        rm.seeds, rm.total_steps, rm.chunk_steps, rm.eval_every = (0, 1), 20, 20, 10
        rm.model_sizes = ((16,),)
        p.ppo.ppo.num_envs, p.ppo.ppo.num_steps, p.ppo.ppo.num_minibatches = 4, 10, 2
        p.ppo.ppo.update_epochs, p.ppo.ppo.value_warmup_updates, p.ppo.ppo.value_hidden = 1, 1, (16,)
        p.ppo.ppo.num_updates = p.ppo.kl.total_updates = 2
        p.ppo.log_every = 1
        p.eval.n_episodes = 3
        c.ppo_seeds, c.n_bootstrap = (0, 1), 50
    return c


# --- Field descriptions (rlhf_jax.config_schema): checked before the job writes or compiles ------
# The pipeline's table under "pipeline."; relations (arm among pipeline.arms, at least three N,
# distinct seeds) stay in experiments.downstream_scaling.validate.
FIELDS = (
    choice("variant", "the variant this config was built from", VARIANTS),
    *prefixed("pipeline.", rlhf_pipeline.FIELDS),
    choice("arm", "the arm PPO runs on (one of pipeline.arms)", rlhf_pipeline.ALL_ARMS),
    integers("ppo_seeds", "PPO seeds under every (N, reward-model seed) and on gold", lo=0, nonempty=True),
    integer("n_bootstrap", "two-stage bootstrap resamples of the intervals and the fit", lo=10),
)
UNCHECKED = {f"pipeline.{path}": reason for path, reason in rlhf_pipeline.UNCHECKED.items()}
