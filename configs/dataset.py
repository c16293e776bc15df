"""Build (or reuse) a variant of the embedded RLDS dataset ahead of its first use.

  python -m experiments.make_dataset --config configs/dataset.py:default --data_dir DIR
  python -m experiments.make_dataset --config configs/dataset.py:tiny --config.force=True

Variants (defined with the dataset, in rlhf_jax.data.variants): tiny (tests), default (the
experiments' dataset: 1,680 episodes), large (8,400 episodes). --data_dir defaults to
$RLHF_JAX_DATA_DIR, else ~/.cache/rlhf_jax. force=True rebuilds a cached variant.
"""
import ml_collections

from rlhf_jax.config_schema import boolean, choice


def get_config(arg: str = "default") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.variant = arg or "default"
    c.force = False
    return c


FIELDS = (
    choice("variant", "the dataset variant to build", "rlhf_jax.data.variants:VARIANTS"),
    boolean("force", "rebuild a cached variant"),
)
UNCHECKED = {}
