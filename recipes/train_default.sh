#!/usr/bin/env bash
# The exact recipe of the shipped default model (resources/models/galviewer-small.safetensors).
# Paper §2.4 transfer learning, scaled to a 2-core CPU: pre-train on the Sérsic set, fine-tune on the
# realistic set. Usage: bash recipes/train_default.sh WORKDIR   (≈ 1 h on 2 idle CPU cores)
# Every step resumes where it stopped when run again.
set -euo pipefail
W=${1:-work}
mkdir -p "$W"
[ -d "$W/sersic" ] || galviewer-train simulate sersic -n 8000 --seed 1 -j 2 -o "$W/sersic"
[ -d "$W/realistic" ] || galviewer-train simulate realistic -n 12000 --seed 2 -j 2 -o "$W/realistic"
# Pre-training: the 1200-iteration cosine schedule, stopped at iteration 300 (time budget of one session).
R=""; [ -f "$W/pretrain/state.pt" ] && R="--resume"
galviewer-train train --data "$W/sersic" --out "$W/pretrain" --preset small --name galviewer-small-pretrain \
  --iterations 1200 --stop-at 300 --batch-size 16 --val-every 300 --seed 1 --threads 2 $R
R=""; [ -f "$W/finetune/state.pt" ] && R="--resume"
galviewer-train train --data "$W/realistic" --out "$W/finetune" --init "$W/pretrain/best.safetensors" \
  --name galviewer-small --iterations 1600 --batch-size 16 --val-every 200 --seed 2 --threads 2 $R
