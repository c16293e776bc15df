"""rlhf_jax.config_types: a config's fields against the kinds of its variant's defaults."""
import ml_collections
import pytest

from rlhf_jax.config_types import check_types
from rlhf_jax.errors import ConfigError

DEFAULT = ml_collections.ConfigDict({
    "steps": 100, "rate": 1e-3, "tensorboard": False, "name": "oracle", "anything": None,
    "n_values": (25, 50), "model_sizes": ((64, 64),), "routes": (("ai", None, 0.5),),
    "fit": {"n_bootstrap": 50},
})


def config_with(**changes) -> ml_collections.ConfigDict:
    """A config built afresh (a ConfigDict refuses to retype a field it holds)."""
    return ml_collections.ConfigDict({**DEFAULT.to_dict(), **changes})


@pytest.mark.parametrize("field, value", [
    ("rate", 3), ("anything", "text"), ("anything", (1, "a")), ("n_values", ()), ("n_values", (1, 2, 3)),
    ("model_sizes", ((32,), (8, 8, 8))), ("routes", (("human", 1.0, 2), ("ai", None, 0.1))),
])
def test_values_of_the_default_kind_pass(field, value):
    check_types(config_with(**{field: value}), DEFAULT, "configs/x.py")


@pytest.mark.parametrize("field, value, expected", [
    ("steps", True, "expected an int"),            # a bool is an int to Python, not to a config
    ("steps", 1.5, "expected an int"),
    ("tensorboard", 1, "expected a bool"),
    ("name", 3, "expected a string"),
    ("n_values", 32, "expected a tuple of ints"),
    ("n_values", (25, "50"), "expected a tuple of ints"),
    ("model_sizes", (32,), "expected a tuple of tuples of ints"),
    ("routes", (("ai", None),), "expected a tuple of tuples (a string, anything, a number)"),
    ("routes", (("ai", None, "half"),), "expected a tuple of tuples (a string, anything, a number)"),
    ("fit", 3, "expected a group of fields"),
])
def test_a_value_of_another_kind_is_one_line_naming_the_field(field, value, expected):
    with pytest.raises(ConfigError) as err:
        check_types(config_with(**{field: value}), DEFAULT, "configs/x.py")
    line = str(err.value)
    assert "\n" not in line and line.startswith("configs/x.py") and f"'{field}'" in line and expected in line


def test_nested_fields_are_named_by_their_dotted_path():
    c = config_with(fit={"n_bootstrap": "many"})
    with pytest.raises(ConfigError, match=r"field 'fit\.n_bootstrap': expected an int"):
        check_types(c, DEFAULT, "configs/x.py")
