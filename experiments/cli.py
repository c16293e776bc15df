"""One command line for every experiment: absl flags + ml_collections ``config_flags``.

  python -m experiments.<name> --config configs/<x>.py:<variant> [--config.a.b=value ...]
                               --workdir DIR [--resume | --overwrite] [--nocompilation_cache]

``run_main(argv, body)`` parses the flags, checks every field of the config against the type of
the variant's own default (``config_flags`` parses types, but it turns ``model_sizes=32`` into
``(32,)`` and takes any tuple), then against the config module's ``FIELDS`` table (each field's
domain, ``rlhf_jax.config_schema``), and runs ``body(invocation)``. ``--describe_fields`` prints
that table (path, domain, meaning) and exits. Every error a user can cause — a
bad flag, an unknown variant or field, a value of the wrong type, a value the experiment's own
validator refuses, bad input data found before training — ends as one line on stderr naming the
config file and field, with exit code 2 and no traceback. Experiments validate everything before
they create or change anything in the workdir, so such a run leaves the workdir as it was.

A workdir that is not empty is refused unless ``--resume`` continues the run that wrote it, or
``--overwrite`` says that a fresh run may replace it: the old directory is then renamed to
``<workdir>.replaced-<k>`` (nothing is deleted) once the config has been checked.

Before the job compiles anything, ``run_main`` points JAX's persistent compilation cache at
``<data dir>/jax_cache`` (the config's ``data_dir``, else $RLHF_JAX_DATA_DIR or ~/.cache/rlhf_jax),
so a rerun, a ``--resume`` or the next job with the same programs reads them back instead of
compiling them again. ``--nocompilation_cache`` or ``RLHF_JAX_COMPILATION_CACHE=0`` switches it off.
"""
from __future__ import annotations

import contextvars
import dataclasses
import functools
import glob
import importlib.util
import json
import os
import re
import sys
from typing import Any, Callable, Sequence

import ml_collections
from absl import flags
from ml_collections import config_flags

from rlhf_jax import config_schema
from rlhf_jax.config_types import check_types
from rlhf_jax.data import dataset
from rlhf_jax.errors import ArtifactError, ConfigError, DataError, describe
from rlhf_jax.train.chunks import NonFiniteLossError


@dataclasses.dataclass
class Invocation:
    """What the command line asked for."""

    config: ml_collections.ConfigDict
    config_file: str          # the path given to --config, for error messages
    workdir: str | None
    resume: bool
    extra: dict               # values of the experiment's own extra flags
    compilation_cache: bool = True  # False: --nocompilation_cache
    overwrite: bool = False   # --overwrite: a non-empty workdir is moved aside for a fresh run


# --overwrite of the running job, read by check_workdir (which each job calls after its checks).
_OVERWRITE = contextvars.ContextVar("overwrite", default=False)


def log(message: str) -> None:
    """A progress line on stdout. The one logging convention: a log is a callable that takes one
    finished line (``Callable[[str], None]``); every job and stage defaults to this one."""
    print(message, flush=True)


def fail(config_file: str, field: str, expected: Any, got: Any) -> None:
    """Raises the one-line ConfigError every validator uses."""
    raise ConfigError(describe(config_file, field, expected, repr(got)))


def check_artifact(config_file: str, field: str, path: str, kind: str) -> dict:
    """The meta of the ``kind`` checkpoint (``rlhf_jax.checkpoint.ARTIFACT_KINDS``) that config
    field ``field`` names, read without its arrays before anything is written; else the one-line
    ConfigError naming the field, the path, what was expected and what is there."""
    from rlhf_jax.checkpoint import read_artifact_meta  # orbax: only for the jobs that load artefacts

    try:
        return read_artifact_meta(path, kind)
    except ArtifactError as err:
        raise ConfigError(describe(config_file, field, err.expected, f"{err.found} at {err.path}")) from None


def check_data_dir(config_file: str, field: str, path: str) -> None:
    """A data-dir field ("" = the default) must name a directory or a path that can become one."""
    if not path:
        return
    probe = os.path.abspath(os.path.expanduser(path))
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        fail(config_file, field, "a directory for the dataset cache", f"{path} (the file {probe} is in the way)")


def load_config_module(path: str):
    """The config module at ``path`` (its ``get_config`` and, for the project's configs, ``FIELDS``)."""
    if not os.path.isfile(path):
        raise ConfigError(f"--config: file {path!r} not found (expected <config file>:<variant>)")
    spec_ = importlib.util.spec_from_file_location(f"_config_{os.path.basename(path)[:-3]}", path)
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    return module


def load_config_file(spec: str, module=None) -> ml_collections.ConfigDict:
    """'path/to/config.py:arg' -> that file's ``get_config(arg)``, without flag parsing (``module``:
    the file's module, when it is loaded already)."""
    path, _, arg = spec.partition(":")
    module = module or load_config_module(path)
    return module.get_config(arg) if arg else module.get_config()


def _flag_message(err: Exception, config_file: str) -> str:
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    if len(lines) > 1 and "Traceback" in str(err):  # get_config raised: keep its own last line
        lines = [lines[-1].split(": ", 1)[-1]]
    text = lines[0] if lines else type(err).__name__
    if isinstance(err, AttributeError):  # config_flags' message for an unknown override field
        return f"{config_file}: field {text}: no such field in the config"
    if text.startswith("flag --config=") and ": " in text:
        text = text.split(": ", 1)[1]  # get_config's own error, behind absl's prefix
    return text if text.startswith(config_file) else f"{config_file}: {text}"


def _config_spec(argv: Sequence[str]) -> str | None:
    """The value given to --config (as --config=X or --config X), or None."""
    spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
    if spec is None and "--config" in argv[:-1]:
        spec = argv[list(argv).index("--config") + 1]
    return spec


def parse(argv: Sequence[str], *, workdir: bool = True, resumable: bool = True,
          extra: dict | None = None) -> Invocation:
    """Parses ``argv`` (argv[0] is the program) into an Invocation; raises ConfigError.

    The config is checked against the types of the variant's defaults, then against its module's
    ``FIELDS`` (each field's domain), before the Invocation is returned; ``--describe_fields``
    raises DescribeFields with the listing instead.

    resumable=False: the experiment has no --resume flag (passing one is an error, not ignored).
    extra: the experiment's own boolean/string flags, ``{name: (default, help)}``.
    """
    extra = extra or {}
    argv = list(argv)
    fv = flags.FlagValues()
    holder = config_flags.DEFINE_config_file("config", None, "configs/<x>.py:<variant>", flag_values=fv,
                                             sys_argv=argv)
    if workdir:  # a job that writes no workdir refuses the flag instead of ignoring it
        flags.DEFINE_string("workdir", None, "output directory (new or empty, or --resume)", flag_values=fv)
    flags.DEFINE_bool("compilation_cache", True, "keep compiled programs in <data dir>/jax_cache for the next "
                      "run (--nocompilation_cache or RLHF_JAX_COMPILATION_CACHE=0: off)", flag_values=fv)
    if resumable:
        flags.DEFINE_bool("resume", False, "continue the run in --workdir from its last checkpoint", flag_values=fv)
    if workdir:
        flags.DEFINE_bool("overwrite", False, "start afresh in a non-empty --workdir, renaming what it holds to "
                          "<workdir>.replaced-<k> first (nothing is deleted)", flag_values=fv)
    for name, (default, help_) in extra.items():
        define = flags.DEFINE_bool if isinstance(default, bool) else flags.DEFINE_string
        define(name, default, help_, flag_values=fv)
    flags.DEFINE_bool("describe_fields", False, "print every config field, its domain and meaning, and exit",
                      flag_values=fv)
    spec = _config_spec(argv)
    config_file = (spec or "--config").partition(":")[0]
    if spec is None:
        raise ConfigError("--config: required (expected --config configs/<x>.py:<variant>)")
    try:
        fv(argv)
        config = holder.value
    except (flags.Error, AttributeError, ValueError, TypeError, KeyError) as err:
        raise ConfigError(_flag_message(err, config_file)) from None
    module = load_config_module(config_file)
    check_types(config, load_config_file(spec, module), config_file)
    fields = getattr(module, "FIELDS", None)   # the config's field descriptions (rlhf_jax.config_schema)
    if fv["describe_fields"].value:
        raise DescribeFields(config_schema.help_text(fields) if fields is not None
                             else f"{config_file} has no FIELDS table")
    if fields is not None:  # the declarative description, before the job's own relational checks
        config_schema.validate(config, config_file, fields)
    if workdir and not fv["workdir"].value:
        raise ConfigError("--workdir: required (expected a directory for the run's files)")
    overwrite = workdir and bool(fv["overwrite"].value)
    if overwrite and resumable and fv["resume"].value:
        raise ConfigError("--overwrite: expected either --resume (continue the run) or --overwrite "
                          "(replace it), got both")
    return Invocation(config=config, config_file=config_file, workdir=fv["workdir"].value if workdir else None,
                      resume=resumable and bool(fv["resume"].value), extra={name: fv[name].value for name in extra},
                      compilation_cache=bool(fv["compilation_cache"].value), overwrite=overwrite)


class DescribeFields(Exception):
    """``--describe_fields``: the listing to print instead of running the job."""


def cache_data_dir(inv: Invocation) -> str | None:
    """The data dir whose ``jax_cache`` the run compiles into: a ``--data_dir`` flag, else the
    config's first non-empty ``data_dir`` field nearest the top (a pipeline's stages read one
    dataset), else None (the default data dir)."""
    if inv.extra.get("data_dir"):
        return inv.extra["data_dir"]
    level = [inv.config]
    while level:
        for group in level:
            if isinstance(group.get("data_dir"), str) and group.get("data_dir"):
                return group["data_dir"]
        level = [v for group in level for v in group.values() if isinstance(v, ml_collections.ConfigDict)]
    return None


def enable_compilation_cache(inv: Invocation) -> str | None:
    """Turns the persistent compilation cache on for this run unless ``--nocompilation_cache`` or
    $RLHF_JAX_COMPILATION_CACHE=0 says not to; returns its directory, or None.

    A data dir that cannot become a directory (a file in the way) is left to the job's own checks
    to report, and no cache is set."""
    if not inv.compilation_cache:
        return None
    data_dir = os.path.abspath(os.path.expanduser(cache_data_dir(inv) or dataset.default_data_dir()))
    probe = data_dir
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        return None
    return dataset.enable_compilation_cache(data_dir)


def check_workdir(workdir: str, resume: bool, config, ignore: tuple[str, ...] = ()) -> str:
    """Read-only checks of the workdir, before anything is loaded or written.

    Returns "new", "resume" or "fresh" (``--resume`` on an empty or missing workdir: it starts
    fresh, and says so). Refuses a non-empty workdir without ``--resume`` and, on resume, one
    without a readable ``config.json`` (never overwriting what another run wrote) or a config that
    differs from the saved one, naming the fields that differ (``ignore``: fields a resume may
    change, such as the label server's port).
    """
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ConfigError(f"--workdir: expected a directory, got the file {workdir!r}")
    ancestor = os.path.abspath(workdir)
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise ConfigError(f"--workdir: {workdir} is not usable (Not a directory: {ancestor}); nothing was written")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"--workdir: {workdir} is not usable (Permission denied: {ancestor}); nothing was written")
    saved = os.path.join(workdir, "config.json")
    if not resume:
        if os.path.isdir(workdir) and os.listdir(workdir):
            if _OVERWRITE.get():
                log(f"--overwrite: the earlier files in {workdir} were {_rename_free(workdir, 'replaced')}")
                return "new"
            raise ConfigError(f"--workdir: {workdir} exists and is not empty; pass --resume to continue it, "
                              "--overwrite to replace it, or choose a new --workdir (results are never "
                              "overwritten unasked)")
        return "new"
    if not os.path.isfile(saved):
        if os.path.isdir(workdir) and os.listdir(workdir):
            # Files but no saved config: another job's output, or a run whose config.json was
            # lost. Starting fresh there would overwrite results this run did not write.
            raise ConfigError(f"--resume: {workdir} holds files but no config.json, so it is not a run "
                              "this config can continue; nothing was overwritten: choose a new --workdir")
        return "fresh"
    try:
        with open(saved, encoding="utf-8") as f:
            old = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"--resume: {saved} is not readable JSON ({type(e).__name__}: {e}); "
                          "nothing was overwritten: choose a new --workdir") from None
    if not isinstance(old, dict):
        raise ConfigError(f"--resume: {saved}: expected a JSON object, got {type(old).__name__}; "
                          "nothing was overwritten: choose a new --workdir")
    new = json.loads(config.to_json(sort_keys=True))
    changed = sorted(f for f in _differences(old, new) if f not in ignore)
    if changed:
        raise ConfigError(f"--resume: the config differs from {saved} in field(s) {', '.join(changed)}; "
                          "resume with the same config or start a new --workdir")
    return "resume"


def _differences(old, new, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [prefix.rstrip(".")]


def job_main(run: Callable[..., Any]) -> Callable[[Sequence[str] | None], int]:
    """``main(argv)`` for a job whose ``run(config, workdir, *, resume, config_file)`` does the work."""
    def body(inv: Invocation) -> None:
        run(inv.config, inv.workdir, resume=inv.resume, config_file=inv.config_file)
    return functools.partial(run_main, body=body)


_INNER_WHERE = re.compile(r"^[a-z_][a-z0-9_]*: (?=field ')")


def move_aside(workdir: str) -> str:
    """Renames a workdir this run created to ``<workdir>.failed-<k>`` (the first free k), so the
    corrected command can use the name again and nothing of the failed run is deleted; returns
    the sentence that says so."""
    return (f"nothing was saved, so the run's files were {_rename_free(workdir, 'failed')}, and {workdir} "
            "is free for the corrected command")


def _rename_free(workdir: str, label: str) -> str:
    """Renames ``workdir`` to ``<workdir>.<label>-<k>`` (the first free k); returns what it did."""
    k = 1
    while os.path.exists(f"{workdir.rstrip(os.sep)}.{label}-{k}"):
        k += 1
    target = f"{workdir.rstrip(os.sep)}.{label}-{k}"
    os.rename(workdir, target)
    return f"moved to {target}"


def run_main(argv: Sequence[str] | None, body: Callable[[Invocation], Any], *, workdir: bool = True,
             resumable: bool = True, extra: dict | None = None) -> int:
    """Parses ``argv`` and runs ``body(invocation)``; user errors become one line and exit code 2.

    ``DataError`` (ConfigError, bad dataset or label file, ...) is a user error wherever it is
    raised; experiments raise them before anything is written. Anything else is a bug and keeps
    its traceback. A run stopped by a non-finite loss exits with code 1 and one line naming the
    step, point and member.
    """
    argv = list(sys.argv if argv is None else argv)
    if not flags.FLAGS.is_parsed():  # absl logging reads its verbosity from the global flags
        flags.FLAGS(argv[:1])
    inv = None
    try:
        try:
            inv = parse(argv, workdir=workdir, resumable=resumable, extra=extra)
        except DescribeFields as listing:
            print(listing)
            return 0
        new_workdir = bool(inv.workdir) and (inv.overwrite or not (os.path.isdir(inv.workdir)
                                                                  and os.listdir(inv.workdir)))
        enable_compilation_cache(inv)  # before the job compiles anything
        token = _OVERWRITE.set(inv.overwrite)
        try:
            body(inv)
        finally:
            _OVERWRITE.reset(token)
    except DataError as err:
        line = str(err).splitlines()[0] if str(err) else type(err).__name__
        config_file = (_config_spec(argv) or "").partition(":")[0]
        if config_file and not line.startswith((config_file, "--")):
            # A data-layer error: say which run's config it came from, without the inner
            # function's name the library put first ("build_segment_table: field ...").
            line = f"{config_file}: {_INNER_WHERE.sub('', line, count=1)}"
        print(f"error: {line}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        moved = ""
        if new_workdir and err.before_first_checkpoint and os.path.isdir(inv.workdir):
            # A finished stage of a multi-stage job (its stage.json) is saved work a --resume reuses.
            if glob.glob(os.path.join(inv.workdir, "**", "stage.json"), recursive=True):
                moved = f"; the finished stages in {inv.workdir} are kept for --resume"
            else:
                moved = "; " + move_aside(inv.workdir)
        print(f"error: {err}{moved}", file=sys.stderr)
        return 1
    return 0
