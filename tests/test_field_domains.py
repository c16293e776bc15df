"""Generated from the field descriptions (``FIELDS`` of every ``configs/*.py``): every field of every
job, given each value its description must refuse, ends the job in-process with exit code 2, one
stderr line naming the field's dotted path, and no workdir; every variant of every config passes
its own table, and every leaf of every config is described (or listed in ``UNCHECKED`` with a
reason), so a new field cannot go unchecked unnoticed.
"""
from __future__ import annotations

import ast
import functools
import importlib
import math
import os

import ml_collections
import pytest

from rlhf_jax import config_schema
from rlhf_jax.data.variants import VARIANTS as DATASET_VARIANTS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config_names() -> list[str]:
    return sorted(n[:-3] for n in os.listdir(os.path.join(ROOT, "configs")) if n.endswith(".py") and n != "__init__.py")


def _jobs() -> dict[str, str]:
    """{job module: its config module}: every experiments/*.py whose ``main`` goes through run_main,
    with the config its docstring's command names."""
    jobs = {}
    for name in sorted(os.listdir(os.path.join(ROOT, "experiments"))):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(ROOT, "experiments", name), encoding="utf-8") as f:
            source = f.read()
        if name == "cli.py" or not ("cli.run_main" in source or "cli.job_main" in source):
            continue
        doc = ast.get_docstring(ast.parse(source)) or ""
        job = name[:-3]
        command = next(line for line in doc.splitlines() if f"experiments.{job} " in line)
        jobs[job] = command.split("--config configs/")[1].split(".py")[0]
    return jobs


JOBS = _jobs()


@functools.lru_cache(maxsize=None)
def _module(name: str):
    return importlib.import_module(f"configs.{name}")


def _variants(name: str) -> tuple[str, ...]:
    return DATASET_VARIANTS if name == "dataset" else tuple(_module(name).VARIANTS)


def _test_variant(name: str) -> str:
    return "tiny" if "tiny" in _variants(name) else "quick"


def _leaves(config, prefix: str = ""):
    for key in config.keys():
        value = config[key]
        if isinstance(value, ml_collections.ConfigDict):  # an empty group has no leaf to describe
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield prefix + key


def _get(config, path: str, default=None):
    for part in path.split("."):
        if not isinstance(config, ml_collections.ConfigDict) or part not in config:
            return default
        config = config[part]
    return config


def _has(config, path: str) -> bool:
    return _get(config, path, _get) is not _get


def _has_group(config, path: str) -> bool:
    return isinstance(_get(config, path), ml_collections.ConfigDict)


def _cases():
    for job, name in JOBS.items():
        variant = _test_variant(name)
        config = _module(name).get_config(variant)
        for field in _module(name).FIELDS:
            path = next((p for p in config_schema.paths(config, field.path) if _has(config, p)), None)
            if path is None:  # a "*" group empty in this variant (e.g. kl_beta_by_arm)
                continue
            for k, value in enumerate(config_schema.out_of_domain(field)):
                if isinstance(_get(config, path), int) and isinstance(value, float) and value.is_integer():
                    value = int(value)   # an integer-valued number field: the flag keeps its type
                yield pytest.param(job, name, variant, field, path, value, id=f"{job}-{path}-{k}")


CASES = list(_cases())


def test_every_job_has_a_described_config():
    assert len(JOBS) >= 17, JOBS
    for job, name in JOBS.items():
        assert isinstance(getattr(_module(name), "FIELDS", None), tuple), f"configs/{name}.py (job {job}) has no FIELDS"


@pytest.mark.parametrize("name", _config_names())
def test_each_variant_passes_its_table_and_every_leaf_is_described(name):
    module = _module(name)
    unchecked = getattr(module, "UNCHECKED", {})
    assert all(isinstance(reason, str) and reason for reason in unchecked.values())
    seen = set()
    for variant in _variants(name):
        config = module.get_config(variant)
        config_schema.validate(config, f"configs/{name}.py", module.FIELDS)
        leaves = list(_leaves(config))
        undescribed = [leaf for leaf in leaves if not any(leaf == u or leaf.startswith(u + ".") for u in unchecked)
                       and not any(config_schema.matches(f.path, leaf) for f in module.FIELDS)]
        assert not undescribed, f"configs/{name}.py:{variant}: no Field and no UNCHECKED reason for {undescribed}"
        seen |= {f.path for f in module.FIELDS if any(config_schema.matches(f.path, leaf) for leaf in leaves)
                 or ("*" in f.path and _has_group(config, f.path.split(".*")[0]))}
    stale = [f.path for f in module.FIELDS if f.path not in seen and not f.optional]
    assert not stale, f"configs/{name}.py describes fields no variant has: {stale}"
    assert all(_has(module.get_config(_test_variant(name)), p) for p in unchecked), unchecked


def test_tables_that_copy_a_registry_match_it():
    """Where a table lists allowed names itself (a registry minus some members), they are the
    library's own."""
    from configs import online_rlhf, ppo, rlhf_pipeline
    from rlhf_jax.ensemble import AGGREGATIONS
    from rlhf_jax.query import KCENTER_METHODS, METHODS
    from rlhf_jax.train.online_ppo import GOLD, MODES

    def options(module, path):
        return config_schema.options_of(next(f for f in module.FIELDS if f.path == path))

    reward_aggregations = tuple(a for a in AGGREGATIONS if a != "std")
    assert options(rlhf_pipeline, "eval.aggregation") == options(ppo, "reward.aggregation") == reward_aggregations
    assert options(online_rlhf, "reward.aggregation") == reward_aggregations
    assert options(online_rlhf, "online.query") == tuple(m for m in METHODS if m not in KCENTER_METHODS)
    assert set(options(online_rlhf, "modes")) == set(MODES + (GOLD,))


def test_config_modules_import_no_jax():
    """A config module names library registries as "module:NAME" instead of importing them, so
    loading every config (and its FIELDS) stays free of JAX and NumPy."""
    import subprocess
    import sys

    names = ", ".join(f"configs.{n}" for n in _config_names())
    code = f"import sys, {names}; print(sorted({{'jax', 'numpy'}} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_describe_fields_lists_every_field_and_runs_nothing(tmp_path, capsys, monkeypatch):
    from configs import ppo
    from experiments import ppo_rlhf

    monkeypatch.chdir(ROOT)
    workdir = tmp_path / "run"
    code = ppo_rlhf.main(["prog", "--config=configs/ppo.py:quick", "--describe_fields", f"--workdir={workdir}"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0 and not workdir.exists()
    assert [line.split()[0] for line in out] == [f.path for f in ppo.FIELDS]
    assert all(f.meaning in line for f, line in zip(ppo.FIELDS, out))


def _argv(tmp_path, name, variant, field, path, value) -> list[str]:
    """The job's command line: the real --config.<path> flag where it can carry the value, else a
    wrapper config file (a wrong type for a string or bool field, a field whose value is None, a
    NaN inside a tuple, which the flag's literal parser cannot read)."""
    current = _get(_module(name).get_config(variant), path)
    nan_item = isinstance(value, tuple) and any(isinstance(v, float) and math.isnan(v) for v in value)
    if field.kind in ("boolean", "string", "strings") or current is None or nan_item:
        return [f"--config={_wrapper(tmp_path, name, path, value)}:{variant}"]
    text = value if isinstance(value, str) else repr(value)
    return [f"--config=configs/{name}.py:{variant}", f"--config.{path}={text}"]


def _wrapper(tmp_path, name, path, value) -> str:
    wrapper = tmp_path / f"bad_{name}.py"
    wrapper.write_text(
        "from math import nan  # noqa: F401  (the repr of a NaN)\n\n"
        f"from configs.{name} import FIELDS, get_config as _get_config  # noqa: F401\n\n\n"
        "def get_config(arg):\n"
        "    c = _get_config(arg)\n"
        f"    *parents, leaf = {path!r}.split('.')\n"
        "    node = c\n"
        "    for p in parents:\n"
        "        node = node[p]\n"
        "    with node.ignore_type():\n"
        f"        node[leaf] = {value!r}\n"
        "    return c\n", encoding="utf-8")
    return str(wrapper)


@pytest.mark.parametrize("job, name, variant, field, path, value", CASES)
def test_an_out_of_domain_field_stops_the_job_in_one_line(job, name, variant, field, path, value, tmp_path,
                                                           capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    main = importlib.import_module(f"experiments.{job}").main
    workdir = tmp_path / "run"
    wants_workdir = main.keywords.get("workdir", True)
    argv = _argv(tmp_path, name, variant, field, path, value)
    argv += ["--workdir", str(workdir)] if wants_workdir else ["--data_dir", str(workdir)]
    code = main(["prog", *argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert f"field '{path}'" in lines[0] and f"({field.meaning})" in lines[0], lines[0]   # the record's own line
    assert not workdir.exists()
