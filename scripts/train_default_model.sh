#!/usr/bin/env bash
# Reproduces the shipped reward model (rewardmodel/checkpoints/default): generates the MetaWorld training data (the 34
# train tasks of docs/design.md at 64 px with randomised lights and colours: 20 episodes per task across the quality
# recipes, each seen by six random camera poses; then 30 more expert episodes and 10 more noisy, stalled or random
# ones per task, each seen by three) and trains the compact backbone on it with the match head and training
# paraphrases (the `curate rm train` defaults), 15,000 steps of 16 pairs, with twice the pairs whose rejected run is a
# failed or suboptimal run of the same task, averaging each prediction over the clip and its mirror image (`curate rm
# train`'s default; the ImageNet match head below reads the clip as it is); then calibrates the success head on
# 340 more episodes of the train tasks that training never sees (`curate rm calibrate`); then trains a second match
# head on a frozen ImageNet network's features of the successful expert runs' first and last frames, kept beside the
# trained one and averaged with it (`curate rm match --with-trained-head`). About 100 minutes of generation, 56 of
# training and 11 of the match stage on a 2-core CPU (docs/rewardmodel.md). Pass --ablation progress-only
# and another OUT to train the ablation the benchmark compares against (no match stage: it has no match head).
# One torch thread: on this 2-core machine two threads oversubscribe and train slower. Killed, run it again: the
# datasets already generated are kept, a generation cut short resumes from its last finished part of 50 episodes
# (docs/datagen.md), and `rm train` resumes from its last saved state (docs/rewardmodel.md).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-rewardmodel/checkpoints/default}
RECIPES=expert,expert,gaussian:0.3,gaussian:0.5,gaussian:1.0,stall:20,stall:50,random-actions:0.5,other-task,uniform
GEN=(.venv/bin/curate datagen metaworld --tasks train --stride 4 --size 64 --randomise-scene --workers 2 --view-seed 0)
if [ ! -d data/rm_train_rand6 ]; then
  "${GEN[@]}" --episodes-per-task 20 --recipes "$RECIPES" --seed 0 --out data/rm_train_rand6 \
    --cameras v0:random,v1:random,v2:random,v3:random,v4:random,v5:random
fi
if [ ! -d data/rm_train_expert3 ]; then
  "${GEN[@]}" --episodes-per-task 10 --recipes expert --seed 7 --out data/rm_train_expert3 --cameras v0:random,v1:random,v2:random
fi
if [ ! -d data/rm_train_expert3b ]; then
  "${GEN[@]}" --episodes-per-task 20 --recipes expert --seed 8 --out data/rm_train_expert3b --cameras v0:random,v1:random,v2:random
fi
if [ ! -d data/rm_train_fail3 ]; then
  "${GEN[@]}" --episodes-per-task 10 --recipes gaussian:0.5,gaussian:1.0,stall:20,stall:50,random-actions:0.5 --seed 9 \
    --out data/rm_train_fail3 --cameras v0:random,v1:random,v2:random
fi
if [ ! -d data/rm_calib ]; then
  "${GEN[@]}" --episodes-per-task 10 --recipes "$RECIPES" --seed 13 --out data/rm_calib --cameras v0:random
fi
TRAINED=data/$(basename "$OUT")_uncalibrated
CALIBRATED=data/$(basename "$OUT")_calibrated
.venv/bin/curate rm train --dataset data/rm_train_rand6 --dataset data/rm_train_expert3 --dataset data/rm_train_expert3b \
  --dataset data/rm_train_fail3 --out "$TRAINED" --steps 15000 --batch-size 16 --seed 1 --threads 1 --eval-every 100000 \
  --ratios rewind=1,suboptimal=2,different_task=1,reverse=1,similar_task=1,late_success=1 --overwrite "$@"
case " $* " in
  *" --ablation"*)  # the progress-only ablation has no match head to keep
    .venv/bin/curate rm calibrate --model "$TRAINED" --dataset data/rm_calib --out "$OUT" --overwrite ;;
  *)
    .venv/bin/curate rm calibrate --model "$TRAINED" --dataset data/rm_calib --out "$CALIBRATED" --overwrite
    .venv/bin/curate rm match --model "$CALIBRATED" --dataset data/rm_train_expert3 --dataset data/rm_train_expert3b \
      --out "$OUT" --seed 1 --threads 1 --with-trained-head --overwrite ;;
esac
