"""Every command the docs show runs as written in a fresh clone.

Commands are collected from README.md, docs/*.md, benchmarks/README.md and results/*/README.md:
the lines of fenced code blocks (``\\`` continuations joined, ``&&`` chains split, comments
dropped) and the inline code of table rows, keeping those that start with
``python -m experiments.`` or ``python -m benchmarks.``; pip, pytest and shell-only lines are
skipped.

Default suite, without training anything:

* a job command (one with ``--config``) is parsed in-process by ``experiments.cli.parse`` with
  the job's own command-line options (the config file and variant are loaded, overrides applied,
  types checked) and then checked by the job's ``validate(config, config_file)`` when it has one;
  its ``--workdir`` (and ``--data_dir``) must lie under ``runs/``;
* any other experiments command (a report script) must name existing paths, or paths under
  ``runs/`` that a documented job command writes;
* a benchmarks command must name an importable module whose argparse flags accept its arguments
  (parsed, never run).

Slow suite: the commands of the ``tiny`` variants that need no earlier run's output and no
browser run in-process, with their workdir moved to a temporary directory and the session's tiny
dataset as data dir: ``make_dataset`` (dataset.md), the ``tiny`` scaling sweep and the ``tiny`` QC
report (both quick to run, marked so in scaling_sweep.md and qc_report.md) and the ``tiny`` LeRobot
export (lerobot.md); about a minute in all.
The labelling walkthrough's commands need a person at the page and are only parsed.
"""
from __future__ import annotations

import argparse
import glob
import importlib
import importlib.util
import inspect
import os
import re
import shlex
import sys

import pytest

from experiments import cli
from rlhf_jax.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = sorted(["README.md", "benchmarks/README.md"]
               + [os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))]
               + [os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "results", "*", "README.md"))])
PREFIXES = ("python -m experiments.", "python -m benchmarks.")
INLINE_CODE = re.compile(r"`([^`]+)`")
# Commands run in the slow suite: (module, config spec) of the tiny runs that need nothing earlier.
RUN_IN_SLOW = {("experiments.make_dataset", "configs/dataset.py:tiny"),
               ("experiments.scaling_sweep", "configs/scaling_sweep.py:tiny"),
               ("experiments.qc_report", "configs/qc_report.py:tiny"),
               ("experiments.export_lerobot", "configs/export_lerobot.py:tiny")}


def logical_lines(text: str) -> list[str]:
    """Lines of the fenced code blocks (continuations joined) and inline code of table rows."""
    out, fenced, pending = [], False, ""
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced, pending = not fenced, ""
            continue
        if fenced:
            pending += line.rstrip()
            if pending.endswith("\\"):
                pending = pending[:-1] + " "
                continue
            out.append(pending.strip())
            pending = ""
        elif line.startswith("|"):
            out += [code for code in INLINE_CODE.findall(line) if code.startswith(PREFIXES)]
    return out


def commands_of(text: str) -> list[list[str]]:
    """argv lists (starting at the module name) of the experiments/benchmarks commands in ``text``."""
    commands = []
    for line in logical_lines(text):
        for part in line.split("&&"):
            part = part.strip()
            if not part.startswith(PREFIXES):
                continue
            argv = shlex.split(part, comments=True)
            commands.append(argv[2:])  # drop "python -m"
    return commands


def all_commands() -> list[tuple[str, list[str]]]:
    """(page, argv) of every command in every page."""
    found = []
    for page in PAGES:
        with open(os.path.join(ROOT, page), encoding="utf-8") as f:
            found += [(page, argv) for argv in commands_of(f.read())]
    return found


COMMANDS = all_commands()


def _id(item) -> str:
    page, argv = item
    return f"{page}:{' '.join(argv)[:90]}"


def flag_value(argv: list[str], name: str) -> str | None:
    """The value of ``--name`` given as ``--name=X`` or ``--name X``."""
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def job_options(module, argv: list[str]) -> dict:
    """The options (workdir, resumable, extra) of ``cli.parse`` the job's ``main`` uses.

    Read from ``main`` when it is a ``functools.partial`` of ``cli.run_main``; otherwise inferred
    from the command itself (its own flags other than --config/--workdir/--resume are string flags).
    """
    keywords = getattr(getattr(module, "main", None), "keywords", None)
    if keywords is not None:
        return {k: v for k, v in keywords.items() if k in ("workdir", "resumable", "extra")}
    own = {a[2:].split("=", 1)[0] for a in argv[1:] if a.startswith("--")} - {"config", "workdir", "resume"}
    return {"workdir": flag_value(argv, "workdir") is not None,
            "extra": {name: ("", "") for name in own if not name.startswith("config.")}}


def parse_job(argv: list[str]):
    """(module, Invocation) of a job command, parsed as the job parses it."""
    module = importlib.import_module(argv[0])
    return module, cli.parse(argv, **job_options(module, argv))


def documented_outputs() -> set[str]:
    """Directories that some documented command writes: a job's workdir or data dir and a merge's
    ``--out`` under runs/, and the results folder a ``publish`` command fills from a run."""
    outs = set()
    for _, argv in COMMANDS:
        for name in ("workdir", "data_dir", "out"):
            value = flag_value(argv, name)
            if value and os.path.normpath(value).startswith("runs" + os.sep):
                outs.add(os.path.normpath(value))
        positional = [a for a in argv[1:] if not a.startswith("--")]
        if argv[0] == "experiments.publish" and len(positional) >= 2 and positional[1].startswith("results/"):
            outs.add(os.path.normpath(positional[1]))
    return outs


def made_by_a_documented_command(path: str) -> bool:
    path = os.path.normpath(path)
    return any(path == out or path.startswith(out + os.sep) for out in documented_outputs())


def test_the_docs_show_the_first_commands_and_every_job():
    argvs = [argv for page, argv in COMMANDS if page == "README.md"]
    assert ["experiments.scaling_sweep", "--config", "configs/scaling_sweep.py:quick", "--workdir",
            "runs/quick"] in argvs
    jobs = {argv[0] for _, argv in COMMANDS if "--config" in argv or flag_value(argv, "config")}
    for job in ("scaling_sweep", "make_dataset", "qc_report", "label_server", "label_efficiency", "train_sft",
                "train_dpo", "sft_ablation", "ppo_rlhf", "overoptimization", "rlhf_pipeline", "downstream_scaling",
                "online_rlhf", "cross_embodiment"):
        assert f"experiments.{job}" in jobs, job


def test_extraction_joins_continuations_splits_chains_and_skips_shell_lines():
    text = ("```\npip install -e . && python -m experiments.a --config c.py:x --workdir runs/a   # note\n"
            "cp runs/a/x results/a/\npython -m benchmarks.b \\\n    --flag \"(1, 2)\"\n```\n"
            "| job | `python -m experiments.c --workdir runs/c` | `runs/c` |\n"
            "Prose `python -m experiments.d --workdir DIR` is not a command.\n")
    assert commands_of(text) == [["experiments.a", "--config", "c.py:x", "--workdir", "runs/a"],
                                 ["benchmarks.b", "--flag", "(1, 2)"], ["experiments.c", "--workdir", "runs/c"]]


@pytest.mark.parametrize("item", [c for c in COMMANDS if c[1][0].startswith("experiments.")], ids=_id)
def test_experiments_command_parses_and_validates(item):
    page, argv = item
    assert importlib.util.find_spec(argv[0]) is not None, f"{page}: no module {argv[0]}"
    spec = flag_value(argv, "config")
    if spec is None:  # a report script: its paths exist, or a documented job writes them
        for arg in [a.split("=", 1)[-1] for a in argv[1:]]:
            if "/" in arg:
                assert os.path.exists(os.path.join(ROOT, arg)) or made_by_a_documented_command(arg), (
                    f"{page}: {' '.join(argv)}: {arg} does not exist")
        return
    path, _, variant = spec.partition(":")
    assert os.path.isfile(os.path.join(ROOT, path)), f"{page}: config file {path} missing"
    assert variant, f"{page}: {spec} names no variant"
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        module, inv = parse_job(argv)
        for name, value in (("workdir", inv.workdir), ("data_dir", flag_value(argv, "data_dir"))):
            if value:
                assert os.path.normpath(value).startswith("runs" + os.sep), f"{page}: --{name} {value} not under runs/"
        validate = getattr(module, "validate", None)
        if callable(validate):
            try:
                validate(inv.config, inv.config_file)
            except ConfigError as err:  # an input an earlier documented command makes is fine
                missing = re.findall(r"runs/[\w./-]+", str(err))
                if not missing or not all(made_by_a_documented_command(m.rstrip(".,'\")")) for m in missing):
                    raise
    finally:
        os.chdir(cwd)


class _Parsed(Exception):
    """Raised in place of running a benchmark once its flags parsed."""


@pytest.mark.parametrize("item", [c for c in COMMANDS if c[1][0].startswith("benchmarks.")], ids=_id)
def test_benchmarks_command_flags_parse(item, monkeypatch):
    page, argv = item
    assert importlib.util.find_spec(argv[0]) is not None, f"{page}: no module {argv[0]}"
    module = importlib.import_module(argv[0])
    if not hasattr(module, "main"):
        return
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", list(argv))
    takes_argv = bool(inspect.signature(module.main).parameters)
    with pytest.raises(_Parsed):
        module.main(argv[1:]) if takes_argv else module.main()


def needs_an_earlier_run(argv: list[str]) -> bool:
    """Whether the command reads something under runs/ other than its own workdir or data dir."""
    own = {os.path.normpath(v) for v in (flag_value(argv, "workdir"), flag_value(argv, "data_dir")) if v}
    return any("runs/" in a and os.path.normpath(a.split("=", 1)[-1]) not in own for a in argv[1:])


def _slow_commands():
    chosen = {}
    for page, argv in COMMANDS:  # a command shown on several pages runs once
        if (argv[0], flag_value(argv, "config")) in RUN_IN_SLOW and not needs_an_earlier_run(argv):
            chosen.setdefault(tuple(argv), (page, argv))
    return list(chosen.values())


@pytest.mark.slow
@pytest.mark.parametrize("item", _slow_commands(), ids=_id)
def test_tiny_command_runs_as_written(item, tmp_path, tiny_data_root, tiny_dataset_dir):
    del tiny_dataset_dir  # built into tiny_data_root, which the command reads as its data dir
    page, argv = item
    argv = list(argv)
    for name in ("workdir", "data_dir"):
        if flag_value(argv, name):
            i = next(i for i, a in enumerate(argv) if a == f"--{name}" or a.startswith(f"--{name}="))
            target = tiny_data_root if name == "data_dir" else str(tmp_path / "run")
            argv[i:i + (1 if "=" in argv[i] else 2)] = [f"--{name}={target}"]
    if flag_value(argv, "workdir"):
        argv.append(f"--config.data_dir={tiny_data_root}")
    module = importlib.import_module(argv[0])
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        assert module.main(argv) == 0, f"{page}: {' '.join(argv)}"
    finally:
        os.chdir(cwd)
    if flag_value(argv, "workdir"):
        assert os.listdir(tmp_path / "run"), "the run wrote nothing"
