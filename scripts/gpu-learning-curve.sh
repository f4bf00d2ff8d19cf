#!/usr/bin/env bash
# Learning curve of the shipped recipe: issue #3 on one GPU.
#
# How much would more training faces buy? The shipped recipe (angry/happy/sad + none from
# neutral, default preset) is trained in parallel on nested shares of the train faces
# (`prepare --train-fraction F`; validation and test unchanged), each given the optimizer steps
# of 60 epochs on all of them (60 / F epochs, bounded by the time budget), same seed. Each is
# scored on its test split here; on the workstation, after calibrate and export:
#
#   python bench/learning_curve.py --model DIR/bundle ... --plot curve.png
#
# fits accuracy per doubling of the faces and the faces 88% would take. The CPU's curve (14
# epochs' worth of steps, `make learning-curve`) is in docs/results.md#learning-curve.
#
#   PYTHON=.venv/bin/python DATA=../shared/datasets/fer2013.zip scripts/gpu-learning-curve.sh
#   PRESET=tiny BUDGET_S=300 FULL_EPOCHS=2 ... (a dry run on a CPU: 138 s here, every step ran)
set -u
PYTHON=${PYTHON:-python3}
DATA=${DATA:-../shared/datasets/fer2013.zip}
RUNS=${RUNS:-runs/gpu-learning-curve}
BUDGET_S=${BUDGET_S:-540}
PRESET=${PRESET:-default}
SEED=${SEED:-1337}
BATCH_SIZE=${BATCH_SIZE:-256}
LEARNING_RATE=${LEARNING_RATE:-0.004}
FULL_EPOCHS=${FULL_EPOCHS:-60}
FRACTIONS=(${FRACTIONS:-0.25 0.5 1})
SHIPPED=(--preset "$PRESET" --seed "$SEED" --other-label none --other-classes neutral)
FIT_ARGS=(--batch-size "$BATCH_SIZE" --learning-rate "$LEARNING_RATE" --seed "$SEED"
    --preset "$PRESET")
source "$(dirname "$0")/gpu-lib.sh"

# Every share gets the optimizer steps of FULL_EPOCHS epochs on all the faces.
fit_args_for() { echo --epochs "$("$PYTHON" -c "print(max(1, round($FULL_EPOCHS / $1)))")"; }

start_gpu_monitor
check_backend || { log "Keras on JAX does not run here"; exit 1; }
shipped_variants share --train-fraction "${FRACTIONS[@]}"
