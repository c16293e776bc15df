"""Import layering of the repository, read from the source (see tests/import_graph.py).

Every module under rlhf_jax/, experiments/, benchmarks/ and tests/ is parsed, and its
imports, at module level or inside functions, checked against the rules; each rule fails
with the list of offending edges:

  (a) the library never imports experiments, configs, benchmarks or tests;
  (b) rlhf_jax.losses imports nothing of rlhf_jax but itself; rlhf_jax.envs only itself and
      rlhf_jax.errors;
  (c) the module-level imports of rlhf_jax form no cycle;
  (d) no module imports a private name of another project module or reads ``mod._name`` of
      one (``getattr``/``setattr`` with a literal private name included);
  (e) no job imports another job (a job: an experiments module with a ``__main__`` block); a
      job imports from experiments only the CLI, stage runners, its own report module and
      helper modules without a ``__main__`` block, and those helpers import no job;
      benchmarks import no job.

``python -m tests.test_layering`` prints the counts a reviewer can quote.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import os
import textwrap

import pytest

from tests.import_graph import (PROJECT, WALKED, Edge, ParsedModule, PrivateUse, cycles, discover, in_package,
                                is_job, job_may_import, module_edges, own_report, private_uses, top_package)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARY = "rlhf_jax"

# Rank of each top-level package: an import from a lower rank to a higher one runs back up.
PACKAGE_RANK = {"configs": 0, "rlhf_jax": 0, "experiments": 1, "benchmarks": 2, "tests": 3}
# Rank of the library's rooms (DESIGN.md "Layout"): leaves first, consumers last. Preference
# pairs (segments, annotators) are pure functions of arrays, below the episode loaders (data)
# that cut them from datasets; training sits below the evaluation of what it trains. Top-level library modules not named here (sharding, checkpoint, normalizer,
# ...) sit with features and models: above the leaves they use, below the rooms that use them.
LIBRARY_RANK = {"errors": 0, "losses": 1, "envs": 1, "features": 2, "models": 2, "preferences": 3,
                "data": 4, "labels": 5, "train": 6, "evaluation": 7}
TOP_LEVEL_LIBRARY_RANK = 2


def layer_rank(module: str) -> tuple[int, int]:
    """(package rank, room rank) of a project module; higher ranks use lower ones."""
    parts = module.split(".")
    if parts[0] != LIBRARY or len(parts) == 1:
        return PACKAGE_RANK[parts[0]], 0
    return PACKAGE_RANK[LIBRARY], LIBRARY_RANK.get(parts[1], TOP_LEVEL_LIBRARY_RANK)


# ----------------------------------------------------------------------------- the repository

@dataclasses.dataclass(frozen=True)
class Repository:
    """The parsed modules, every module name the project defines, and the project import edges."""
    modules: dict[str, ParsedModule]
    known: frozenset[str]
    edges: tuple[Edge, ...]


@functools.lru_cache(maxsize=None)
def repository() -> Repository:
    """The repository as parsed once per process (configs only named, never walked)."""
    modules = discover(ROOT)
    configs = [n[:-3] for n in os.listdir(os.path.join(ROOT, "configs")) if n.endswith(".py")]
    known = frozenset(set(modules) | {"configs"} | {f"configs.{n}" for n in configs if n != "__init__"})
    edges = tuple(e for m in modules.values() for e in module_edges(m, known)
                  if top_package(e.target) in PROJECT and e.target != e.importer)
    return Repository(modules, known, edges)


def jobs() -> set[str]:
    """The job modules of experiments (those with a ``__main__`` block)."""
    return {name for name, m in repository().modules.items() if in_package(name, "experiments") and is_job(m)}


def violations_library_imports_above() -> list[Edge]:
    """Rule (a): library -> experiments/configs/benchmarks/tests edges."""
    edges = repository().edges
    return [e for e in edges if in_package(e.importer, LIBRARY) and top_package(e.target) != LIBRARY]


def violations_low_rooms() -> list[Edge]:
    """Rule (b): losses/envs -> any other room of the library (envs may use errors)."""
    edges = repository().edges
    allowed = {"rlhf_jax.losses": ("rlhf_jax.losses",), "rlhf_jax.envs": ("rlhf_jax.envs", "rlhf_jax.errors")}
    return [e for e in edges for room, ok in allowed.items()
            if in_package(e.importer, room) and top_package(e.target) == LIBRARY
            and not any(in_package(e.target, p) for p in ok)]


def library_cycles() -> list[list[str]]:
    """Rule (c): the library's module-level (run-time) import cycles, one sorted list each."""
    edges = repository().edges
    graph = {}
    for e in edges:
        if e.module_level and e.runtime and in_package(e.importer, LIBRARY) and in_package(e.target, LIBRARY):
            graph.setdefault(e.importer, set()).add(e.target)
    return cycles(graph)


@functools.lru_cache(maxsize=None)
def all_private_uses() -> tuple[PrivateUse, ...]:
    """Rule (d) over the whole repository, computed once."""
    repo = repository()
    return tuple(use for m in repo.modules.values() for use in private_uses(m, repo.known))


def violations_private(package: str | None = None) -> list[PrivateUse]:
    """Private uses by modules of ``package`` (all packages when None)."""
    return [u for u in all_private_uses() if package is None or top_package(u.module) == package]


def violations_jobs() -> list[Edge]:
    """Rule (e): job -> experiments edges a job may not have; helper -> job edges (a helper
    importing a job would let jobs reach each other through it); benchmark -> job edges."""
    edges = repository().edges
    job_set = jobs()
    return [e for e in edges if in_package(e.target, "experiments") and (
        (e.importer in job_set and not job_may_import(e.importer, e.target, job_set))
        or (in_package(e.importer, "experiments") and e.importer not in job_set and e.target in job_set)
        or (in_package(e.importer, "benchmarks") and e.target in job_set))]


def upward_edges() -> list[Edge]:
    """Edges from a lower layer to a higher one (library rooms, then packages)."""
    edges = repository().edges
    return [e for e in edges if layer_rank(e.importer) < layer_rank(e.target)]


def layering_counts() -> dict[str, int]:
    """The numbers a review quotes: edges back up the layers, cycles, job -> job edges, ..."""
    repo, found, job_edges = repository(), library_cycles(), violations_jobs()
    counts = {"modules": len(repo.modules), "import_edges": len(repo.edges), "upward_edges": len(upward_edges()),
              "library_cycles": len(found), "modules_in_cycles": sum(map(len, found)),
              "job_to_job_edges": sum(e.importer in jobs() for e in job_edges),
              "helper_to_job_edges": sum(in_package(e.importer, "experiments") and e.importer not in jobs()
                                         for e in job_edges),
              "benchmark_to_job_edges": sum(in_package(e.importer, "benchmarks") for e in job_edges),
              "library_imports_above": len(violations_library_imports_above()),
              "low_room_violations": len(violations_low_rooms())}
    for package in WALKED:
        counts[f"private_uses_by_{package}"] = len(violations_private(package))
    return counts


def print_layering_counts() -> None:
    """Prints ``layering_counts`` and the edges behind each nonzero count."""
    for key, value in layering_counts().items():
        print(f"{key:>28}: {value}")
    details = {"upward edges": upward_edges(), "cycles": library_cycles(), "job edges": violations_jobs(),
               "private uses": violations_private()}
    for title, items in details.items():
        if items:
            print(f"\n{title}:")
            print("\n".join(f"  {item}" for item in items))


def listing(items) -> str:
    """One item per line, for failure messages."""
    return "\n".join(str(item) for item in items)


# ----------------------------------------------------------------------------- the rules

def test_library_imports_no_experiments_configs_benchmarks_or_tests():
    found = violations_library_imports_above()
    assert not found, "rlhf_jax imports from above the library:\n" + listing(found)


def test_losses_and_envs_import_no_higher_room():
    found = violations_low_rooms()
    assert not found, "losses/envs import a higher room of rlhf_jax:\n" + listing(found)


def test_library_rooms_import_only_lower_rooms():
    found = upward_edges()
    assert not found, "imports that run back up the library's rooms:\n" + listing(found)


def test_library_has_no_import_cycles():
    found = library_cycles()
    assert not found, "module-level import cycles in rlhf_jax:\n" + listing(" <-> ".join(c) for c in found)


@pytest.mark.parametrize("package", [
    "rlhf_jax",
    "experiments",
    "benchmarks",
    "tests",
])
def test_no_private_names_of_other_modules(package):
    found = violations_private(package)
    assert not found, f"{package} uses private names of other modules:\n" + listing(found)


def test_no_job_imports_another_job():
    found = [e for e in violations_jobs() if in_package(e.importer, "experiments")]
    assert not found, "job -> job (or helper -> job) imports in experiments:\n" + listing(found)


def test_benchmarks_import_no_job():
    found = [e for e in violations_jobs() if in_package(e.importer, "benchmarks")]
    assert not found, "benchmark -> job imports:\n" + listing(found)


# ----------------------------------------------------------------------------- the walker itself

SAMPLE = {
    "pkg/__init__.py": "",
    "pkg/low.py": "import pkg.high\n_hidden = 1\n",
    "pkg/high.py": textwrap.dedent("""\
        from . import low
        from .low import _hidden
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from pkg import mid
        def later():
            import pkg.mid as m
            return m._secret, getattr(low, "_hidden"), low.__name__
        """),
    "pkg/mid.py": "_secret = 2\n",
}


@pytest.fixture()
def sample(tmp_path):
    for rel, text in SAMPLE.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return discover(str(tmp_path), ("pkg",))


def test_walker_sees_relative_function_level_and_type_checking_imports(sample):
    edges = {(e.target, e.names, e.module_level, e.runtime) for e in module_edges(sample["pkg.high"], set(sample))}
    assert ("pkg.low", (), True, True) in edges                 # from . import low: the submodule
    assert ("pkg.low", ("_hidden",), True, True) in edges       # a name, not a module
    assert ("pkg.mid", (), True, False) in edges                # under TYPE_CHECKING
    assert ("pkg.mid", (), False, True) in edges                # inside a function
    graph = {}
    for m in sample.values():
        for e in module_edges(m, set(sample)):
            if e.module_level and e.runtime and e.target in sample:
                graph.setdefault(m.name, set()).add(e.target)
    assert cycles(graph) == [["pkg.high", "pkg.low"]]


def test_walker_finds_private_imports_attributes_and_getattr(sample):
    found = {(u.owner, u.name) for u in private_uses(sample["pkg.high"], set(sample), project=("pkg",))}
    assert found == {("pkg.low", "_hidden"), ("pkg.mid", "_secret")}
    assert private_uses(sample["pkg.low"], set(sample), project=("pkg",)) == []  # its own private name


def test_cycles_closed_forms():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}) == [["a", "b"], ["c", "d"]]


def test_own_report_and_job_detection():
    assert own_report("experiments.online_rlhf", "experiments.online_report")
    assert own_report("experiments.cross_embodiment", "experiments.cross_embodiment_report")
    assert not own_report("experiments.online_rlhf", "experiments.pipeline_report")
    main_source, helper_source = 'if __name__ == "__main__":\n    pass\n', "def main():\n    pass\n"
    main = ParsedModule("m", False, main_source, ast.parse(main_source))
    helper = ParsedModule("m", False, helper_source, ast.parse(helper_source))
    assert is_job(main) and not is_job(helper)
    job_set = {"experiments.online_rlhf", "experiments.train_sft", "experiments.scaling_report"}
    allowed = ("experiments.cli", "experiments.stages.sft", "experiments.online_report", "experiments.label_app")
    assert all(job_may_import("experiments.online_rlhf", target, job_set) for target in allowed)
    assert not job_may_import("experiments.online_rlhf", "experiments.train_sft", job_set)
    assert not job_may_import("experiments.online_rlhf", "experiments.scaling_report", job_set)  # another's report


if __name__ == "__main__":
    print_layering_counts()


def library_modules_no_test_imports() -> list[str]:
    """Library modules (``__init__`` aside) that no test module imports directly."""
    repo = repository()
    tested = {e.target for e in repo.edges if in_package(e.importer, "tests")}
    return sorted(name for name, m in repo.modules.items()
                  if in_package(name, LIBRARY) and not m.is_package and name not in tested)


def test_every_library_module_is_imported_by_a_test_module():
    missing = library_modules_no_test_imports()
    assert not missing, "library modules that no test module imports:\n" + listing(missing)
