"""Import layering of the repository, read from the source with ``ast`` (nothing is imported).

Every module under rlhf_jax/, experiments/, benchmarks/ and tests/ is parsed; each import
statement, at module level or inside a function, becomes an edge importer -> target, the
target being the most specific module it names (``from rlhf_jax.data import oxe`` is an edge
to ``rlhf_jax.data.oxe``; ``from rlhf_jax.data import load_rlds`` one to ``rlhf_jax.data``).
The rules, each failing with the list of offending edges:

  (a) the library never imports experiments, configs, benchmarks or tests;
  (b) rlhf_jax.losses imports nothing of rlhf_jax but itself; rlhf_jax.envs only itself and
      rlhf_jax.errors;
  (c) the module-level imports of rlhf_jax form no cycle;
  (d) no module imports a private name of another project module or reads ``mod._name`` of
      one (``getattr``/``setattr`` with a literal private name included);
  (e) no job imports another job (a job: an experiments module with a ``__main__`` block); a
      job imports from experiments only the CLI, stage runners, its own report module and
      helper modules without a ``__main__`` block; benchmarks import no job.

``python -m tests.test_layering`` prints the counts a reviewer can quote.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import os
import re
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WALKED = ("rlhf_jax", "experiments", "benchmarks", "tests")
PROJECT = WALKED + ("configs",)
LIBRARY = "rlhf_jax"

# Rank of each top-level package: an import from a lower rank to a higher one runs back up.
PACKAGE_RANK = {"configs": 0, "rlhf_jax": 0, "experiments": 1, "benchmarks": 2, "tests": 3}
# Rank of the library's rooms (DESIGN.md "Layout"): leaves first, consumers last. Episodes
# (data) sit below the preference pairs cut from them, and training below the evaluation of
# what it trains. Top-level library modules not named here (sharding, checkpoint, normalizer,
# ...) sit with features and models: above the leaves they use, below the rooms that use them.
LIBRARY_RANK = {"errors": 0, "losses": 1, "envs": 1, "features": 2, "models": 2, "data": 3,
                "preferences": 4, "labels": 5, "train": 6, "evaluation": 7}
TOP_LEVEL_LIBRARY_RANK = 2


@dataclasses.dataclass(frozen=True)
class Edge:
    """One import: ``importer`` imports module ``target`` (with ``names`` from it, if any)."""
    importer: str
    target: str
    names: tuple[str, ...]
    line: int
    module_level: bool
    runtime: bool  # False under ``if TYPE_CHECKING:``

    def __str__(self) -> str:
        what = f" ({', '.join(self.names)})" if self.names else ""
        return f"{self.importer} -> {self.target}{what}  [line {self.line}]"


@dataclasses.dataclass(frozen=True)
class PrivateUse:
    """``module`` reads private name ``name`` of project module ``owner`` at ``line``."""
    module: str
    owner: str
    name: str
    line: int

    def __str__(self) -> str:
        return f"{self.module} uses {self.owner}.{self.name}  [line {self.line}]"


@dataclasses.dataclass(frozen=True)
class ParsedModule:
    """A module's dotted name, whether it is a package's __init__, its source and syntax tree."""
    name: str
    is_package: bool
    source: str
    tree: ast.Module

    @functools.cached_property
    def imports(self) -> tuple:
        """(import node, module_level, runtime) of every import statement, walked once."""
        return tuple(_import_nodes(self.tree.body))


def is_private(name: str) -> bool:
    """A leading underscore that is not a dunder (``_x`` yes, ``__version__`` no)."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def top_package(module: str) -> str:
    return module.split(".")[0]


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def discover(root: str, packages=WALKED) -> dict[str, ParsedModule]:
    """{dotted name: parsed module} of every .py file under ``packages`` of ``root``."""
    modules = {}
    for package in packages:
        for folder, dirs, files in os.walk(os.path.join(root, package)):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__pycache__")))
            for file in sorted(f for f in files if f.endswith(".py")):
                path = os.path.join(folder, file)
                parts = os.path.relpath(path, root)[:-3].split(os.sep)
                is_package = parts[-1] == "__init__"
                name = ".".join(parts[:-1] if is_package else parts)
                with open(path, encoding="utf-8") as f:
                    source = f.read()
                modules[name] = ParsedModule(name, is_package, source, ast.parse(source, path))
    return modules


def _absolute(module: ParsedModule, node: ast.ImportFrom) -> str:
    """The absolute dotted module of a (possibly relative) ``from ... import``."""
    if not node.level:
        return node.module or ""
    parts = module.name.split(".")
    base = parts if module.is_package else parts[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


STATEMENT_LISTS = ("body", "orelse", "finalbody", "handlers", "cases")


def _import_nodes(statements, module_level: bool = True, runtime: bool = True):
    """Yields (import node, module_level, runtime) for every import statement in ``statements``
    and the statements nested in them (imports are statements, so expressions are skipped)."""
    for node in statements:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, module_level, runtime
            continue
        in_function = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        checking = isinstance(node, ast.If) and _is_type_checking(node)
        for field in STATEMENT_LISTS:
            nested = getattr(node, field, None)
            if nested:
                yield from _import_nodes(nested, module_level and not in_function,
                                         runtime and not (checking and field == "body"))


def module_edges(module: ParsedModule, known: set[str]) -> list[Edge]:
    """Edges of every import in ``module``; a from-import of a submodule targets the submodule."""
    edges = []
    for node, module_level, runtime in module.imports:
        where = dict(line=node.lineno, module_level=module_level, runtime=runtime)
        if isinstance(node, ast.Import):
            edges += [Edge(module.name, alias.name, (), **where) for alias in node.names]
            continue
        source = _absolute(module, node)
        plain = []
        for alias in node.names:
            if f"{source}.{alias.name}" in known:
                edges.append(Edge(module.name, f"{source}.{alias.name}", (), **where))
            else:
                plain.append(alias.name)
        if plain:
            edges.append(Edge(module.name, source, tuple(plain), **where))
    return edges


def _module_bindings(module: ParsedModule, known: set[str], project=PROJECT) -> dict[str, str]:
    """{local name: project module} bound by the imports of ``module`` (any scope)."""
    bound = {}
    for node, _, _ in module.imports:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
            continue
        source = _absolute(module, node)
        for alias in node.names:
            if f"{source}.{alias.name}" in known:
                bound[alias.asname or alias.name] = f"{source}.{alias.name}"
    return {name: target for name, target in bound.items() if top_package(target) in project}


def _dotted(node: ast.AST, bound: dict[str, str]) -> str | None:
    """The module an expression like ``fx`` or ``rlhf_jax.data.oxe`` names, else None."""
    if isinstance(node, ast.Name):
        return bound.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, bound)
        return f"{base}.{node.attr}" if base else None
    return None


def private_uses(module: ParsedModule, known: set[str], project=PROJECT) -> list[PrivateUse]:
    """Private names of other project modules that ``module`` imports or reads."""
    uses = []
    for edge in module_edges(module, known):
        if top_package(edge.target) in project and edge.target != module.name:
            uses += [PrivateUse(module.name, edge.target, n, edge.line) for n in edge.names if is_private(n)]
    bound = _module_bindings(module, known, project)
    # Walking every expression is the slow part; skip modules whose text holds no candidate
    # (an imported module's name followed by ``._`` somewhere after it, or a *attr( call).
    pattern = rf"\b(?:{'|'.join(map(re.escape, bound))})\b[\w.]*\._|attr\("
    if not bound or not re.search(pattern, module.source):
        return uses
    for node in ast.walk(module.tree):
        owner, name = None, None
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            owner, name = _dotted(node.value, bound), node.attr
        elif (isinstance(node, ast.Call) and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
              and isinstance(node.args[1].value, str) and is_private(node.args[1].value)
              and getattr(node.func, "id", getattr(node.func, "attr", None)) in ("getattr", "setattr", "hasattr")):
            owner, name = _dotted(node.args[0], bound), node.args[1].value
        if owner in known and owner != module.name:
            uses.append(PrivateUse(module.name, owner, name, node.lineno))
    return uses


def is_job(module: ParsedModule) -> bool:
    """An experiments module run as ``python -m``: it has an ``if __name__ == "__main__"`` block."""
    for node in module.tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
            sides = [node.test.left, *node.test.comparators]
            if (any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
                    and any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides)):
                return True
    return False


def own_report(job: str, target: str) -> bool:
    """``experiments.<p>_report`` is the job's own report module when the job's name starts
    with ``p`` (online_rlhf -> online_report, scaling_sweep -> scaling_report)."""
    leaf = target.rsplit(".", 1)[-1]
    return (in_package(target, "experiments") and target.count(".") == 1 and leaf.endswith("_report")
            and job.rsplit(".", 1)[-1].startswith(leaf[:-len("_report")]))


def job_may_import(job: str, target: str, jobs: set[str]) -> bool:
    """Whether job module ``job`` may import experiments module ``target``."""
    return (target in ("experiments", "experiments.cli") or in_package(target, "experiments.stages")
            or own_report(job, target) or target not in jobs)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):  # recursion depth is bounded by the module count (~200)
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


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
    config_names = {n[:-3] for n in os.listdir(os.path.join(ROOT, "configs")) if n.endswith(".py") and n != "__init__.py"}
    known = frozenset(set(modules) | {"configs"} | {f"configs.{name}" for name in config_names})
    edges = tuple(e for m in modules.values() for e in module_edges(m, known)
                  if top_package(e.target) in PROJECT and e.target != e.importer)
    return Repository(modules, known, edges)


def jobs() -> set[str]:
    return {name for name, m in repository().modules.items() if in_package(name, "experiments") and is_job(m)}


def violations_library_imports_above() -> list[Edge]:
    edges = repository().edges
    return [e for e in edges if in_package(e.importer, LIBRARY) and top_package(e.target) != LIBRARY]


def violations_low_rooms() -> list[Edge]:
    edges = repository().edges
    allowed = {"rlhf_jax.losses": ("rlhf_jax.losses",), "rlhf_jax.envs": ("rlhf_jax.envs", "rlhf_jax.errors")}
    return [e for e in edges for room, ok in allowed.items()
            if in_package(e.importer, room) and top_package(e.target) == LIBRARY
            and not any(in_package(e.target, p) for p in ok)]


def library_cycles() -> list[list[str]]:
    edges = repository().edges
    graph = {}
    for e in edges:
        if e.module_level and e.runtime and in_package(e.importer, LIBRARY) and in_package(e.target, LIBRARY):
            graph.setdefault(e.importer, set()).add(e.target)
    return cycles(graph)


@functools.lru_cache(maxsize=None)
def all_private_uses() -> tuple[PrivateUse, ...]:
    repo = repository()
    return tuple(use for m in repo.modules.values() for use in private_uses(m, repo.known))


def violations_private(package: str | None = None) -> list[PrivateUse]:
    """Private uses by modules of ``package`` (all packages when None)."""
    return [u for u in all_private_uses() if package is None or top_package(u.module) == package]


def violations_jobs() -> list[Edge]:
    """Job -> experiments edges a job may not have, and benchmark -> job edges."""
    edges = repository().edges
    job_set = jobs()
    return [e for e in edges if in_package(e.target, "experiments") and (
        (e.importer in job_set and not job_may_import(e.importer, e.target, job_set))
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
              "job_to_job_edges": sum(in_package(e.importer, "experiments") for e in job_edges),
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
    return "\n".join(str(item) for item in items)


# ----------------------------------------------------------------------------- the rules

def test_library_imports_no_experiments_configs_benchmarks_or_tests():
    found = violations_library_imports_above()
    assert not found, "rlhf_jax imports from above the library:\n" + listing(found)


def test_losses_and_envs_import_no_higher_room():
    found = violations_low_rooms()
    assert not found, "losses/envs import a higher room of rlhf_jax:\n" + listing(found)


def test_library_has_no_import_cycles():
    found = library_cycles()
    assert not found, "module-level import cycles in rlhf_jax:\n" + listing(" <-> ".join(c) for c in found)


EXPERIMENTS_IN_PROGRESS = ("experiments/ is being reorganised into jobs over shared stage runners; "
                           "until then jobs reach into other jobs")


@pytest.mark.parametrize("package", [
    "rlhf_jax",
    pytest.param("experiments", marks=pytest.mark.xfail(strict=False, reason=EXPERIMENTS_IN_PROGRESS)),
    "benchmarks",
    "tests",
])
def test_no_private_names_of_other_modules(package):
    found = violations_private(package)
    assert not found, f"{package} uses private names of other modules:\n" + listing(found)


@pytest.mark.xfail(strict=False, reason=EXPERIMENTS_IN_PROGRESS)
def test_no_job_imports_another_job():
    found = [e for e in violations_jobs() if in_package(e.importer, "experiments")]
    assert not found, "job -> job imports:\n" + listing(found)


@pytest.mark.xfail(strict=False, reason="the helpers benchmarks need still live in jobs (experiments.ppo_rlhf); "
                                        + EXPERIMENTS_IN_PROGRESS)
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


if __name__ == "__main__":
    print_layering_counts()
