"""Merge scaling-sweep shards (the same config, each run on a part of the N grid) into the results
one run of the whole grid writes.

  python -m experiments.scaling_sweep --config configs/scaling_sweep.py:medium --workdir runs/medium_a \\
      --config.n_values="(25,50,100,200)"
  python -m experiments.scaling_sweep --config configs/scaling_sweep.py:medium --workdir runs/medium_b \\
      --config.n_values="(400,800,1600)"
  ...
  python -m experiments.merge_sweep runs/medium_a runs/medium_b ... --out runs/medium
  python -m experiments.scaling_report runs/medium

Why this is exact: a sweep point's training depends on its (condition, N, seed) and member only,
never on which other N share the run. Its pairs are the first N of one permutation per seed
(``preferences.segments.nested_subsets``: it does not read the N grid), its labels are drawn for
the whole pool with the condition's seed, and its initialisation, minibatch and bootstrap keys
fold in (seed, member) (``train.sweep.init_sweep_state``). So a shard's rows are the whole run's
rows for its N (to float rounding of the vmapped program; tested), and the merge only has to
put them in the whole run's order and refit.

Each SHARD_DIR is a finished sweep workdir (``results.csv``, ``config.json``, ``run_info.json``).
The shards' configs must be identical except ``n_values``, their N disjoint, and their runs must
have drawn the same labels (``run_info.json``'s label sources, with their label-set hashes);
otherwise the merge refuses with one line naming the shard's file and the field, and writes
nothing. ``--out`` (new or empty) then gets what ``experiments.scaling_sweep`` writes for the
union of the N values: ``results.csv`` (rows in the whole run's order), ``config.json`` (the shards'
config with the union as ``n_values``), ``fit.json`` and ``accuracy_vs_n.png`` (refitted with the
sweep's own fit code and bootstrap seed), and ``run_info.json`` (summed wall and train time, the
largest peak memory, and per shard its N, times and devices under ``shards``). Reward-model
artefacts and checkpoints stay in the shard workdirs (``run_info.json`` names them per shard).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys

import ml_collections

from experiments.stages.sweep_outputs import fit_curves, typed_rows, write_results
from rlhf_jax import checkpoint
from rlhf_jax.errors import ConfigError, describe
from rlhf_jax.strict_json import read_json

SHARD_FILES = ("results.csv", "config.json", "run_info.json")
# What every shard must have drawn alike (the same dataset, labels and label costs).
SHARED_RUN_INFO = ("label_sources", "label_stats", "markovian_estimate")


def flat(tree, prefix: str = "") -> dict:
    """{dotted.path: leaf} of a nested dict (a config as config.json holds it)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out = {}
    for key in sorted(tree):
        out.update(flat(tree[key], f"{prefix}{key}" if not prefix else f"{prefix}.{key}"))
    return out


def read_shard(shard: str) -> dict:
    """A finished shard's config (dict), results.csv rows (strings), header and run_info; the
    one-line ConfigError when a file is missing or its rows are not those of its config's grid."""
    missing = [f for f in SHARD_FILES if not os.path.isfile(os.path.join(shard, f))]
    if missing:
        raise ConfigError(describe(shard, missing[0], f"a finished sweep workdir with {', '.join(SHARD_FILES)}",
                                   f"no {missing[0]}"))
    config_file = os.path.join(shard, "config.json")
    config = read_json(config_file)
    with open(os.path.join(shard, "results.csv"), newline="") as f:
        reader = csv.DictReader(f)
        rows, header = list(reader), list(reader.fieldnames or [])
    ran = sorted({int(r["n"]) for r in rows})
    if ran != sorted(int(n) for n in config["n_values"]):
        raise ConfigError(describe(os.path.join(shard, "results.csv"), "n",
                                   f"rows for every N of {config_file} ({list(config['n_values'])})", ran))
    return {"dir": shard, "config": config, "rows": rows, "header": header,
            "run_info": read_json(os.path.join(shard, "run_info.json"))}


def check_shards(shards: list[dict]) -> None:
    """The shards differ only in their N values, which are disjoint, and drew the same labels;
    raises the one-line ConfigError naming the first shard and field that break this."""
    first = shards[0]
    reference = flat({k: v for k, v in first["config"].items() if k != "n_values"})
    seen = {int(n): first["dir"] for n in first["config"]["n_values"]}
    for shard in shards[1:]:
        config_file = os.path.join(shard["dir"], "config.json")
        other = flat({k: v for k, v in shard["config"].items() if k != "n_values"})
        for key in sorted(set(reference) | set(other)):
            if reference.get(key) != other.get(key):
                raise ConfigError(describe(config_file, key, f"{json.dumps(reference.get(key))} as in "
                                           f"{os.path.join(first['dir'], 'config.json')} (shards differ only in "
                                           "n_values)", json.dumps(other.get(key))))
        for n in shard["config"]["n_values"]:
            if int(n) in seen:
                raise ConfigError(describe(config_file, "n_values", f"N values no other shard ran ({seen[int(n)]} "
                                           f"ran N = {n})", list(shard["config"]["n_values"])))
            seen[int(n)] = shard["dir"]
        if shard["header"] != first["header"]:
            raise ConfigError(describe(os.path.join(shard["dir"], "results.csv"), "columns",
                                       f"the columns of {os.path.join(first['dir'], 'results.csv')}", shard["header"]))
        for key in SHARED_RUN_INFO:
            if json.dumps(shard["run_info"].get(key), sort_keys=True) != json.dumps(first["run_info"].get(key),
                                                                                  sort_keys=True):
                raise ConfigError(describe(os.path.join(shard["dir"], "run_info.json"), key,
                                           f"the {key} of {os.path.join(first['dir'], 'run_info.json')} (the same "
                                           "dataset and labels)", "different ones"))


def whole_run_order(shards: list[dict]) -> list[dict]:
    """Every shard's rows in the order one run of the whole grid writes them.

    A run writes blocks of rows per (model size, feature kind, condition) — condition-major within
    a size, a DROID pass's "<condition>+droid" block after its size's — and within a block the
    rows per N ascending, each N's rows by seed then member. Each shard keeps that order for its
    own N, so a stable sort by (the block's place in the first shard, N) interleaves them exactly.
    """
    block = lambda r: (r.get("model_size"), r.get("features"), r["condition"])  # noqa: E731
    place = {}
    for r in shards[0]["rows"]:
        place.setdefault(block(r), len(place))
    rows = [r for shard in shards for r in shard["rows"]]
    for r in rows:
        if block(r) not in place:
            raise ConfigError(describe(os.path.join(shards[0]["dir"], "results.csv"), "condition",
                                       "the same conditions and model sizes in every shard", repr(block(r))))
    return sorted(rows, key=lambda r: (place[block(r)], int(r["n"])))


def merged_run_info(shards: list[dict]) -> dict:
    """The first shard's run_info with the shards' summed times, largest peak memory and, per shard,
    its N, times, devices and saved reward models (which stay in the shard's workdir)."""
    infos = [s["run_info"] for s in shards]
    per_shard = [{"dir": os.path.basename(os.path.normpath(s["dir"])), "n_values": list(s["config"]["n_values"]),
                  **{k: i.get(k) for k in ("wall_s", "train_s", "peak_rss_mib", "devices", "jax", "platform",
                                           "reward_models")}} for s, i in zip(shards, infos)]
    return {**infos[0], "wall_s": sum(float(i.get("wall_s", 0.0)) for i in infos),
            "train_s": sum(float(i.get("train_s", 0.0)) for i in infos),
            "peak_rss_mib": max(float(i.get("peak_rss_mib", 0.0)) for i in infos),
            "reward_models": [], "shards": per_shard}


def merge(shard_dirs: list[str], out: str) -> dict:
    """Checks the shards, then writes the whole run's files into ``out``; returns the fits.
    Nothing is written unless every check passed."""
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise ConfigError(describe("--out", "out", "a new or empty directory (merged results are never "
                                   "written over)", repr(out)))
    if any(os.path.abspath(d) == os.path.abspath(out) for d in shard_dirs):
        raise ConfigError(describe("--out", "out", "a directory apart from the shards", repr(out)))
    shards = [read_shard(d) for d in shard_dirs]
    check_shards(shards)
    shards.sort(key=lambda s: min(int(n) for n in s["config"]["n_values"]))
    config_dict = dict(shards[0]["config"], n_values=sorted(int(n) for s in shards for n in s["config"]["n_values"]))
    config = ml_collections.ConfigDict(config_dict)
    rows = typed_rows(whole_run_order(shards))
    fits = fit_curves(config, rows) if len(config.n_values) > 1 else {}
    os.makedirs(out, exist_ok=True)
    # The call the sweep writes its config.json with (checkpoint.prepare_run_dir), so the text is a whole run's.
    checkpoint.atomic_write_text(os.path.join(out, "config.json"), config.to_json(indent=2, sort_keys=True))
    write_results(out, config, rows, fits, merged_run_info(shards))
    return fits


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.merge_sweep", description=__doc__.split("\n")[0])
    parser.add_argument("shards", nargs="+", help="finished sweep workdirs, one per shard of the N grid")
    parser.add_argument("--out", required=True, help="new or empty directory for the merged results")
    args = parser.parse_args(argv[1:])
    try:
        fits = merge(args.shards, args.out)
    except ConfigError as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    for name, f in fits.items():
        print(f"{name}: err(N) = {f['E']:.3g} + {f['A']:.3g}·N^-{f['alpha']:.3f}  "
              f"(alpha 95% CI [{f['alpha_ci'][0]:.3f}, {f['alpha_ci'][1]:.3f}])")
    n_values = read_json(os.path.join(args.out, "config.json"))["n_values"]
    print(f"merged {len(args.shards)} shard(s), N = {', '.join(map(str, n_values))}, into {args.out}: results.csv, "
          "config.json, fit.json, accuracy_vs_n.png, run_info.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
