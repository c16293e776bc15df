"""Evaluation of trained policies: simulator rollouts and implicit-reward accuracy."""
from rlhf_jax.evaluation.policy_eval import (episode_metrics, evaluate_policy, implicit_reward_accuracy,
                                             rollout_components)

__all__ = ["episode_metrics", "evaluate_policy", "implicit_reward_accuracy", "rollout_components"]
