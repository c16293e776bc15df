"""The evaluation schedules: linear is the sweep's original spacing, log sees step 0 and is dense
early, and the per-chunk masks put back exactly the schedule for any chunking."""
import numpy as np
import pytest

from rlhf_jax.train import eval_schedule


@pytest.mark.parametrize("total, every", [(800, 25), (4800, 50), (40, 10)])
def test_linear_is_every_eval_every_steps_without_step_0(total, every):
    steps = eval_schedule.eval_steps(total, every, "linear")
    np.testing.assert_array_equal(steps, np.arange(1, total // every + 1) * every)


@pytest.mark.parametrize("total, every", [(800, 25), (4800, 50), (2400, 50), (40, 10)])
def test_log_sees_both_ends_is_dense_early_and_costs_no_more_than_linear(total, every):
    steps = eval_schedule.eval_steps(total, every, "log")
    linear = eval_schedule.eval_steps(total, every, "linear")
    assert steps[0] == 0 and steps[-1] == total
    assert np.all(np.diff(steps) > 0)
    assert len(steps) <= len(linear) + 2
    # Dense early: more evaluations before the first linear one than linear has (none) ...
    assert np.sum(steps < every) >= 2
    # ... and late spacing no coarser than 2·eval_every.
    late = steps[steps >= total // 2]
    assert np.max(np.diff(late)) <= 2 * every


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="eval schedule"):
        eval_schedule.eval_steps(100, 10, "cubic")


@pytest.mark.parametrize("schedule", ["linear", "log"])
@pytest.mark.parametrize("chunk", [10, 40, 200])
def test_chunk_masks_put_back_the_schedule(schedule, chunk):
    total = 400
    steps = eval_schedule.eval_steps(total, 10, schedule)
    masks = eval_schedule.chunk_masks(steps, chunk, total // chunk)
    assert masks.shape == (total // chunk, chunk + 1)
    back = [c * chunk + i for c in range(masks.shape[0]) for i in range(chunk + 1) if masks[c, i]]
    np.testing.assert_array_equal(back, steps)  # in order, each once (a chunk start is never evaluated twice)
    assert not masks[1:, 0].any()
