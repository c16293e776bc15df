"""A labelling session (rlhf_jax.labels.session) on hand-built segments and queue: answering,
skipping, duplicates and retries, refused answers, progress, and resuming from the file."""
from __future__ import annotations

import math
import types

import numpy as np
import pytest

from rlhf_jax.labels import label_set_io
from rlhf_jax.labels.label_appender import LabelAppender
from rlhf_jax.labels.pair_queue import QueueItem
from rlhf_jax.labels.session import MAX_SECONDS, AnswerError, LabelSession

ANNOTATORS = {"me": {"source": "real", "kind": "human"}, "you": {"source": "real", "kind": "human"}}
VERSION = "label-server/test"
# SegmentTable rows: (episode, start) of segments of length 4.
SEGMENTS = types.SimpleNamespace(episode_ids=["ep-0", "ep-1", "ep-2"],
                                 episode_index=np.array([0, 0, 1, 1, 2]),
                                 start=np.array([0, 4, 0, 4, 8]), length=4)
ITEMS = [QueueItem("i0", 0, 2, "train", math.nan), QueueItem("i1", 3, 1, "val", math.nan),
         QueueItem("g0", 4, 0, "gold", 1.0), QueueItem("i2", 1, 4, "train", math.nan),
         QueueItem("g1", 2, 3, "gold", 0.5)]


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        self.t += 1.0
        return self.t


def open_session(path, items=ITEMS):
    appender = LabelAppender(str(path), length=4, annotators=ANNOTATORS, meta={"interface_version": VERSION})
    return LabelSession(items, SEGMENTS, appender, interface_version=VERSION,
                        confidence_levels=(0.5, 1.0), rubric=("safe", "fast"), clock=Clock())


def answer(item_id, label="left", **kw):
    return {"item_id": item_id, "label": label, "seconds": 2.5, **kw}


def lines(session):
    with open(session.appender.path, "rb") as f:
        return f.read().splitlines()


def test_an_answer_becomes_a_row_with_left_as_side_a(tmp_path):
    s = open_session(tmp_path / "l.jsonl")
    row, written = s.submit("me", answer("i1", "left", confidence=0.5, rubric={"safe": "right"}))
    assert written
    assert row == {"episode_id_a": "ep-1", "start_a": 4, "length_a": 4, "episode_id_b": "ep-0",
                   "start_b": 4, "length_b": 4, "label": 1.0, "annotator_id": "me", "confidence": 0.5,
                   "timestamp": 1001.0, "seconds": 2.5, "interface_version": VERSION, "gold": False,
                   "gold_label": None, "rubric": {"safe": 0.0}}
    for label, value in (("right", 0.0), ("equal", 0.5)):
        assert s.submit("you" if label == "right" else "me", answer("i0", label))[0]["label"] == value
    gold = s.submit("me", answer("g0", "right"))[0]
    assert gold["gold"] and gold["gold_label"] == 1.0 and gold["confidence"] == 1.0  # default: top level
    ls = label_set_io.read_label_set(s.appender.path)
    np.testing.assert_array_equal(ls.label, [1.0, 0.0, 0.5, 0.0])
    assert list(ls.annotator_id) == ["me", "you", "me", "me"]


def test_each_annotator_walks_the_whole_queue_and_skips_count_as_done(tmp_path):
    s = open_session(tmp_path / "l.jsonl")
    assert s.next_item("me") is ITEMS[0]
    s.submit("me", answer("i0", "skip"))
    s.submit("me", answer("g0", "left"))  # answered out of order: i1 is still next
    assert s.next_item("me") is ITEMS[1] and s.next_item("you") is ITEMS[0]
    assert s.submit("me", answer("i1", "skip"))[0]["label"] == "skip"
    assert s.next_item("me") is ITEMS[3]
    for it in ITEMS[3:]:
        s.submit("me", answer(it.item_id, "equal"))
    assert s.next_item("me") is None and s.next_item("you") is ITEMS[0]
    assert s.annotators() == ["me", "you"]


def test_progress_and_gold_accuracy(tmp_path):
    s = open_session(tmp_path / "l.jsonl")
    assert s.progress("me").to_json(True) == {"done": 0, "total": 5, "gold_answered": 0,
                                              "gold_accuracy": None}
    s.submit("me", answer("g0", "left"))    # gold 1.0: right
    s.submit("me", answer("g1", "left"))    # gold 0.5: wrong
    s.submit("me", answer("i0", "right"))
    assert s.progress("me").to_json(True) == {"done": 3, "total": 5, "gold_answered": 2,
                                              "gold_accuracy": 0.5}
    assert s.progress("me").to_json(False) == {"done": 3, "total": 5}
    s.submit("you", answer("g1", "skip"))   # a skipped gold item is done but not graded
    assert s.progress("you").to_json(True) == {"done": 1, "total": 5, "gold_answered": 0,
                                               "gold_accuracy": None}


def test_a_repeated_answer_is_acknowledged_once_and_a_different_one_refused(tmp_path):
    s = open_session(tmp_path / "l.jsonl")
    first, _ = s.submit("me", answer("i0", "left", rubric={"fast": "equal"}))
    n = len(lines(s))
    again, written = s.submit("me", answer("i0", "left", seconds=9.0, rubric={"fast": "equal"}))
    assert not written and again == first and len(lines(s)) == n
    for other in (answer("i0", "right"), answer("i0", "left", confidence=0.5),
                  answer("i0", "left", rubric={"fast": "left"}), answer("i0", "skip")):
        with pytest.raises(AnswerError) as e:
            s.submit("me", other)
        assert e.value.status == 409 and e.value.field == "label"
    assert len(lines(s)) == n
    assert s.submit("you", answer("i0", "right"))[1]  # another annotator's answer is their own


@pytest.mark.parametrize("who,body,status,field", [
    ("nobody", answer("i0"), 403, "annotator"),
    ("me", [answer("i0")], 422, "body"),
    ("me", answer("zz"), 404, "item_id"),
    ("me", answer(3), 422, "item_id"),
    ("me", answer("i0", "maybe"), 422, "label"),
    ("me", answer("i0", "left", gold=True), 422, "gold"),
    ("me", answer("i0", confidence=0.75), 422, "confidence"),
    ("me", answer("i0", confidence=True), 422, "confidence"),
    ("me", answer("i0", seconds=-1), 422, "seconds"),
    ("me", answer("i0", seconds=MAX_SECONDS + 1), 422, "seconds"),
    ("me", answer("i0", seconds=math.nan), 422, "seconds"),
    ("me", {"item_id": "i0", "label": "left"}, 422, "seconds"),
    ("me", answer("i0", rubric=["safe"]), 422, "rubric"),
    ("me", answer("i0", rubric={"pretty": "left"}), 422, "rubric['pretty']"),
    ("me", answer("i0", rubric={"safe": 1}), 422, "rubric['safe']"),
])
def test_refused_answers_write_nothing(tmp_path, who, body, status, field):
    s = open_session(tmp_path / "l.jsonl")
    before = lines(s)
    with pytest.raises(AnswerError) as e:
        s.submit(who, body)
    assert (e.value.status, e.value.field) == (status, field)
    assert lines(s) == before and s.next_item("me") is ITEMS[0]


def test_a_restart_resumes_from_the_file(tmp_path):
    path = tmp_path / "l.jsonl"
    s = open_session(path)
    rows = [s.submit("me", answer(i, lab))[0] for i, lab in (("i0", "left"), ("i1", "skip"), ("g0", "right"))]
    s.submit("you", answer("i0", "equal"))
    s.appender.close()
    again = open_session(path)
    assert again.next_item("me") is ITEMS[3] and again.next_item("you") is ITEMS[1]
    assert again.progress("me").done == 3 and again.progress("you").done == 1
    assert again.answers[("me", "i1")] == rows[1]
    n = len(lines(again))
    assert again.submit("me", answer("i0", "left")) == (rows[0], False)  # a retry across the restart
    with pytest.raises(AnswerError):
        again.submit("me", answer("g0", "left"))
    assert len(lines(again)) == n


def test_resume_matches_pairs_in_either_orientation_and_ignores_other_pairs(tmp_path):
    path = tmp_path / "l.jsonl"
    s = open_session(path)
    s.submit("me", answer("i0", "left"))
    s.submit("me", answer("i2", "right"))
    s.appender.close()
    # The same pairs shown the other way round (i0 = rows 0, 2 becomes 2, 0); i2 leaves the queue.
    mirrored = [QueueItem("j0", 2, 0, "train", math.nan), QueueItem("j1", 3, 1, "val", math.nan)]
    again = open_session(path, items=mirrored)
    assert set(again.answers) == {("me", "j0")}
    assert again.next_item("me") is mirrored[1]
    # The file's row keeps the orientation it was answered in (left = ep-0 at 0).
    assert again.answers[("me", "j0")]["episode_id_a"] == "ep-0"
