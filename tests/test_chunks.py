"""run_chunks: the loop every long run shares (NaN check before the state is replaced, the
checkpoint and history of each chunk, progress lines, resume from a later chunk)."""
from __future__ import annotations

import numpy as np
import pytest

from rlhf_jax import checkpoint
from rlhf_jax.train.chunks import NonFiniteLossError, first_nonfinite, run_chunks


def _counter(bad_at=None):
    def chunk(state):
        losses = np.arange(state, state + 4, dtype=np.float32).reshape(4, 1, 1)
        if bad_at is not None and state == bad_at:
            losses[2, 0, 0] = np.nan
        return state + 4, {"loss": losses}
    return chunk


def test_runs_every_chunk_records_history_and_checkpoints(tmp_path):
    ckpt, seen, lines = checkpoint.Checkpointer(str(tmp_path / "ck")), [], []
    final = run_chunks(_counter(), np.int32(0), n_chunks=3, steps_per_chunk=4, checkpointer=ckpt,
                       checkpoint_tree=lambda s: {"state": np.asarray(s)},
                       on_chunk=lambda c, h: seen.append((c, float(h["loss"][0, 0, 0]))), log=lines.append, name="toy")
    assert int(final) == 12 and seen == [(0, 0.0), (1, 4.0), (2, 8.0)]
    assert ckpt.steps()[-1] == 12
    step, tree, meta = ckpt.restore({"state": np.asarray(0)})
    assert step == 12 and int(tree["state"]) == 12 and meta["chunk"] == 3 and meta["artifact"] == "train_state"
    assert lines[-1].startswith("toy step 12/12") and len(lines) == 3
    ckpt.close()


def test_resume_starts_at_the_given_chunk():
    seen = []
    final = run_chunks(_counter(), np.int32(8), n_chunks=3, steps_per_chunk=4, start_chunk=2,
                       on_chunk=lambda c, h: seen.append(c), log=lambda *_: None)
    assert int(final) == 12 and seen == [2]


def test_non_finite_loss_names_step_point_and_member_and_keeps_last_good_state(tmp_path):
    ckpt = checkpoint.Checkpointer(str(tmp_path / "ck"))
    with pytest.raises(NonFiniteLossError, match=r"non-finite toy loss at step 7, sweep point 0, member 0; "
                                                 r"the last good checkpoint \(chunk 1\)"):
        run_chunks(_counter(bad_at=4), np.int32(0), n_chunks=3, steps_per_chunk=4, checkpointer=ckpt,
                   checkpoint_tree=lambda s: {"state": np.asarray(s)}, log=lambda *_: None, name="toy")
    assert ckpt.restore({"state": np.asarray(0)})[0] == 4  # the bad chunk was never saved
    ckpt.close()
    assert first_nonfinite(np.array([[1.0, np.inf]])) == (0, 1) and first_nonfinite(np.ones(3)) is None
