#!/usr/bin/env bash
# Long-trained teachers for issue #3 on one GPU, inside a fixed time budget, with the
# augmentation on the device (--augment-on device) so a training is no longer host-bound.
#
#   phase 1  in parallel: three teachers on angry/happy/sad + none (seeds 1-3) and one on all
#            seven FER2013 classes, each fitting its cosine schedule into TEACHER_S seconds;
#   phase 2  in parallel: students distilled from those teachers: the default preset at
#            distillation weights 0.7 and 0.9, the wide preset at 0.7, and the default preset
#            on seven classes from the 7-class teacher, each in STUDENT_S seconds.
#
# Every fit uses --time-budget, so a slower or faster GPU changes the epoch count, never cuts
# a schedule short; history.csv records each epoch's learning rate.
# Run directories land in $RUNS; with $OUT set (the device tool) they are packed there as tars.
# Calibration, export (TensorFlow) and evaluation run afterwards on a workstation.
#
#   PYTHON=.venv/bin/python DATA=../shared/datasets/fer2013.zip scripts/gpu-long-teachers.sh
#   PRESET=tiny TEACHER=tiny WIDE=tiny BUDGET_S=240 ... (a dry run on a CPU)
set -u
PYTHON=${PYTHON:-python3}
DATA=${DATA:-../shared/datasets/fer2013.zip}
RUNS=${RUNS:-runs/gpu-long}
BUDGET_S=${BUDGET_S:-540}
PRESET=${PRESET:-default}
TEACHER=${TEACHER:-teacher}
WIDE=${WIDE:-wide}
# Larger batches amortise Keras's per-step dispatch; the rate is scaled by sqrt(256 / 64).
BATCH_SIZE=${BATCH_SIZE:-256}
LEARNING_RATE=${LEARNING_RATE:-0.004}
SEVEN=angry,disgust,fear,happy,sad,surprise,neutral
FIT_ARGS=(--batch-size "$BATCH_SIZE" --learning-rate "$LEARNING_RATE")
# MIXUP=0.2 / CUTMIX=1.0: every fit mixes its batches (see docs/results.md, "Batch mixing").
[ -n "${MIXUP:-}" ] && FIT_ARGS+=(--mixup "$MIXUP")
[ -n "${CUTMIX:-}" ] && FIT_ARGS+=(--cutmix "$CUTMIX")
source "$(dirname "$0")/gpu-lib.sh"

start_gpu_monitor
check_backend || { log "Keras on JAX does not run here"; exit 1; }

prepare "$RUNS/four" --preset "$PRESET" --other-label none --other-classes neutral &
prepare_four=$!
prepare "$RUNS/seven" --preset "$PRESET" --classes "$SEVEN" &
prepare_seven=$!
choose_augmentation 6
wait "$prepare_four" "$prepare_seven" || { log "prepare failed"; exit 1; }

# What is left after start-up, split between the phases; each fit also needs about 40 s
# outside its budget (start, compilation of evaluation, saving, plots).
overhead=45
usable=$(($(left) - 2 * overhead - 15))
teacher_s=${TEACHER_S:-$((usable * 58 / 100))}

log "phase 1: four teachers, ${teacher_s}s of training each"
share "$RUNS/four" "$RUNS/teacher1" "$RUNS/teacher2" "$RUNS/teacher3"
share "$RUNS/seven" "$RUNS/teacher7"
pids=()
for seed in 1 2 3; do
    fit "$RUNS/teacher$seed" $((teacher_s + overhead)) --preset "$TEACHER" --epochs 300 \
        --time-budget "$teacher_s" --seed "$seed" &
    pids+=($!)
done
fit "$RUNS/teacher7" $((teacher_s + overhead)) --preset "$TEACHER" --epochs 300 \
    --time-budget "$teacher_s" --seed 7 &
pids+=($!)
wait "${pids[@]}" # not a bare wait: the GPU monitor runs in the background too
keep_best_weights

teachers=()
for seed in 1 2 3; do
    [ -f "$RUNS/teacher$seed/model.keras" ] && teachers+=(--teacher "$RUNS/teacher$seed")
done
seven_teacher=()
[ -f "$RUNS/teacher7/model.keras" ] && seven_teacher=(--teacher "$RUNS/teacher7")
student_s=${STUDENT_S:-$(($(left) - overhead - 10))}
log "phase 2: students from $((${#teachers[@]} / 2)) + $((${#seven_teacher[@]} / 2)) teachers, ${student_s}s each"
share "$RUNS/four" "$RUNS/student" "$RUNS/student-w09" "$RUNS/student-wide"
share "$RUNS/seven" "$RUNS/student7"
weight() { [ ${#teachers[@]} -gt 0 ] && echo "${teachers[@]}" --distill-weight "$1"; }
pids=()
# shellcheck disable=SC2046 # word splitting of the teacher flags is wanted
fit "$RUNS/student" $((student_s + overhead)) --preset "$PRESET" --epochs 200 \
    --time-budget "$student_s" $(weight 0.7) &
pids+=($!)
# shellcheck disable=SC2046
fit "$RUNS/student-w09" $((student_s + overhead)) --preset "$PRESET" --epochs 200 \
    --time-budget "$student_s" $(weight 0.9) &
pids+=($!)
# shellcheck disable=SC2046
fit "$RUNS/student-wide" $((student_s + overhead)) --preset "$WIDE" --epochs 200 \
    --time-budget "$student_s" $(weight 0.7) &
pids+=($!)
fit "$RUNS/student7" $((student_s + overhead)) --preset "$PRESET" --epochs 200 \
    --time-budget "$student_s" "${seven_teacher[@]}" \
    ${seven_teacher[0]:+--distill-weight 0.7} &
pids+=($!)
wait "${pids[@]}"
finish four/prepare_report.json seven/prepare_report.json \
    student student-w09 student-wide student7 -- teacher1 teacher2 teacher3 teacher7
