"""The compiled sweep program: one (point, member) of it equals that point trained alone with
``make_reward_update`` — same nested subset, bootstrap weights and best-validation selection."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from rlhf_jax.ensemble import bootstrap_weights
from rlhf_jax.errors import SplitError
from rlhf_jax.labels import label_sets
from rlhf_jax.labels.label_set_io import write_label_set
from rlhf_jax.labels.label_sources import TeacherSource
from rlhf_jax.losses.bradley_terry import bradley_terry_loss
from rlhf_jax.models.reward import MarkovianReward
from rlhf_jax.preferences.objectives import OBJECTIVES
from rlhf_jax.train import sweep
from rlhf_jax.train.reward import make_reward_update
from rlhf_jax.train.state import make_optimizer
from rlhf_jax.train.sweep_data import make_sweep_data

BATCH, EVAL_EVERY, EVALS = 8, 5, 4
LOSS = ml_collections.ConfigDict(dict(margin=0.0, label_smoothing=0.0, center_coef=1e-3))
OPT = ml_collections.ConfigDict(dict(learning_rate=3e-2, schedule="cosine", warmup_steps=3, weight_decay=1e-4,
                                     grad_clip=1.0))


def _program(inputs):
    model = MarkovianReward(num_tasks=4, num_embodiments=3, hidden=(16,))
    tx = make_optimizer(OPT, total_steps=BATCH * EVALS * EVAL_EVERY)
    sample = sweep.gather_segments(inputs.data, jnp.zeros((1,), jnp.int32))
    init = sweep.init_sweep_state(model, tx, inputs.grid, sample, inputs.norm, base_seed=0)
    init_host = jax.device_get(init)  # the chunk donates its input
    chunk = sweep.make_sweep_chunk(model, tx, LOSS, batch_size=BATCH, eval_every=EVAL_EVERY,
                                   evals_per_chunk=EVALS, bootstrap=True)
    final, history = chunk(init, sweep.point_spec(inputs.grid), inputs.data)
    return inputs, model, tx, init_host, jax.device_get(final), jax.device_get(history)


@pytest.fixture(scope="module")
def program(tiny_preference_data):
    return _program(make_sweep_data(tiny_preference_data, ("oracle", "mistake"), (25, 50), (0, 1), members=2))


@pytest.fixture(scope="module")
def weighted_program(tiny_preference_data):
    """Labels weighted by the confidence their annotator reported (σ(β|Δ|) for `stochastic`)."""
    return _program(make_sweep_data(tiny_preference_data, ("stochastic",), (25, 50), (0, 1), members=2,
                                    confidence_weights=True))


def _train_alone(inputs, model, tx, member, cond, n, seed_index):
    """The point's recipe written out step by step with the plain update."""
    data = inputs.data
    update = jax.jit(make_reward_update(LOSS, model, tx))
    train = jax.tree.map(jnp.asarray, member.train)
    best = dict(params=train.params, loss=np.inf, step=0)
    drawn = []
    val = sweep.gather_segments(data, data.val_rows)
    for step in range(1, EVAL_EVERY * EVALS + 1):
        rng, key = jax.random.split(train.rng)
        pool = data.order[cond, seed_index, jax.random.randint(key, (BATCH,), 0, n)]
        drawn.append(np.asarray(pool))
        a, b = sweep.gather_segments(data, data.train_a[pool]), sweep.gather_segments(data, data.train_b[pool])
        weight = bootstrap_weights(member.boot_key, pool)
        if data.train_weight is not None:  # the labels' confidence weights, on top of the bootstrap
            weight = weight * data.train_weight[cond, pool]
        batch = {"obs_a": a["obs"], "act_a": a["act"], "task_a": a["task"], "embodiment_a": a["embodiment"],
                 "obs_b": b["obs"], "act_b": b["act"], "task_b": b["task"], "embodiment_b": b["embodiment"],
                 "label": data.train_label[cond, pool], "weight": weight}
        train, _ = update(train.replace(rng=rng), batch)
        if step % EVAL_EVERY == 0:
            ret, _ = model.apply(train.variables, val["obs"], val["act"], val["task"], val["embodiment"])
            _, m = bradley_terry_loss(ret[data.val_a], ret[data.val_b], data.val_label[cond], data.val_weight[cond])
            if -m["log_likelihood"] < best["loss"]:
                best = dict(params=train.params, loss=float(-m["log_likelihood"]), step=step)
    return train, best, np.concatenate(drawn)


@pytest.mark.parametrize("p, k", [(1, 1), (6, 0)])  # (oracle, N=25, seed 1), (mistake, N=50, seed 0)
def test_a_sweep_point_equals_the_point_trained_alone(program, p, k):
    inputs, model, tx, init, final, history = program
    cond, n, seed_index = inputs.grid.points[p]
    member = jax.tree.map(lambda x: x[p, k], init)
    train, best, drawn = _train_alone(inputs, model, tx, member, cond, n, seed_index)
    # Nested subset: every pair drawn is among the first N usable pairs of the seed's order.
    assert set(drawn.tolist()) <= set(np.asarray(inputs.data.order[cond, seed_index, :n]).tolist())
    close = lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-4, atol=2e-5)  # noqa: E731
    jax.tree.map(close, jax.tree.map(lambda x: x[p, k], final.train.params), train.params)
    jax.tree.map(close, jax.tree.map(lambda x: x[p, k], final.best_params), best["params"])
    assert int(final.best_step[p, k]) == best["step"]
    np.testing.assert_allclose(final.best_val_loss[p, k], best["loss"], rtol=1e-4)
    assert history["loss"].shape == (EVAL_EVERY * EVALS, len(inputs.grid.points), inputs.grid.members)


def test_points_differ_where_their_recipes_differ(program):
    """Paired init across N, but other subsets, labels and bootstrap draws give other models."""
    inputs, _, _, init, final, _ = program
    first = lambda tree, p, k: np.concatenate([np.ravel(x[p, k]) for x in jax.tree.leaves(tree)])  # noqa: E731
    np.testing.assert_array_equal(first(init.train.params, 0, 0), first(init.train.params, 2, 0))  # N=25 vs 50
    assert not np.allclose(first(final.train.params, 0, 0), first(final.train.params, 2, 0))
    assert not np.allclose(first(init.train.params, 0, 0), first(init.train.params, 0, 1))  # members


def test_confidence_weights_enter_the_loss_as_the_formula_says(weighted_program):
    """BT with weights: loss = Σ w_i·nll_i / Σ w_i, w = bootstrap × reported confidence — the
    weighted program equals the point trained alone with exactly those weights."""
    inputs, model, tx, init, final, _ = weighted_program
    w = np.asarray(inputs.data.train_weight[0])
    assert 0.5 <= w.min() < 0.9 < w.max() <= 1.0  # σ(β|Δ|) of a β = 1 teacher varies over pairs
    p, k = 3, 1  # stochastic, N=50, seed 1
    cond, n, seed_index = inputs.grid.points[p]
    train, best, _ = _train_alone(inputs, model, tx, jax.tree.map(lambda x: x[p, k], init), cond, n, seed_index)
    close = lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-4, atol=2e-5)  # noqa: E731
    jax.tree.map(close, jax.tree.map(lambda x: x[p, k], final.train.params), train.params)
    # ... and the weights matter: the same point without them trains another model.
    unweighted = inputs.data.replace(train_weight=None)
    train_u, _, _ = _train_alone(dataclasses.replace(inputs, data=unweighted), model, tx,
                                 jax.tree.map(lambda x: x[p, k], init), cond, n, seed_index)
    leaves = lambda t: np.concatenate([np.ravel(x) for x in jax.tree.leaves(t)])  # noqa: E731
    assert not np.allclose(leaves(train.params), leaves(train_u.params), atol=1e-4)


def test_surf_pseudo_labels_appear_only_above_tau():
    from rlhf_jax.losses.bradley_terry import surf_pseudo_labels
    d = jnp.array([-4.0, -1.0, -0.1, 0.0, 0.1, 1.0, 4.0])
    label, mask = surf_pseudo_labels(d, jnp.zeros_like(d), 0.95)
    p = 1 / (1 + np.exp(-np.asarray(d)))
    np.testing.assert_array_equal(np.asarray(mask), (np.maximum(p, 1 - p) > 0.95).astype(np.float32))
    assert np.asarray(mask).tolist() == [1, 0, 0, 0, 0, 0, 1]  # σ(4) = 0.982 > 0.95 > σ(1) = 0.731
    np.testing.assert_array_equal(np.asarray(label), (p > 0.5).astype(np.float32))


def test_surf_program_trains_a_non_surf_condition_exactly_as_the_plain_program(tiny_episodes, tiny_dataset_dir):
    """One SURF program, two conditions: the one with SURF off equals the plain program on the
    centre windows (crops fall back to the centre, the unlabelled term weighs 0); the other differs."""
    from rlhf_jax.data import dataset
    margin = 2
    pref = dataset.load_preference_data("tiny", path=tiny_dataset_dir, episodes=tiny_episodes, margin=margin)
    length = pref.segments.length
    assert pref.segments.obs.shape[1] == length + 2 * margin
    inputs = make_sweep_data(pref, ("oracle", "oracle"), (25, 50), (0,), members=1)
    surf = sweep.SurfSpec(tau=0.6, lam=1.0, mu=2, margin=margin, length=length)
    data = inputs.data.replace(surf_on=jnp.asarray([0.0, 1.0]))
    model = MarkovianReward(num_tasks=4, num_embodiments=3, hidden=(16,))
    tx = make_optimizer(OPT, total_steps=BATCH * EVALS * EVAL_EVERY)
    sample = sweep.window(sweep.gather_segments(data, jnp.zeros((1,), jnp.int32)), margin, length)
    run = lambda s, d: jax.device_get(sweep.make_sweep_chunk(  # noqa: E731
        model, tx, LOSS, batch_size=BATCH, eval_every=EVAL_EVERY, evals_per_chunk=EVALS, bootstrap=True,
        surf=s)(sweep.init_sweep_state(model, tx, inputs.grid, sample, inputs.norm, base_seed=0),
                sweep.point_spec(inputs.grid), d)[0])
    with_surf = run(surf, data)
    centre = data.replace(seg_obs=data.seg_obs[:, margin:margin + length], seg_act=data.seg_act[:, margin:margin + length],
                          surf_on=None)
    plain = run(None, centre)
    leaves = lambda t, p: np.concatenate([np.ravel(x[p, 0]) for x in jax.tree.leaves(t)])  # noqa: E731
    for p, (c, _, _) in enumerate(inputs.grid.points):
        same = np.allclose(leaves(with_surf.train.params, p), leaves(plain.train.params, p), rtol=2e-4, atol=2e-5)
        assert same == (c == 0), (p, c)


def test_blocked_evaluation_equals_scoring_all_segments_at_once(tiny_preference_data):
    """Validation and scoring in blocks (a block size that does not divide the rows, so the
    last block is padded) give the same numbers as one pass over every segment, and the same
    training run: evaluation memory can be bounded without changing results."""
    inputs = make_sweep_data(tiny_preference_data, ("oracle",), (25, 50), (0,), members=2)
    model = MarkovianReward(num_tasks=4, num_embodiments=3, hidden=(16,))
    tx = make_optimizer(OPT, total_steps=BATCH * EVALS * EVAL_EVERY)
    sample = sweep.gather_segments(inputs.data, jnp.zeros((1,), jnp.int32))
    points = sweep.point_spec(inputs.grid)
    n_val_rows = int(inputs.data.val_rows.shape[0])
    assert n_val_rows > 7 and n_val_rows % 7
    runs = {}
    for block in (None, 7):
        init = sweep.init_sweep_state(model, tx, inputs.grid, sample, inputs.norm, base_seed=0)
        chunk = sweep.make_sweep_chunk(model, tx, LOSS, batch_size=BATCH, eval_every=EVAL_EVERY,
                                       evals_per_chunk=EVALS, bootstrap=True, eval_block=block)
        final, history = jax.device_get(chunk(init, points, inputs.data))
        rows = jnp.asarray(inputs.test_rows)
        scores = sweep.make_segment_scorer(model, eval_block=block)(final.best_params, inputs.norm, inputs.data, rows)
        val = sweep.make_validation(model, eval_block=block)(
            final.best_params, final.train.norm, points.condition, inputs.data)
        runs[block] = (history, np.asarray(scores), jax.device_get(val), final.best_step)
    full, blocked = runs[None], runs[7]
    for key in ("val_loss", "val_accuracy", "loss"):
        np.testing.assert_allclose(blocked[0][key], full[0][key], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(blocked[1], full[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(blocked[2][0], full[2][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(blocked[3], full[3])


def test_points_trained_in_groups_equal_the_whole_program(program):
    inputs, model, tx, init_host, final, history = program
    chunk = sweep.make_sweep_chunk(model, tx, LOSS, batch_size=BATCH, eval_every=EVAL_EVERY,
                                   evals_per_chunk=EVALS, bootstrap=True)
    groups = 2 if len(inputs.grid.points) % 2 == 0 else 3
    grouped, grouped_history = sweep.grouped_chunk(chunk, groups)(
        jax.tree.map(jnp.asarray, init_host), sweep.point_spec(inputs.grid), inputs.data)
    # Equal to float rounding: XLA vectorises a slice of the points differently from all of them.
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    close(jax.device_get(grouped_history["loss"]), history["loss"])
    close(jax.device_get(grouped_history["val_loss"]), history["val_loss"])
    jax.tree.map(close, jax.device_get(grouped.best_params), final.best_params)


def test_the_speed_options_leave_the_program_as_it_is(program):
    """fused_gather (one gather for both sides of the pairs) and donate=False (the input states
    stay alive) are speed options of benchmarks.sweep_levers: the same history and models."""
    inputs, model, tx, init_host, final, history = program
    chunk = sweep.make_sweep_chunk(model, tx, LOSS, batch_size=BATCH, eval_every=EVAL_EVERY,
                                   evals_per_chunk=EVALS, bootstrap=True, fused_gather=True, donate=False)
    init = jax.tree.map(jnp.asarray, init_host)
    got, got_history = chunk(init, sweep.point_spec(inputs.grid), inputs.data)
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    close(jax.device_get(got_history["loss"]), history["loss"])
    close(jax.device_get(got_history["val_loss"]), history["val_loss"])
    jax.tree.map(close, jax.device_get(got.best_params), final.best_params)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(init), init_host)  # not donated: still readable


def _scheduled(inputs, model, tx, init_host, masks):
    """The scheduled chunk run over ``masks`` [chunks, steps + 1] one chunk after another."""
    chunk = sweep.make_sweep_chunk(model, tx, LOSS, batch_size=BATCH, eval_every=EVAL_EVERY,
                                   evals_per_chunk=EVALS, bootstrap=True, scheduled=True)
    states, histories = jax.tree.map(jnp.asarray, init_host), []
    for mask in masks:
        states, hist = chunk(states, sweep.point_spec(inputs.grid), inputs.data, jnp.asarray(mask))
        histories.append(jax.device_get(hist))
    return jax.device_get(states), histories


def test_scheduled_chunk_on_the_linear_schedule_is_the_linear_program(program):
    from rlhf_jax.train import eval_schedule

    inputs, model, tx, init_host, final, history = program
    steps = eval_schedule.eval_steps(EVAL_EVERY * EVALS, EVAL_EVERY, "linear")
    for chunks in (1, 2):  # one chunk, or two in turn (as a resumed run): the same numbers
        size = EVAL_EVERY * EVALS // chunks
        masks = eval_schedule.chunk_masks(steps, size, chunks)
        states, hists = _scheduled(inputs, model, tx, init_host, masks)
        close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # noqa: E731
        close(np.concatenate([h["loss"] for h in hists]), history["loss"])
        val = np.concatenate([h["val_loss"][m] for h, m in zip(hists, masks)])
        close(val, history["val_loss"])
        assert np.isnan(np.concatenate([h["val_loss"][~m] for h, m in zip(hists, masks)])).all()
        np.testing.assert_array_equal(states.best_step, final.best_step)
        jax.tree.map(close, states.best_params, final.best_params)


def test_step_0_evaluation_lets_selection_keep_the_untrained_model(program):
    """With step 0 in the schedule, the best validation loss is at most the untrained model's, and
    a point that selects step 0 keeps exactly its initial parameters."""
    from rlhf_jax.train import eval_schedule

    inputs, model, tx, init_host, _, _ = program
    total = EVAL_EVERY * EVALS
    steps = eval_schedule.eval_steps(total, EVAL_EVERY, "log")
    masks = eval_schedule.chunk_masks(steps, total, 1)
    states, hists = _scheduled(inputs, model, tx, init_host, masks)
    init_loss, _ = jax.device_get(sweep.make_validation(model)(
        init_host.train.params, init_host.train.norm, sweep.point_spec(inputs.grid).condition, inputs.data))
    np.testing.assert_allclose(hists[0]["val_loss"][0], init_loss, rtol=1e-5)
    assert np.all(states.best_val_loss <= init_loss + 1e-6)
    assert set(np.unique(states.best_step)) <= set(steps.tolist())
    at_zero = states.best_step == 0
    for leaf, start in zip(jax.tree.leaves(states.best_params), jax.tree.leaves(init_host.train.params)):
        np.testing.assert_array_equal(leaf[at_zero], start[at_zero])


def test_per_objective_heads_equal_each_objective_trained_alone(tiny_preference_data):
    """Objectives are one more stretch of the points axis: each head of a sweep over (task, safety,
    smoothness) equals the sweep of its objective alone (same labels, keys and program), while the
    objectives' labels differ, so the heads do."""
    objectives = ("task", "safety", "smoothness")
    together = _program(make_sweep_data(tiny_preference_data, ("mistake",), (25, 50), (0,), members=2,
                                        objectives=objectives))
    inputs, final = together[0], together[4]
    assert inputs.grid.conditions == tuple(f"mistake@{o}" for o in objectives)
    per_objective = len(inputs.grid.points) // len(objectives)
    close = lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-4, atol=2e-5)  # noqa: E731
    for i, o in enumerate(objectives):
        alone_inputs, _, _, _, alone, _ = _program(make_sweep_data(tiny_preference_data, ("mistake",), (25, 50), (0,),
                                                                   members=2, objectives=(o,)))
        np.testing.assert_array_equal(np.asarray(inputs.data.train_label[i]),
                                      np.asarray(alone_inputs.data.train_label[0]))
        np.testing.assert_array_equal(inputs.test_label_by_condition[f"mistake@{o}"],
                                      alone_inputs.test_label_by_condition[f"mistake@{o}"])
        heads = slice(i * per_objective, (i + 1) * per_objective)
        jax.tree.map(close, jax.tree.map(lambda x: x[heads], final.best_params), alone.best_params)
        np.testing.assert_array_equal(final.best_step[heads], alone.best_step)
    labels = np.asarray(inputs.data.train_label)
    assert (labels[0] != labels[1]).mean() > 0.1 and (labels[0] != labels[2]).mean() > 0.1
    # Each head is scored against its own objective: the oracle's sign of R_o differences of the
    # test pairs, written out from the components (not the gold total's labels).
    seg, test = tiny_preference_data.segments, tiny_preference_data.test
    for o in objectives:
        cols = [list(seg.component_names).index(c) for c in OBJECTIVES[o]]
        r = (seg.gold_step_rewards[..., cols].astype(np.float64) * seg.gold_weights[cols]).sum((1, 2))
        diff = r[test.idx_a] - r[test.idx_b]
        decided = np.abs(diff) > 1e-9
        got = inputs.test_label_by_condition[f"mistake@{o}"]
        np.testing.assert_array_equal(got[decided], (diff > 0)[decided].astype(np.float32))
        np.testing.assert_allclose(inputs.test_gold_return_by_condition[f"mistake@{o}"], r[inputs.test_rows], rtol=1e-5,
                                   atol=1e-6)
    assert (inputs.test_label_by_condition["mistake@safety"] != np.asarray(test.label)).mean() > 0.1
    first = lambda tree, p: np.concatenate([np.ravel(x[p, 0]) for x in jax.tree.leaves(tree)])  # noqa: E731
    assert not np.allclose(first(final.train.params, 0), first(final.train.params, per_objective))


def _rubric_file(path, pref, preset, objectives, condition=0, edit=None):
    """A label file holding ``preset``'s answers and sub-answers to the train and validation pools,
    drawn with the seeds the sweep's condition ``condition`` uses (label_seed 0), so the file's
    rubric answers are the simulated sub-answers of the same pairs; ``edit(rows)`` may change rows
    (records() layout) before writing."""
    source = TeacherSource(preset, objectives)
    sets = [source.label(pref.segments, pool.idx_a, pool.idx_b, seed).label_set
            for pool, seed in ((pref.train, condition), (pref.val, 500 + condition))]
    ls = label_sets.concat(sets)
    if edit is not None:
        rows = ls.records()
        edit(rows)
        ls = label_sets.from_records(rows, ls.annotators, ls.meta)
    return write_label_set(str(path), ls)


def test_heads_from_a_label_files_rubric_equal_heads_from_the_same_simulated_sub_answers(tiny_preference_data,
                                                                                         tmp_path):
    """A label file whose rubric column holds a teacher's sub-answers (ties from `equal`, skipped
    sub-questions from `skip`) trains the heads the teacher's own sub-answers train: same usable
    pairs, labels, nested orders and validation weights, and the same heads to float tolerance."""
    objectives, pref = ("task", "safety"), tiny_preference_data
    files = [f"file:{_rubric_file(tmp_path / f'{p}.jsonl', pref, p, objectives, c)}"
             for c, p in enumerate(("equal", "skip"))]
    simulated = _program(make_sweep_data(pref, ("equal", "skip"), (25, 50), (0,), members=2, objectives=objectives))
    from_file = _program(make_sweep_data(pref, files, (25, 50), (0,), members=2, objectives=objectives))
    sim, got = simulated[0], from_file[0]
    assert got.grid.conditions == tuple(f"{f}@{o}" for f in files for o in objectives)
    sim_data, got_data = sim.data, got.data
    np.testing.assert_array_equal(np.asarray(got_data.order), np.asarray(sim_data.order))
    np.testing.assert_array_equal(np.asarray(got_data.val_weight), np.asarray(sim_data.val_weight))
    order, weight = np.asarray(sim_data.order), np.asarray(sim_data.val_weight) > 0
    for c in range(len(sim.grid.conditions)):
        used = order[c, 0][order[c, 0] >= 0]
        np.testing.assert_array_equal(np.asarray(got_data.train_label)[c, used],
                                      np.asarray(sim_data.train_label)[c, used])
        np.testing.assert_array_equal(np.asarray(got_data.val_label)[c, weight[c]],
                                      np.asarray(sim_data.val_label)[c, weight[c]])
    stats = list(sim.label_stats.values())
    assert stats[0]["tie_fraction"] > 0 and stats[2]["skip_fraction"] > 0  # ties and skips were exercised
    assert list(got.label_stats.values()) == stats and list(got.usable.values()) == list(sim.usable.values())
    close = lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-4, atol=2e-5)  # noqa: E731
    jax.tree.map(close, from_file[4].best_params, simulated[4].best_params)
    np.testing.assert_array_equal(from_file[4].best_step, simulated[4].best_step)
    # Provenance as for a scalar label file: the content hash of the file's answers on the pools
    # (rubric included), which are the simulated labelling's answers, so the hashes agree.
    for f, preset in zip(files, ("equal", "skip")):
        hashes = {got.label_sources[f"{f}@{o}"]["label_set_hash"] for o in objectives}
        assert hashes == {sim.label_sources[f"{preset}@task"]["label_set_hash"]}


def test_a_skipped_sub_question_is_left_out_of_its_head_not_read_as_a_tie(tiny_preference_data, tmp_path):
    """Safety left out of a third of the rows (train and validation): the safety head equals the head
    of the file without those rows, and the task head the head of the untouched file; the same rows
    answered "equal" instead make different labels and orders."""
    objectives, pref = ("task", "safety"), tiny_preference_data
    n_rows = len(pref.train.idx_a) + len(pref.val.idx_a)
    dropped = set(np.random.default_rng(0).choice(n_rows, n_rows // 3, replace=False).tolist())

    def skip_safety(rows):
        for i in dropped:
            rows[i]["rubric"] = {k: v for k, v in rows[i]["rubric"].items() if k != "safety"} or None

    def safety_tied(rows):
        for i in dropped:
            rows[i]["rubric"] = {**rows[i]["rubric"], "safety": 0.5}

    def without_rows(rows):
        rows[:] = [r for i, r in enumerate(rows) if i not in dropped]

    def path(name, edit):
        return f"file:{_rubric_file(tmp_path / f'{name}.jsonl', pref, 'mistake', objectives, 0, edit)}"

    def run(condition):
        return _program(make_sweep_data(pref, (condition,), (25, 50), (0,), members=2, objectives=objectives))

    skipped, whole, subset = run(path("skip", skip_safety)), run(path("whole", None)), run(path("subset", without_rows))
    half = len(skipped[0].grid.points) // 2  # task heads, then safety heads
    heads = lambda program, part: jax.tree.map(lambda x: x[part], program[4].best_params)  # noqa: E731
    close = lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-4, atol=2e-5)  # noqa: E731
    jax.tree.map(close, heads(skipped, slice(half, None)), heads(subset, slice(half, None)))
    jax.tree.map(close, heads(skipped, slice(None, half)), heads(whole, slice(None, half)))
    first_leaf = lambda program: np.asarray(jax.tree.leaves(heads(program, slice(half, None)))[0])  # noqa: E731
    assert not np.allclose(first_leaf(skipped), first_leaf(whole))  # the skips did change the safety head
    skipped_data = skipped[0].data
    np.testing.assert_array_equal(np.asarray(skipped_data.order)[1], np.asarray(subset[0].data.order)[1])
    np.testing.assert_array_equal(np.asarray(skipped_data.val_weight)[1], np.asarray(subset[0].data.val_weight)[1])
    assert skipped[0].label_stats[skipped[0].grid.conditions[1]]["skip_fraction"] > 0.25
    tied = make_sweep_data(pref, (path("tied", safety_tied),), (25, 50), (0,), members=2, objectives=objectives)
    tied_safety, skipped_safety = tied.grid.conditions[1], skipped[0].grid.conditions[1]
    assert tied.usable[tied_safety] == len(pref.train.idx_a) > skipped[0].usable[skipped_safety]
    assert not np.array_equal(np.asarray(tied.data.order)[1], np.asarray(skipped_data.order)[1])
    assert tied.label_stats[tied.grid.conditions[1]]["tie_fraction"] > 0.25


def test_an_objective_without_validation_sub_answers_is_refused(tiny_preference_data, tmp_path):
    """Sub-answers on training pairs only: no validation pairs to select the head on, as a scalar
    file without validation labels."""
    pref, n_train = tiny_preference_data, len(tiny_preference_data.train.idx_a)

    def no_val_safety(rows):
        for row in rows[n_train:]:
            row["rubric"] = {k: v for k, v in row["rubric"].items() if k != "safety"} or None

    path = _rubric_file(tmp_path / "train_only.jsonl", pref, "mistake", ("task", "safety"), 0, no_val_safety)
    with pytest.raises(SplitError, match=r"field 'rubric\['safety'\]': expected answers on some of the \d+ pairs"):
        make_sweep_data(pref, (f"file:{path}",), (25, 50), (0,), members=2, objectives=("task", "safety"))
    make_sweep_data(pref, (f"file:{path}",), (25, 50), (0,), members=2, objectives=("task",))
