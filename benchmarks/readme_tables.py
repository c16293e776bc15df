"""The benchmark tables of benchmarks/README.md, generated from the committed benchmark JSONs.

  python -m benchmarks.readme_tables [--readme benchmarks/README.md] [--results benchmarks/results]

Replaces each block of that page between ``<!-- bench-table:start NAME -->`` and
``<!-- bench-table:end NAME -->`` with the table rendered from ``NAME.json`` (NAME: rm_sweep,
ppo, compile_cache, bf16_sweep, lerobot_io, sweep_levers_cpu, ppo_levers_cpu), so no figure is
copied by hand; a test checks that the page matches the JSONs. Run it after re-running a benchmark.
"""
from __future__ import annotations

import argparse
import os
import sys

from rlhf_jax.strict_json import read_json

START, END = "<!-- bench-table:start {} -->", "<!-- bench-table:end {} -->"
DOC_PAGE = "benchmarks/README.md"  # the page holding the blocks


def _k(x: float) -> str:
    """35,835.5 -> '35.8 k'; 1,480,856 -> '1.48 M'; 2,272 -> '2.27 k'."""
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    if x < 1e4:
        return f"{x / 1e3:.2f} k"
    return f"{x / 1e3:.1f} k" if x < 1e5 else f"{x / 1e3:.0f} k"


def _width(hidden) -> str:
    return "×".join(map(str, hidden))


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _machine(d: dict, peak_note: str) -> str:
    m = d["machine"]
    return (f"One run on {m['cpus_usable']} CPU cores at load average {m['load_average'][0]:.2f} "
            f"(JAX {m['packages'].get('jax', '?')}); {peak_note}.")


def paper_grid_flops() -> tuple[float, int]:
    """(FLOPs, models) of configs/scaling_sweep.py:paper, from its shapes: every (point, member)
    trains total_steps batches (× 3 for forward + backward) and scores its 2·n_val validation
    segments every eval_every steps; a step's input is 39 obs + 7 act + two 8-wide context
    embeddings."""
    from configs.scaling_sweep import get_config

    c = get_config("paper")
    dims = (39 + 7 + 16,) + tuple(c.model_sizes[0]) + (1,)
    per_segment = 2 * c.segment_length * sum(a * b for a, b in zip(dims, dims[1:]))
    models = len(c.conditions) * len(c.n_values) * len(c.seeds) * c.members
    train = c.total_steps * c.batch_size * 2 * 3 * per_segment
    validation = (c.total_steps // c.eval_every) * 2 * c.n_val * per_segment
    return models * (train + validation), models


def rm_sweep_table(d: dict) -> str:
    sw, prof, ens = d["sweep_vs_loop"], d["profile_step_4096"], d["ensemble"]
    peak = d["matmul_peak_gflops"]
    groups = sorted(int(g) for g in sw["sweep_s_by_point_groups"])
    rows = [
        (f"quick-shaped sweep ({sw['runs']} models of {_width(sw['hidden'])}, {sw['steps']} steps, batch {sw['batch_size']}) "
         "as one program",
         f"{sw['sweep_s']:.1f} s, {_k(sw['pairs_per_s_sweep'])} pairs/s, {sw['gflops_per_s_sweep']:.0f} GFLOP/s "
         f"({_pct(sw['fraction_of_matmul_peak_sweep'])} of peak); compile {sw['compile_sweep_s']:.1f} s"),
        ("the same runs one after another, same compiled program",
         f"{sw['loop_s']:.1f} s, {sw['gflops_per_s_loop']:.0f} GFLOP/s (**{sw['ratio_loop_over_sweep']:.2f}×** the sweep)"),
        ("… with a compile per run, as one process per run would pay",
         f"{sw['loop_with_per_run_compile_s']:.0f} s ({sw['ratio_loop_with_compiles_over_sweep_with_compile']:.1f}× "
         "the sweep incl. its compile)"),
        (f"the same sweep in point groups (`point_groups`: slices of the points in turn), "
         f"{' / '.join(str(g) for g in groups)} groups",
         " / ".join(f"{sw['sweep_s_by_point_groups'][str(g)]:.1f}" for g in groups)
         + f" s; best {sw['best_point_groups']} groups of {sw['models_per_group_at_best']} models, "
           f"**{sw['ratio_loop_over_best_grouped_sweep']:.2f}×** the loop"),
        ("profile: the sweep's validation passes",
         f"{_pct(sw['evaluation_share_of_sweep'])} of its time ({sw['sweep_s_evaluating_once']:.1f} s when "
         "validating once)"),
        ("profile: the sweep's data path alone (pair draws, bootstrap weights, segment gathers)",
         f"{sw['data_path_s']:.2f} s, {_pct(sw['data_path_share_of_sweep'])} of its time"),
    ]
    for t in d["throughput"]:
        if t["batch"] != 256:
            continue
        big = next(u for u in d["throughput"] if u["hidden"] == t["hidden"] and u["batch"] == 4096)
        rows.append((f"{_width(t['hidden'])} MLP update, batch 256 / 4,096 pairs",
                     f"{_k(t['pairs_per_s'])} / {_k(big['pairs_per_s'])} pairs/s; {t['gflops_per_s']:.0f} / "
                     f"{big['gflops_per_s']:.0f} GFLOP/s ({_pct(t['fraction_of_matmul_peak'])} / "
                     f"{_pct(big['fraction_of_matmul_peak'])} of peak)"))
        if t["hidden"] == ens["hidden"]:  # the ensemble row sits under its single-model row
            rows.append((f"{ens['members']}-member vmapped ensemble of the {_width(ens['hidden'])} update, "
                         f"batch {ens['batch']:,}",
                         f"{_k(ens['pairs_per_s'])} member-pairs/s; {ens['gflops_per_s']:.0f} GFLOP/s "
                         f"({_pct(ens['fraction_of_matmul_peak'])} of peak)"))
    rows.append((f"profile: {_width(prof['hidden'])} forward + backward at {prof['rows']:,} rows "
                 "(batch 4,096), GELU / ReLU / no activation",
                 f"{prof['gelu_s']:.3f} / {prof['relu_s']:.3f} / {prof['none_s']:.3f} s; the activation is "
                 f"{_pct(prof['activation_share_of_step'])} of the step; the matmuls alone run at "
                 f"{prof['matmul_only_gflops_per_s']:.0f} GFLOP/s ({_pct(prof['matmul_only_fraction_of_peak'])} of peak)"))
    flops, models = paper_grid_flops()
    paper_rates = [t["gflops_per_s"] for t in d["throughput"] if t["hidden"] == [128, 128]] + [sw["gflops_per_s_sweep"]]
    rows.append((f"paper grid (`configs/scaling_sweep.py:paper`: {models} models of 128×128, {flops / 1e15:.1f} PFLOP) "
                 "projected at the 128×128 update's rate at batch 256 / 4,096 and at the quick sweep's rate",
                 " / ".join(f"{flops / r / 1e9 / 3600:.1f}" for r in paper_rates) + " hours"))
    note = (f"f32 2048² matmul peak {peak:.0f} GFLOP/s before the run and {d['matmul_peak_gflops_after']:.0f} "
            "after it; fractions are of the first")
    return _render(_machine(d, note), rows)


def ppo_table(d: dict) -> str:
    f = d["flops_per_env_step"]
    update_share = 1 - d["rollout_share_of_time"]
    update_gflops = f["update_flops"] * d["ppo_rlhf_env_steps_per_s"] / update_share / 1e9
    rows = [
        (f"raw simulator (random actions), {d['num_envs']:,} environments", f"{_k(d['raw_env_steps_per_s'])} env-steps/s"),
        ("full PPO-RLHF loop (rollout, reward ensemble, KL, GAE, update epochs)",
         f"{_k(d['ppo_rlhf_env_steps_per_s'])} env-steps/s ({100 * d['ppo_fraction_of_raw']:.1f}% of raw)"),
        ("… with the gold reward in place of the learned one",
         f"{_k(d['ppo_gold_env_steps_per_s'])} env-steps/s (the reward model: {_pct(d['reward_model_time_share'])} "
         "of the loop's time)"),
        ("model FLOPs per env-step: rollout / update / total",
         f"{_k(f['rollout_flops'])} / {_k(f['update_flops'])} / {_k(f['total_flops'])}"),
        ("achieved rate of the loop",
         f"{d['gflops_per_s']:.0f} GFLOP/s, {_pct(d['fraction_of_matmul_peak'])} of peak"),
        ("profile: the rollouts alone (policy, π_ref, reward model in the simulator's scan)",
         f"{_k(d['rollout_env_steps_per_s'])} env-steps/s, {d['rollout_gflops_per_s']:.0f} GFLOP/s, "
         f"{_pct(d['rollout_share_of_time'])} of the loop's time"),
        (f"profile: the {d['update_epochs']} update epochs (the rest of the time)",
         f"{update_gflops:.0f} GFLOP/s, {_pct(update_share)} of the loop's time"),
    ]
    return _render(_machine(d, f"f32 2048² matmul peak {d['matmul_peak_gflops']:.0f} GFLOP/s in the same run"), rows)


def compile_cache_table(d: dict) -> str:
    rows = []
    for run in d["runs"]:
        cold, warm, floor = run["cold"], run["warm"], run["min_compile_time_s"]
        where = f"minimum compile time {floor:g} s" + (" (the experiments' default)" if floor == 1.0 else "")
        rows += [
            (f"cold: a fresh process on an empty cache, {where}",
             f"{cold['process_s']:.1f} s; chunk traced and lowered in {cold['chunk_lower_s']:.2f} s, compiled in "
             f"{cold['chunk_compile_s']:.2f} s; {cold['programs_compiled_or_read']} programs compiled, "
             f"{cold['cache_writes']} written to the cache"),
            ("warm: the same program in the next fresh process",
             f"{warm['process_s']:.1f} s (**{run['process_warm_over_cold']:.2f}×** cold, {run['process_s_saved']:.1f} s "
             f"saved); chunk lowered in {warm['chunk_lower_s']:.2f} s, read back in {warm['chunk_compile_s']:.2f} s "
             f"({run['chunk_compile_warm_over_cold']:.3f}× its compile); {warm['cache_hits']} cache hits"),
        ]
    note = (f"the quick scaling sweep's chunk ({d['runs'][0]['cold']['models']} models of 32×32, {d['steps']} steps, "
            "synthetic segments), each run a new process")
    return _render(_machine(d, note), rows)


def bf16_sweep_table(d: dict) -> str:
    f32, bf16, vs = d["runs"]["float32"], d["runs"]["bfloat16"], d["bf16_vs_f32"]
    shapes = d["shapes"]
    seeds = len(shapes["seeds"])

    def speed(run: dict) -> str:
        return (f"{run['steps_per_s']:.2f} steps/s, {_k(run['pairs_per_s'])} pairs/s ({run['train_s']:.1f} s); "
                f"compile {run['compile_s']:.1f} s")

    def signed(x: float) -> str:
        return f"{round(x, 4) + 0.0:+.4f}"  # + 0.0: a difference of -1e-16 prints as +0.0000, not -0.0000

    def accuracy(run: dict) -> str:
        return f"{run['test_accuracy_mean']:.4f} ± {run['test_accuracy_se_over_seeds']:.4f}"

    rows = [
        ("float32", speed(f32)),
        ("bfloat16 matmuls, float32 accumulation (`model.compute_dtype`)",
         f"{speed(bf16)}; **{vs['steps_per_s_bf16_over_f32']:.2f}×** float32's steps/s"),
        (f"test accuracy, mean over {seeds} seeds ± its standard error (per seed: the mean over the grid's "
         f"points of the ensemble's accuracy on {shapes['test_pairs']:,} test pairs), float32 / bfloat16",
         f"{accuracy(f32)} / {accuracy(bf16)}"),
        ("bfloat16 − float32: mean, per seed (paired), per point (mean / largest absolute difference)",
         f"{signed(vs['test_accuracy_bf16_minus_f32'])}; "
         + ", ".join(signed(x) for x in vs["test_accuracy_paired_differences_per_seed"])
         + f"; {vs['test_accuracy_abs_point_difference_mean']:.4f} / {vs['test_accuracy_abs_point_difference_max']:.4f}"
         + f" — {'within' if vs['within_seed_spread'] else '**outside**'} 2 standard errors of float32"),
    ]
    note = (f"the quick scaling sweep ({shapes['models']} models of {_width(shapes['hidden'])}, batch "
            f"{shapes['batch_size']}, {shapes['steps']} steps) on the default dataset, float32 then bfloat16 in "
            f"one process; 2048² matmul {d['matmul_peak_gflops']:.0f} GFLOP/s in float32, "
            f"{d['matmul_bf16_gflops']:.0f} GFLOP/s with bfloat16 operands and float32 accumulation")
    return _render(_machine(d, note), rows)


def lerobot_io_table(d: dict) -> str:
    w, r, wv, rv = d["write"], d["read"], d["write_video"], d["read_video"]
    views = ", ".join(d["views"])
    rows = [
        ("load the episodes through TFDS (what the export starts from)",
         f"{d['load']['frames_per_s']:,.0f} frames/s ({d['load']['s']:.1f} s)"),
        ("write LeRobot v3.0 without video (Parquet, metadata, stats)",
         f"**{w['frames_per_s']:,.0f} frames/s** ({w['s']:.1f} s, {w['bytes'] / 2**20:.1f} MiB)"),
        ("read it back into our schema", f"**{r['frames_per_s']:,.0f} frames/s** ({r['s']:.1f} s)"),
        (f"render the {views} camera at {d['size']}×{d['size']} (the export's simulator views)",
         f"{wv['render_frames_per_s']:,.0f} frames/s ({wv['render_s']:.1f} s)"),
        (f"write with the camera as {'/'.join(wv['codecs'])} MP4, rendering apart",
         f"**{wv['frames_per_s']:,.0f} frames/s** ({wv['s']:.1f} s, {wv['bytes'] / 2**20:.1f} MiB)"),
        ("read it back, every frame decoded by timestamp and resized",
         f"**{rv['frames_per_s']:,.0f} frames/s** ({rv['s']:.1f} s)"),
        (f"round trip: mean absolute frame error over {d['frame_mae']['episodes']} episodes (8-bit levels), "
         "mean / largest episode", f"{d['frame_mae']['mean']:.2f} / {d['frame_mae']['max']:.2f}"),
    ]
    note = f"the `{d['variant']}` dataset, {d['episodes']:,} episodes, {d['frames']:,} frames; PyAV {d['video_packages']['av']}"
    return _render(_machine(d, note), rows)


def _levers_table(d: dict, seconds: str, difference: str, difference_label: str, caption: str) -> str:
    """One row per lever: its prediction for one H200 (fixed before any measurement) beside what
    this JSON's machine measured."""
    lines = [caption, "", f"| lever | predicted speedup on one H200 | why | seconds here | speedup here | "
             f"{difference_label} |", "|---|---|---|---|---|---|"]
    for r in d["levers"]:
        lo, hi = r["predicted_speedup"]
        predicted = "(the reference)" if r["lever"] == "baseline" else f"{lo:.2f}–{hi:.2f}×"
        diff = f"{r[difference]:.1e}" if r[difference] else "0"
        lines.append(f"| `{r['lever']}` | {predicted} | {r['reason']} | {r[seconds]:.3f} | {r['speedup']:.2f}× | {diff} |")
    return "\n".join(lines)


def sweep_levers_table(d: dict) -> str:
    base = d["levers"][0]
    note = (f"`python -m benchmarks.sweep_levers --shapes {d['shapes']} --steps {d['steps_timed']}`: {d['runs']} models of {_width(d['model'])}, "
            f"batch {d['batch_size']}, one {d['steps_timed']}-step chunk per lever on synthetic segments; the "
            f"baseline's training updates run at {base['achieved_tflops'] * 1e3:.1f} GFLOP/s")
    return _levers_table(d, "chunk_s", "max_val_loss_difference", "largest validation-loss difference", _machine(d, note))


def ppo_levers_table(d: dict) -> str:
    b = d["breakdown"]
    note = (f"`python -m benchmarks.ppo_levers --envs {d['num_envs']}`: one update of {d['num_envs']:,} envs × "
            f"{d['num_steps']} steps, {d['update_epochs']} epochs of {d['num_minibatches']} minibatches, per lever; "
            f"the rollout takes {d['rollout_s']:.3f} s. The baseline's update: {b['update_s']:.3f} s, of which the "
            f"{d['update_epochs']} epochs {_pct(b['epochs_share'])} ({b['epoch_s']:.3f} s each; a minibatch step "
            f"{b['minibatch_step_s'] * 1e3:.1f} ms) and the batch permutations {_pct(b['permutation_share'])}")
    return _levers_table(d, "update_s", "max_param_difference", "largest parameter difference", _machine(d, note))


def _render(caption: str, rows: list[tuple[str, str]]) -> str:
    lines = [caption, "", "| measurement | figure |", "|---|---|"]
    lines += [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines)


TABLES = {"rm_sweep": rm_sweep_table, "ppo": ppo_table, "compile_cache": compile_cache_table,
          "bf16_sweep": bf16_sweep_table, "lerobot_io": lerobot_io_table,
          "sweep_levers_cpu": sweep_levers_table, "ppo_levers_cpu": ppo_levers_table}


def rendered(results_dir: str) -> dict[str, str]:
    out = {}
    for name, render in TABLES.items():
        out[name] = render(read_json(os.path.join(results_dir, f"{name}.json")))
    return out


def replace_blocks(text: str, tables: dict[str, str]) -> str:
    """``text`` with each named block's body replaced; a missing block is an error."""
    for name, body in tables.items():
        start, end = START.format(name), END.format(name)
        if start not in text or end not in text:
            raise ValueError(f"README has no block {start} … {end}")
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{start}\n{body}\n{end}{tail}"
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", default=DOC_PAGE)
    parser.add_argument("--results", default="benchmarks/results")
    args = parser.parse_args(argv)
    with open(args.readme) as f:
        text = f.read()
    try:
        new = replace_blocks(text, rendered(args.results))
    except (OSError, KeyError, ValueError) as e:
        print(f"{args.readme}: cannot generate the benchmark tables: {e}", file=sys.stderr)
        return 2
    from rlhf_jax.checkpoint import atomic_write_text

    atomic_write_text(args.readme, new)
    print(f"{args.readme}: benchmark tables {'unchanged' if new == text else 'updated'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
