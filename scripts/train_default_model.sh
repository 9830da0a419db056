#!/usr/bin/env bash
# Reproduces the shipped reward model (rewardmodel/checkpoints/default): generates the MetaWorld training data (the 34
# train tasks of docs/design.md, 20 episodes each across the quality recipes, two random camera poses per episode and
# randomised lights and colours, 64 px) and trains the compact backbone on it with the match head and training
# paraphrases (the `curate rm train` defaults), 8,000 steps of 16 pairs. About 42 minutes of generation and 60 of
# training on a 2-core CPU (docs/rewardmodel.md). Pass --ablation progress-only and another OUT to train the
# ablation the benchmark compares against.
# One torch thread: on this 2-core machine it trained 22 pairs/s against 11 with two (oversubscription).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-rewardmodel/checkpoints/default}
RECIPES=expert,expert,gaussian:0.3,gaussian:0.5,gaussian:1.0,stall:20,stall:50,random-actions:0.5,other-task,uniform
if [ ! -d data/rm_train_rand ]; then
  .venv/bin/curate datagen metaworld --tasks train --episodes-per-task 20 --stride 4 --size 64 --recipes "$RECIPES" \
    --cameras v0:random,v1:random --randomise-scene --workers 2 --seed 0 --view-seed 0 --out data/rm_train_rand
fi
.venv/bin/curate rm train --dataset data/rm_train_rand --out "$OUT" --steps 8000 --batch-size 16 --seed 0 --threads 1 \
  --eval-every 100000 --overwrite "$@"
