"""Scripted-policy segments for in-run reward fits: layout, and gold returns that rank policies."""
import jax
import numpy as np

from rlhf_jax.data.scripted import scripted_segments
from rlhf_jax.envs.robots import EMBODIMENTS, MAX_DOF
from rlhf_jax.train.ppo_rollout import OBS_DIM


def test_segments_layout_and_gold_ranks_expert_over_random():
    seg = scripted_segments("ur5", ("reach", "reach_avoid"), ("expert", "random"), 4, 20, jax.random.key(0),
                            horizon=50)
    n = 2 * 2 * 4 * (50 // 20)  # tasks × policies × episodes × whole segments per episode
    assert seg["obs"].shape == (n, 20, OBS_DIM) and seg["act"].shape == (n, 20, MAX_DOF)
    assert seg["task"].shape == seg["embodiment"].shape == seg["gold"].shape == (n,)
    assert seg["task"].dtype == seg["embodiment"].dtype == np.int32
    np.testing.assert_array_equal(seg["embodiment"], EMBODIMENTS.index("ur5"))
    np.testing.assert_array_equal(np.unique(seg["task"]), [0, 1])
    np.testing.assert_array_equal(seg["act"][..., 6:], 0.0)  # the UR5 has 6 joints; the rest is padding
    per_block = seg["gold"].reshape(2, 2, -1).mean(-1)  # [task, policy]
    assert np.all(per_block[:, 0] > per_block[:, 1]), per_block
