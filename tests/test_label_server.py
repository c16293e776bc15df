"""The labelling app through Starlette's test client: queue, gold, bad posts, durable append,
resume, concurrent writers, tokens, clip paths, and the command line's bad input."""
from __future__ import annotations

import json
import multiprocessing
import os
import threading

import numpy as np
import pytest
from starlette.testclient import TestClient

from configs.label_server import get_config
from experiments import cli, label_app, label_server
from rlhf_jax.preferences import annotators as ann
from rlhf_jax.labels import label_pools, label_set_io
from rlhf_jax.labels import clips, pair_queue
from rlhf_jax.labels.label_appender import LabelAppender, row_line

LOCAL = "http://127.0.0.1:8765"


def small_config(data_root: str):
    c = get_config("tiny")
    c.data_dir = data_root
    c.n_pairs = 30
    c.annotators = ("me", "you")
    c.clip.size = 48
    c.clip.views = ("front", "side")
    return c


@pytest.fixture(scope="module")
def loaded(tiny_data_root, tiny_dataset_dir):
    del tiny_dataset_dir  # built into tiny_data_root
    config = small_config(tiny_data_root)
    src, items = label_server.load_queue(config)
    return config, src, items


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("label_clips"))  # shared: each clip renders once per module


def make_client(loaded, workdir, clip_dir, tokens=None, show_gold=False):
    config, src, items = loaded
    session = label_server.open_session(config, str(workdir), src, items)
    app = label_app.make_app(session, src, clips.ClipCache(clip_dir, config.clip.fps), tokens=tokens,
                             show_gold_accuracy=show_gold)
    return TestClient(app, base_url=LOCAL), session


def answer(item_id, label="left", **kw):
    return {"item_id": item_id, "label": label, "confidence": 1.0, "seconds": 4.0, **kw}


def file_lines(session) -> list[bytes]:
    with open(session.appender.path, "rb") as f:
        return f.read().splitlines(keepends=True)


def test_same_config_and_seed_give_the_same_queue(loaded):
    config, _, items = loaded
    _, again = label_server.load_queue(config)
    assert [it.item_id for it in again] == [it.item_id for it in items]
    other = config.copy_and_resolve_references()
    other.seed = 1
    _, shifted = label_server.load_queue(other)
    assert [it.item_id for it in shifted] != [it.item_id for it in items]
    assert len(items) == 30 + pair_queue.n_gold_items(30, 0.12)
    assert sum(it.pool == "val" for it in items) == 6  # val_share 0.2 of 30
    assert len({it.item_id for it in items}) == len(items)


def test_next_follows_the_queue_and_progress_counts(loaded, tmp_path, clip_dir):
    _, _, items = loaded
    client, _ = make_client(loaded, tmp_path, clip_dir)
    for k in range(3):
        got = client.get("/api/next").json()
        assert got["item"]["item_id"] == items[k].item_id
        assert got["progress"] == {"done": k, "total": len(items)}  # gold accuracy hidden by default
        assert set(got["item"]["clips"]) == {"front", "side"}
        assert client.post("/api/label", json=answer(items[k].item_id)).status_code == 200
    # Each annotator walks the whole queue: "you" starts at the first item.
    assert client.get("/api/next?annotator=you").json()["item"]["item_id"] == items[0].item_id


def test_gold_rate_and_answers_over_a_seeded_queue(loaded):
    _, src, _ = loaded
    seg, n_pairs, rate = src.segments, 400, 0.12
    n_gold = pair_queue.n_gold_items(n_pairs, rate)
    exclude = [np.concatenate([src.train[i], src.val[i]]) for i in (0, 1)]
    ga, gb = label_pools.gold_pool(seg, *exclude, n_gold, seed=0)
    oracle = ann.label_pairs("oracle", seg, ga, gb, seed=0, timestamp=0.0).label.astype(float)
    items = pair_queue.build_queue(seg, src.train, src.val, n_pairs=n_pairs, val_share=0.2, method="uniform",
                                   seed=3, gold=(ga, gb, oracle), gold_rate=rate)
    gold = np.array([it.gold for it in items])
    assert abs(gold.mean() - rate) < 0.005  # 55 of 455
    # Spread evenly: every prefix holds the rate's share of gold to within one item.
    prefix = np.cumsum(gold)
    share = gold.sum() / len(gold)
    assert np.abs(prefix - share * np.arange(1, len(gold) + 1)).max() <= 1.0 + 1e-9
    # Gold answers are the oracle's, in the orientation the page shows (left = a).
    truth = {(int(a), int(b)): y for a, b, y in zip(ga, gb, oracle)}
    for it in items:
        if it.gold:
            y = truth.get((it.row_a, it.row_b))
            assert y == it.gold_label if y is not None else truth[(it.row_b, it.row_a)] == 1 - it.gold_label
    # Both orientations are used, so a side preference cannot pass for quality.
    train_pairs = {(int(a), int(b)) for a, b in zip(*src.train)}
    shown = [(it.row_a, it.row_b) in train_pairs for it in items if it.pool == "train"]
    assert 0.35 < np.mean(shown) < 0.65


def test_kcenter_order_differs_from_uniform_and_is_deterministic(loaded):
    _, src, _ = loaded
    kw = dict(n_pairs=20, val_share=0.0, seed=0)
    uni = pair_queue.build_queue(src.segments, src.train, src.val, method="uniform", **kw)
    kc = pair_queue.build_queue(src.segments, src.train, src.val, method="kcenter", **kw)
    kc2 = pair_queue.build_queue(src.segments, src.train, src.val, method="kcenter", **kw)
    assert [i.item_id for i in kc] == [i.item_id for i in kc2]
    assert [i.item_id for i in kc] != [i.item_id for i in uni]


BAD_POSTS = [  # (what, request kwargs, status)
    ("not JSON", dict(content=b"{label: left", headers={"content-type": "application/json"}), 400),
    ("NaN", dict(content=b'{"item_id": "x", "seconds": NaN}', headers={"content-type": "application/json"}), 400),
    ("form post", dict(data={"label": "left"}), 415),
    ("too large", dict(content=b"{" + b" " * 20000 + b"}", headers={"content-type": "application/json"}), 413),
    ("a list", dict(json=[1, 2]), 422),
    ("unknown item", dict(json=answer("0123456789abcdef")), 404),
]


def test_bad_posts_are_refused_and_nothing_is_written(loaded, tmp_path, clip_dir):
    _, _, items = loaded
    client, session = make_client(loaded, tmp_path, clip_dir)
    first = items[0].item_id
    before = file_lines(session)
    cases = BAD_POSTS + [
        ("unknown label", dict(json=answer(first, "maybe")), 422),
        ("confidence off the scale", dict(json=answer(first, confidence=0.6)), 422),
        ("confidence a string", dict(json=answer(first, confidence="high")), 422),
        ("negative seconds", dict(json=answer(first, seconds=-1)), 422),
        ("seconds missing", dict(json={"item_id": first, "label": "left"}), 422),
        ("unknown field", dict(json=answer(first, gold=True)), 422),
        ("unknown rubric question", dict(json=answer(first, rubric={"is red": "left"})), 422),
        ("rubric answer off the scale", dict(json=answer(first, rubric={"finishes faster": 1})), 422),
        ("item id a number", dict(json=answer(7)), 422),
    ]
    for what, kw, status in cases:
        r = client.post("/api/label", **kw)
        assert r.status_code == status, (what, r.text)
        assert "error" in r.json() and "\n" not in r.json()["error"], what
    assert file_lines(session) == before
    assert client.post("/api/label?annotator=nobody", json=answer(first)).status_code == 403
    assert client.get("/api/next", headers={"host": "evil.example"}).status_code == 400
    # A retry of the same answer is acknowledged once; a different answer to it is a conflict.
    assert client.post("/api/label", json=answer(first)).json()["written"] is True
    retry = client.post("/api/label", json=answer(first, seconds=9.0))
    assert retry.status_code == 200 and retry.json()["written"] is False
    assert client.post("/api/label", json=answer(first, "right")).status_code == 409
    assert len(file_lines(session)) == len(before) + 1


def test_append_is_line_by_line_what_was_posted(loaded, tmp_path, clip_dir):
    _, src, items = loaded
    client, session = make_client(loaded, tmp_path, clip_dir)
    posts = [answer(items[0].item_id, "left"), answer(items[1].item_id, "skip", confidence=0.5),
             answer(items[2].item_id, "equal", rubric={"finishes faster": "right"}),
             answer(items[3].item_id, "right", confidence=0.75, seconds=12.25)]
    rows = []
    for p in posts:
        r = client.post("/api/label", json=p)
        assert r.status_code == 200
        rows.append(r.json()["row"])
    lines = file_lines(session)
    assert json.loads(lines[0])["format"] == "rlhf_jax.label_set/2"
    assert lines[1:] == [row_line(r) for r in rows]
    expect = {"left": 1.0, "right": 0.0, "equal": 0.5, "skip": "skip"}
    for p, r, it in zip(posts, rows, items):
        assert (r["label"], r["confidence"], r["seconds"]) == (expect[p["label"]], p["confidence"], p["seconds"])
        assert r["gold"] == it.gold and r["interface_version"] == label_server.INTERFACE_VERSION
    assert rows[2]["rubric"] == {"finishes faster": 0.0}
    ls = label_set_io.read_label_set(session.appender.path)
    assert len(ls) == 4 and np.isnan(ls.label[1])
    label_set_io.check_pairs_exist(ls, src.segments)


def test_named_objectives_are_asked_and_their_answers_written_under_the_objective(loaded, tmp_path, clip_dir):
    """objectives=('safety', 'efficiency'): the page asks their sub-questions beside the free-text
    rubric, and an answer lands in the rubric column as {objective: 0 | 0.5 | 1}, the layout of
    the simulated annotators' sub-answers (rlhf_jax.preferences.objectives)."""
    config, src, items = loaded
    asking = config.copy_and_resolve_references()
    asking.objectives = ("safety", "efficiency")
    label_server.validate(asking, "configs/label_server.py")
    client, session = make_client((asking, src, items), tmp_path, clip_dir)
    item = client.get("/api/next").json()["item"]
    assert item["rubric"] == ["avoids the obstacle better", "finishes faster", "safety", "efficiency"]
    assert item["questions"]["safety"] == "which is safer?" and item["questions"]["efficiency"] == "which is faster?"
    assert item["questions"]["finishes faster"] == "finishes faster?"
    sub = {"safety": "right", "efficiency": "equal"}
    posted = client.post("/api/label", json=answer(item["item_id"], "left", rubric=sub))
    assert posted.status_code == 200 and posted.json()["row"]["rubric"] == {"safety": 0.0, "efficiency": 0.5}
    assert label_set_io.read_label_set(session.appender.path).rubric == [{"safety": 0.0, "efficiency": 0.5}]
    assert client.post("/api/label", json=answer(items[1].item_id, rubric={"task": "left"})).status_code == 422
    for bad in (("comfort",), ("safety", "safety")):
        asking.objectives = bad
        with pytest.raises(cli.ConfigError, match="field 'objectives'"):
            label_server.validate(asking, "configs/label_server.py")


def test_restart_resumes_where_it_stopped_and_loses_nothing(loaded, tmp_path, clip_dir):
    _, _, items = loaded
    client, session = make_client(loaded, tmp_path, clip_dir)
    for it in items[:3]:
        client.post("/api/label", json=answer(it.item_id))
    acknowledged = file_lines(session)
    session.appender.close()
    with open(session.appender.path, "ab") as f:  # a crash in the middle of a fourth write
        f.write(b'{"annotator_id": "me", "conf')
    client, session = make_client(loaded, tmp_path, clip_dir)
    assert session.appender.dropped_partial.startswith(b'{"annotator_id"')
    assert file_lines(session) == acknowledged
    got = client.get("/api/next").json()
    assert got["item"]["item_id"] == items[3].item_id and got["progress"]["done"] == 3
    assert client.post("/api/label", json=answer(items[3].item_id)).status_code == 200
    assert len(label_set_io.read_label_set(session.appender.path)) == 4


def test_restart_refuses_a_file_of_other_annotators(loaded, tmp_path, clip_dir):
    config, src, items = loaded
    make_client(loaded, tmp_path, clip_dir)
    other = config.copy_and_resolve_references()
    other.annotators = ("me", "them")
    with pytest.raises(Exception, match="annotators"):
        label_server.open_session(other, str(tmp_path), src, items)


def _write_rows(path: str, who: str, n: int, barrier) -> None:
    app = LabelAppender(path, length=8, annotators={"p0": {"source": "real", "kind": "human"},
                                                    "p1": {"source": "real", "kind": "human"}})
    barrier.wait()
    for i in range(n):
        app.append({"episode_id_a": f"ep-{i}", "start_a": 0, "length_a": 8, "episode_id_b": f"ep-{i}-" + "x" * 3000,
                    "start_b": 4, "length_b": 8, "label": 1.0, "annotator_id": who, "confidence": 1.0,
                    "timestamp": float(i), "seconds": 1.0, "interface_version": "t", "rubric": None})


def test_two_processes_appending_never_interleave_lines(tmp_path):
    path = str(tmp_path / "labels.jsonl")
    LabelAppender(path, length=8, annotators={"p0": {"source": "real", "kind": "human"},
                                              "p1": {"source": "real", "kind": "human"}}).close()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_write_rows, args=(path, f"p{k}", 150, barrier)) for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 2 + 300
    rows = [json.loads(x) for x in lines[1:-1]]  # every line is one whole JSON row
    for who in ("p0", "p1"):
        assert [r["timestamp"] for r in rows if r["annotator_id"] == who] == [float(i) for i in range(150)]
    assert len(label_set_io.read_label_set(path)) == 300


def test_two_browser_sessions_labelling_at_once(loaded, tmp_path, clip_dir):
    _, _, items = loaded
    client, session = make_client(loaded, tmp_path, clip_dir)
    errors = []

    def label_all(who):
        for it in items[:8]:
            r = client.post(f"/api/label?annotator={who}", json=answer(it.item_id, "right"))
            if r.status_code != 200:
                errors.append(r.text)

    threads = [threading.Thread(target=label_all, args=(w,)) for w in ("me", "you")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    ls = label_set_io.read_label_set(session.appender.path)
    assert sorted(ls.annotator_id) == ["me"] * 8 + ["you"] * 8


def test_tokens_are_required_off_localhost(loaded, tmp_path, clip_dir):
    _, _, items = loaded
    tokens = {"me": "m" * 24, "you": "y" * 24}
    client, _ = make_client(loaded, tmp_path, clip_dir, tokens=tokens, show_gold=True)
    client.base_url = "http://192.0.2.7:8765"  # any host: the token is what is checked
    assert client.get("/api/next").status_code == 401
    assert client.get("/").status_code == 401
    assert client.get("/api/next", headers={"x-label-token": "z" * 24}).status_code == 403
    got = client.get("/api/next", headers={"x-label-token": tokens["you"]}).json()
    assert got["annotator"] == "you" and got["progress"]["gold_accuracy"] is None
    clip_url = got["item"]["clips"]["front"]["left"]
    assert clip_url.endswith("?token=" + tokens["you"])
    assert client.get(clip_url).status_code == 200
    assert client.get(clip_url.split("?")[0]).status_code == 401
    r = client.post("/api/label?token=" + tokens["me"], json=answer(items[0].item_id))
    assert r.json()["row"]["annotator_id"] == "me"


def test_token_files_and_bind_address(loaded, tmp_path):
    config = loaded[0].copy_and_resolve_references()
    assert label_server.tokens_for(config, str(tmp_path)) is None  # 127.0.0.1: no token
    config.host = "0.0.0.0"
    tokens = label_server.tokens_for(config, str(tmp_path))
    assert set(tokens) == {"me", "you"} and min(len(t) for t in tokens.values()) >= 24
    assert os.stat(tmp_path / "tokens.json").st_mode & 0o077 == 0
    assert label_server.tokens_for(config, str(tmp_path)) == tokens  # kept across a resume


def test_clips_are_served_only_from_the_cache(loaded, tmp_path, clip_dir):
    client, session = make_client(loaded, tmp_path, clip_dir)
    url = client.get("/api/next").json()["item"]["clips"]["side"]["right"]
    r = client.get(url)
    assert r.status_code == 200 and r.headers["content-type"] == "video/webm"
    for bad in ("/clips/../labels.jsonl", "/clips/..%2F..%2Flabels.jsonl", "/clips/%2e%2e/config.json",
                "/clips/" + "0" * 64 + ".webm", "/clips/" + os.path.abspath(session.appender.path),
                "/static/../labels.jsonl", "/static/..%2Flabel_app.py"):
        assert client.get(bad).status_code == 404, bad


@pytest.mark.parametrize("override,field", [
    ("--config.gold_rate=0.7", "gold_rate"), ("--config.method=disagreement", "method"),
    ("--config.n_pairs=0", "n_pairs"), ("--config.clip.views=('front','under')", "clip.views"),
    ("--config.tokens=('short',)", "tokens"), ("--config.annotators=('a b',)", "annotators"),
    ("--config.val_share=1.5", "val_share"), ("--config.stride=0", "stride"),
    ("--config.n_train_pool=-5", "n_train_pool"), ("--config.seed=-1", "seed"),
    ("--config.objectives=('comfort',)", "objectives")])
def test_bad_config_is_one_line_and_writes_nothing(tmp_path, capsys, override, field):
    workdir = tmp_path / "run"
    code = label_server.main(["label_server", "--config", "configs/label_server.py:tiny", override,
                              f"--workdir={workdir}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: configs/label_server.py") and field in err[0]
    assert not workdir.exists()


def test_oxe_variant_refuses_gold_and_needs_a_path(tmp_path, capsys):
    for override, field in (("--config.gold_rate=0.1", "oxe.path"), (f"--config.oxe.path={tmp_path}", "")):
        argv = ["label_server", "--config", "configs/label_server.py:oxe", override, f"--workdir={tmp_path}/run"]
        if not field:
            argv.append("--config.gold_rate=0.1")
        assert label_server.main(argv) == 2
        err = capsys.readouterr().err
        assert (field or "gold_rate") in err and not (tmp_path / "run").exists()


def test_oxe_fixture_pairs_show_every_camera_and_have_no_gold(tmp_path):
    from tests import oxe_fixtures as fx
    fx.write_fixture("berkeley_autolab_ur5", str(tmp_path / "oxe"), n_episodes=4, length=6)
    config = get_config("oxe")
    config.oxe.name, config.oxe.path, config.clip.size = "berkeley_autolab_ur5", str(tmp_path / "oxe"), 48
    label_server.validate(config, "configs/label_server.py")
    src, items = label_server.load_queue(config)
    assert len(items) == 8 and not any(it.gold for it in items)
    session = label_server.open_session(config, str(tmp_path / "run"), src, items)
    app = label_app.make_app(session, src, clips.ClipCache(str(tmp_path / "clips"), config.clip.fps), tokens=None)
    client = TestClient(app, base_url=LOCAL)
    item = client.get("/api/next").json()["item"]
    assert item["views"] == ["hand_image", "image"] and item["frames"] == 4
    assert client.get(item["clips"]["hand_image"]["right"]).status_code == 200
    row = client.post("/api/label", json=answer(item["item_id"], "equal")).json()["row"]
    assert row["episode_id_a"].startswith("berkeley_autolab_ur5/train/") and row["gold"] is False
    assert len(label_set_io.read_label_set(session.appender.path)) == 1


def test_a_port_in_use_or_a_bad_host_is_one_line_before_anything_is_written(tmp_path, capsys):
    import socket
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        for override, field in ((f"--config.port={port}", "field 'port'"),
                                ("--config.host=no-such-host.invalid", "field 'host'")):
            workdir = tmp_path / "run"
            code = label_server.main(["label_server", "--config", "configs/label_server.py:tiny", override,
                                      f"--workdir={workdir}"])
            err = capsys.readouterr().err.strip().splitlines()
            assert code == 2 and len(err) == 1 and field in err[0], err
            assert not workdir.exists()
    finally:
        taken.close()


def test_resume_may_change_the_port_but_nothing_else(tmp_path):
    from configs.label_server import get_config
    saved = get_config("tiny")
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.json").write_text(saved.to_json(indent=2, sort_keys=True))
    moved = saved.copy_and_resolve_references()
    moved.port = saved.port + 1
    assert cli.check_workdir(str(workdir), True, moved, ignore=("port",)) == "resume"
    moved.n_pairs = saved.n_pairs + 1
    with pytest.raises(cli.ConfigError, match="n_pairs"):
        cli.check_workdir(str(workdir), True, moved, ignore=("port",))
