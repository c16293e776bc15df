"""DAgger relabelling: the labels are the scripted expert's actions on the states the learner visits."""
import json
import os

import jax
import pytest
import jax.numpy as jnp
import numpy as np

from rlhf_jax.envs import policies as P
from rlhf_jax.envs import robots as R
from rlhf_jax.envs import simulator as S
from rlhf_jax.envs import tasks as T
from rlhf_jax.models.policy import make_policy
from rlhf_jax.train import dagger, sft
from rlhf_jax import features as F

from configs import sft as sft_config

# The model train_sft builds in the first test, so both share one compiled relabel program.
_MODEL_CONFIG = sft_config.get_config("quick").model
_MODEL_CONFIG.hidden = (16,)
MODEL = make_policy(_MODEL_CONFIG, len(T.TASKS), len(R.EMBODIMENTS))
H = 50
TASKS = ("reach", "reach_avoid")


def _rollouts(noise):
    variables = sft.init_policy_variables(MODEL, jax.random.PRNGKey(0), F.feature_dim("joint"))
    return dagger.relabelled_rollouts(MODEL, variables, ("ur5",), TASKS, 2, jax.random.PRNGKey(3),
                                      noise=noise, dt=0.05, horizon=H)


@pytest.mark.slow
def _tiny_sft_argv(data_root, workdir, *overrides):
    return ["prog", "--config=configs/sft.py:quick", "--config.dataset.variant=tiny",
            f"--config.dataset.data_dir={data_root}", "--config.train.steps=20", "--config.model.hidden=(16,)",
            *overrides, f"--workdir={workdir}"]


def test_train_sft_runs_dagger_rounds_and_checkpoints_the_last_step(tmp_path, tiny_data_root, tiny_dataset_dir):
    from experiments import train_sft

    del tiny_dataset_dir
    workdir = str(tmp_path / "sft")
    rc = train_sft.main(_tiny_sft_argv(tiny_data_root, workdir, "--config.train.log_every=10",
                                       "--config.dagger.rounds=2", "--config.dagger.episodes_per_task=1",
                                       "--config.dagger.steps_per_round=5", "--config.eval.n_episodes=1",
                                       "--config.eval.embodiments=('ur5',)", "--config.eval.tasks=('reach',)"))
    assert rc == 0
    with open(os.path.join(workdir, "sft_summary.json")) as f:
        summary = json.load(f)
    rounds = summary["demos"]["dagger_rounds"]
    # Each round adds one episode per (arm, task) of 50 steps on top of the demonstrations.
    added = len(R.EMBODIMENTS) * len(T.TASKS) * 50
    assert [r["transitions"] for r in rounds] == [summary["demos"]["transitions"] + added * k for k in (1, 2)]
    assert summary["final"]["step"] == 30
    from rlhf_jax.checkpoint import restore_policy
    _, meta = restore_policy(os.path.join(workdir, "checkpoints", "sft"))
    assert meta["step"] == 30


def test_labels_are_expert_actions_on_the_visited_states():
    data, info = _rollouts(noise=0.3)
    robot = R.ROBOTS["ur5"]
    assert data["obs"].shape == (len(TASKS) * 2 * H, F.feature_dim("joint"))
    assert set(info) == {"ur5"}
    # Padded 7th joint: no action, masked out.
    np.testing.assert_array_equal(data["act"][:, robot.dof:], 0.0)
    np.testing.assert_array_equal(data["act_mask"].sum(-1), robot.dof)
    # Step 0 of every episode is the reset state, which the policy has not touched yet: its label
    # must be the expert's velocity there (the keys are derived as relabelled_rollouts derives them).
    expert = {k: jnp.float32(v) for k, v in P.PRESETS["expert"].items()}

    @jax.jit
    @jax.vmap
    def expert_at_reset(key, task):
        state = S.reset_state(robot, task, jax.random.split(key)[0])
        return P.expert_velocity(robot, expert, state) / jnp.asarray(robot.qd_max)

    keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(3), R.EMBODIMENTS.index("ur5")), 4)
    tasks = np.repeat([T.task_id(t) for t in TASKS], 2).astype(np.int32)
    np.testing.assert_allclose(data["act"][::H, :robot.dof], expert_at_reset(keys, tasks), atol=1e-5)
    np.testing.assert_array_equal(data["task"][::H], tasks)
    # Exploration noise changes the visited states (after step 0), hence the labels.
    quiet, _ = _rollouts(noise=0.0)
    np.testing.assert_array_equal(quiet["obs"][::H], data["obs"][::H])
    assert not np.allclose(quiet["obs"], data["obs"])


def test_train_sft_stops_on_a_non_finite_loss_before_saving_a_policy(tmp_path, tiny_data_root, tiny_dataset_dir,
                                                                    capsys):
    # A finite but absurd learning rate passes validation; the loss turns non-finite within the
    # first logged steps, and the run must stop there (exit 1) instead of saving and evaluating.
    from experiments import train_sft

    del tiny_dataset_dir
    workdir = str(tmp_path / "sft")
    rc = train_sft.main(_tiny_sft_argv(tiny_data_root, workdir, "--config.train.log_every=5",
                                       "--config.dagger.rounds=0", "--config.optimizer.learning_rate=1e30",
                                       "--config.optimizer.warmup_steps=0"))
    err = capsys.readouterr().err
    assert rc == 1 and "non-finite sft loss at step" in err, err[-1500:]
    # Nothing was saved and the name is free (no files, or moved aside): the corrected command runs.
    assert not os.path.exists(workdir)
    assert not os.path.exists(os.path.join(workdir + ".failed-1", "checkpoints", "sft"))


def test_train_dpo_stops_on_a_non_finite_loss_naming_the_point(tmp_path, tiny_data_root, tiny_dataset_dir, capsys):
    # DPO's loop goes through the same chunk runner: an absurd learning rate stops it at the first
    # logged chunk (exit 1), naming the step and the (loss type, beta) point, before a policy is saved.
    from experiments import train_dpo, train_sft

    del tiny_dataset_dir
    sft_workdir, workdir = str(tmp_path / "sft"), str(tmp_path / "dpo")
    assert train_sft.main(_tiny_sft_argv(tiny_data_root, sft_workdir, "--config.dagger.rounds=0")) == 0
    capsys.readouterr()
    rc = train_dpo.main(["prog", "--config=configs/dpo.py:quick", f"--config.sft_workdir={sft_workdir}",
                         "--config.dataset.variant=tiny", f"--config.dataset.data_dir={tiny_data_root}",
                         "--config.preferences.n_train=200", "--config.preferences.n_val=20",
                         "--config.preferences.n_test=20", "--config.train.steps=10", "--config.train.log_every=5",
                         "--config.optimizer.learning_rate=1e30", "--config.optimizer.warmup_steps=0",
                         f"--workdir={workdir}"])
    err = capsys.readouterr().err
    assert rc == 1 and "non-finite dpo loss at step" in err and "point " in err, err[-1500:]
    assert not os.path.exists(os.path.join(workdir, "checkpoints"))
