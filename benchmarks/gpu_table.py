"""The README's GPU table: GPU benchmark figures beside the 2-core CPU ones, from committed JSONs.

  python -m benchmarks.gpu_table [--readme README.md] [--gpu benchmarks/results/<gpu>] [--cpu benchmarks/results]

Replaces the README's block between ``<!-- gpu-table:start GPU_DIR -->`` and
``<!-- gpu-table:end GPU_DIR -->`` with the table rendered from the JSONs that
``python -m benchmarks.gpu_all`` writes into GPU_DIR (file names from ``gpu_all.RUNS``) and from
the CPU's ``rm_sweep.json`` and ``ppo.json``, so that no figure is typed by hand; a test checks
that the README matches. Without ``--gpu`` it rewrites every GPU table the README holds, one per
GPU folder; ``--gpu`` with a folder the README has no table for yet (a GPU model measured for the
first time) adds its table after the last one. The caption says which JAX version and device each JSON recorded,
because the GPU column runs under the GPU image's own JAX, not the pinned one. A figure that no
JSON of a column holds is shown as "–".
"""
from __future__ import annotations

import argparse
import os
import re
import sys

from rlhf_jax.checkpoint import atomic_write_text
from rlhf_jax.strict_json import read_json
from benchmarks.gpu_all import RUNS
from benchmarks.readme_tables import paper_grid_flops
from experiments import doc_blocks

BLOCK = "gpu-table"
README = "README.md"
GPU_DIR = "benchmarks/results/h200"
CPU_DIR = "benchmarks/results"
CPU_FILES = ("rm_sweep.json", "ppo.json")
PPO_ENVS = (2048, 32768)  # the PPO JSONs of the GPU column: ppo_<envs>.json
NOT_MEASURED = "–"


def load_results(gpu_dir: str, cpu_dir: str) -> dict[str, dict[str, dict]]:
    """{"gpu": {file: JSON}, "cpu": {file: JSON}}; the GPU files are those gpu_all writes."""
    def read(folder, names):
        out = {}
        for name in names:
            out[name] = read_json(os.path.join(folder, name))
        return out

    return {"gpu": read(gpu_dir, [run.json_name for run in RUNS]), "cpu": read(cpu_dir, CPU_FILES)}


def on_cpu(d: dict) -> bool:
    return all(name.startswith("cpu") for name in d["machine"]["devices"])


def device_kind(d: dict) -> str:
    """The accelerator kind a benchmark JSON recorded ('NVIDIA H200'), or '' (none recorded, or a CPU)."""
    return "" if on_cpu(d) else d.get("device_kind") or ", ".join(d["machine"].get("device_kinds", []))


def device_of(d: dict) -> str:
    """The device a benchmark JSON recorded: 'N CPU cores', its device kind, else its devices."""
    if on_cpu(d):
        return f"{d['machine']['cpus_usable']} CPU cores"
    return device_kind(d) or ", ".join(d["machine"]["devices"])


def provenance(files: dict[str, dict]) -> str:
    """'JAX v on device (files); …', grouping the files that recorded the same version and device."""
    groups: dict[tuple[str, str], list[str]] = {}
    for name, d in files.items():
        key = (d["machine"]["packages"].get("jax", "?"), device_of(d))
        groups.setdefault(key, []).append(name.removesuffix(".json"))
    return "; ".join(f"JAX {jax} on {device} ({', '.join(names)})" for (jax, device), names in groups.items())


def column_name(files: dict[str, dict]) -> str:
    """A column's header: the first device kind its JSONs recorded, else the first one's device."""
    kinds = [device_kind(d) for d in files.values() if device_kind(d)]
    return kinds[0] if kinds else device_of(next(iter(files.values())))


def three_digits(x: float) -> str:
    """Three significant digits, trailing zeros kept: 18.96 -> '19.0'; 0.07576 -> '0.0758'; 119.9 -> '120'."""
    return f"{x:,.0f}" if x >= 1000 else f"{x:#.3g}".rstrip(".")


def tflops(gflops: float) -> str:
    return three_digits(gflops / 1e3)


def rate(x: float) -> str:
    """Env-steps/s: 3,839,084 -> '3.84 M'; 204,068,211 -> '204 M'; 94,302 -> '94.3 k'."""
    return f"{three_digits(x / 1e6)} M" if x >= 1e6 else f"{three_digits(x / 1e3)} k"


def ratio(x: float) -> str:
    return f"{three_digits(x)}×"


Row = tuple[str, str, str]  # (what, GPU figure, CPU figure)


def paper_chunk_row(gpu: dict) -> Row:
    chunk = gpu["gpu_sweep.json"]
    g, hidden = chunk["grid"], "×".join(map(str, chunk["model"]))
    return (f"paper grid ({g['points']} points × {g['members']} members, {hidden}, batch {chunk['batch_size']}): "
            f"one {chunk['steps_timed']:,}-step chunk",
            f"{chunk['chunk_s']:.1f} s, {chunk['achieved_tflops']:.1f} TFLOP/s", NOT_MEASURED)


def paper_projection_row(gpu: dict, cpu: dict) -> Row:
    """All of the paper grid's steps: the GPU projects from its timed chunk; the CPU from the
    rates of its 128×128 step at batch 256 / 4,096 and of its quick sweep (as in
    benchmarks/README.md), shown as the range of those."""
    chunk, rm = gpu["gpu_sweep.json"], cpu["rm_sweep.json"]
    flops, _ = paper_grid_flops()
    rates = [t["gflops_per_s"] for t in rm["throughput"] if t["hidden"] == [128, 128]]
    hours = sorted(flops / r / 1e9 / 3600 for r in rates + [rm["sweep_vs_loop"]["gflops_per_s_sweep"]])
    return ("paper grid, all steps (projected: GPU from the chunk, CPU from its step and sweep rates)",
            f"{chunk['projected_total_s']:.0f} s", f"{hours[0]:.0f}–{hours[-1]:.0f} h")


def paper_ratio_row(gpu: dict) -> Row:
    chunk = gpu["gpu_sweep.json"]
    return (f"paper shapes: loop of the {chunk['grid']['runs']} single runs / the sweep",
            f"{ratio(chunk['ratio_loop_over_sweep'])} (goal ≥ {chunk['goal_ratio_loop_over_sweep']:.0f}×)",
            NOT_MEASURED)


def quick_ratio_rows(gpu: dict, cpu: dict) -> list[Row]:
    g, c = gpu["rm_sweep_gpu.json"]["sweep_vs_loop"], cpu["rm_sweep.json"]["sweep_vs_loop"]
    with_compiles = "ratio_loop_with_compiles_over_sweep_with_compile"
    return [(f"quick shapes ({g['runs']} runs of {'×'.join(map(str, g['hidden']))}, {g['steps']} steps): "
             "loop / sweep", ratio(g["ratio_loop_over_sweep"]), ratio(c["ratio_loop_over_sweep"])),
            ("… with a compile per looped run", ratio(g[with_compiles]), ratio(c[with_compiles]))]


def compile_row(gpu: dict) -> Row:
    chunk, cold, warm = gpu["gpu_sweep.json"], gpu["gpu_sweep_cache1.json"], gpu["gpu_sweep_cache2.json"]
    return (f"compile of the paper chunk, cold → warm persistent cache, at {cold['steps_timed']:,} steps "
            f"(cold at {chunk['steps_timed']:,})",
            f"{cold['compile_s']:.1f} s → {warm['compile_s']:.2f} s ({chunk['compile_s']:.1f} s)", NOT_MEASURED)


def step_tflops(rm: dict, hidden: int) -> str:
    row = next(t for t in rm["throughput"] if t["hidden"] == [hidden, hidden] and t["batch"] == 4096)
    return tflops(row["gflops_per_s"])


def step_row(gpu: dict, cpu: dict) -> Row:
    g, c = gpu["rm_sweep_gpu.json"], cpu["rm_sweep.json"]
    return ("single RM step, 128×128 / 512×512 at batch 4,096 (TFLOP/s)",
            f"{step_tflops(g, 128)} / {step_tflops(g, 512)}", f"{step_tflops(c, 128)} / {step_tflops(c, 512)}")


def matmul_row(gpu: dict, cpu: dict) -> Row:
    measured = gpu["rm_sweep_gpu.json"]["matmul_peak_gflops"]
    text = tflops(measured)
    fp32_peak = (gpu["gpu_sweep.json"].get("peak_tflops") or {}).get("fp32")
    if fp32_peak and measured / 1e3 > fp32_peak:
        # Faster than the chip's f32 datasheet peak: JAX's default matmul precision ran as TF32.
        text += f" (above the datasheet's {fp32_peak:.0f} TFLOP/s f32 peak: TF32 in effect)"
    return ("f32 2048² matmul as `benchmarks.common` measures it (TFLOP/s)", text,
            tflops(cpu["rm_sweep.json"]["matmul_peak_gflops"]))


def ppo_rows(gpu: dict, cpu: dict) -> list[Row]:
    """PPO-RLHF and raw simulator env-steps/s at each environment count (CPU: ppo.json's count only)."""
    by_envs = {gpu[f"ppo_{n}.json"]["num_envs"]: gpu[f"ppo_{n}.json"] for n in PPO_ENVS}
    cpu_ppo = cpu["ppo.json"]
    counts = " / ".join(f"{n:,}" for n in by_envs)

    def figures(key):
        gpu_text = " / ".join(rate(d[key]) for d in by_envs.values())
        cpu_text = " / ".join(rate(cpu_ppo[key]) if n == cpu_ppo["num_envs"] else NOT_MEASURED for n in by_envs)
        return gpu_text, cpu_text

    return [(f"PPO-RLHF env-steps/s at {counts} envs", *figures("ppo_rlhf_env_steps_per_s")),
            (f"raw simulator env-steps/s at {counts} envs", *figures("raw_env_steps_per_s"))]


def render(results: dict[str, dict[str, dict]], gpu_dir: str = GPU_DIR, cpu_dir: str = CPU_DIR) -> str:
    gpu, cpu = results["gpu"], results["cpu"]
    rows = [paper_chunk_row(gpu), paper_projection_row(gpu, cpu), paper_ratio_row(gpu), *quick_ratio_rows(gpu, cpu),
            compile_row(gpu), step_row(gpu, cpu), matmul_row(gpu, cpu), *ppo_rows(gpu, cpu)]
    caption = (f"Generated by `python -m benchmarks.gpu_table` from the JSONs in `{gpu_dir}/` and "
               f"`{cpu_dir}/` ({', '.join(CPU_FILES)}). {column_name(gpu)}: {provenance(gpu)}. "
               f"{column_name(cpu)}: {provenance(cpu)}.")
    lines = [caption, "", f"| what | {column_name(gpu)} | {column_name(cpu)} |", "|---|---|---|"]
    lines += [f"| {what} | {g} | {c} |" for what, g, c in rows]
    return "\n".join(lines)


def gpu_folders(text: str) -> list[str]:
    """The GPU folders whose tables the page holds, in page order."""
    return re.findall(rf"^[ \t]*<!-- {BLOCK}:start (\S+) -->[ \t]*$", text, flags=re.M)


def with_new_block(text: str, gpu_dir: str) -> str:
    """``text`` with an empty table block for ``gpu_dir`` after its last GPU table."""
    folders = gpu_folders(text)
    if not folders:
        raise KeyError(f"no {BLOCK} block to add the table of {gpu_dir} after")
    end = doc_blocks.markers(BLOCK, folders[-1])[1]
    start_new, end_new = doc_blocks.markers(BLOCK, gpu_dir)
    at = text.index(end) + len(end)
    return f"{text[:at]}\n\n{start_new}\n{end_new}{text[at:]}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", default=README)
    parser.add_argument("--gpu", default=None, help="folder of the GPU JSONs (names the README block; "
                        "default: every folder the README has a GPU table for)")
    parser.add_argument("--cpu", default=CPU_DIR, help="folder of the CPU JSONs")
    args = parser.parse_args(argv)
    try:
        with open(args.readme, encoding="utf-8") as f:
            text = f.read()
        folders = gpu_folders(text)
        if not folders:
            raise KeyError(f"no {BLOCK} block")
        gpu_dirs = folders if args.gpu is None else [os.path.normpath(args.gpu)]
        for gpu_dir in gpu_dirs:  # the whole page in memory first: one write, or none
            if gpu_dir not in folders:
                text = with_new_block(text, gpu_dir)
            text = doc_blocks.replace_block(text, BLOCK, gpu_dir, render(load_results(gpu_dir, args.cpu), gpu_dir,
                                                                         args.cpu))
        atomic_write_text(args.readme, text)
    except (OSError, KeyError, StopIteration, ValueError) as e:
        print(f"{args.readme}: cannot generate the GPU table: {e!r}", file=sys.stderr)
        return 2
    print(f"{args.readme}: GPU table(s) written from {', '.join(gpu_dirs)} and {args.cpu}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
