#!/usr/bin/env bash
# The original system's recipe in full on one GPU, for the README's baseline: the seed preset
# (Conv 32/64/128 + Dense 256 at 224x224, Adam, batch 32, no augmentation) for up to its 70
# epochs inside FIT_S seconds, scored on its test split here (Keras float, with and without
# flip averaging). A CPU manages two epochs an hour of it; the curves show whether it overfits
# the way the original report says (training accuracy 99.8%, validation loss rising).
# The model (22.2M parameters, 89 MB) stays behind; with $OUT set (the device tool) the run's
# curves, history and test probabilities come back in students.tar (gpu-lib's finish), and
# the history is copied to $OUT every 10 s in case the call is cut short.
#
#   PYTHON=.venv/bin/python DATA=../shared/datasets/fer2013.zip scripts/gpu-seed-full.sh
#   PRESET=tiny FIT_S=20 ... (a dry run on a CPU)
set -u
PYTHON=${PYTHON:-python3}
DATA=${DATA:-../shared/datasets/fer2013.zip}
RUNS=${RUNS:-runs/gpu-seed}
BUDGET_S=${BUDGET_S:-300}
FIT_S=${FIT_S:-130}
SEED=${SEED:-1337}
PRESET=${PRESET:-seed} # tiny: a dry run on a CPU
FIT_ARGS=(--seed "$SEED" --preset "$PRESET")
source "$(dirname "$0")/gpu-lib.sh"

if [ -n "${OUT:-}" ]; then
    (while sleep 10; do cp "$RUNS/seed/history.csv" "$RUNS/experiments.log" "$OUT/"; done) \
        >/dev/null 2>&1 &
    copier=$!
fi
start_gpu_monitor
prepare "$RUNS/seed" --preset "$PRESET" || { log "prepare failed: $(tail -n 2 "$RUNS/seed/prepare.log")"; exit 1; }
log "prepared: $(grep fingerprint "$RUNS/seed/prepare.log")"
fit "$RUNS/seed" $((FIT_S + 60)) --time-budget "$FIT_S"
keep_best_weights
score "$RUNS/seed"
[ -n "${copier:-}" ] && kill "$copier"
# The model stays on the GPU box (best.keras too, or finish would make it again).
[ -n "${OUT:-}" ] && rm -f "$RUNS/seed/model.keras" "$RUNS/seed/best.keras"
finish seed --
