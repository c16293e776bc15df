"""A labelling session: the queue, who has answered what, and turning an answer into a label row.

    session = LabelSession(items, segments, appender, interface_version="label-server/1",
                           confidence_levels=(0.5, 0.75, 1.0), rubric=("avoids the obstacle",))
    item = session.next_item("me")                     # first queue item "me" has not answered
    session.submit("me", {"item_id": item.item_id, "label": "left", "confidence": 1.0,
                          "seconds": 7.5, "rubric": {"avoids the obstacle": "equal"}})

Every annotator walks the same queue, so several people give several answers per pair (what
the QC report's agreement measures need). An answer is checked field by field before anything
is written (`AnswerError` carries the HTTP status a server should give: 404 unknown item, 409 a
different answer to a pair already answered, 422 a bad field); the row goes through the durable
appender. Posting the same answer again (a retry after a lost response) is acknowledged without
a second row. State is rebuilt from the file's rows, so a restart resumes where it stopped.

Labels: "left" = 1 (the left segment, side a of the row, is preferred), "right" = 0, "equal" =
0.5, "skip" = skipped (the file's "skip"). Rubric sub-answers use the same words.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import threading
import time
from typing import Any, Callable, Mapping, Sequence

from rlhf_jax.labels.label_appender import LabelAppender
from rlhf_jax.labels.pair_queue import QueueItem

ANSWERS = {"left": 1.0, "right": 0.0, "equal": 0.5}
MAX_SECONDS = 24 * 3600.0  # longer than a day on one pair is a broken client clock
ANSWER_FIELDS = ("item_id", "label", "confidence", "seconds", "rubric")


class AnswerError(ValueError):
    """A posted answer that is refused; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, field: str, expected: str, got: Any):
        super().__init__(f"field {field!r}: expected {expected}, got {got!r}")
        self.status, self.field = status, field


@dataclasses.dataclass
class Progress:
    done: int
    total: int
    gold_answered: int
    gold_correct: int

    def to_json(self, show_gold: bool) -> dict:
        out = {"done": self.done, "total": self.total}
        if show_gold:
            out["gold_answered"] = self.gold_answered
            out["gold_accuracy"] = (self.gold_correct / self.gold_answered) if self.gold_answered else None
        return out


def _side_key(segments, row: int) -> tuple[str, int]:
    return str(segments.episode_ids[int(segments.episode_index[row])]), int(segments.start[row])


class LabelSession:
    """See the module docstring; thread-safe (a server handles requests concurrently)."""

    def __init__(self, items: Sequence[QueueItem], segments, appender: LabelAppender, *,
                 interface_version: str, confidence_levels: Sequence[float] = (1.0,),
                 rubric: Sequence[str] = (), clock: Callable[[], float] = time.time):
        self.items = list(items)
        self.by_id = {it.item_id: it for it in self.items}
        self.segments, self.appender = segments, appender
        self.interface_version = interface_version
        self.confidence_levels = tuple(float(c) for c in confidence_levels)
        self.rubric = tuple(rubric)
        self.clock = clock
        self._lock = threading.Lock()
        self._keys = {it.item_id: self._pair_key(it) for it in self.items}
        key_to_item = {k: i for i, k in self._keys.items()}
        self.answers: dict[tuple[str, str], dict] = {}  # (annotator, item_id) -> row
        for row in appender.rows():  # resume: the file is the state
            key = tuple(sorted(((row["episode_id_a"], row["start_a"]), (row["episode_id_b"], row["start_b"]))))
            if key in key_to_item:
                self.answers[(row["annotator_id"], key_to_item[key])] = row

    def _pair_key(self, it: QueueItem) -> tuple:
        return tuple(sorted((_side_key(self.segments, it.row_a), _side_key(self.segments, it.row_b))))

    def annotators(self) -> list[str]:
        return sorted(self.appender.header["annotators"])

    def next_item(self, annotator: str) -> QueueItem | None:
        """The first queue item `annotator` has not answered, or None when the queue is done."""
        with self._lock:
            return next((it for it in self.items if (annotator, it.item_id) not in self.answers), None)

    def progress(self, annotator: str) -> Progress:
        with self._lock:
            rows = [(it, self.answers[(annotator, it.item_id)]) for it in self.items
                    if (annotator, it.item_id) in self.answers]
        gold = [(it, r) for it, r in rows if it.gold and r["label"] != "skip"]
        correct = sum(1 for it, r in gold if float(r["label"]) == it.gold_label)
        return Progress(len(rows), len(self.items), len(gold), correct)

    def _check(self, answer: Any) -> tuple[QueueItem, float | str, float, float, dict | None]:
        if not isinstance(answer, Mapping):
            raise AnswerError(422, "body", "a JSON object", type(answer).__name__)
        unknown = sorted(set(answer) - set(ANSWER_FIELDS))
        if unknown:
            raise AnswerError(422, unknown[0], f"only the fields {list(ANSWER_FIELDS)}", "an unknown field")
        item_id = answer.get("item_id")
        if not isinstance(item_id, str):
            raise AnswerError(422, "item_id", "a queue item id (string)", item_id)
        if item_id not in self.by_id:
            raise AnswerError(404, "item_id", "an item of this queue", item_id)
        label = answer.get("label")
        if label not in (*ANSWERS, "skip"):
            raise AnswerError(422, "label", f"one of {[*ANSWERS, 'skip']}", label)
        conf = answer.get("confidence", self.confidence_levels[-1])
        if (not _real(conf)) or float(conf) not in self.confidence_levels:
            raise AnswerError(422, "confidence", f"one of {list(self.confidence_levels)}", conf)
        secs = answer.get("seconds")
        if not _real(secs) or not 0.0 <= float(secs) <= MAX_SECONDS:
            raise AnswerError(422, "seconds", f"seconds spent, a number in [0, {MAX_SECONDS:g}]", secs)
        rubric = answer.get("rubric")
        if rubric is not None:
            if not isinstance(rubric, Mapping):
                raise AnswerError(422, "rubric", "an object {question: left | right | equal}", rubric)
            for q, v in rubric.items():
                if q not in self.rubric:
                    raise AnswerError(422, f"rubric[{q!r}]", f"a question of {list(self.rubric)}", q)
                if v not in ANSWERS:
                    raise AnswerError(422, f"rubric[{q!r}]", f"one of {list(ANSWERS)}", v)
            rubric = {q: ANSWERS[v] for q, v in rubric.items()} or None
        value = "skip" if label == "skip" else ANSWERS[label]
        return self.by_id[item_id], value, float(conf), float(secs), rubric

    def row(self, annotator: str, item: QueueItem, label, confidence: float, seconds: float,
            rubric: dict | None) -> dict:
        """The label-file row of an answer (left = side a)."""
        (ea, sa), (eb, sb) = _side_key(self.segments, item.row_a), _side_key(self.segments, item.row_b)
        length = int(self.segments.length)
        return {"episode_id_a": ea, "start_a": sa, "length_a": length, "episode_id_b": eb, "start_b": sb,
                "length_b": length, "label": label, "annotator_id": annotator, "confidence": confidence,
                "timestamp": float(self.clock()), "seconds": seconds,
                "interface_version": self.interface_version, "gold": item.gold,
                "gold_label": item.gold_label if item.gold else None, "rubric": rubric}

    def submit(self, annotator: str, answer: Any) -> tuple[dict, bool]:
        """(the row, whether it was written now); raises AnswerError before writing anything."""
        if annotator not in self.appender.header["annotators"]:
            raise AnswerError(403, "annotator", f"one of {self.annotators()}", annotator)
        item, label, conf, secs, rubric = self._check(answer)
        with self._lock:
            old = self.answers.get((annotator, item.item_id))
            if old is not None:
                same = (old["label"], old["confidence"], old["rubric"]) == (label, conf, rubric)
                if not same:
                    raise AnswerError(409, "label", f"the answer already given ({old['label']!r}, "
                                      f"confidence {old['confidence']})", label)
                return old, False
            row = self.row(annotator, item, label, conf, secs, rubric)
            self.appender.append(row)
            self.answers[(annotator, item.item_id)] = row
        return row, True


def _real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))

