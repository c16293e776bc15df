"""Reward-model accuracy on episodes: closed forms on hand-built returns."""
import numpy as np
import pytest

from rlhf_jax.evaluation.reward_accuracy import episode_pair_accuracy, paired_accuracy


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_monotone_proxy_is_always_right_and_a_reversed_one_always_wrong(seed):
    gold = np.random.default_rng(seed).normal(size=12)
    assert episode_pair_accuracy(3 * gold + 1, gold) == 1.0
    assert episode_pair_accuracy(-gold, gold) == 0.0
    assert paired_accuracy(np.exp(gold), gold, np.exp(gold[::-1]), gold[::-1]) == 1.0


def test_hand_counted_pairs_with_gold_ties_skipped_and_proxy_ties_wrong():
    gold = np.array([1.0, 2.0, 2.0, 0.0])
    proxy = np.array([0.0, 1.0, 5.0, 0.0])
    # Pairs (i<j): (0,1) right; (0,2) right; (0,3) gold 1>0, proxy tie: wrong; (1,2) gold tie:
    # skipped; (1,3) right; (2,3) right. 4 of 5.
    assert episode_pair_accuracy(proxy, gold) == pytest.approx(4 / 5)
    assert np.isnan(episode_pair_accuracy([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]))


def test_paired_accuracy_reads_episode_e_against_episode_e():
    expert_gold, sft_gold = np.array([3.0, 3.0, 1.0]), np.array([1.0, 1.0, 1.0])
    expert_proxy, sft_proxy = np.array([2.0, 0.0, 9.0]), np.array([1.0, 1.0, 1.0])
    # e=0 right, e=1 wrong, e=2 a gold tie (skipped): 1 of 2.
    assert paired_accuracy(expert_proxy, expert_gold, sft_proxy, sft_gold) == 0.5
    with pytest.raises(ValueError, match="one shape"):
        paired_accuracy(expert_proxy, expert_gold, sft_proxy[:2], sft_gold[:2])
