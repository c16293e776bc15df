"""Preference pairs: segments cut from episodes, pair sampling, simulated annotators, AI routing."""
