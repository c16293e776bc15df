"""The rubric's objectives: groups of gold components, per-objective returns and the simulated
sub-answers, checked against the oracle on hand-built segments."""
from __future__ import annotations

import math
import types

import numpy as np
import pytest

from rlhf_jax.envs.simulator import REWARD_COMPONENTS, gold_reward, rubric_vector
from rlhf_jax.errors import ConfigError
from rlhf_jax.preferences import annotators as A
from rlhf_jax.preferences import objectives as O

C = len(REWARD_COMPONENTS)
P = 20_000


def steps_table(steps: np.ndarray):
    """A segment table of per-step components [S, T, C] under the gold rubric."""
    steps = np.asarray(steps, np.float32)
    return types.SimpleNamespace(gold_step_rewards=steps, component_names=REWARD_COMPONENTS,
                                 gold_weights=rubric_vector(), gold_components=steps.sum(1),
                                 gold_return=np.asarray(gold_reward(steps.sum(1))))


@pytest.fixture(scope="module")
def random_table():
    """S = 300 segments of T = 6 steps; components rounded to quarters so some returns tie."""
    rng = np.random.default_rng(0)
    return steps_table(np.round(4 * rng.normal(size=(300, 6, C))) / 4)


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 300, P)
    return a, (a + 1 + rng.integers(0, 299, P)) % 300


def returns(table, objective):
    """R_o [S] written out: Σ_t Σ_{c in o} w_c r[t, c]."""
    cols = [REWARD_COMPONENTS.index(c) for c in O.OBJECTIVES[objective]]
    w = rubric_vector()[cols].astype(np.float64)
    return (table.gold_step_rewards[..., cols].astype(np.float64) * w).sum((1, 2))


def test_objectives_partition_the_components_and_their_returns_add_up_to_the_gold_return(random_table):
    named = [c for o in O.OBJECTIVE_NAMES for c in O.OBJECTIVES[o]]
    assert sorted(named) == sorted(REWARD_COMPONENTS) and len(named) == C
    np.testing.assert_allclose(O.objective_weights().sum(0), rubric_vector())
    per = O.objective_returns(random_table.gold_components)  # [S, O]
    np.testing.assert_allclose(per.sum(-1), random_table.gold_return, rtol=1e-5, atol=1e-4)
    for j, o in enumerate(O.OBJECTIVE_NAMES):
        np.testing.assert_allclose(per[:, j], returns(random_table, o), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(O.objective_table(random_table, o).gold_return, returns(random_table, o),
                                   rtol=1e-5, atol=1e-5)


def test_unknown_or_repeated_objectives_are_refused():
    with pytest.raises(ConfigError, match="field 'objectives'"):
        O.check_objectives(("task", "comfort"))
    with pytest.raises(ConfigError, match="distinct objectives"):
        O.check_objectives(("task", "task"))


def test_oracle_answers_each_sub_question_from_its_own_components():
    """a reaches the goal through the obstacle, b stays clear and short of it; equally jerky."""
    steps = np.zeros((2, 3, C), np.float32)
    idx = REWARD_COMPONENTS.index
    steps[0, :, idx("progress")] = 0.2
    steps[0, 1, idx("collision")] = -1.0
    steps[1, :, idx("progress")] = 0.05
    steps[1, :, idx("time")] = -1.0
    steps[:, :, idx("jerk")] = -3.0
    table = steps_table(steps)
    answers = O.sub_answers("oracle", table, [0], [1], seed=0)
    got = {o: float(lab.label[0]) for o, lab in answers.items()}
    assert got == {"task": 1.0, "safety": 0.0, "smoothness": 0.5, "efficiency": 1.0}
    assert O.rubric_answers(answers) == [got]
    # The main question weighs everything: a's progress (+4.5) outweighs its collision (-0.5).
    assert A.label_pairs("oracle", table, [0], [1], seed=0).label[0] == 1.0


def test_noiseless_sub_answers_are_the_sign_of_the_objective_return_difference(random_table, pairs):
    a, b = pairs
    answers = O.sub_answers("oracle", random_table, a, b, seed=3)
    for o, lab in answers.items():
        r = returns(random_table, o)
        decided = np.abs(r[a] - r[b]) > 1e-9  # below: a tie up to the summation order
        np.testing.assert_array_equal(lab.label[decided], (r[a] > r[b])[decided].astype(np.float32), err_msg=o)
        assert np.isin(lab.label[~decided], (0.0, 0.5, 1.0)).all() and lab.keep.all()
    # Ties exist (smoothness has few distinct values) and the oracle calls most of them equal.
    r = returns(random_table, "smoothness")
    ties = np.abs(r[a] - r[b]) <= 1e-9
    assert ties.sum() > 100 and np.mean(answers["smoothness"].label[ties] == 0.5) > 0.9


@pytest.mark.parametrize("objective", O.OBJECTIVE_NAMES)
def test_a_boltzmann_teacher_prefers_a_with_sigma_of_its_scaled_objective_difference(random_table, pairs, objective):
    a, b = pairs
    beta = 2.0
    lab = O.sub_answers(A.Teacher("boltz", beta=beta), random_table, a, b, seed=5, objectives=(objective,))[objective]
    r = returns(random_table, objective)
    s = np.mean(np.abs(r))
    p = 1.0 / (1.0 + np.exp(-beta * (r[a] - r[b]) / s))
    p = np.where(r[a] == r[b], 0.5, p)
    tol = 4.5 * math.sqrt(np.sum(p * (1 - p))) / P
    assert abs(lab.label.mean() - p.mean()) < tol
    # Within the pairs it finds close (p near 1/2) it is near a coin flip; far apart, near the oracle.
    close, far = np.abs(p - 0.5) < 0.1, np.abs(p - 0.5) > 0.45
    assert abs(lab.label[close].mean() - p[close].mean()) < 4.5 * math.sqrt(0.25 / close.sum())
    far_tol = 4.5 * math.sqrt(np.sum(p[far] * (1 - p[far]))) / far.sum() + 1e-3
    assert abs(lab.label[far].mean() - p[far].mean()) < far_tol


def test_mistakes_flip_eps_of_each_sub_answer_on_its_own_stream(random_table, pairs):
    a, b = pairs
    oracle = O.sub_answers("oracle", random_table, a, b, seed=0)
    slips = O.sub_answers("mistake", random_table, a, b, seed=7)
    flips = {}
    for o in O.OBJECTIVE_NAMES:
        decided = oracle[o].label != 0.5
        flips[o] = slips[o].label[decided] != oracle[o].label[decided]
        assert abs(flips[o].mean() - 0.1) < 4.5 * math.sqrt(0.09 / decided.sum()), o
    # Independent streams: the task and safety slips coincide about ε² of the time, not ε.
    both = np.mean((slips["task"].label != oracle["task"].label) & (slips["safety"].label != oracle["safety"].label))
    assert both < 0.03


def test_the_annotator_of_the_main_question_answers_every_sub_question(random_table, pairs):
    a, b = pairs[0][:500], pairs[1][:500]
    main = A.label_pairs("noisy_pool", random_table, a, b, seed=2)
    answers = O.sub_answers("noisy_pool", random_table, a, b, seed=2, annotator=main.annotator)
    for lab in answers.values():
        np.testing.assert_array_equal(lab.annotator, main.annotator)
        assert [p["annotator_id"] for p in lab.provenance] == [p["annotator_id"] for p in main.provenance]


def test_teacher_source_stores_sub_answers_in_the_rubric_column(tiny_preference_data, tmp_path):
    from rlhf_jax.labels import label_set_io
    from rlhf_jax.labels.label_sources import TeacherSource

    pref = tiny_preference_data
    a, b = pref.train.idx_a[:120], pref.train.idx_b[:120]
    plain = TeacherSource("mistake").label(pref.segments, a, b, seed=4)
    lab = TeacherSource("mistake", objectives=("task", "safety")).label(pref.segments, a, b, seed=4)
    np.testing.assert_array_equal(lab.label, plain.label)  # sub-questions leave the main answers alone
    assert plain.sub_answers is None and all(r is None for r in plain.label_set.rubric)
    for o in ("task", "safety"):
        want = O.sub_answers("mistake", pref.segments, a, b, seed=4, objectives=(o,))[o].label
        np.testing.assert_array_equal(lab.sub_answers[o].label, want)
        assert [r[o] for r in lab.label_set.rubric] == want.tolist()
    back = label_set_io.read_label_set(label_set_io.write_label_set(str(tmp_path / "labels.jsonl"), lab.label_set))
    assert back.rubric == lab.label_set.rubric


def test_gold_jerk_of_every_step_but_a_segments_first_is_a_function_of_this_and_the_previous_step(
        tiny_preference_data):
    """The smoothness objective's cap: jerk_t = -Σ_j ((qd_{t+1} − 2 qd_t + qd_{t−1}) / qd_max_j)²
    written from the step features (q_t, qd_t, a_t: qd_{t+1} is the realised clipped command) and
    the previous step's qd — reproduced exactly for t ≥ 1; step t alone lacks qd_{t−1}."""
    from rlhf_jax.envs.robots import EMBODIMENTS, ROBOTS
    from rlhf_jax.features import part_slices

    seg = tiny_preference_data.segments
    dt = 0.05  # configs/dataset.py:tiny (rlhf_jax.data.variants)
    sl = part_slices("joint")
    worst, first_step_off = 0.0, 0
    for i in range(0, len(seg), 7):
        robot = ROBOTS[EMBODIMENTS[int(seg.embodiment_id[i])]]
        n, qd_max = robot.dof, robot.qd_max
        q, qd = seg.obs[i, :, sl["q"]][:, :n], seg.obs[i, :, sl["qd"]][:, :n]
        q_next = np.clip(q + np.clip(seg.act[i, :, :n], -qd_max, qd_max) * dt, robot.q_min, robot.q_max)
        previous = np.concatenate([qd[:1], qd[:-1]])  # the first step stands in for its predecessor
        jerk = -np.sum(np.square(((q_next - q) / dt - 2 * qd + previous) / qd_max), -1)
        gold = seg.gold_step_rewards[i, :, REWARD_COMPONENTS.index("jerk")]
        worst = max(worst, float(np.max(np.abs(jerk[1:] - gold[1:]) / (1 + np.abs(gold[1:])))))
        first_step_off += not np.isclose(jerk[0], gold[0], rtol=1e-4, atol=1e-6)
    assert worst < 1e-5
    assert first_step_off > 0  # segments that start mid-episode: their first jerk needs qd_{t-2}


def test_objective_estimates_leave_out_what_the_inputs_do_not_determine(tiny_preference_data):
    from rlhf_jax.evaluation.markovian_estimate import objective_estimates

    est = objective_estimates(tiny_preference_data, O.OBJECTIVE_NAMES)
    assert est["smoothness"]["per_step"] == 0.5  # all of smoothness is jerk: nothing left to rank by
    assert 0.5 < est["smoothness"]["previous_step"] < 1.0  # only first-step jerks are missing
    for o in ("task", "safety", "efficiency"):  # no jerk in them: their oracle's own ranking
        assert est[o] == {"per_step": 1.0, "previous_step": 1.0}, o
