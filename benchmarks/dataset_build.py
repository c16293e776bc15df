"""Dataset build / read-back time, preference-pair memory and teacher statistics -> JSON.

  python -m benchmarks.dataset_build [OUT_JSON] [--variant default] [--data_dir DIR]

Measures, for one dataset variant (default: `default`):
  * build time from an empty directory with no persistent JAX compilation cache ("cold": what
    a first use costs; generation, the per-arm rollout compiles and the TFDS write overlap), then,
    in the same process with the programs compiled, generation alone and the TFDS write alone;
  * read-back time of all episodes through tfds.builder_from_directory;
  * make_preference_data time and memory of the segment table and pair arrays;
  * per teacher preset, on 20,000 candidate train pairs: skip, tie and (vs. the oracle) flip
    fractions;
  * episodes and pairs per (embodiment, task), mean gold return per policy.
Figures only, never assertions. Writes machine info (platform, CPU count, load average at start
and end) and package versions next to them; *_cpu_s is process CPU time over all threads, which
other load on the machine does not inflate the way it inflates wall time.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time

import numpy as np

from benchmarks.common import compilation_cache_record, machine_info, use_compilation_cache

def teacher_stats(data, n: int = 20_000, seed: int = 0) -> dict:
    """Skip / tie / flip fractions of each preset on the same n candidate train pairs."""
    from rlhf_jax.preferences import annotators as A
    from rlhf_jax.preferences import segments as P
    seg = data.segments
    rows = np.flatnonzero(seg.episode_split[seg.episode_index] == 0)
    group = seg.task_id[rows].astype(np.int64) * 1000 + seg.embodiment_id[rows]
    a, b = P.sample_pairs(rows, group, n, np.random.default_rng(seed))
    oracle = A.label_pairs("oracle", seg, a, b, seed=seed).label
    out = {}
    for name in A.TEACHER_PRESETS:
        lab = A.label_pairs(name, seg, a, b, seed=seed)
        k = lab.keep
        decided = k & (lab.label != 0.5) & (oracle != 0.5)
        out[name] = {"annotators": len(lab.provenance),
                     "skip_fraction": float(np.mean(~k)),
                     "tie_fraction": float(np.mean(lab.label[k] == 0.5)),
                     "disagree_with_oracle": float(np.mean(lab.label[decided] != oracle[decided])),
                     "mean_confidence": float(np.mean(lab.confidence[k]))}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", nargs="?", default="benchmarks/results/dataset_build.json")
    parser.add_argument("--variant", default="default")
    parser.add_argument("--data_dir", default=None, help="build here (default: a temp dir)")
    args = parser.parse_args(argv)
    use_compilation_cache()

    result = {"variant": args.variant, "machine": machine_info()}  # load_average: at the start
    from rlhf_jax.data import dataset, generate, rlds, variants
    from rlhf_jax.preferences import segments as preferences
    config = variants.dataset_config(args.variant)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or tmp
        out_dir = os.path.join(data_dir, f"{args.variant}-{dataset.config_hash(config)}")
        t0, c0 = time.perf_counter(), time.process_time()
        info = dataset.build_dataset(config, out_dir)  # compiles cold unless the cache holds them (JSON)
        build_s, build_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter()
        episodes = generate.generate_episodes(config)  # programs already compiled
        regen_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        rlds.write_rlds(episodes, os.path.join(tmp, "write_only"))
        write_s = time.perf_counter() - t0
        del episodes
        path = dataset.ensure_dataset(args.variant, data_dir, config=config)
        t0, c0 = time.perf_counter(), time.process_time()
        episodes = rlds.load_rlds(path)
        read_s, read_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        disk = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
        t0 = time.perf_counter()
        data = dataset.load_preference_data(args.variant, path=path, episodes=episodes)
        pairs_s = time.perf_counter() - t0

    from rlhf_jax.envs.robots import EMBODIMENTS
    from rlhf_jax.envs.tasks import TASKS
    seg = data.segments
    per_group = {}
    for name in preferences.SPLITS:  # pairs counted by segment a (b has the same task/arm)
        pr = getattr(data, name)
        for e, t in zip(seg.embodiment_id[pr.idx_a], seg.task_id[pr.idx_a]):
            key = f"{EMBODIMENTS[e]}/{TASKS[t]}"
            per_group.setdefault(key, {s: 0 for s in preferences.SPLITS})[name] += 1
    returns = {}
    for ep in episodes:
        returns.setdefault(ep["episode_metadata"]["policy"], []).append(
            float(ep["steps"]["reward"].sum()))
    result.update({
        "build_cold_s": build_s, "build_cold_cpu_s": build_cpu_s,
        "generate_again_in_process_s": regen_s, "write_only_s": write_s,
        "read_back_s": read_s, "read_back_cpu_s": read_cpu_s,
        "load_average_at_end": os.getloadavg(),
        "episodes": info["episodes"], "steps": info["steps"], "dataset_bytes_on_disk": disk,
        "episodes_per_embodiment_task": info["episodes_per_embodiment_task"],
        "preference_data_s": pairs_s,
        "segments": len(seg), "segment_length": seg.length, "feature_dim": seg.obs.shape[-1],
        "pairs": {s: len(getattr(data, s)) for s in preferences.SPLITS},
        "pairs_per_embodiment_task": per_group,
        "segment_table_bytes": seg.nbytes(),
        "pair_arrays_bytes": {s: getattr(data, s).nbytes() for s in preferences.SPLITS},
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "mean_gold_return_per_policy": {k: float(np.mean(v)) for k, v in returns.items()},
        "teacher_presets": teacher_stats(data),
        "command": "python -m benchmarks.dataset_build " + " ".join(argv or sys.argv[1:]),
        "compilation_cache": compilation_cache_record(),
    })
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    print(json.dumps({k: v for k, v in result.items() if k.endswith("_s") or "load" in k},
                     indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
