#!/usr/bin/env bash
# Downstream scaling's gpu variant (configs/downstream_scaling.py:gpu) in two halves.
#
# On a CPU machine with the project installed (the dataset needs TensorFlow): SFT, pi_SFT's
# rollouts and every reward model, all small files:
#   python -m experiments.downstream_scaling --config configs/downstream_scaling.py:gpu \
#       --workdir runs/downstream_gpu --prepare_only
# Then, on the machine with the GPU (JAX, no TensorFlow needed), with that workdir copied over
# (sft/, reward_model/, rollouts/stage.json and config.json are what this half reads):
#   bash scripts/downstream_gpu.sh runs/downstream_gpu
# It runs only the vmapped PPO program over every (N, reward-model seed, PPO seed) and PPO on
# gold, then the evaluation, and writes downstream.csv, fit.json and downstream.png there.
set -euo pipefail
workdir="${1:-runs/downstream_gpu}"
if [ ! -f "$workdir/sft/stage.json" ]; then
  echo "error: $workdir: no finished SFT stage; run the --prepare_only half on a CPU machine first" >&2
  exit 2
fi
exec python -m experiments.downstream_scaling --config configs/downstream_scaling.py:gpu --workdir "$workdir" --resume
