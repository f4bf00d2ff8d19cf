#!/usr/bin/env bash
# Sharpness-aware minimization on the shipped recipe: issue #3 on one GPU.
#
# Does SAM (`fit --sam RHO`, trainer/sharpness.py) lift the shipped recipe trained to
# convergence? The recipe (angry/happy/sad + none from neutral, default preset) is prepared
# once; for each seed a plain fit and a SAM fit of the same EPOCHS run in parallel on that data,
# so each pair differs in its steps alone. A SAM step costs two passes, so the SAM fits finish
# last; a fit still running when the budget ends keeps its best epoch so far (the log says
# which). Each is scored on its test split here; on the workstation, after calibrate and export:
#
#   python bench/accuracy.py --model DIR/plain-1337/bundle --model DIR/sam-1337/bundle ...
#
# pairs them face by face. The CPU's 14-epoch pairs are in docs/results.md (SAM section).
#
#   PYTHON=.venv/bin/python DATA=../shared/datasets/fer2013.zip scripts/gpu-sam.sh
#   PRESET=tiny BUDGET_S=300 EPOCHS=2 ... (a dry run on a CPU)
set -u
PYTHON=${PYTHON:-python3}
DATA=${DATA:-../shared/datasets/fer2013.zip}
RUNS=${RUNS:-runs/gpu-sam}
BUDGET_S=${BUDGET_S:-540}
PRESET=${PRESET:-default}
SEEDS=(${SEEDS:-1337 2})
RHO=${RHO:-0.05}
EPOCHS=${EPOCHS:-60}
BATCH_SIZE=${BATCH_SIZE:-256}
LEARNING_RATE=${LEARNING_RATE:-0.004}
SHIPPED=(--preset "$PRESET" --seed 1337 --other-label none --other-classes neutral)
FIT_ARGS=(--batch-size "$BATCH_SIZE" --learning-rate "$LEARNING_RATE" --preset "$PRESET"
    --epochs "$EPOCHS")
source "$(dirname "$0")/gpu-lib.sh"

start_gpu_monitor
check_backend || { log "Keras on JAX does not run here"; exit 1; }
choose_augmentation 4
paired_fits sam --sam "$RHO"
