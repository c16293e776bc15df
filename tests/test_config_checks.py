"""FieldChecker: each check passes values in its domain and refuses the rest in one line naming
the config file and the dotted field."""
import math

import ml_collections
import pytest

from rlhf_jax.config_checks import FieldChecker
from rlhf_jax.errors import ConfigError

VALID = {"fit": {"target_error": 0.1, "n_bootstrap": 100}, "optimizer": {"schedule": "cosine"}, "seed": 0}
CONFIG = ml_collections.ConfigDict(VALID)


@pytest.mark.parametrize("method, field, kwargs, bad", [
    ("real", "fit.target_error", dict(lo=0.0, hi=1.0, open_lo=True, open_hi=True), (0.0, 1.0, math.nan, True)),
    ("integer", "fit.n_bootstrap", dict(lo=1), (0, -3, 2.5, True)),
    ("integer", "seed", dict(lo=0), (-1, 1.0)),
    ("choice", "optimizer.schedule", dict(options=("cosine", "constant")), ("bogus",)),
])
def test_domains_pass_and_refuse_naming_the_field(method, field, kwargs, bad):
    getattr(FieldChecker(CONFIG, "configs/x.py"), method)(field, **kwargs)  # the defaults are valid
    for value in bad:
        block, _, name = field.rpartition(".")
        raw = {k: dict(v) if isinstance(v, dict) else v for k, v in VALID.items()}
        (raw[block] if block else raw)[name] = value
        config = ml_collections.ConfigDict(raw)  # built anew: a ConfigDict keeps each field's type
        with pytest.raises(ConfigError, match=rf"^configs/x\.py: field '{field}': expected"):
            getattr(FieldChecker(config, "configs/x.py"), method)(field, **kwargs)


def test_a_missing_field_is_refused_unless_a_default_is_given():
    c = FieldChecker(CONFIG, "configs/x.py")
    assert c.get("fit.nothing", None) is None
    with pytest.raises(ConfigError, match="field 'fit.nothing'.*no such field"):
        c.get("fit.nothing")
