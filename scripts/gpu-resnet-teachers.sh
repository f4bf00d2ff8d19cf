#!/usr/bin/env bash
# Does a bigger, deeper teacher break the 84% ceiling, and do class weights cost the 7-class
# target? Issue #3 on one GPU, inside a fixed time budget, device augmentation, batch 256.
#
#   phase 1  in parallel: ResNet-18 (the resnet preset, ~11M parameters) on angry/happy/sad +
#            none (from neutral) and on all seven classes without class weights; the default
#            preset on seven classes with and without class weights (same seed and budget);
#   phase 2  in parallel: the default preset distilled from each ResNet on its own data
#            (three classes + none: with and without class weights; seven: without).
#
# Every fit uses --time-budget, so the GPU's speed changes epoch counts, never cuts a schedule.
# Each model is scored on its test split here (Keras float, with and without flip averaging);
# calibration, export (TensorFlow) and bench/accuracy.py run afterwards on a workstation.
# With $OUT set (the device tool) the students come back in one tar and the ResNets named in
# TEACHERS_BACK split in parts of 16 MB by gpu-lib's pack: cat resnet4.tar.* | tar -x. At most 64 MB come back
# from one call and a ResNet is 45 MB, so only one can come with the students; the other
# stays in $RUNS on the warm machine for a second call to fetch.
#
#   PYTHON=.venv/bin/python DATA=../shared/datasets/fer2013.zip scripts/gpu-resnet-teachers.sh
#   PRESET=tiny TEACHER=tiny BUDGET_S=300 ... (a dry run on a CPU)
set -u
PYTHON=${PYTHON:-python3}
DATA=${DATA:-../shared/datasets/fer2013.zip}
RUNS=${RUNS:-runs/gpu-resnet}
BUDGET_S=${BUDGET_S:-540}
PRESET=${PRESET:-default}
TEACHER=${TEACHER:-resnet}
TEACHERS_BACK=${TEACHERS_BACK:-resnet4}
SEED=${SEED:-1337}
BATCH_SIZE=${BATCH_SIZE:-256}
LEARNING_RATE=${LEARNING_RATE:-0.004}
SEVEN=angry,disgust,fear,happy,sad,surprise,neutral
FIT_ARGS=(--batch-size "$BATCH_SIZE" --learning-rate "$LEARNING_RATE" --seed "$SEED")
source "$(dirname "$0")/gpu-lib.sh"

start_gpu_monitor
check_backend || { log "Keras on JAX does not run here"; exit 1; }
prepare "$RUNS/resnet4" --preset "$PRESET" --other-label none --other-classes neutral &
pids=($!)
prepare "$RUNS/resnet7" --preset "$PRESET" --classes "$SEVEN" &
pids+=($!)
choose_augmentation 4
wait "${pids[@]}" || { log "prepare failed: $(tail -n 2 "$RUNS"/resnet*/prepare.log)"; exit 1; }
share "$RUNS/resnet4" "$RUNS/student4" "$RUNS/student4-unweighted"
share "$RUNS/resnet7" "$RUNS/default7" "$RUNS/default7-unweighted" "$RUNS/student7-unweighted"

overhead=45 # per fit, outside its budget: start, compilation of evaluation, saving, plots
score_s=40
# The ResNets are the question: they get the larger share.
teacher_s=${TEACHER_S:-$((($(left) - 2 * overhead - 2 * score_s - 15) * 58 / 100))}
log "phase 1: two ResNets and the default on seven classes with/without class weights," \
    "${teacher_s}s each"
pids=()
fit "$RUNS/resnet4" $((teacher_s + overhead)) --preset "$TEACHER" --epochs 300 \
    --time-budget "$teacher_s" &
pids+=($!)
fit "$RUNS/resnet7" $((teacher_s + overhead)) --preset "$TEACHER" --epochs 300 \
    --time-budget "$teacher_s" --class-weights none &
pids+=($!)
fit "$RUNS/default7" $((teacher_s + overhead)) --preset "$PRESET" --epochs 300 \
    --time-budget "$teacher_s" &
pids+=($!)
fit "$RUNS/default7-unweighted" $((teacher_s + overhead)) --preset "$PRESET" --epochs 300 \
    --time-budget "$teacher_s" --class-weights none &
pids+=($!)
wait "${pids[@]}" # not a bare wait: the GPU monitor runs in the background too
keep_best_weights
score "$RUNS"/resnet4 "$RUNS"/resnet7 "$RUNS"/default7 "$RUNS"/default7-unweighted

student_s=${STUDENT_S:-$(($(left) - overhead - score_s - 10))}
log "phase 2: default students distilled from the ResNets, ${student_s}s each"
pids=()
for student in student4 student4-unweighted student7-unweighted; do
    teacher=resnet${student:7:1}
    weights=()
    [ "${student%-unweighted}" != "$student" ] && weights=(--class-weights none)
    if [ -f "$RUNS/$teacher/model.keras" ]; then
        fit "$RUNS/$student" $((student_s + overhead)) --preset "$PRESET" --epochs 300 \
            --time-budget "$student_s" --teacher "$RUNS/$teacher" --distill-weight 0.8 \
            "${weights[@]}" &
        pids+=($!)
    fi
done
wait "${pids[@]}"
score "$RUNS"/student4 "$RUNS"/student4-unweighted "$RUNS"/student7-unweighted
# shellcheck disable=SC2086 # TEACHERS_BACK is a list of run names
finish resnet4/prepare_report.json resnet7/prepare_report.json default7 default7-unweighted \
    student4 student4-unweighted student7-unweighted -- $TEACHERS_BACK
