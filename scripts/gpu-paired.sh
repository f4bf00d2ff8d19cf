#!/usr/bin/env bash
# A pair of fits of the shipped recipe for each seed, plain and with FLAG...: what
# scripts/gpu-sam.sh and scripts/gpu-degrade.sh run (`paired_fits` in gpu-lib.sh).
#
#   scripts/gpu-paired.sh NAME FLAG...    (runs in $RUNS, default runs/gpu-NAME)
#   AUGMENT_ON=host: every fit augments on the host, on its share of the cores (for flags the
#   device path lacks); otherwise on the device where one batch augments there.
set -u
[ $# -ge 2 ] || { echo "usage: $0 NAME FLAG..." >&2; exit 2; }
name=$1
shift
PYTHON=${PYTHON:-python3}
DATA=${DATA:-../shared/datasets/fer2013.zip}
RUNS=${RUNS:-runs/gpu-$name}
BUDGET_S=${BUDGET_S:-540}
PRESET=${PRESET:-default}
SEEDS=(${SEEDS:-1337 2})
EPOCHS=${EPOCHS:-60}
BATCH_SIZE=${BATCH_SIZE:-256}
LEARNING_RATE=${LEARNING_RATE:-0.004}
AUGMENT_ON=${AUGMENT_ON:-best}
SHIPPED=(--preset "$PRESET" --seed 1337 --other-label none --other-classes neutral)
FIT_ARGS=(--batch-size "$BATCH_SIZE" --learning-rate "$LEARNING_RATE" --preset "$PRESET"
    --epochs "$EPOCHS")
source "$(dirname "$0")/gpu-lib.sh"

start_gpu_monitor
check_backend || { log "Keras on JAX does not run here"; exit 1; }
if [ "$AUGMENT_ON" = host ]; then
    threads=$(($(nproc) / (2 * ${#SEEDS[@]})))
    FIT_ARGS+=(--input-threads $((threads > 0 ? threads : 1)))
else
    choose_augmentation 4
fi
paired_fits "$name" "$@"
