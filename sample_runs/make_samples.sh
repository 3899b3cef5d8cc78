#!/usr/bin/env bash
# Regenerate sample_runs/ with `sgg-train sweep`. The sweep (21 runs, 200 steps): SGG and AdamW
# at lr 1e-3, 4e-3, 1.6e-2 x seeds 0, 1, 2 (same seed: same initial weights and batches for both
# optimizers), the lr 4e-3 AdamW runs with a shadow clustering, plus the beta3 = 0.9 SGG ablation
# at 4e-3 x 3 seeds. The main comparison (main-600/, 600 steps): SGG vs AdamW (+ shadow) at 4e-3
# x $MAIN_SEEDS seeds, long enough to be past the early plateau, with lighter recording.
# Resumable: re-running skips finished runs and restarts failed or interrupted ones.
# Usage: bash sample_runs/make_samples.sh [python]   (OUT=dir to write elsewhere; JOBS, THREADS,
# MAIN_SEEDS="0 1 ..." for the main comparison)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
OUT=${OUT:-sample_runs}
JOBS=${JOBS:-2}
THREADS=${THREADS:-1}
MAIN_SEEDS=${MAIN_SEEDS:-"0 1 2 3 4 5 6 7 8 9"}
COMMON=(--out "$OUT" --jobs "$JOBS" --threads "$THREADS" --seeds 0 1 2
        --steps 200 --warmup-steps 20 --batch-size 16 --seq-len 128 --d-model 128 --layers 4
        --heads 4 --eval-every 25 --eval-batches 8 --n-clusters 3 --recluster-interval 25
        --layer-stride 10 --histogram-every 50 --histogram-bins 32 --membership-sample 128
        --no-checkpoint)
# The main comparison: same model and batches, 600 steps (3x the sweep; every seed is past the
# slow early phase by step 150), SGG re-clusters every 50 steps (12 re-clusters), eval every 25 steps.
# Lighter recording so 20 runs fit: per-layer statistics every 50 steps, 16-bin histograms (taken
# at each re-cluster), 64 membership positions per layer. Its own folder: the sweep's run names
# do not carry the step count, so they would collide with the 200-step runs.
# shellcheck disable=SC2206
MAIN=(--out "$OUT/main-600" --jobs "$JOBS" --threads "$THREADS" --seeds $MAIN_SEEDS
      --steps 600 --warmup-steps 50 --batch-size 16 --seq-len 128 --d-model 128 --layers 4
      --heads 4 --eval-every 25 --eval-batches 8 --n-clusters 3 --recluster-interval 50
      --layer-stride 50 --histogram-every 100 --histogram-bins 16 --membership-sample 64
      --no-checkpoint)
status=0
# The main comparison: SGG vs AdamW (+ observe-only SGG clustering, so clusters compare) at 4e-3.
"$PY" -m sgg_train sweep --optimizers sgg adamw --lr 4e-3 --shadow "${MAIN[@]}" || status=1
# The sweep's SGG vs AdamW at 4e-3 (200 steps, 3 seeds), for the Sweep page.
"$PY" -m sgg_train sweep --optimizers sgg adamw --lr 4e-3 --shadow "${COMMON[@]}" || status=1
# beta3 ablation: the same SGG runs with scale_decay 0.9 (in 8 re-clusters the factors move
# 1 - 0.99^8 = 8% of the way to their targets with the default 0.99; with 0.9, 57%).
"$PY" -m sgg_train sweep --optimizers sgg --lr 4e-3 --scale-decay 0.9 "${COMMON[@]}" || status=1
# The learning-rate range: SGG vs AdamW at 1e-3 and 1.6e-2.
"$PY" -m sgg_train sweep --optimizers sgg adamw --lr 1e-3 1.6e-2 "${COMMON[@]}" || status=1
du -sh "$OUT"
exit $status
