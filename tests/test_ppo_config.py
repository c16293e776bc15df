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
