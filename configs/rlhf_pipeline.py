"""The whole RLHF pipeline: SFT → π_SFT rollouts → annotator labels → reward-model ensemble →
PPO-RLHF (and DPO) from π_SFT → evaluation of every policy on the same episodes.

  python -m experiments.rlhf_pipeline --config configs/rlhf_pipeline.py:quick --workdir runs/pipeline

Variants: quick (Panda on reach_avoid, the task with headroom over π_SFT), default (Panda and
UR5 on reach and reach_avoid at the full budget, one PPO program per arm and task) and objectives (quick with ``compare_objectives``:
PPO on per-objective heads combined, trained on the scalar reward model's pairs, beside PPO on the
scalar reward model; without the iterated round, which that comparison does not read):

  python -m experiments.rlhf_pipeline --config configs/rlhf_pipeline.py:objectives --workdir runs/pipeline_objectives Each stage has its own sub-config, the one its
own experiment reads (sft: configs/sft.py, reward_model: configs/scaling_sweep.py, ppo:
configs/ppo.py, dpo: configs/dpo.py); the pipeline fills in the paths that connect them.

Seeds: every reward-model seed in ``reward_model.seeds`` draws its own pairs from the pool, its own
annotator labels and its own initialisation (the independent unit); every one of them drives
PPO under each of ``ppo_seeds``, and PPO on gold runs under the same PPO seeds (shared keys).
"""
import ml_collections

from configs import dpo as dpo_config
from configs import ppo as ppo_config
from configs import scaling_sweep as sweep_config
from configs import sft as sft_config
from rlhf_jax.config_schema import boolean, choice, choices, integer, integers, prefixed, real, reals, seed, string

ALL_ARMS = sft_config.EMBODIMENTS
ALL_TASKS = sft_config.TASKS
# Safety-constraint penalties per violated step (joint_limit, speed, workspace, obstacle): the gold
# rubric's own per-step weights of the matching components (joint_limit 0.5, speed_violation 1.0,
# collision 0.5 for leaving the workspace and for obstacle contact), so a rule costs what the
# rubric says the violation costs — no tuning against the evaluation.
SAFETY_WEIGHTS = (0.5, 1.0, 0.5, 0.5)


VARIANTS = ("quick", "default", "objectives")


def get_config(arg: str = "quick") -> ml_collections.ConfigDict:
    if arg not in VARIANTS:
        raise ValueError(f"configs/rlhf_pipeline.py: field 'variant': expected one of {VARIANTS}, got {arg!r}")
    if arg == "objectives":
        return objectives_comparison(get_config("quick"))
    quick = arg == "quick"
    c = ml_collections.ConfigDict()
    c.variant = arg
    c.seed = 0
    c.arms = ("panda",) if quick else ("panda", "ur5")
    c.tasks = ("reach_avoid",) if quick else ("reach", "reach_avoid")
    c.annotator = "stochastic"   # label source of the preference pairs (rlhf_jax.preferences.annotators presets)

    c.sft = sft_config.get_config(arg)
    # The stage-2 preference data: π_SFT at several exploration-noise levels (× qd_max), and at the
    # first level with its speed scaled and with the goal it sees shifted (m), so pairs differ in
    # time, speed, clearance and reaching — what the gold rubric rewards — not only in noise.
    c.rollouts = ml_collections.ConfigDict({
        "noise_levels": (0.05, 0.2, 0.5), "speed_factors": (0.5, 1.5), "goal_shifts": (0.1, 0.25),
        "episodes_per_combo": 64 if quick else 128, "seed": 11})

    rm = _reward_model_config(quick)
    c.reward_model = rm   # conditions, dataset_path and save_models are set by the pipeline

    # The default π_SFT has its own curve per arm (results/ppo_budget_default_{panda,ur5}), read
    # by the rule in _ppo_config: UR5's largest β at >= 70% is 0.05; on Panda no β reaches 70%, so its best
    # setting (β 0.01) goes on, as the rule says. Arms not named here use ppo.kl.beta.
    c.kl_beta_by_arm = ml_collections.ConfigDict({} if quick else {"panda": 0.01, "ur5": 0.05})
    c.ppo = _ppo_config(arg)   # env.robot/tasks and ref_checkpoint are set per arm
    # One PPO program per (arm, task), each at num_envs and num_minibatches divided by the number of
    # tasks, instead of one per arm over every task: on the default π_SFT, Panda's reach and
    # reach_avoid in one program of 128 environments diverged on gold too (results/
    # ppo_two_task_default_panda), while each alone at 64 trained stably (results/
    # ppo_budget_default_panda{,_reach}). A one-task pipeline runs the same program either way.
    c.ppo_program_per_task = not quick
    c.ppo_seeds = (0, 1, 2, 3, 4)   # the headline: under every reward-model seed, and for PPO on gold
    c.secondary_ppo_seeds = (0, 1)   # constraints on, and the iterated round (the first PPO seeds)
    # The iterated round: the fine-tuned policies' own rollouts join the pairs' pool, every
    # reward-model seed is refitted on its own round's rollouts, and PPO fine-tunes π_SFT again.
    c.iterate = ml_collections.ConfigDict({"rounds": 1, "episodes_per_policy": 16 if quick else 64,
                                           "noise": 0.05})

    dpo = dpo_config.get_config(arg)
    dpo.dpo.betas, dpo.dpo.loss_types = (0.1,), ("sigmoid",)
    dpo.preferences.segment_length, dpo.preferences.stride = rm.segment_length, rm.stride
    dpo.preferences.n_train, dpo.preferences.n_val, dpo.preferences.n_test = rm.n_train_pool, rm.n_val, rm.n_test
    c.dpo = dpo   # sft_workdir, dataset.path and preferences.teacher are set by the pipeline

    # ``aggregation`` combines the members' per-step rewards, for PPO and for the proxy return the
    # report reads. "min" (worst-case over members; Coste et al. 2023, "Reward model ensembles help
    # mitigate overoptimization") has no free parameter. It replaced "mean" after the committed
    # mean run (results/pipeline_quick_mean) had one reward model in three exploited, with 0.26
    # accuracy on its policies' own episodes, and was fixed before any run used it.
    c.eval = ml_collections.ConfigDict({"n_episodes": 64 if quick else 128, "seed": 1234,
                                        "aggregation": "min"})
    # Per reward-model seed, also train one head per objective of the rubric on the same pairs (the
    # annotator's sub-answers) and run PPO on their combination beside the scalar headline
    # (docs/rlhf_pipeline.md, "Scalar reward model vs combined objective heads").
    c.compare_objectives = False
    return c


def _reward_model_config(quick: bool) -> ml_collections.ConfigDict:
    """Stage 3: the reward-model sweep over N on the pairs from π_SFT's rollouts."""
    rm = sweep_config.get_config("quick")
    rm.segment_length, rm.stride = 25, 5
    # The largest N drives PPO; it is half the pool, so reward-model seeds draw different pairs.
    rm.n_train_pool, rm.n_val, rm.n_test = (4000, 300, 500) if quick else (16000, 1000, 2000)
    rm.n_values = (250, 500, 1000, 2000) if quick else (1000, 2000, 4000, 8000)
    # Five members, so that their disagreement on states off the pairs' support is worth reading.
    rm.seeds, rm.members = (0, 1, 2), 5
    rm.total_steps, rm.chunk_steps = (800, 400) if quick else (4000, 1000)
    rm.fit.n_bootstrap = 200
    return rm


def _ppo_config(arg: str) -> ml_collections.ConfigDict:
    """Stage 4: PPO fine-tuning of π_SFT on the learned reward (and on gold, the bound)."""
    quick = arg == "quick"
    ppo = ppo_config.get_config(arg)
    # The budget curve's 600 updates; default's two tasks have 128 environments, 64 each, as
    # quick's one task has: with ``ppo_program_per_task`` each task's program gets 64 and 4
    # minibatches, the shape its budget curve measured.
    ppo.ppo.num_envs = 64 if quick else 128
    ppo.ppo.num_minibatches = 4 if quick else 8   # minibatches of 800 steps, as tuned on quick
    ppo.ppo.num_updates = 600
    ppo.kl.total_updates = ppo.ppo.num_updates
    ppo.ppo.value_warmup_updates = 5
    # Chosen on the gold reward only (results/ppo_tuning_quick, docs/ppo.md): π_SFT's σ ≈ 0.03
    # makes larger rates diverge and log-σ floors hurt. β and the budget by a rule fixed before any
    # learned-reward run used them (results/ppo_budget_quick): the largest β of the budget curve
    # whose mean fraction of the SFT → expert gap on gold is at least 70% at 600 updates, since
    # gold cannot be over-optimised and the KL term is all a learned reward has against it.
    ppo.ppo.learning_rate = 2e-5
    ppo.kl.beta = 0.05
    ppo.safety.weights = SAFETY_WEIGHTS   # the constrained runs; the headline runs set them to 0
    ppo.log_every = 20 if quick else 40
    return ppo


def objectives_comparison(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The quick pipeline with the comparison of PPO on combined objective heads vs on the scalar
    reward model, without the iterated round (which the comparison does not read; about 4.5 minutes
    of the quick run on 2 CPU cores)."""
    c.variant, c.compare_objectives, c.iterate.rounds = "objectives", True, 0
    return c


def single_seed_settings(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The quick pipeline's settings before reward-model and PPO seeds (both arms and reach tasks,
    noise-only rollouts, a 2,000-pair pool, 40 PPO updates at β 0.05, 32 evaluation episodes, 3
    members averaged):
    what the committed results/ppo_tuning_quick was made with, kept so that its command
    reproduces it."""
    c.arms, c.tasks = ("panda", "ur5"), ("reach", "reach_avoid")
    c.rollouts.speed_factors, c.rollouts.goal_shifts, c.rollouts.episodes_per_combo = (), (), 48
    c.reward_model.n_train_pool = 2000
    c.ppo.ppo.num_updates = c.ppo.kl.total_updates = 40
    c.ppo.kl.beta, c.ppo.log_every = 0.05, 5
    c.eval.n_episodes = 32
    c.reward_model.members, c.eval.aggregation = 3, "mean"
    return c


# --- Field descriptions (rlhf_jax.config_schema): checked before the job writes or compiles ------
# Each stage's table once, under its block's name; relations (secondary seeds within ppo_seeds,
# the largest N below the pool, the label source that exists, the stages' own relations) stay in
# experiments.stages.rlhf.validate.
AGGREGATIONS = ("mean", "min", "mean_minus_std")   # rlhf_jax.ensemble.AGGREGATIONS without std
FIELDS = (
    choice("variant", "the variant this config was built from", VARIANTS),
    seed("seed"),
    choices("arms", "arms the pipeline runs on", ALL_ARMS, nonempty=True),
    choices("tasks", "tasks the pipeline runs on", ALL_TASKS, nonempty=True),
    string("annotator", "label source of the preference pairs (a teacher preset)"),
    *prefixed("sft.", sft_config.FIELDS),
    reals("rollouts.noise_levels", "pi_SFT's exploration-noise levels (x qd_max)", 0.0, 1.0, nonempty=True),
    reals("rollouts.speed_factors", "pi_SFT's speed scalings at the first noise level", 0.0, open_lo=True),
    reals("rollouts.goal_shifts", "shifts (m) of the goal pi_SFT sees, at the first noise level", 0.0),
    integer("rollouts.episodes_per_combo", "episodes per behaviour, arm and task"),
    seed("rollouts.seed"),
    *prefixed("reward_model.", sweep_config.FIELDS),
    *prefixed("ppo.", ppo_config.FIELDS),
    real("kl_beta_by_arm.*", "the arm's own KL beta (arms not named use ppo.kl.beta)", 0.0),
    boolean("ppo_program_per_task", "one PPO program per arm and task (the shape split over the tasks), "
            "not one per arm"),
    integers("ppo_seeds", "PPO seeds of the headline runs", lo=0, nonempty=True),
    integers("secondary_ppo_seeds", "PPO seeds of the constrained and iterated runs", lo=0, nonempty=True),
    integer("iterate.rounds", "iterated rounds (0 or 1)", lo=0, hi=1),
    integer("iterate.episodes_per_policy", "rollouts per fine-tuned policy joining the pool"),
    real("iterate.noise", "exploration noise of those rollouts (x qd_max)", 0.0, 1.0),
    *prefixed("dpo.", dpo_config.FIELDS),
    integer("eval.n_episodes", "evaluation episodes per arm and task"),
    seed("eval.seed"),
    choice("eval.aggregation", "how the members' per-step rewards combine", AGGREGATIONS),
    boolean("compare_objectives", "also PPO on per-objective heads of the same pairs, combined"),
)
UNCHECKED = {f"dpo.{path}": reason for path, reason in dpo_config.UNCHECKED.items()}
