"""Pure loss functions, each returning (loss, metrics) or per-example losses (see docstrings)."""
from rlhf_jax.losses.bc import bc_loss
from rlhf_jax.losses.bradley_terry import bradley_terry_loss, preference_probability
from rlhf_jax.losses.dpo import (LOSS_TYPES, dpo_loss, dpo_loss_mixture, loss_weights, preference_dpo_loss,
                                 validate_loss_spec)

__all__ = ["bradley_terry_loss", "preference_probability", "dpo_loss", "dpo_loss_mixture",
           "preference_dpo_loss", "loss_weights", "validate_loss_spec", "LOSS_TYPES", "bc_loss"]
