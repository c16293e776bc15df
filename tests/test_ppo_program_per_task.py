"""One PPO program per (arm, task) in the RLHF pipeline (``ppo_program_per_task``): a task's program
is the one-task PPO run at its share of the shape, keyed by PPO seed and task whatever other task
the pipeline has; a one-task pipeline runs the same program with the option on or off; a shape
that does not split over the tasks is refused in one line."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.rlhf_pipeline import get_config
from experiments.stages import ppo_points as PP
from experiments.stages import rlhf
from rlhf_jax import features as F
from rlhf_jax.checkpoint import restore_policy, save_policy
from rlhf_jax.envs.robots import EMBODIMENTS
from rlhf_jax.envs.tasks import TASKS
from rlhf_jax.models.policy import make_policy
from rlhf_jax.models.reward import make_reward_model
from rlhf_jax.reward_artifact import feature_spec, save_reward_model
from rlhf_jax.train.sft import init_policy_variables
from tests.test_ppo_from_sft import SFT_MODEL
from tests.test_ppo_points import RM_CONFIG
from tests.test_ppo_update import tiny_config

QUIET = dict(log=lambda m: None)


def pipeline_config(tasks, per_task=True):
    """The default pipeline on UR5 with a tiny PPO (4 environments, 2 minibatches over all tasks)."""
    c = get_config("default")
    c.arms, c.tasks, c.ppo_program_per_task = ("ur5",), tuple(tasks), per_task
    ppo = tiny_config()
    ppo.ppo.num_updates = ppo.kl.total_updates = 2
    ppo.log_every = 1
    c.ppo, c.reward_model.seeds, c.ppo_seeds, c.secondary_ppo_seeds = ppo, (0,), (1,), (1,)
    return c


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory):
    """(π_SFT checkpoint, a saved reward model)."""
    root = tmp_path_factory.mktemp("per_task")
    policy = make_policy(SFT_MODEL, len(TASKS), len(EMBODIMENTS))
    ref = init_policy_variables(policy, jax.random.PRNGKey(1), F.feature_dim("joint"))
    sft = save_policy(str(root / "sft"), ref, {"model": SFT_MODEL})
    rm = make_reward_model("markovian", num_tasks=len(TASKS), num_embodiments=len(EMBODIMENTS), hidden=(8,),
                           context_dim=4)
    path = save_reward_model(str(root / "rm"), RM_CONFIG, reward_variables(rm, jax.random.PRNGKey(2)),
                             {"features": feature_spec("joint", len(TASKS))})
    return sft, path


def reward_variables(model, key, members: int = 2):
    """A reward-model ensemble's variables at random: ``members`` stacked parameter sets."""
    sample = (jnp.zeros((1, 1, F.feature_dim("joint"))), jnp.zeros((1, 1, F.action_dim("joint"))),
              jnp.zeros((1,), jnp.int32), jnp.zeros((1,), jnp.int32))
    inits = [model.init(k, *sample) for k in jax.random.split(key, members)]
    return {"params": jax.tree.map(lambda *x: jnp.stack(x), *[v["params"] for v in inits]), "norm": inits[0]["norm"]}


def _leaves(ckpt):
    return [np.asarray(x) for x in jax.tree.leaves(restore_policy(ckpt)[0])]


@pytest.mark.slow
def test_a_tasks_program_is_that_task_run_alone_whatever_the_other_task(artefacts, tmp_path):
    """Reach's program in a (reach, reach_avoid) pipeline equals reach's in a (reach, reach_hold)
    one, and both equal PPO on reach alone at half the environments and minibatches under the key
    of PPO seed and task; the learned-reward run and its PPO-on-gold reference are both there."""
    sft, rm = artefacts
    infos = [rlhf.ppo_points_stage(pipeline_config(("reach", other)), "ur5", "headline", sft, {0: rm}, tasks=("reach",),
                                   **QUIET)(str(tmp_path / other)) for other in ("reach_avoid", "reach_hold")]
    assert [(r["reward"], r["rm_seed"], r["seed"]) for r in infos[0]["points"]] == [(rm, 0, 1), ("gold", None, 1)]
    for a, b in zip(_leaves(infos[0]["checkpoint"]), _leaves(infos[1]["checkpoint"])):
        np.testing.assert_array_equal(a, b)

    alone = tiny_config()   # the one-task PPO config, built without the pipeline's splitting
    alone.env.robot, alone.env.tasks, alone.ref_checkpoint = "ur5", ("reach",), sft
    alone.ppo.num_envs, alone.ppo.num_minibatches = 2, 1
    alone.ppo.num_updates = alone.kl.total_updates = 2
    alone.log_every, alone.kl.beta, alone.safety.weights = 1, 0.05, (0.0,) * 4   # UR5's β; headline: no constraints
    points = [PP.Point(rm, 1), PP.Point("gold", 1)]
    variables, history, _ = PP.train_points(alone, points, "min", 0, str(tmp_path / "alone"), task="reach", **QUIET)
    assert history[-1]["gold_return"] == [infos[0]["points"][i]["gold_return"] for i in range(2)]
    for a, b in zip(jax.tree.leaves(variables), _leaves(infos[0]["checkpoint"])):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-6, atol=1e-7)
    # The task enters the key: without it the same program draws other environments.
    _, untasked, _ = PP.train_points(alone, points, "min", 0, str(tmp_path / "untasked"), **QUIET)
    assert untasked[-1]["gold_return"] != history[-1]["gold_return"]


def test_programs_names_and_shapes_per_task():
    c = get_config("default")
    assert [name for name, _, _ in rlhf.ppo_programs(c)] == ["panda/reach", "panda/reach_avoid", "ur5/reach",
                                                             "ur5/reach_avoid"]
    per_task = rlhf.points_config(c, "panda", "headline", "sft", ("reach_avoid",))
    whole = rlhf.points_config(c, "panda", "headline", "sft")
    assert (per_task.ppo.num_envs, per_task.ppo.num_minibatches, per_task.env.tasks) == (64, 4, ("reach_avoid",))
    assert (whole.ppo.num_envs, whole.ppo.num_minibatches) == (128, 8)
    # Same minibatch size, so each task sees the optimisation its budget curve measured.
    assert per_task.ppo.num_envs // per_task.ppo.num_minibatches == whole.ppo.num_envs // whole.ppo.num_minibatches
    c.ppo_program_per_task = False
    assert [name for name, _, _ in rlhf.ppo_programs(c)] == ["panda", "ur5"]


def test_a_one_task_pipeline_is_the_same_with_the_option_on_or_off(monkeypatch):
    """Same stage names, same PPO configs, same points and the same (task-free) keys: what every
    points stage is handed is identical, so committed one-task results stay valid."""
    handed, calls = {}, []

    def record(ppo_config, points, aggregation, seed, log=None, load_reward=None, task=None):
        calls.append((ppo_config.to_dict(), list(points), aggregation, seed, task))

    monkeypatch.setattr(rlhf, "points_stage", record)
    for on in (False, True):
        c = get_config("quick")
        c.ppo_program_per_task = on
        rms = {r: f"rm{r}" for r in c.reward_model.seeds}
        calls.clear()
        names = []
        for name, arm, tasks in rlhf.ppo_programs(c):
            for point_set in ("headline", "constraints", "round2"):
                rlhf.ppo_points_stage(c, arm, point_set, "sft", rms, tasks=tasks)
                names.append((name, point_set))
        st = {"sft": {"checkpoint": "sft"}, "rollouts": {"path": "r"}, "reward_models": rms,
              "headline": {}, "constraints": {}}
        handed[on] = names, list(calls), rlhf.resolved_stage_configs(c, st, "w")
    assert handed[True] == handed[False]
    names, calls_on, stage_configs = handed[True]
    assert names[0] == ("panda", "headline") and "ppo/headline/panda" in stage_configs
    assert len(calls_on) == 3 and all(call[-1] is None for call in calls_on)


def test_keys_fold_in_the_task_only_for_a_task_of_several():
    points = [PP.Point("gold", 0), PP.Point("gold", 3)]
    plain = PP.point_keys(points, 5)
    np.testing.assert_array_equal(jax.random.key_data(plain[1]), jax.random.key_data(jax.random.key(3005)))
    reach, avoid = (jax.random.key_data(PP.point_keys(points, 5, t)) for t in ("reach", "reach_avoid"))
    expected = jax.random.key_data(jax.random.fold_in(jax.random.key(5), TASKS.index("reach_avoid")))
    np.testing.assert_array_equal(avoid[0], expected)
    assert not np.array_equal(reach, avoid) and not np.array_equal(reach, jax.random.key_data(plain))


def _stacked_policy(path, keys):
    """A points checkpoint of one random policy per key (stacked [points, ...])."""
    policy = make_policy(SFT_MODEL, len(TASKS), len(EMBODIMENTS))
    variables = [init_policy_variables(policy, jax.random.PRNGKey(k), F.feature_dim("joint")) for k in keys]
    return save_policy(path, jax.tree.map(lambda *x: np.stack(x), *variables), {"model": SFT_MODEL})


def test_a_run_is_evaluated_task_by_task_on_the_policy_of_each_task(artefacts, tmp_path):
    """A run's row holds, for each task, what that task's program's policy scores on the pipeline's
    evaluation states of that task (those of a policy evaluated over every task); giving one
    program's policy to both tasks changes the row."""
    from experiments.rlhf_pipeline_report import evaluate_points
    from experiments.stages import point_eval as E
    from rlhf_jax.reward_artifact import load_reward_model

    sft_ckpt, rm_path = artefacts
    c = pipeline_config(("reach", "reach_avoid"))
    c.eval.n_episodes = 2
    sft_vars, meta = restore_policy(sft_ckpt)
    sft = (make_policy(meta["model"], len(TASKS), len(EMBODIMENTS)), sft_vars)
    rm = load_reward_model(rm_path, aggregation="min")
    rewards = {"headline": {0: {"model": rm, "sft": E.policy_episodes(c, "ur5", 0.05, rm, sft, *sft)}}}
    rows = [{"reward": rm_path, "rm_seed": 0, "seed": 1}, {"reward": "gold", "rm_seed": None, "seed": 1}]
    ckpts = {"ur5/reach": _stacked_policy(str(tmp_path / "reach"), (3, 4)),
             "ur5/reach_avoid": _stacked_policy(str(tmp_path / "avoid"), (5, 6))}
    st = {"headline": {name: {"checkpoint": ckpt, "points": rows} for name, ckpt in ckpts.items()}}
    out = evaluate_points(c, st, 0.05, sft, rewards)
    assert [(r, p) for r, p, _ in out["headline"]] == [(0, 1)] and [(r, p) for r, p, _ in out["gold"]] == [(None, 1)]
    row = out["headline"][0][2]
    whole = {}
    for name, task in (("ur5/reach", "reach"), ("ur5/reach_avoid", "reach_avoid")):
        model, variables, _ = E.load_stacked(ckpts[name])
        whole[task] = E.policy_episodes(c, "ur5", 0.05, rm, sft, model, E.point(variables, 0))
    expected = E.policy_row({"ur5/reach": whole["reach"]["ur5/reach"],
                             "ur5/reach_avoid": whole["reach_avoid"]["ur5/reach_avoid"]}, rewards["headline"][0]["sft"])
    assert row == expected
    assert row != E.policy_row(whole["reach"], rewards["headline"][0]["sft"])


def test_round_two_keeps_each_tasks_episodes_of_its_own_policy(tmp_path):
    from experiments.stages.rollouts import fine_tuned_episodes

    ckpt = _stacked_policy(str(tmp_path / "p"), (3,))
    args = (ckpt, [0], "ur5", ("reach", "reach_avoid"), 0.05, 2, 7, 0.05)
    every = fine_tuned_episodes(*args, name="r")
    kept = fine_tuned_episodes(*args, name="r", keep_tasks=("reach_avoid",))
    assert {e["episode_metadata"]["task"] for e in every} == {"reach", "reach_avoid"}
    assert [e["episode_metadata"]["episode_id"] for e in kept] == [
        e["episode_metadata"]["episode_id"] for e in every if e["episode_metadata"]["task"] == "reach_avoid"]
    np.testing.assert_array_equal(kept[0]["steps"]["action"], [e for e in every if e["episode_metadata"]["task"]
                                                               == "reach_avoid"][0]["steps"]["action"])


@pytest.mark.slow
def test_tiny_two_task_pipeline_runs_one_program_per_task(tmp_path, tiny_data_root, tiny_dataset_dir):
    """The tiny pipeline on reach and reach_avoid with the option on: a stage per (point set, arm,
    task), pipeline.json's runs as with one program (a row per run with both tasks' gold), and
    round 2's pool holding each task's episodes of the fine-tuned policies."""
    import json
    import os

    from experiments import rlhf_pipeline
    from rlhf_jax.data.rlds import load_rlds
    from tests.pipeline_fixtures import TINY

    del tiny_dataset_dir
    workdir = str(tmp_path / "run")
    one_task = [a for a in TINY if not a.startswith("--config.tasks=")]
    argv = ["prog", *one_task, "--config.tasks=('reach','reach_avoid')", "--config.ppo_program_per_task=True",
            f"--config.sft.dataset.data_dir={tiny_data_root}", f"--workdir={workdir}"]
    assert rlhf_pipeline.main(argv) == 0
    with open(os.path.join(workdir, "pipeline.json")) as f:
        result = json.load(f)
    for stage in ("ppo/headline", "ppo/constraints", "round2/ppo"):
        for task in ("reach", "reach_avoid"):
            assert os.path.isfile(os.path.join(workdir, stage, "ur5", task, "stage.json")), (stage, task)
        assert not os.path.exists(os.path.join(workdir, stage, "ur5", "stage.json"))
    assert [len(result["runs"][k]) for k in ("headline", "gold", "constraints", "round2")] == [4, 2, 2, 2]
    for rows in result["runs"].values():
        assert all(set(r["gold_per_arm_task"]) == {"ur5/reach", "ur5/reach_avoid"} for r in rows)
    with open(os.path.join(workdir, "round2", "rollouts", "seed_0", "stage.json")) as f:
        episodes = load_rlds(json.load(f)["path"])
    tuned = {(e["episode_metadata"]["policy"], e["episode_metadata"]["task"]) for e in episodes
             if e["episode_metadata"]["policy"].startswith("ppo_round1_")}
    assert tuned == {("ppo_round1_rm0/point0@0.05", "reach"), ("ppo_round1_rm0/point0@0.05", "reach_avoid")}
    with open(os.path.join(workdir, "stage_configs.json")) as f:
        configs = json.load(f)
    assert configs["ppo/headline/ur5/reach"]["env"]["tasks"] == ["reach"]
    assert configs["ppo/headline/ur5/reach"]["ppo"]["num_envs"] == 2
