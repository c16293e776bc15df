"""Pure loss functions, each returning (loss, metrics) or per-example losses (see docstrings)."""
from rlhf_jax.losses.bradley_terry import bradley_terry_loss, preference_probability

__all__ = ["bradley_terry_loss", "preference_probability"]
