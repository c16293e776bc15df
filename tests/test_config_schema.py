"""config_schema: each kind of record admits its domain and refuses the rest in one line naming the
field (with its prefix and meaning); "*" paths, optional fields, prefixed tables, registry options,
the generator of out-of-domain values and the --describe_fields listing."""
import math

import ml_collections
import pytest

from rlhf_jax import config_schema as S
from rlhf_jax.errors import ConfigError

CONFIG = {"n": 4, "lr": 0.1, "frac": 0.5, "kind": "a", "on": True, "name": "x", "sizes": (8, 8),
          "box": (0.0, 1.0), "names": ("a", "b"), "tags": ("t",), "layers": ((4,), (8, 8)), "floor": None,
          "defs": {"u": {"w": 0.5}, "v": {"w": 1.0, "extra": 2}}}
TABLE = (
    S.integer("n", "a count"),
    S.real("lr", "a rate", 0.0, open_lo=True),
    S.real("frac", "a share", 0.0, 1.0, open_hi=True),
    S.choice("kind", "a kind", ("a", "b")),
    S.boolean("on", "a switch"),
    S.string("name", "a name"),
    S.widths("sizes", "widths"),
    S.reals("box", "a box", length=2),
    S.choices("names", "names", ("a", "b"), nonempty=True),
    S.strings("tags", "tags"),
    S.layers("layers", "sizes"),
    S.real("floor", "a floor", optional=True),
    S.real("defs.*.w", "a weight", 0.0, 1.0),
    S.Field("defs.*.extra", "integer", "an extra", lo=0, optional=True),
)


def _config(**changes):
    raw = {**CONFIG, **changes}
    return ml_collections.ConfigDict(raw)   # built anew: a ConfigDict keeps each field's type


def test_the_defaults_pass_and_each_generated_value_is_refused_naming_the_field():
    S.validate(_config(), "x.py", TABLE)
    for field in TABLE:
        path = next(S.paths(_config(), field.path))
        for value in S.out_of_domain(field):
            *parents, leaf = path.split(".")
            raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in CONFIG.items()}
            node = raw
            for p in parents:
                node[p] = {k: dict(v) if isinstance(v, dict) else v for k, v in node[p].items()}
                node = node[p]
            node[leaf] = value
            with pytest.raises(ConfigError) as err:
                S.validate(ml_collections.ConfigDict(raw), "x.py", TABLE)
            line = str(err.value)
            assert line.startswith(f"x.py: field '{path}': expected ") and line.endswith(f"({field.meaning})"), line
            assert "\n" not in line


@pytest.mark.parametrize("field, good, bad", [
    (S.real("r", "", 0.0, 1.0, open_lo=True), (1e-9, 1.0), (0.0, 1.0 + 1e-9, math.nan, math.inf, True, "1")),
    (S.integer("i", "", lo=0, hi=3), (0, 3), (-1, 4, 1.0, True)),
    (S.seed("s"), (0, 2**31), (-1,)),
    (S.choice("c", "", ("x",)), ("x",), ("y", None)),
    (S.boolean("b", ""), (True, False), (1, "True")),
    (S.integers("v", "", lo=1, nonempty=True), ((1,), [2, 3]), ((), (0,), "12", (1.5,))),
    (S.reals("w", "", 0.0, length=4), ((0.0, 1, 2.0, 3.0),), ((0.0,) * 3, (-1.0, 0, 0, 0))),
    (S.layers("m", ""), (((1,),), ((2, 3), (4,))), ((), ((),), ((0,),), (1, 2))),
    (S.real("o", "", 0.0, optional=True), (None, 0.0), (-1.0,)),
])
def test_domains(field, good, bad):
    assert all(S.in_domain(field, v) for v in good)
    assert not any(S.in_domain(field, v) for v in bad)


def test_star_paths_expand_to_every_key_and_optional_fields_may_be_absent():
    config = _config()
    assert list(S.paths(config, "defs.*.w")) == ["defs.u.w", "defs.v.w"]
    assert S.matches("defs.*.w", "defs.v.w") and not S.matches("defs.*.w", "defs.v.extra")
    with pytest.raises(ConfigError, match=r"field 'defs\.v\.w': expected a finite number >= 0\.0 and <= 1\.0, got 2"):
        S.validate(_config(defs={"u": {"w": 0.5}, "v": {"w": 2}}), "x.py", TABLE)
    S.validate(_config(defs={"u": {"w": 0.5}}), "x.py", TABLE)   # "extra" is optional: absent is fine
    with pytest.raises(ConfigError, match="field 'missing': expected a value, got no such field"):
        S.validate(_config(), "x.py", (S.integer("missing", ""),))


def test_prefixed_tables_and_the_prefix_in_messages():
    stage = (S.integer("steps", "steps"), S.integer("reward.k", "members"))
    assert [f.path for f in S.prefixed("ppo.", stage)] == ["ppo.steps", "ppo.reward.k"]
    assert [f.path for f in S.prefixed("", stage, exclude=("reward",))] == ["steps"]
    with pytest.raises(ConfigError, match=r"^x\.py: field 'sft\.steps': expected a positive integer, got 0 \(steps\)$"):
        S.validate(ml_collections.ConfigDict({"steps": 0, "reward": {"k": 1}}), "x.py", stage, prefix="sft.")


def test_registry_options_are_read_when_checked():
    field = S.choice("task", "", "rlhf_jax.envs.tasks:TASKS")
    from rlhf_jax.envs.tasks import TASKS
    assert S.options_of(field) == tuple(TASKS) and "one of 'reach'" in S.domain(field)


def test_a_kind_outside_the_list_is_refused_when_the_table_is_written():
    with pytest.raises(ValueError, match="kind 'float'"):
        S.Field("x", "float", "")


def test_help_text_has_one_line_per_field_with_domain_and_meaning():
    lines = S.help_text(TABLE).splitlines()
    assert len(lines) == len(TABLE)
    for field, line in zip(TABLE, lines):
        assert line.startswith(field.path + " ") and field.meaning in line and S.domain(field) in line
    assert "or None" in lines[[f.path for f in TABLE].index("floor")]
