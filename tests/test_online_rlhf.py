"""Online RLHF: the label window, the latency queue, the JAX annotator, the compiled program
(online = offline when the whole budget comes first; kill + resume = uninterrupted; latency
delays labels by exactly d updates; a vmapped run matches the same run alone; the eviction
variant evicts), the pipeline's footing (its PPO settings, its evaluation states, a PPO-on-gold
reference sharing each seed's PPO key) and the report (fraction recovered, parity).

The programs are compiled once per module (tiny shapes: 8 environments × 10 steps, 6 updates).
"""
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.online_rlhf import get_config
from experiments import doc_blocks, online_report, online_rlhf
from rlhf_jax.train import online as O
from rlhf_jax.train.online_ppo import make_online_program, make_schedule, random_reference

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny(**online):
    c = get_config("tiny")
    c.online.update(online)
    return c


# --- Pure pieces ------------------------------------------------------------------------------------


def test_window_holds_exactly_the_C_most_recent_labels_in_order():
    cap, pushed = 5, []
    buf = O.ring_init({"x": jnp.zeros((1, 2)), "label": jnp.zeros((1,))}, cap)
    rng = np.random.default_rng(0)
    for n in (3, 4, 1, 9, 2, 0, 6):  # includes a push larger than the window and an empty one
        x = rng.normal(size=(max(n, 1), 2)).astype(np.float32)
        valid = rng.random(max(n, 1)) < 0.7 if n else np.zeros(1, bool)
        buf = O.ring_push(buf, {"x": jnp.asarray(x), "label": jnp.asarray(x[:, 0])}, jnp.asarray(valid))
        pushed += list(x[valid])
        items, ok = O.ring_window(buf)
        expect = np.asarray(pushed[-cap:])
        assert int(buf.count) == len(pushed)
        assert int(ok.sum()) == min(len(pushed), cap) and bool(ok[:len(expect)].all())
        np.testing.assert_array_equal(np.asarray(items["x"])[:len(expect)], expect.reshape(-1, 2))
    # Sampling only returns items of the window.
    draw, w = O.ring_sample(buf, jax.random.key(0), 50)
    assert {tuple(r) for r in np.asarray(draw["x"])} <= {tuple(r) for r in expect} and bool((w == 1).all())


@pytest.mark.parametrize("delay", [0, 1, 3])
def test_latency_queue_delays_by_exactly_d_updates(delay):
    queue = O.queue_init({"v": jnp.zeros((2,))}, delay)
    for t in range(8):
        items, valid = {"v": jnp.full((2,), float(t))}, jnp.asarray([t % 2 == 0, True])
        queue, out, ok = O.queue_step(queue, items, valid)
        if t < delay:
            assert not bool(ok.any())
        else:
            np.testing.assert_array_equal(np.asarray(out["v"]), float(t - delay))
            np.testing.assert_array_equal(np.asarray(ok), [(t - delay) % 2 == 0, True])


def test_boltzmann_annotator_matches_the_teacher_model():
    ann = O.Annotator(weights=np.ones(1, np.float32), beta=float("inf"), eps=0.0, gamma=1.0)
    rc_a = jnp.asarray([[[1.0]], [[0.0]], [[2.0]]])
    rc_b = jnp.asarray([[[0.0]], [[1.0]], [[2.0]]])
    np.testing.assert_array_equal(np.asarray(O.boltzmann_label(jax.random.key(0), ann, rc_a, rc_b, 1.0)), [1, 0, 0.5])
    # β = 1 with scale s: P(a) = σ(Δ/s); ε flips the decided labels.
    n = 20_000
    a, b = jnp.full((n, 1, 1), 1.0), jnp.zeros((n, 1, 1))
    p = float(O.boltzmann_label(jax.random.key(1), ann._replace(beta=1.0), a, b, 2.0).mean())
    assert abs(p - 1 / (1 + np.exp(-0.5))) < 0.015, p
    p = float(O.boltzmann_label(jax.random.key(2), ann._replace(eps=0.25), a, b, 2.0).mean())
    assert abs(p - 0.75) < 0.015, p


def test_schedules_spend_the_same_budget():
    c = get_config("quick")
    off, on = make_schedule(c, "offline"), make_schedule(c, "online")
    assert off.initial == c.online.budget and off.collect == () and off.capacity == c.online.budget
    assert on.initial + on.per_collect * len(on.collect) == c.online.budget
    # rm_every = 3,000 environment steps per environment = every 60 updates of 50 steps; the last
    # update's collection could no longer change the reward, so it is not made.
    assert on.collect == tuple(range(59, 540, 60)) and on.per_collect == 200 and on.initial == 200
    c.online.latency = 60  # labels that would arrive at or after the last update are not collected
    assert make_schedule(c, "online").collect == tuple(range(59, 480, 60))
    assert make_schedule(c, "gold").budget == 0


@pytest.mark.parametrize("variant", ["quick_eviction", "tiny_eviction"])
def test_eviction_variants_evict_with_latency_and_an_active_query(variant):
    c = get_config(variant)
    online_rlhf.validate(c)
    off, on = make_schedule(c, "offline"), make_schedule(c, "online")
    assert on.initial + on.per_collect * len(on.collect) == off.initial == c.online.budget  # label parity
    assert c.online.window < c.online.budget and on.capacity == c.online.window
    assert c.online.latency > 0 and c.online.query != "uniform"
    # Labels that reach the window before the last update exceed its capacity: some are evicted.
    arrived = on.initial + on.per_collect * sum(a < on.num_updates - 1 for a in on.arrive)
    assert arrived > on.capacity


def test_quick_runs_on_the_pipeline_settings(monkeypatch):
    from configs import online_rlhf as online_config
    from configs import rlhf_pipeline

    pipe, c = rlhf_pipeline.get_config("quick"), get_config("quick")
    assert c.ppo.to_dict() == pipe.ppo.ppo.to_dict() and c.kl.to_dict() == pipe.ppo.kl.to_dict()
    assert c.model.to_dict() == pipe.ppo.model.to_dict() and c.log_every == pipe.ppo.log_every
    assert (c.env.robot, tuple(c.env.tasks)) == (pipe.arms[0], tuple(pipe.tasks)) == ("panda", ("reach_avoid",))
    assert (c.ppo.learning_rate, c.kl.beta, c.ppo.num_updates, c.ppo.num_envs) == (2e-5, 0.05, 600, 64)
    assert c.reward.ensemble_size == pipe.reward_model.members == 5
    assert c.reward.aggregation == pipe.eval.aggregation == "min"
    assert (c.eval.seed, c.eval.n_episodes) == (pipe.eval.seed, pipe.eval.n_episodes) == (1234, 64)
    assert tuple(c.seeds) == tuple(pipe.ppo_seeds) and len(c.seeds) == 5 and "gold" in c.modes
    assert not any(c.safety.weights)  # the pipeline's headline: no constraint penalties
    # Read from the pipeline's config, not copied by hand: a change there carries over.
    changed = rlhf_pipeline.get_config("quick")
    changed.ppo.ppo.learning_rate, changed.ppo.kl.beta, changed.eval.seed = 3e-5, 0.1, 99
    monkeypatch.setattr(online_config, "pipeline_quick", lambda: changed)
    c = get_config("quick_eviction")
    assert (c.ppo.learning_rate, c.kl.beta, c.eval.seed) == (3e-5, 0.1, 99)


# --- The compiled program ---------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def compilation_cache():
    """The persistent compilation cache: a rerun of this module skips most of its compiles."""
    from rlhf_jax.data import dataset

    dataset.enable_compilation_cache()


@pytest.fixture(scope="module")
def latency_run():
    """(config, program, final state, rows) of an uninterrupted online run with latency 1."""
    c = tiny(latency=1)
    program = make_online_program(c, "online")
    state, rows = online_rlhf.train_mode(program, c, None, log=lambda *a: None)
    return c, program, state, rows


def test_latency_option_delays_labels_by_exactly_d_updates(latency_run):
    c, program, _, rows = latency_run
    s = program.schedule
    assert s.delay == 1 and s.collect == (1, 3) and s.initial + s.per_collect * len(s.collect) == c.online.budget
    for seed in c.seeds:
        r = sorted((x for x in rows if x["seed"] == seed), key=lambda x: x["update"])
        collected = [x["labels_collected"] for x in r]
        arrived = [x["labels_arrived"] for x in r]
        assert arrived == [0.0] + collected[:-1] and sum(collected) > 0
        assert [x["refit"] for x in r] == [float(a > 0) for a in arrived]
        assert r[-1]["labels_spent"] == c.online.budget and r[-1]["window"] == c.online.budget


def test_killed_and_resumed_run_equals_the_uninterrupted_run(latency_run, tmp_path):
    c, program, state, rows = latency_run
    quiet = lambda *a: None
    ckpt = str(tmp_path / "ckpt")
    online_rlhf.train_mode(program, c, ckpt, log=quiet, max_chunks=1)  # killed after its first chunk
    resumed, resumed_rows = online_rlhf.train_mode(program, c, ckpt, resume=True, log=quiet)
    assert resumed_rows == rows
    for a, b in zip(jax.tree.leaves(jax.random.key_data(resumed.rng)), jax.tree.leaves(jax.random.key_data(state.rng))):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(resumed.rm.params), jax.tree.leaves(state.rm.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_online_with_whole_budget_up_front_equals_offline():
    c = tiny(initial_fraction=1.0, rm_every=10_000)  # f = 1 and rm_every longer than the run
    out = {}
    for mode in ("offline", "online"):
        program = make_online_program(c, mode)
        state, rows = online_rlhf.train_mode(program, c, None, log=lambda *a: None)
        out[mode] = program.schedule, [dict(r, mode=None) for r in rows], state
    (s_off, rows_off, st_off), (s_on, rows_on, st_on) = out["offline"], out["online"]
    assert s_on.collect == () and s_on.initial == s_off.initial == c.online.budget
    assert rows_on == rows_off
    for part in ("ppo", "rm"):  # the trained policy, value net and reward ensemble, bit for bit
        for a, b in zip(jax.tree.leaves(getattr(st_on, part).params), jax.tree.leaves(getattr(st_off, part).params)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow
def test_a_vmapped_seed_matches_the_same_seed_alone(latency_run):
    c, program, _, rows = latency_run
    alone = c.copy_and_resolve_references()
    alone.seeds = (c.seeds[1],)
    _, rows_alone = online_rlhf.train_mode(program, alone, None, log=lambda *a: None)
    together = [r for r in rows if r["seed"] == c.seeds[1]]
    other = [r for r in rows if r["seed"] == c.seeds[0]]
    assert len(together) == len(rows_alone) == len(other)
    exact = ("update", "labels_collected", "labels_arrived", "labels_spent", "window", "refit")
    for a, b in zip(together, rows_alone):  # what no float rounding touches: exactly equal
        assert [a[k] for k in exact] == [b[k] for k in exact]
    # The first update's gold return is the initial policy's rollouts under the seed's own keys,
    # before any reward fit or policy step: equal to float precision, and far from the other seed.
    np.testing.assert_allclose(together[0]["gold_return"], rows_alone[0]["gold_return"], rtol=1e-5)
    assert abs(other[0]["gold_return"] - rows_alone[0]["gold_return"]) > 0.15 * abs(rows_alone[0]["gold_return"])
    # Past that, batched and unbatched matmuls round differently and the reward fits amplify it:
    # the initial fit's Adam steps turn rounding-level gradient differences into full-size steps,
    # the members' minimum passes a changed member straight into the proxy (8 % apart at the first
    # update), and PPO carries it on. So each metric is held to the alone run relative to how far
    # the other seed is: measured, the mean distance to the alone run is 1.6 % (proxy), 3.5 % (gold)
    # and 15 % (KL) of the mean distance to the other seed. A run with the wrong keys or data would sit
    # about as far from the alone run as the other seed does.
    for k in ("gold_return", "kl", "proxy_return"):
        to_alone = np.mean([abs(a[k] - b[k]) for a, b in zip(together, rows_alone)])
        to_other = np.mean([abs(a[k] - o[k]) for a, o in zip(together, other)])
        assert to_alone < to_other / 3, (k, to_alone, to_other)


@pytest.mark.slow
def test_active_query_spends_the_same_budget():
    c = tiny(query="disagreement", oversampling=2.0)
    program = make_online_program(c, "online")
    _, rows = online_rlhf.train_mode(program, c, None, log=lambda *a: None)
    last = [r for r in rows if r["update"] == c.ppo.num_updates]
    assert all(r["labels_spent"] == c.online.budget and r["window"] == c.online.budget for r in last)
    assert all(np.isfinite(r["proxy_return"]) for r in rows)


# --- Command line and docs --------------------------------------------------------------------------


def test_eviction_variant_drops_the_oldest_labels_from_the_window():
    c = get_config("tiny_eviction")
    program = make_online_program(c, "online")
    s, cap = program.schedule, c.online.window
    first, _ = O.ring_window(jax.tree.map(lambda x: x[0], program.init(*online_rlhf.run_hparams(c)).window))
    state, rows = online_rlhf.train_mode(program, c, None, log=lambda *a: None)
    last = [r for r in rows if r["update"] == c.ppo.num_updates]
    assert all(r["labels_spent"] == c.online.budget and r["window"] == cap for r in last)
    assert all(r["labels_evicted"] == c.online.budget - cap > 0 for r in last)
    run0 = sorted((r for r in rows if r["seed"] == c.seeds[0]), key=lambda r: r["update"])
    assert [r["labels_arrived"] for r in run0] == [0.0] + [r["labels_collected"] for r in run0][:-1]  # latency 1
    # The initial labels were pushed first, so they are the first evicted: none is left.
    final, valid = O.ring_window(jax.tree.map(lambda x: x[0], state.window))
    kept = {np.asarray(x).tobytes() for x in np.asarray(final["obs_a"])[np.asarray(valid)]}
    initial = [np.asarray(x).tobytes() for x in np.asarray(first["obs_a"])[:s.initial]]
    assert int(valid.sum()) == cap and len(initial) == s.initial > 0 and not kept & set(initial)


# --- The pipeline's evaluation ----------------------------------------------------------------------


def test_evaluation_is_the_pipelines_and_deterministic():
    from configs import rlhf_pipeline
    from experiments.stages import point_eval

    c = get_config("quick")
    variables, policy = random_reference(c)
    sft = (policy, variables)
    once = online_rlhf.policy_episodes(c, policy, variables, sft)
    twice = online_rlhf.policy_episodes(c, policy, variables, sft)
    pipe = rlhf_pipeline.get_config("quick")
    pipeline = point_eval.policy_episodes(pipe, "panda", 0.05, None, sft, policy, variables)
    assert list(once) == ["panda/reach_avoid"] and once["panda/reach_avoid"]["components"].shape[0] == 64
    for other in (twice, pipeline):  # the same episodes, bit for bit: same states, deterministic actions
        for k in ("components", "proxy", "kl"):
            np.testing.assert_array_equal(once["panda/reach_avoid"][k], other["panda/reach_avoid"][k])
    c.eval.seed += 1  # the seed picks the initial states
    moved = online_rlhf.policy_episodes(c, policy, variables, sft)
    assert not np.array_equal(once["panda/reach_avoid"]["components"], moved["panda/reach_avoid"]["components"])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """(config, workdir, online.json, online.csv rows) of the tiny experiment, run once."""
    import csv
    import json

    workdir = tmp_path_factory.mktemp("online") / "run"
    assert online_rlhf.main(["online_rlhf", "--config", "configs/online_rlhf.py:tiny", "--workdir", str(workdir)]) == 0
    with open(workdir / "online.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return get_config("tiny"), workdir, json.loads((workdir / "online.json").read_text()), rows


@pytest.mark.slow
def test_tiny_experiment_writes_its_outputs_with_the_gold_reference(tiny_run):
    c, workdir, result, _ = tiny_run
    for name in ("online.csv", "online.json", "online_rlhf.png", "claims.md", "run_info.json"):
        assert (workdir / name).is_file(), name
    assert online_report.CLAIM in (workdir / "claims.md").read_text()
    assert result["evaluation"] == {"arm": "panda", "tasks": ["reach_avoid"], "seed": 1234, "episodes_per_task": 4,
                                    "actions": "deterministic"}
    assert set(result["modes"]) == {"offline", "online", "gold"}
    sft = result["sft"]["gold_return"]
    gold = [r["gold_return"] for r in result["modes"]["gold"]["runs"]]
    assert [r["seed"] for r in result["modes"]["gold"]["runs"]] == list(c.seeds)
    for mode in ("offline", "online"):
        m = result["modes"][mode]
        assert all("incident_rate" in r and "proxy_return" in r for r in m["runs"])
        f = m["fraction_recovered"]
        np.testing.assert_allclose(f["gain_gold"], np.mean(gold) - sft, rtol=1e-6)
        np.testing.assert_allclose(f["gain_rlhf"], np.mean([r["gold_return"] for r in m["runs"]]) - sft, rtol=1e-6)
    assert "incident_rate" not in result["modes"]["gold"]["runs"][0]  # gold has no proxy to approve with
    block = online_report.readme_table(str(workdir))
    assert "PPO on gold" in block and "parity holds" in block


@pytest.mark.slow
def test_tiny_modes_spend_equal_labels_and_steps_and_gold_shares_the_ppo_key(tiny_run):
    c, _, result, rows = tiny_run
    p = c.ppo
    steps = (p.num_updates + c.online.reference_rollouts) * p.num_envs * p.num_steps
    assert result["parity"]["equal"]
    for mode in ("offline", "online"):
        assert result["parity"]["labels"][mode] == [c.online.budget] * len(c.seeds)
        assert result["parity"]["env_steps"][mode] == [steps] * len(c.seeds)
    assert [r["labels"] for r in result["modes"]["gold"]["runs"]] == [0] * len(c.seeds)
    # The first update's rollout precedes any reward: every mode's run of a seed starts identically.
    first = {(r["mode"], r["seed"]): float(r["gold_return"]) for r in rows if r["update"] == "1"}
    for seed in c.seeds:
        assert first[("offline", str(seed))] == first[("online", str(seed))] == first[("gold", str(seed))]
    assert first[("gold", "0")] != first[("gold", "1")]


# --- The report on hand-built numbers ---------------------------------------------------------------


def _hand_built(gold_by_mode: dict, incidents: dict, sft_gold: float, labels=None):
    c = get_config("tiny")
    c.seeds = (0, 1, 2)
    runs = lambda mode: [{"seed": s, "labels": (labels or {}).get(mode, [60] * 3)[i], "env_steps": 640,
                          "row": {"gold_return": g, "success": 0.5, "violations": 0.0, "kl_to_sft": 1.0,
                                  **({"incident_rate": incidents[mode][i], "proxy_return": 0.0} if mode in incidents
                                     else {})}}
                         for i, (s, g) in enumerate(zip(c.seeds, gold_by_mode[mode]))]
    evaluation = {"sft": {"gold_return": sft_gold, "success": 0.5, "kl_to_sft": 0.0},
                  "modes": {m: runs(m) for m in gold_by_mode}}
    return online_report.summarise(c, evaluation, {m: {} for m in gold_by_mode})


def test_fraction_recovered_and_intervals_equal_their_closed_forms():
    from scipy import stats

    gold = {"offline": [2.0, 3.0, 4.0], "online": [3.0, 3.5, 4.5], "gold": [5.0, 6.0, 7.0]}
    inc = {"offline": [0.2, 0.4, 0.3], "online": [0.1, 0.2, 0.3]}
    out = _hand_built(gold, inc, sft_gold=1.0)
    on = out["modes"]["online"]
    # (mean online − π_SFT) / (mean gold − π_SFT) = (11/3 − 1) / (6 − 1)
    assert on["fraction_recovered"]["fraction"] == pytest.approx((11 / 3 - 1) / 5)
    assert out["modes"]["offline"]["fraction_recovered"]["fraction"] == pytest.approx((3 - 1) / 5)
    lo, hi = on["fraction_recovered"]["ci95"]
    assert lo <= (11 / 3 - 1) / 5 <= hi
    gains = np.asarray(gold["online"]) - 1.0
    half = stats.t.ppf(0.975, 2) * gains.std(ddof=1) / np.sqrt(3)
    np.testing.assert_allclose(on["gain_vs_sft"]["ci95"], [gains.mean() - half, gains.mean() + half])
    c = out["comparison"]
    assert c["gold_online_minus_offline"]["mean"] == pytest.approx(np.mean([1.0, 0.5, 0.5]))
    assert c["incident_reduction"]["reduction"] == pytest.approx(1 - 0.2 / 0.3)
    assert "fraction_recovered" not in out["modes"]["gold"] and out["parity"]["equal"]


def test_parity_fails_when_a_mode_spends_other_labels():
    gold = {"offline": [2.0, 3.0, 4.0], "online": [3.0, 3.5, 4.5]}
    inc = {"offline": [0.2, 0.4, 0.3], "online": [0.1, 0.2, 0.3]}
    out = _hand_built(gold, inc, 1.0, labels={"online": [60, 59, 60]})
    assert not out["parity"]["equal"] and "fraction_recovered" not in out["modes"]["online"]


@pytest.mark.parametrize("override, field", [("--config.online.rm_every=7", "online.rm_every"),
                                             ("--config.online.initial_fraction=0.0", "online.initial_fraction"),
                                             ("--config.online.query=kcenter", "online.query"),
                                             ("--config.eval.n_episodes=0", "eval.n_episodes"),
                                             ("--config.modes=('offline','oracle')", "modes"),
                                             ("--config.annotator=equal", "annotator")])
def test_bad_field_is_one_line_exit_2_and_nothing_written(override, field, tmp_path, capsys):
    workdir = tmp_path / "run"
    code = online_rlhf.main(["online_rlhf", "--config", "configs/online_rlhf.py:tiny", override,
                             "--workdir", str(workdir)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and field in err[0] and "configs/online_rlhf.py" in err[0], err
    assert not workdir.exists()


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="variant"):
        get_config("huge")


def test_doc_blocks_are_generated_from_the_committed_results():
    with open(os.path.join(REPO, online_report.DOC_PAGE), encoding="utf-8") as f:
        page = f.read()
    sources = re.findall(rf"<!-- {online_report.BLOCK}:start (\S+) -->", page)
    assert "results/online_quick" in sources
    for source in sources:
        assert doc_blocks.read_block(page, online_report.BLOCK, source) == online_report.readme_table(
            os.path.join(REPO, source)), f"{source}: run python -m experiments.online_report {source}"
        with open(os.path.join(REPO, source, "claims.md"), encoding="utf-8") as f:
            assert online_report.CLAIM in f.read()
