"""A PPO config's fields: each bad field is refused, in one line naming the file and the field,
before anything is compiled or written — its own domain by the configs/ppo.py FIELDS table, the
relations between fields by validate_ppo_config (``check_fields`` runs both)."""
import os

import pytest

from configs import overoptimization as overopt_config
from configs.ppo import get_config
from experiments.stages.ppo import check_fields
from rlhf_jax.envs.constraints import CONSTRAINTS
from rlhf_jax.errors import ConfigError
from rlhf_jax.train.ppo_config import validate_ppo_config

BAD = [
    ("ppo.num_envs", 0, "a positive integer"),
    ("ppo.num_steps", -5, "a positive integer"),
    ("ppo.num_updates", 0, "a positive integer"),
    ("ppo.update_epochs", 0, "a positive integer"),
    ("ppo.num_minibatches", 3, "a divisor of ppo.num_envs * ppo.num_steps = 3200"),
    ("ppo.learning_rate", -1e-3, ">= 0.0"),
    ("ppo.gamma", 1.5, "<= 1.0"),
    ("ppo.clip_eps", 0.0, "> 0.0"),
    ("ppo.max_grad_norm", float("nan"), "a finite number"),
    ("ppo.value_hidden", (64, 0), "sequence of positive integers"),
    ("env.robot", "atlas", "one of 'panda'"),
    ("env.tasks", ("fly",), "a non-empty sequence of names, each one of 'reach'"),
    ("env.horizon", 0, "a positive integer"),
    ("kl.schedule", "cosine", "one of 'fixed', 'adaptive', 'annealed'"),
    ("kl.estimator", "k2", "one of 'k1', 'k3'"),
    ("kl.beta", -0.1, ">= 0.0"),
    ("reward.kind", "oracle", "one of 'gold', 'learned'"),
    ("reward.checkpoint", "runs/rm", "'' or a reward-model directory"),
    ("ppo.value_warmup_updates", -1, "an integer >= 0"),
    ("ppo.minibatch_layout", "by_env", "one of 'copy', 'index'"),
    ("ppo.flat_optimizer", "yes", "True or False"),
    ("reward.ensemble_size", 0, "a positive integer"),
    ("reward.segment_length", 60, "<= env.horizon = 50"),
    ("reward.aggregation", "median", "one of 'mean'"),
    ("reward.fit_steps", 0, "a positive integer"),
    ("safety.mode", "terminate", "one of 'penalty', 'projection'"),
    ("safety.weights", (1.0, 1.0), "a sequence of 4 finite numbers >= 0.0"),
    ("safety.workspace", (1.0, 0.0, 0.0, 0.0, 1.0, 1.0), "lo < hi"),
    ("log_every", 0, "a positive integer"),
    ("ref_checkpoint", "no/such/sft_dir", "'' or an SFT checkpoint directory"),
]


def _set(config, field, value):
    *parents, leaf = field.split(".")
    node = config
    for p in parents:
        node = node[p]
    node[leaf] = value


@pytest.mark.parametrize("variant", ["quick", "default"])
def test_shipped_configs_are_valid(variant):
    check_fields(get_config(variant), "configs/ppo.py")
    check_fields(overopt_config.get_config(variant), "configs/overoptimization.py")
    for schedule in ("adaptive", "annealed"):
        c = get_config(variant)
        c.kl.schedule = schedule
        check_fields(c, "configs/ppo.py")


@pytest.mark.parametrize("field,value,expected", BAD, ids=[b[0] for b in BAD])
def test_each_bad_field_is_named(field, value, expected):
    c = get_config("quick")
    _set(c, field, value)
    with pytest.raises(ConfigError) as err:
        check_fields(c, "configs/ppo.py")
    msg = str(err.value)
    assert msg.startswith(f"configs/ppo.py: field '{field}': expected "), msg
    assert expected in msg and ", got " in msg and "\n" not in msg, msg


def test_schedule_specific_fields():
    c = get_config("quick")
    c.kl.schedule, c.kl.beta = "annealed", 0.0  # a geometric anneal cannot start at 0
    with pytest.raises(ConfigError, match="field 'kl.beta': expected a finite number > 0.0, got 0.0"):
        validate_ppo_config(c)
    c = get_config("quick")
    c.kl.schedule, c.kl.target = "adaptive", -1.0
    with pytest.raises(ConfigError, match="field 'kl.target'"):
        check_fields(c, "configs/ppo.py")
    c = get_config("quick")
    c.reward.kind, c.reward.segment_length, c.safety.enabled, c.safety.workspace = "gold", 60, False, (1.0,) * 6
    validate_ppo_config(c)  # relations of the parts that are switched off are not read


def test_the_safety_weights_record_has_one_weight_per_constraint():
    from configs.ppo import FIELDS
    assert next(f for f in FIELDS if f.path == "safety.weights").length == len(CONSTRAINTS)


def test_experiments_refuse_before_touching_the_workdir(tmp_path):
    from experiments import overoptimization
    from experiments.stages import ppo as ppo_stage

    c = get_config("quick")
    c.ppo.num_envs = 0
    workdir = str(tmp_path / "ppo")
    with pytest.raises(ConfigError, match="my_ppo.py: field 'ppo.num_envs'"):
        ppo_stage.run_ppo(c, workdir, config_file="my_ppo.py")
    c = overopt_config.get_config("quick")
    c.betas = ()
    with pytest.raises(ConfigError, match="field 'betas'"):
        overoptimization.run(c, str(tmp_path / "overopt"))
    c = overopt_config.get_config("quick")
    c.reward.checkpoint = "runs/rm"
    with pytest.raises(ConfigError, match="reward.checkpoint"):
        overoptimization.run(c, str(tmp_path / "overopt"))
    assert os.listdir(tmp_path) == []


def test_the_std_floor_joins_pi_ref_and_is_checked(tmp_path):
    """ppo.log_std_floor reaches the policy module PPO fine-tunes (and π_ref's, one module) and the
    metadata the trained policy is saved with; outside [log_std_min, log_std_max] it is refused."""
    import jax

    from experiments.stages.ppo import load_reference
    from rlhf_jax.checkpoint import save_policy
    from rlhf_jax.envs.robots import EMBODIMENTS
    from rlhf_jax.envs.tasks import TASKS
    from rlhf_jax.features import feature_dim
    from rlhf_jax.models.policy import make_policy
    from rlhf_jax.train.sft import init_policy_variables
    from tests.test_ppo_from_sft import SFT_MODEL

    model = make_policy(SFT_MODEL, len(TASKS), len(EMBODIMENTS))
    variables = init_policy_variables(model, jax.random.PRNGKey(0), feature_dim("joint"))
    ckpt = save_policy(str(tmp_path / "sft"), variables, {"model": SFT_MODEL, "num_tasks": len(TASKS),
                                                          "num_embodiments": len(EMBODIMENTS)}, 1)
    c = get_config("quick")
    c.ref_checkpoint = ckpt
    _, plain, meta = load_reference(c)
    assert plain.log_std_floor is None and "log_std_floor" not in meta["model"]
    c.ppo.log_std_floor = -2.0
    _, floored, meta = load_reference(c)
    assert floored.log_std_floor == -2.0 and meta["model"]["log_std_floor"] == -2.0
    validate_ppo_config(c)
    c.ppo.log_std_floor = 2.0
    with pytest.raises(ConfigError, match="field 'ppo.log_std_floor'"):
        validate_ppo_config(c)


def _saved_head(path, condition: str, kind: str = "markovian", seed: int = 0) -> str:
    """A randomly initialised 2-member reward-model artefact trained (by its record) on ``condition``."""
    import jax
    import numpy as np

    from rlhf_jax.envs.tasks import TASKS
    from rlhf_jax.features import action_dim, feature_dim
    from rlhf_jax.models.reward import make_reward_model
    from rlhf_jax.reward_artifact import feature_spec, save_reward_model

    model = make_reward_model(kind, num_tasks=len(TASKS), num_embodiments=3, hidden=(8,), context_dim=4)
    obs, act = np.zeros((1, 2, feature_dim("joint")), np.float32), np.zeros((1, 2, action_dim("joint")), np.float32)
    ids = np.zeros((1,), np.int32)
    members = [model.init(jax.random.key(seed + k), obs, act, ids, ids) for k in range(2)]
    variables = {"params": jax.tree.map(lambda *x: np.stack(x), *[m["params"] for m in members]),
                 "norm": members[0]["norm"]}
    config = dict(kind=kind, hidden=(8,), context_dim=4, aggregate="sum", num_tasks=len(TASKS), num_embodiments=3)
    return save_reward_model(str(path), config, variables, {"features": feature_spec("joint", len(TASKS)),
                                                            "condition": condition, "best_step": [0, 0]})


def test_objective_heads_reward_is_their_weighted_sum_and_each_head_is_checked(tmp_path):
    """reward.kind='objectives': the PPO reward of saved heads is Σ_o w_o r_o (weight 0: no head
    read); a head of another objective, a segment-level head and a missing one are refused."""
    import jax
    import numpy as np

    from experiments.stages.ppo import build_reward, validate
    from rlhf_jax.reward_artifact import RewardModelError, load_reward_model

    task = _saved_head(tmp_path / "task", "mistake@task")
    safety = _saved_head(tmp_path / "safety", "mistake@safety", seed=5)
    c = get_config("quick")
    c.reward.kind = "objectives"
    c.reward.objectives.task.update({"checkpoint": task, "weight": 2.0})
    c.reward.objectives.safety.update({"checkpoint": safety, "weight": 0.5})
    c.reward.objectives.smoothness.weight = c.reward.objectives.efficiency.weight = 0.0
    validate(c, "configs/ppo.py")
    fn, info = build_reward(c, jax.random.key(0))
    assert info["kind"] == "objectives" and set(info["objectives"]) == {"task", "safety"}
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(16, 34)).astype(np.float32)
    act = rng.normal(size=(16, 7)).astype(np.float32)
    ids, comps = np.zeros(16, np.int32), np.zeros((16, 9), np.float32)
    heads = [load_reward_model(p).reward_fn(obs, act, ids, ids, comps) for p in (task, safety)]
    assert not np.allclose(heads[0], heads[1])
    np.testing.assert_allclose(fn(obs, act, ids, ids, comps), 2.0 * heads[0] + 0.5 * heads[1], rtol=1e-5, atol=1e-6)

    c.reward.objectives.smoothness.weight = 1.0  # nonzero weight, no checkpoint
    with pytest.raises(ConfigError, match="field 'reward.objectives.smoothness.checkpoint'"):
        validate_ppo_config(c)
    c.reward.objectives.smoothness.weight = 0.0
    c.reward.objectives.safety.checkpoint = task  # the task head given as the safety head
    with pytest.raises(ConfigError, match="field 'reward.objectives.safety.checkpoint': expected a head trained on "
                                          "'safety'"):
        build_reward(c, jax.random.key(0))
    c.reward.objectives.safety.checkpoint = _saved_head(tmp_path / "window", "mistake@safety", "previous_step")
    with pytest.raises(RewardModelError, match="per-step"):
        build_reward(c, jax.random.key(0))
    c.reward.objectives.task.weight = c.reward.objectives.safety.weight = 0.0
    with pytest.raises(ConfigError, match="at least one objective with a nonzero weight"):
        validate_ppo_config(c)
