"""Reward-model artefacts: what the sweep saves reloads to the same ensemble, its per-step reward
adds up to the segment return, aggregations are the written-out formulas, and models that do not
fit a run (or PPO) are refused with one line naming the field."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.scaling_sweep import get_config
from experiments.stages.sweep import load_inputs, surf_spec, train_one_size
from experiments.stages.sweep_outputs import result_rows, save_reward_models
from rlhf_jax import features
from rlhf_jax.checkpoint import save_policy
from rlhf_jax.envs.robots import EMBODIMENTS
from rlhf_jax.envs.tasks import TASKS
from rlhf_jax.models.reward import make_reward_model
from rlhf_jax.reward_artifact import (RewardModelError, feature_spec, load_reward_model, point_variables,
                                      save_reward_model)
from rlhf_jax.train import sweep

WHERE = "configs/ppo.py"


@pytest.fixture(scope="module")
def trained(tiny_data_root, tiny_dataset_dir, tmp_path_factory):
    """The tiny sweep's first model size trained once, and its default artefacts saved."""
    del tiny_dataset_dir
    config = get_config("tiny")
    config.data_dir = tiny_data_root
    inputs = load_inputs(config, "configs/scaling_sweep.py", surf_spec(config))
    workdir = str(tmp_path_factory.mktemp("rm_sweep"))
    hidden = config.model_sizes[0]
    test_returns, states, history = train_one_size(config, inputs, hidden, os.path.join(workdir, "ckpt"), surf_spec(config),
                                                   log=lambda *_: None)
    rows = result_rows(config, inputs, test_returns, states, history, hidden)
    paths = save_reward_models(config, inputs, states, rows, hidden, 0, workdir)
    return dict(config=config, inputs=inputs, workdir=workdir, test_returns=test_returns, states=states,
                rows=rows, paths=paths)


def _point(trained, n, seed=0):
    """(point index, loaded default RewardModel) of the oracle point (n, seed)."""
    grid = trained["inputs"].grid
    p = grid.points.index((0, n, grid.seeds.index(seed)))
    return p, load_reward_model(os.path.join(trained["workdir"], "reward_models", f"oracle_n{n}_seed{seed}"))


def test_the_sweep_saves_the_selected_points(trained):
    config = trained["config"]
    assert trained["paths"] == [f"reward_models/oracle_n{n}_seed0" for n in config.n_values]
    p, rm = _point(trained, 100)
    meta, states = rm.meta, trained["states"]
    assert (meta["n"], meta["seed"], meta["condition"], meta["members"]) == (100, 0, "oracle", config.members)
    src = meta["label_source"]
    assert (src["name"], src["label_seed"]) == ("oracle", config.label_seed)
    # The label set the ensemble was trained on, by content hash (train + validation answers).
    assert src["label_set_hash"] == trained["inputs"].label_sources["oracle"]["label_set_hash"]
    assert src["label_set_hash"].startswith("sha256:") and src["answers"] == src["dollars"] > 0
    assert (meta["dataset"], meta["segment_length"]) == ("tiny", config.segment_length)
    assert meta["best_step"] == np.asarray(states.best_step[p]).tolist()
    ens = next(r for r in trained["rows"] if r["member"] == "ensemble" and (r["n"], r["seed"]) == (100, 0))
    assert meta["test_accuracy"] == ens["test_accuracy"]
    assert meta["features"] == feature_spec("joint", config.num_tasks)
    assert meta["features"]["tasks"] == TASKS[:config.num_tasks] and meta["features"]["embodiments"] == EMBODIMENTS
    assert meta["model"]["hidden"] == list(config.model_sizes[0]) and meta["model"]["kind"] == "markovian"
    # Another selection, or none.
    other = trained["config"].copy_and_resolve_references()
    other.save_models.n_values, other.save_models.seeds = (50,), (1,)
    workdir = os.path.join(trained["workdir"], "other")
    for _ in range(2):  # saving again (a resumed run) replaces the artefact
        assert save_reward_models(other, trained["inputs"], states, trained["rows"], (64, 64), 0, workdir) == \
            ["reward_models/oracle_n50_seed1"]
    saved = os.path.join(workdir, "reward_models", "oracle_n50_seed1")
    assert [d for d in os.listdir(saved) if d.isdigit()] == ["1"] and load_reward_model(saved).meta["n"] == 50
    other.save_models.enabled = False
    assert save_reward_models(other, trained["inputs"], states, trained["rows"], (64, 64), 0, workdir) == []


def test_reloaded_model_gives_the_in_memory_returns_and_steps_add_up(trained):
    inputs = trained["inputs"]
    p, rm = _point(trained, 200)
    segs = sweep.gather_segments(inputs.data, jnp.asarray(inputs.test_rows))
    member = np.asarray(rm.segment_returns(segs))  # [K, St]
    np.testing.assert_allclose(member, trained["test_returns"][p], rtol=0, atol=1e-6)
    # Markovian with a sum aggregate: per-step rewards summed over a segment = its return.
    b, t, d = segs["obs"].shape
    per_step = lambda x: jnp.repeat(x, t)  # noqa: E731  task/embodiment of every step
    steps = jax.jit(rm.reward_fn)(segs["obs"].reshape(b * t, d), segs["act"].reshape(b * t, -1),
                                  per_step(segs["task"]), per_step(segs["embodiment"]), jnp.zeros((b * t, 1)))
    np.testing.assert_allclose(np.asarray(steps).reshape(b, t).sum(1), member.mean(0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("how, lam, scale", [("mean", 1.0, 1.0), ("min", 1.0, 2.0), ("mean_minus_std", 0.7, 0.5)])
def test_aggregations_are_the_written_out_formulas(trained, how, lam, scale):
    path = os.path.join(trained["workdir"], trained["paths"][-1])
    rm = load_reward_model(path, aggregation=how, lam=lam, scale=scale)
    inputs = trained["inputs"]
    segs = sweep.gather_segments(inputs.data, jnp.arange(12) * 7)
    obs, act = segs["obs"][:, 3], segs["act"][:, 3]  # one step of each segment
    one_step = dict(segs, obs=obs[:, None], act=act[:, None])
    r = np.asarray(rm.segment_returns(one_step), np.float64)  # [K, B] member step rewards
    want = {"mean": r.mean(0), "min": r.min(0), "mean_minus_std": r.mean(0) - lam * r.std(0)}[how] * scale
    got = jax.jit(rm.reward_fn)(obs, act, segs["task"], segs["embodiment"], jnp.zeros((12, 1)))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(rm.aggregate(jnp.asarray(r))), want, rtol=1e-5, atol=1e-6)


def test_mismatches_are_one_line_naming_the_field(trained):
    _, rm = _point(trained, 25)
    d = features.feature_dim("joint")
    rm.check_compatible("joint", d, TASKS[:2], "ur5", action_dim=features.action_dim("joint"))
    rm.check_compatible("joint", d, TASKS, EMBODIMENTS)
    cases = [(("joint", d + 1, TASKS), "feature_dim"), (("joint", d, ("reach_hold",)), "tasks"),
             (("eef", features.feature_dim("eef"), TASKS), "feature kind"),
             (("joint", d, TASKS, ("gen3", "panda")), "embodiments"), (("joint", d, TASKS, "spot"), "embodiment")]
    for args, needle in cases:
        with pytest.raises(RewardModelError) as err:
            rm.check_compatible(*args, where=WHERE, field="reward.checkpoint")
        line = str(err.value)
        assert "\n" not in line and needle in line and rm.path in line, line
        assert line.startswith(f"{WHERE}: field 'reward.checkpoint'"), line
    for how in ("std", "max"):
        with pytest.raises(RewardModelError, match="aggregation"):
            load_reward_model(rm.path, aggregation=how)


def test_segment_level_and_unreadable_models_are_refused(trained, tmp_path):
    inputs = trained["inputs"]
    segs = sweep.gather_segments(inputs.data, jnp.arange(4))
    model_config = dict(kind="transformer", hidden=(8,), context_dim=4, aggregate="sum", num_tasks=4,
                        num_embodiments=3, heads=2)
    model = make_reward_model("transformer", num_tasks=4, num_embodiments=3, width=8, depth=1, heads=2,
                              context_dim=4)
    init = jax.jit(lambda key: model.init(key, segs["obs"], segs["act"], segs["task"], segs["embodiment"])["params"])
    members = [init(jax.random.key(k)) for k in range(2)]
    variables = {"params": jax.tree.map(lambda *x: np.stack(x), *members), "norm": inputs.norm}
    path = save_reward_model(str(tmp_path / "pt"), model_config, variables,
                             {"features": feature_spec("joint", 4), "best_step": [0, 0]})
    with pytest.raises(RewardModelError, match="per-step rewards"):
        load_reward_model(path)
    rm = load_reward_model(path, allow_segment_level=True)
    returns = np.asarray(rm.segment_returns(segs))  # evaluation still works: [K, B]
    assert returns.shape == (2, 4) and np.isfinite(returns).all() and not np.allclose(returns[0], returns[1])
    with pytest.raises(RewardModelError, match="per-step reward"):
        rm.reward_fn  # noqa: B018
    (tmp_path / "empty").mkdir()
    policy = save_policy(str(tmp_path / "policy"), point_variables(trained["states"].best_params, inputs.norm, 0),
                         {"model": {}})
    for bad, needle in [(tmp_path / "missing", "no such directory"), (tmp_path / "empty", "an empty directory"),
                        (policy, "expected a reward-model artefact .*found a policy checkpoint")]:
        with pytest.raises(RewardModelError, match=needle):
            load_reward_model(str(bad))
    assert not os.path.exists(tmp_path / "missing")


def test_downstream_finds_the_models_of_a_condition_whose_name_is_not_a_path(trained, tmp_path):
    """A ``qc:`` / ``file:`` condition holds ':' and '/': the sweep saves its models under the
    condition's safe name, and downstream scaling must look them up under the same name (it once
    rebuilt the path from the raw condition string and found nothing)."""
    import dataclasses

    from experiments.downstream_scaling import reward_model_path

    config, inputs = trained["config"].copy_and_resolve_references(), trained["inputs"]
    cond = "qc:crowd/adjudicated"
    renamed = dataclasses.replace(inputs, grid=dataclasses.replace(inputs.grid, conditions=(cond,)))
    rows = [dict(r, condition=cond) for r in trained["rows"]]
    config.save_models.condition = ""
    workdir = str(tmp_path)
    saved = save_reward_models(config, renamed, trained["states"], rows, config.model_sizes[0], 0, workdir)
    assert len(saved) == len(config.n_values)
    for n in config.n_values:
        path = reward_model_path(workdir, cond, n, 0)
        assert os.path.isdir(path) and os.path.dirname(path) == os.path.join(workdir, "reward_models")
        assert load_reward_model(path).meta["condition"] == cond


def test_the_artefact_records_and_enforces_what_its_training_pairs_contained(trained):
    # The record is recomputed here from the point's nested order, independently of the saver.
    inputs = trained["inputs"]
    p, rm = _point(trained, 25)
    _, n, s = inputs.grid.points[p]
    order = np.asarray(inputs.data.order[0, s])[:n]
    pairs = order[order >= 0]
    rows = np.concatenate([np.asarray(inputs.data.train_a)[pairs], np.asarray(inputs.data.train_b)[pairs]])
    emb = sorted({EMBODIMENTS[i] for i in np.asarray(inputs.data.seg_emb)[rows]})
    tasks = sorted({TASKS[i] for i in np.asarray(inputs.data.seg_task)[rows]})
    assert sorted(rm.meta["trained_on"]["embodiments"]) == emb and sorted(rm.meta["trained_on"]["tasks"]) == tasks
    rm.check_trained_on(emb[0], tasks)
    unseen = [e for e in EMBODIMENTS if e not in emb]
    if unseen:  # a robot the pairs never showed: refused unless zero-shot is asked for
        with pytest.raises(RewardModelError, match="zero-shot"):
            rm.check_trained_on(unseen[0], tasks, where=WHERE, field="reward.checkpoint")
        rm.check_trained_on(unseen[0], tasks, zero_shot=True)
    # An artefact whose record lacks an arm is refused with one line naming path and field.
    narrowed = dataclasses.replace(rm, meta=dict(rm.meta, trained_on={"embodiments": emb[1:], "tasks": tasks[:1]}))
    cases = [(emb[0], tasks[:1])]  # an arm outside the record
    if len(emb) > 1 and len(tasks) > 1:
        cases.append((emb[1], tasks))  # a task outside the record
    for args in cases:
        with pytest.raises(RewardModelError) as err:
            narrowed.check_trained_on(*args, where=WHERE, field="reward.checkpoint")
        line = str(err.value)
        assert "\n" not in line and rm.path in line and line.startswith(f"{WHERE}: field 'reward.checkpoint'")
    # An artefact saved before the record existed is not held to it.
    legacy = dataclasses.replace(rm, meta={k: v for k, v in rm.meta.items() if k != "trained_on"})
    legacy.check_trained_on("spot", ("nothing",))


def test_an_artefact_saved_before_kinds_were_recorded_loads_with_one_warning(trained, tmp_path, capsys):
    """No ``artifact`` / ``format_version`` in its meta: read as the current version, the same
    ensemble, and one warning line naming the path."""
    old = str(tmp_path / "old_rm")
    shutil.copytree(os.path.join(trained["workdir"], trained["paths"][0]), old)
    (step,) = [d for d in os.listdir(old) if d.isdigit()]
    path = os.path.join(old, step, "meta", "metadata")
    with open(path, encoding="utf-8") as f:
        meta = json.load(f)
    del meta["artifact"], meta["format_version"]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(meta, f)
    capsys.readouterr()
    rm, new = load_reward_model(old), load_reward_model(os.path.join(trained["workdir"], trained["paths"][0]))
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: {old}: saved before") and "reward_model" in lines[0]
    assert rm.members == new.members and rm.meta["n"] == new.meta["n"]
    jax.tree.map(np.testing.assert_array_equal, rm.variables, new.variables)
