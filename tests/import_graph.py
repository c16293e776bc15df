"""The import graph of a source tree, read with ``ast`` (nothing is imported).

Each import statement, at module level or inside a function, becomes an ``Edge`` importer ->
target, the target being the most specific module it names (``from rlhf_jax.data import oxe``
is an edge to ``rlhf_jax.data.oxe``; ``from rlhf_jax.data import load_rlds`` one to
``rlhf_jax.data``). Also: private names one module takes from another, which modules are jobs
(run as ``python -m``), and the strongly connected components of a graph. The rules built on
these are in test_layering.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import os
import re

WALKED = ("rlhf_jax", "experiments", "benchmarks", "tests")
PROJECT = WALKED + ("configs",)


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
    """``rlhf_jax`` of ``rlhf_jax.data.oxe``."""
    return module.split(".")[0]


def in_package(module: str, package: str) -> bool:
    """Whether ``module`` is ``package`` or inside it (``rlhf_jax.data`` is not in ``rlhf_jax.d``)."""
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
