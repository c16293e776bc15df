"""benchmarks.gpu_all: every run names a benchmark that accepts its flags, none of them imports
TensorFlow, the budget is kept, and ml-collections comes from the carried wheel. Nothing is run
on a device and nothing is timed."""
from __future__ import annotations

import argparse
import ast
import glob
import importlib
import importlib.util
import inspect
import os
import subprocess
import sys
import zipfile

import pytest

from benchmarks import gpu_all

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Parsed(Exception):
    """Raised in place of running a benchmark once its flags parsed."""


@pytest.mark.parametrize("run", gpu_all.RUNS + gpu_all.EXTRA_RUNS, ids=lambda r: r.json_name)
def test_every_run_names_a_benchmark_that_accepts_its_flags(run, monkeypatch, tmp_path):
    argv = run.argv(str(tmp_path))
    assert argv[:2] == [sys.executable, "-m"] and argv[-2:] == ["--out", str(tmp_path / run.json_name)]
    module = importlib.import_module(run.module)
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))  # a bad flag exits (SystemExit) inside original

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", argv[2:])  # benchmarks.ppo's main reads sys.argv
    with pytest.raises(_Parsed) as parsed:
        module.main(argv[3:]) if inspect.signature(module.main).parameters else module.main()
    assert vars(parsed.value.args[0])["out"] == str(tmp_path / run.json_name)


def test_the_flag_check_catches_a_flag_a_benchmark_lacks(monkeypatch, tmp_path):
    bad = gpu_all.Run("x.json", "benchmarks.rm_sweep", ("--envs", "2048"))
    with pytest.raises(SystemExit):
        test_every_run_names_a_benchmark_that_accepts_its_flags(bad, monkeypatch, tmp_path)


def import_statements(module: str) -> set[str]:
    """Every absolute import statement in ``module``'s source, at module level or inside functions."""
    with open(importlib.util.find_spec(module).origin, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    return {ast.unparse(node) for node in ast.walk(tree)
            if isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and node.level == 0
                                                and node.module != "__future__")}


def test_the_runs_import_no_tensorflow():
    """The GPU image has no TensorFlow: importing each benchmark and running every import
    statement of its source, those inside functions included (in a fresh process), loads none of it."""
    modules = sorted({run.module for run in gpu_all.RUNS + gpu_all.EXTRA_RUNS} | {"benchmarks.gpu_all"})
    statements = sorted(set().union(*(import_statements(m) for m in modules)))
    assert "from rlhf_jax.train import sweep" in statements  # gpu_sweep imports it inside main()
    code = "\n".join([f"import {m}" for m in modules] + statements + [
        "import sys",
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_datasets')))"])
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_runs_keep_the_budget_and_the_cache_pair_shares_one_cache(tmp_path):
    clock, calls = FakeClock(), []
    seconds = {"gpu_sweep.json": 100, "gpu_sweep_cache1.json": 30, "gpu_sweep_cache2.json": 10}

    def launch(argv, env, timeout):
        name = os.path.basename(argv[-1])
        calls.append((name, env, timeout))
        if name == "rm_sweep_gpu.json":  # runs past the budget: subprocess.run kills it
            clock.now += timeout
            raise subprocess.TimeoutExpired(argv, timeout)
        clock.now += seconds[name]
        return subprocess.CompletedProcess(argv, 1 if name == "gpu_sweep_cache2.json" else 0)

    records = gpu_all.run_all(gpu_all.RUNS, str(tmp_path), budget_s=200, launch=launch, clock=clock)
    assert [r["json"] for r in records] == [run.json_name for run in gpu_all.RUNS]
    assert [r["status"] for r in records] == ["ok", "ok", "failed", "timed out", "skipped", "skipped"]
    assert [c[2] for c in calls] == [200, 100, 70, 60]  # each run may use what is left of the budget
    assert records[0]["command"] == "python -m benchmarks.gpu_sweep --steps 1000 --out " + str(tmp_path / "gpu_sweep.json")
    caches = [c[1]["JAX_COMPILATION_CACHE_DIR"] for c in calls]
    assert caches[1] == caches[2] and len(set(caches)) == 3  # the pair shares; every other run is cold
    for name, env, _ in calls:
        pair = name.startswith("gpu_sweep_cache")
        assert (env.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS") == "0") == pair


def test_the_runs_outside_the_budget_join_only_with_extra(monkeypatch, tmp_path):
    runs_given = []
    monkeypatch.setattr(gpu_all, "ensure_ml_collections", lambda wheels: "ml_collections already importable")
    monkeypatch.setattr(gpu_all, "run_all", lambda runs, out, budget: runs_given.append(runs) or [])
    for flags in ([], ["--extra"]):
        assert gpu_all.main(["--out", str(tmp_path), *flags]) == 0
    assert runs_given == [gpu_all.RUNS, gpu_all.RUNS + gpu_all.EXTRA_RUNS]


def test_only_runs_the_named_jsons_in_their_order_and_refuses_an_unknown_one(monkeypatch, tmp_path, capsys):
    runs_given = []
    monkeypatch.setattr(gpu_all, "ensure_ml_collections", lambda wheels: "ml_collections already importable")
    monkeypatch.setattr(gpu_all, "run_all", lambda runs, out, budget: runs_given.append(runs) or [])
    assert gpu_all.main(["--out", str(tmp_path), "--only", "ppo_levers.json,gpu_sweep.json"]) == 0
    assert [run.json_name for run in runs_given[0]] == ["gpu_sweep.json", "ppo_levers.json"]
    assert gpu_all.main(["--out", str(tmp_path / "x"), "--only", "levers.json"]) == 2
    assert "found levers.json" in capsys.readouterr().err and not (tmp_path / "x").exists()


@pytest.mark.parametrize("name, folder", [
    ("NVIDIA H200", "h200"), ("NVIDIA H100 80GB HBM3", "h100_80gb_hbm3"), ("NVIDIA H100 PCIe", "h100_pcie"),
    ("NVIDIA A100-SXM4-80GB", "a100_sxm4_80gb"), ("NVIDIA A100-SXM4-40GB", "a100_sxm4_40gb"),
    ("Tesla V100-SXM2-16GB", "v100_sxm2_16gb"), ("NVIDIA GeForce RTX 4070 Ti SUPER", "rtx_4070_ti_super"),
    ("NVIDIA GeForce GTX 1080 Ti", "gtx_1080_ti"), ("NVIDIA L4", "l4"), ("NVIDIA", "gpu"), ("", "gpu"),
])
def test_the_results_folder_is_named_by_the_gpu_model(name, folder):
    assert gpu_all.gpu_folder_name(name) == folder


def test_nvidia_smi_names_the_gpu_and_its_absence_is_no_gpu():
    def smi(stdout, code=0):
        return lambda argv, **kw: subprocess.CompletedProcess(argv, code, stdout=stdout, stderr="")

    assert gpu_all.detected_gpu(smi("NVIDIA H100 80GB HBM3\nNVIDIA H100 80GB HBM3\n")) == "NVIDIA H100 80GB HBM3"
    assert gpu_all.detected_gpu(smi("", code=9)) is None and gpu_all.detected_gpu(smi("\n")) is None

    def missing(argv, **kw):
        raise FileNotFoundError("nvidia-smi")
    assert gpu_all.detected_gpu(missing) is None


def test_the_default_folder_follows_the_gpu_and_no_gpu_is_refused_before_any_write(monkeypatch, tmp_path, capsys):
    outs = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(gpu_all, "ensure_ml_collections", lambda wheels: "ml_collections already importable")
    monkeypatch.setattr(gpu_all, "run_all", lambda runs, out, budget: outs.append(out) or [])
    monkeypatch.setattr(gpu_all, "detected_gpu", lambda: "NVIDIA H100 80GB HBM3")
    assert gpu_all.main([]) == 0
    assert outs == [os.path.join("benchmarks", "results", "h100_80gb_hbm3")] and (tmp_path / outs[0] / "gpu_all.json").is_file()
    monkeypatch.setattr(gpu_all, "detected_gpu", lambda: None)
    monkeypatch.chdir(tmp_path / "benchmarks")
    assert gpu_all.main([]) == 2 and len(outs) == 1
    assert "found none" in capsys.readouterr().err and os.listdir(".") == ["results"]


def test_ml_collections_comes_from_the_wheel_when_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(gpu_all.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip download ml-collections==1.1.0 --no-deps"):
        gpu_all.ensure_ml_collections(str(tmp_path))
    wheel = tmp_path / "ml_collections-1.1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    installs = []
    monkeypatch.setattr(gpu_all.subprocess, "run", lambda argv, check: installs.append(argv))
    assert gpu_all.ensure_ml_collections(str(tmp_path)) == f"installed {wheel}"
    assert installs == [[sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", str(wheel)]]


def test_main_refuses_to_run_without_ml_collections(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(gpu_all.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(gpu_all, "run_all", lambda *a, **k: pytest.fail("ran benchmarks without ml_collections"))
    assert gpu_all.main(["--out", str(tmp_path / "out"), "--wheels", str(tmp_path)]) == 2
    assert "cannot provide ml_collections" in capsys.readouterr().err


def test_the_carried_wheel_is_ml_collections():
    wheels = glob.glob(os.path.join(ROOT, gpu_all.WHEEL_DIR, "ml_collections-*.whl"))
    assert len(wheels) == 1
    with zipfile.ZipFile(wheels[0]) as z:
        names = z.namelist()
    assert "ml_collections/__init__.py" in names and "ml_collections/config_dict/config_dict.py" in names


def test_the_cuda_extras_install_the_plugin_of_the_pinned_jax():
    """`pip install -e ".[cuda12]"` must not move JAX off its pin: each CUDA extra is JAX's own
    extra at the pinned version (a bumped pin without its extras would fail here)."""
    with open(os.path.join(ROOT, "setup.py"), encoding="utf-8") as f:
        assigned = {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(f.read()).body
                    if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                    and node.targets[0].id in ("INSTALL_REQUIRES", "EXTRAS")}
    pin = next(r for r in assigned["INSTALL_REQUIRES"] if r.startswith("jax=="))
    version = pin.split("==")[1]
    assert f"jaxlib=={version}" in assigned["INSTALL_REQUIRES"]
    for cuda in ("cuda12", "cuda13"):
        assert assigned["EXTRAS"][cuda] == [f"jax[{cuda}]=={version}"]
