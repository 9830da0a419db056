#!/usr/bin/env bash
# Reproduces the shipped reward model (rewardmodel/checkpoints/default): generates the MetaWorld training data (the
# 34 train tasks of docs/design.md, 20 episodes each across the quality recipes, each seen by two free cameras with a
# random pose per episode, lights and colours randomised) and trains the compact backbone on it with the match head
# and the training paraphrases. About 30 minutes of generation and 20 of training on a 2-core CPU.
# Pass --ablation progress-only (or --match-weight 0 --no-paraphrases) and another OUT for the benchmark's ablations,
# SEED=1 / SEED=2 for the other training seeds.
# One torch thread: on this 2-core machine it trained 22 pairs/s against 11 with two (oversubscription).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-rewardmodel/checkpoints/default}
SEED=${SEED:-0}
RECIPES=expert,expert,gaussian:0.3,gaussian:0.5,gaussian:1.0,stall:20,stall:50,random-actions:0.5,other-task,uniform
if [ ! -d data/rm_train_rand ]; then
  .venv/bin/curate datagen metaworld --tasks train --episodes-per-task 20 --stride 4 --size 64 --recipes "$RECIPES" \
    --cameras v0:random,v1:random --randomise-scene --workers 2 --seed 0 --view-seed 0 --out data/rm_train_rand
fi
.venv/bin/curate rm train --dataset data/rm_train_rand --out "$OUT" --steps 3000 --batch-size 16 --seed "$SEED" --threads 1 --overwrite "$@"
