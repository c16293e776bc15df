"""A foreign LeRobot dataset through the jobs: an SO-100 fixture (its own joint names, no gold
columns) labelled on the labelling page (test client), QC'd from the page's label file, and swept
with that file as the condition; and each LeRobot error class through a job's command line."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from starlette.testclient import TestClient

from configs.label_server import get_config
from experiments import label_app, label_server, qc_report
from rlhf_jax.labels import clips, label_set_io
from tests import lerobot_fixtures as F

SHAPES = ["--config.segment_length=6", "--config.stride=3", "--config.n_train_pool=200", "--config.n_val=20"]
ANNOTATORS = ("ann1", "ann2", "ann3")


@pytest.fixture(scope="module")
def so100(tmp_path_factory):
    lengths = tuple(14 + (e * 7) % 5 for e in range(40))
    return F.write_so100(str(tmp_path_factory.mktemp("lerobot") / "so100"), lengths=lengths)


def page_config(root: str):
    c = get_config("lerobot")
    c.dataset = f"lerobot:{root}"
    c.segment_length, c.stride, c.n_train_pool, c.n_val = 6, 3, 200, 20
    c.n_pairs, c.val_share = 60, 0.2
    c.annotators = ANNOTATORS
    c.clip.size = 48
    return c


def preference(seg, row: int) -> float:
    """The people's rule: the segment whose shoulder turns further (state[0] grows more) is better."""
    return float(seg.obs[row, -1, 0] - seg.obs[row, 0, 0])


@pytest.fixture(scope="module")
def labelled(so100, tmp_path_factory):
    """The page's label file after three annotators answered every item (ann3 mostly at random)."""
    config = page_config(so100)
    src, items = label_server.load_queue(config)
    workdir = str(tmp_path_factory.mktemp("label_page"))
    session = label_server.open_session(config, workdir, src, items)
    app = label_app.make_app(session, src, clips.ClipCache(os.path.join(workdir, "clips"), config.clip.fps),
                             tokens=None)
    client = TestClient(app, base_url="http://127.0.0.1:8765")
    rng = np.random.default_rng(0)
    first = client.get("/api/next?annotator=ann1").json()["item"]
    assert set(first["clips"]) == {F.CAMERA}
    clip = client.get(first["clips"][F.CAMERA]["left"])
    assert clip.status_code == 200 and clip.content[:4] == b"\x1a\x45\xdf\xa3"  # a WebM (EBML) file
    for who in ANNOTATORS:
        for it in items:
            better_left = preference(src.segments, it.row_a) > preference(src.segments, it.row_b)
            if who == "ann3" and rng.random() < 0.6:
                better_left = rng.random() < 0.5
            r = client.post(f"/api/label?annotator={who}", json={
                "item_id": it.item_id, "label": "left" if better_left else "right", "confidence": 1.0,
                "seconds": 3.0})
            assert r.status_code == 200
    return so100, session.appender.path, items, src


def test_page_serves_the_foreign_datasets_segments_and_keys_labels_by_episode_and_frame(labelled):
    root, path, items, src = labelled
    assert not any(it.gold for it in items)  # no gold questions on foreign data
    header = json.loads(open(path, encoding="utf-8").readline())
    assert header["format"] == "rlhf_jax.label_set/2"
    assert header["lerobot"]["repo_id"] == "/".join(root.rstrip("/").split("/")[-2:])
    assert header["lerobot"]["revision"] == "v3.0"
    ls = label_set_io.read_label_set(path)
    assert len(ls) == len(ANNOTATORS) * len(items)
    row = json.loads(open(path, encoding="utf-8").readlines()[1])
    assert row["episode_index_a"] == int(row["episode_id_a"]) and row["frame_index_a"] == row["start_a"]


def test_qc_report_runs_without_oracle_error(labelled, tmp_path, capsys):
    root, path, _, _ = labelled
    workdir = str(tmp_path / "qc")
    code = qc_report.main(["qc_report", "--config", "configs/qc_report.py:lerobot", f"--config.dataset=lerobot:{root}",
                           f"--config.labels={path}", "--config.segment_length=6", "--config.stride=3",
                           "--workdir", workdir])
    assert code == 0, capsys.readouterr().err
    report = json.load(open(os.path.join(workdir, "qc.json"), encoding="utf-8"))
    assert report["oracle"] is None and report["before_qc"]["label_error"] is None
    assert all(p["label_error"] is None for p in report["policies"].values())
    assert report["labels"]["annotators"] == 3
    assert 0.0 < report["fleiss_kappa"] <= 1.0  # two careful annotators agree beyond chance
    assert "no oracle" in capsys.readouterr().out


def test_qc_report_refuses_simulated_annotators_on_foreign_data(so100, tmp_path, capsys):
    workdir = str(tmp_path / "qc")
    code = qc_report.main(["qc_report", "--config", "configs/qc_report.py:lerobot", f"--config.dataset=lerobot:{so100}",
                           "--config.segment_length=6", "--config.stride=3", "--config.n_pairs=20", "--workdir", workdir])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "field 'labels': expected a label file" in err[0]
    assert not os.path.exists(workdir)


@pytest.mark.slow
def test_tiny_sweep_from_the_page_label_file(labelled, tmp_path, capsys):
    from experiments import scaling_sweep
    root, path, _, _ = labelled
    workdir = str(tmp_path / "sweep")
    code = scaling_sweep.main(["scaling_sweep", "--config", "configs/scaling_sweep.py:lerobot",
                               f"--config.dataset=lerobot:{root}", f"--config.conditions=('file:{path}',)",
                               *SHAPES, "--config.n_test=20", "--config.n_values=(10,20,40)", "--workdir", workdir])
    assert code == 0, capsys.readouterr().err
    import csv
    rows = list(csv.DictReader(open(os.path.join(workdir, "results.csv"), encoding="utf-8")))
    assert {int(r["n"]) for r in rows} == {10, 20, 40}
    acc = [float(r["test_accuracy"]) for r in rows]
    assert all(0.0 <= a <= 1.0 for a in acc)


def test_sweep_on_foreign_data_refuses_simulated_conditions(so100, tmp_path, capsys):
    from experiments import scaling_sweep
    workdir = str(tmp_path / "sweep")
    code = scaling_sweep.main(["scaling_sweep", "--config", "configs/scaling_sweep.py:lerobot",
                               f"--config.dataset=lerobot:{so100}", "--config.conditions=('oracle',)", *SHAPES,
                               "--config.n_test=20", "--workdir", workdir])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "field 'conditions': expected 'file:' label conditions only" in err[0]
    assert not os.path.exists(workdir)


def _edit_info(root, **changes):
    path = os.path.join(root, "meta", "info.json")
    info = json.load(open(path, encoding="utf-8"))
    info.update(changes)
    if "fps" in changes and changes["fps"] is None:
        info.pop("fps")
    json.dump(info, open(path, "w", encoding="utf-8"))


def _shift_episode_spans(root, seconds):
    import pyarrow as pa
    import pyarrow.parquet as pq
    path = os.path.join(root, "meta", "episodes", "chunk-000", "file-000.parquet")
    rows = pq.read_table(path).to_pylist()
    for r in rows[1:]:
        r[f"videos/{F.CAMERA}/from_timestamp"] += seconds
    pq.write_table(pa.Table.from_pylist(rows), path)


@pytest.mark.parametrize("case", ["missing_key", "version", "video_too_short", "frame_outside_tolerance"])
def test_each_error_class_is_one_line_and_exit_code_2(case, so100, tmp_path, capsys):
    root = str(tmp_path / "ds")
    if case == "video_too_short":
        F.write_so100(root, lengths=(14, 15, 16, 14, 15, 16, 14, 15, 16, 14), video_trim=4)
    else:
        shutil.copytree(so100, root)
    if case == "missing_key":
        _edit_info(root, fps=None)
    elif case == "version":
        _edit_info(root, codebase_version="v2.0")
    elif case == "frame_outside_tolerance":
        _shift_episode_spans(root, 0.5 / 10.0)
    workdir = str(tmp_path / "run")
    if case in ("missing_key", "version"):
        code = qc_report.main(["qc_report", "--config", "configs/qc_report.py:lerobot", f"--config.dataset=lerobot:{root}",
                               "--config.labels=crowd", "--workdir", workdir])
    else:
        code = label_server.main(["label_server", "--config", "configs/label_server.py:lerobot",
                                  f"--config.dataset=lerobot:{root}", "--config.segment_length=6",
                                  "--config.n_train_pool=50", "--config.n_val=0", "--config.val_share=0.0",
                                  "--config.n_pairs=10", "--workdir", workdir])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    expected = {"missing_key": r"meta/info.json: field 'fps': expected present, got missing",
                "version": r"meta/info.json: field 'codebase_version': expected one of \['v2.1', 'v3.0'\], got 'v2.0'",
                "video_too_short": r"file-000.mp4: field 'episode 9 observation.images.front timestamp': expected a frame at",
                "frame_outside_tolerance": r"file-000.mp4: field 'episode 1 observation.images.front timestamp': "
                                           r"expected a frame within 0.0001 s"}[case]
    import re
    assert re.search(expected, err[0]), err[0]
    assert not os.path.exists(workdir)


def test_export_job_round_trip_of_the_embedded_dataset(tiny_data_root, tiny_dataset_dir, tmp_path, capsys):
    """Our tiny dataset exported with its rendered front camera reads back with the same states,
    actions, gold and metadata, and frames within 3 grey levels (mean absolute error)."""
    from experiments import export_lerobot
    from rlhf_jax.data import lerobot, lerobot_format, rlds
    workdir = str(tmp_path / "export")
    code = export_lerobot.main(["export_lerobot", "--config", "configs/export_lerobot.py:tiny",
                                f"--config.data_dir={tiny_data_root}", "--config.max_episodes=12",
                                "--config.episodes_per_file=5", "--workdir", workdir])
    assert code == 0, capsys.readouterr().err
    summary = json.load(open(os.path.join(workdir, "export.json"), encoding="utf-8"))
    root = os.path.join(workdir, "lerobot")
    original = rlds.load_rlds(tiny_dataset_dir)[:12]
    back = lerobot.load_lerobot(root)
    meta = lerobot_format.read_metadata(root)
    assert summary["episodes"] == 12 and len({e.data_path for e in meta.episodes}) == 3
    for i, (ep, got) in enumerate(zip(original, back)):
        for key in ("state", "eef_pos", "gripper", "goal", "obstacle", "box"):
            np.testing.assert_array_equal(got["steps"]["observation"][key], ep["steps"]["observation"][key])
        for key in ("action", "reward", "reward_components"):
            np.testing.assert_array_equal(got["steps"][key], ep["steps"][key])
        meta_back = {**got["episode_metadata"], "episode_id": got["episode_metadata"]["original_episode_id"]}
        assert {k: meta_back[k] for k in ep["episode_metadata"]} == dict(ep["episode_metadata"])
        assert got["episode_metadata"]["episode_id"] == str(i)
        if i % 4 == 0:
            rendered = clips.sim_frames(ep, 0, len(ep["steps"]["reward"]), view="front", size=64)
            decoded = lerobot.camera_frames(meta, meta.episodes[i], "observation.images.front",
                                            np.arange(len(rendered)) / meta.fps)
            assert np.abs(decoded.astype(int) - rendered).mean() <= 3.0
    info = lerobot.dataset_info(root)
    assert info["reward_component_names"] and set(info["gold_rubric"]) == set(info["reward_component_names"])
    # the export labels on the page like any LeRobot dataset: rows keyed by episode_index
    config = page_config(root)
    config.segment_length, config.stride, config.n_train_pool, config.n_val = 8, 4, 20, 0
    config.n_pairs, config.val_share, config.annotators = 4, 0.0, ("me",)
    src, items = label_server.load_queue(config)
    session = label_server.open_session(config, str(tmp_path / "page"), src, items)
    row = session.appender.append(_answer_row(src.segments, items[0]))
    assert json.loads(row)["episode_index_a"] == int(src.segments.episode_ids[src.segments.episode_index[items[0].row_a]])


def _answer_row(seg, item) -> dict:
    side = lambda r: (seg.episode_ids[int(seg.episode_index[r])], int(seg.start[r]))
    (ea, sa), (eb, sb) = side(item.row_a), side(item.row_b)
    return {"episode_id_a": ea, "start_a": sa, "length_a": int(seg.length), "episode_id_b": eb, "start_b": sb,
            "length_b": int(seg.length), "label": 1.0, "annotator_id": "me", "confidence": 1.0, "timestamp": 0.0,
            "seconds": 1.0, "interface_version": "test"}


def test_export_job_refuses_bad_fields_in_one_line(tmp_path, capsys):
    from experiments import export_lerobot
    for override, field in (("--config.views=('back',)", "views"), ("--config.size=63", "size"),
                            ("--config.codec=vp9", "codec"), ("--config.dataset=lerobot:x", "dataset")):
        workdir = str(tmp_path / field)
        code = export_lerobot.main(["export_lerobot", "--config", "configs/export_lerobot.py:tiny", override,
                                    "--workdir", workdir])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and f"field '{field}'" in err[0], err
        assert not os.path.exists(workdir)


def test_held_out_answers_split_between_validation_and_test(labelled):
    """Without gold, every other answered validation pair becomes a test pair with the file's label
    and leaves every condition's validation set; nothing else changes."""
    from rlhf_jax.data.dataset import load_preference_data
    from rlhf_jax.train.sweep_data import held_out_from_labels, make_sweep_data
    root, path, _, _ = labelled
    pref = load_preference_data(f"lerobot:{root}", segment_length=6, stride=3, n_train=200, n_val=20, n_test=20)
    inputs = make_sweep_data(pref, [f"file:{path}"], (10,), (0,), 1)
    weight = np.asarray(inputs.data.val_weight)[0]
    answered = np.flatnonzero(weight > 0)
    out = held_out_from_labels(inputs, pref, 0)
    moved = answered[1::2]
    assert len(out.test_a) == len(moved) > 0
    new_weight = np.asarray(out.data.val_weight)[0]
    assert (new_weight[moved] == 0).all() and (new_weight[answered[0::2]] > 0).all()
    np.testing.assert_array_equal(out.test_rows[out.test_a], pref.val.idx_a[moved])
    np.testing.assert_array_equal(out.test_label, np.asarray(inputs.data.val_label)[0][moved])
    np.testing.assert_array_equal(np.asarray(out.data.train_label), np.asarray(inputs.data.train_label))
