"""rlhf_jax: RLHF scaling experiments on robot-trajectory preference data, in JAX/Flax."""

__version__ = "0.1.0"
