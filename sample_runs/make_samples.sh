#!/usr/bin/env bash
# Regenerate sample_runs/ with `sgg-train sweep` (21 runs): SGG and AdamW at lr 1e-3, 4e-3, 1.6e-2
# x seeds 0, 1, 2 (same seed: same initial weights and batches for both optimizers), the lr 4e-3
# AdamW runs with a shadow clustering, plus the beta3 = 0.9 SGG ablation at 4e-3 x 3 seeds.
# Resumable: re-running skips finished runs and restarts failed or interrupted ones.
# Usage: bash sample_runs/make_samples.sh [python]   (OUT=dir to write elsewhere; JOBS, THREADS)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
OUT=${OUT:-sample_runs}
JOBS=${JOBS:-2}
THREADS=${THREADS:-1}
COMMON=(--out "$OUT" --jobs "$JOBS" --threads "$THREADS" --seeds 0 1 2
        --steps 200 --warmup-steps 20 --batch-size 16 --seq-len 128 --d-model 128 --layers 4
        --heads 4 --eval-every 25 --eval-batches 8 --n-clusters 3 --recluster-interval 25
        --layer-stride 10 --histogram-every 50 --histogram-bins 32 --membership-sample 128
        --no-checkpoint)
status=0
# The main comparison: SGG vs AdamW (+ observe-only SGG clustering, so clusters compare) at 4e-3.
"$PY" -m recorder.train sweep --optimizers sgg adamw --lr 4e-3 --shadow "${COMMON[@]}" || status=1
# beta3 ablation: the same SGG runs with scale_decay 0.9 (in 8 re-clusters the factors move
# 1 - 0.99^8 = 8% of the way to their targets with the default 0.99; with 0.9, 57%).
"$PY" -m recorder.train sweep --optimizers sgg --lr 4e-3 --scale-decay 0.9 "${COMMON[@]}" || status=1
# The learning-rate range: SGG vs AdamW at 1e-3 and 1.6e-2.
"$PY" -m recorder.train sweep --optimizers sgg adamw --lr 1e-3 1.6e-2 "${COMMON[@]}" || status=1
du -sh "$OUT"
exit $status
