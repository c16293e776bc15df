"""Why plain behaviour cloning is a weak prior here: SFT variants on the same demonstrations.

  python -m experiments.sft_ablation --config configs/sft.py:quick --workdir runs/sft_ablation

Trains π_ref once per variant below (each a set of config overrides on the given SFT config,
one sub-workdir each) and writes ``ablation.json``: success rate and gold return per variant,
mean over arm × task and per arm × task, with the training budget.
"""
from __future__ import annotations

import functools
import os
import sys

from experiments import cli
from experiments.stages import sft as train_sft
from rlhf_jax.checkpoint import atomic_write_json

# name -> (what it tests, overrides of the SFT config)
VARIANTS = {
    "bc_expert_only": ("BC on clean expert demonstrations only",
                       {"dagger.rounds": 0, "demos.policies": ("expert",)}),
    "bc": ("BC on expert + noisy-expert demonstrations (the old default)", {"dagger.rounds": 0}),
    "bc_long": ("BC as above with DAgger's whole step budget", {"dagger.rounds": 0, "train.steps": "total"}),
    "dagger_no_noise": ("DAgger, rollouts without exploration noise", {"dagger.noise": 0.0}),
    "dagger": ("DAgger as configured (the default)", {}),
}


def _variant_config(config, overrides: dict):
    c = config.copy_and_resolve_references()
    budget = train_sft.total_steps(config)
    for field, value in overrides.items():
        group, name = field.split(".")
        c[group][name] = budget if value == "total" else value
    return c


def _body(inv: cli.Invocation) -> None:
    config = inv.config
    train_sft.validate(config, inv.config_file)
    cli.check_workdir(inv.workdir, False, config)
    episodes, dt, _ = train_sft.load_episodes(config.dataset)
    out = {}
    for name, (what, overrides) in VARIANTS.items():
        c = _variant_config(config, overrides)
        cli.log(f"SFT variant {name}: {what}")
        _, _, summary = train_sft.run_sft(c, os.path.join(inv.workdir, name), episodes, dt)
        ev = summary["eval"]
        out[name] = {"what": what, "overrides": {k: c[k.split(".")[0]][k.split(".")[1]] for k in overrides},
                     "optimizer_steps": summary["final"]["step"], "train_time_s": summary["train_time_s"],
                     "success_rate": ev["mean"]["success_rate"], "gold_return": ev["mean"]["gold_return"],
                     "violations_any_rate": ev["mean"]["violations/any_rate"],
                     "per_arm_task": {k: {"success_rate": v["success_rate"], "gold_return": v["gold_return"]}
                                      for k, v in ev.items() if k != "mean"}}
    atomic_write_json(os.path.join(inv.workdir, "ablation.json"), out)
    for name, r in out.items():
        cli.log(f"{name:<16s} success {r['success_rate']:.3f}  gold {r['gold_return']:.2f}")


main = functools.partial(cli.run_main, body=_body, resumable=False)

if __name__ == "__main__":
    sys.exit(main(sys.argv))
