"""Shared, resumable stage runners that jobs compose: SFT, pi_SFT rollouts, the reward-model
sweep, PPO and DPO, and the stage wrapper that makes a finished stage reusable on ``--resume``.

A stage may use the CLI helpers (``experiments.cli``) and the library; it never imports a job.
"""
