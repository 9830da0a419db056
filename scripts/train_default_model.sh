#!/usr/bin/env bash
# Reproduces the shipped reward model (rewardmodel/checkpoints/default): generates the MetaWorld training data (the
# first 20 train tasks of docs/design.md, 40 episodes each across the quality recipes, views corner2 + topview) and
# trains the compact backbone on it, without the match head and paraphrases (they came later; docs/rewardmodel.md
# gives the commands of the models trained with them). About 30 minutes of generation and 25 of training on a 2-core
# CPU. Pass --ablation progress-only and another OUT to train the ablation the benchmark compares against.
# One torch thread: on this 2-core machine it trained 22 pairs/s against 11 with two (oversubscription).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-rewardmodel/checkpoints/default}
TASKS=button-press-topdown,button-press,coffee-button,coffee-push,dial-turn,door-open,door-close,drawer-open,drawer-close,faucet-open,faucet-close,handle-press,lever-pull,pick-place,plate-slide,push,reach,sweep-into,window-open,window-close
RECIPES=expert,expert,gaussian:0.3,gaussian:0.5,gaussian:1.0,stall:20,stall:50,random-actions:0.5,other-task,uniform
if [ ! -d data/rm_train ]; then
  .venv/bin/curate datagen metaworld --tasks "$TASKS" --episodes-per-task 40 --stride 4 --recipes "$RECIPES" \
    --workers 2 --seed 0 --out data/rm_train
fi
.venv/bin/curate rm train --dataset data/rm_train --out "$OUT" --steps 5000 --batch-size 16 --seed 0 --threads 1 \
  --match-weight 0 --no-paraphrases --overwrite "$@"
