#!/usr/bin/env bash
# Confident learning for issue #3 on one GPU: find FER2013's training faces whose labels
# out-of-sample models firmly contradict, and train the default model without them.
#
#   phase 1  in parallel: FOLDS cross-fit models of the shipped recipe (angry/happy/sad +
#            none from neutral), model i trained without fold i of train (--fold i/FOLDS);
#   audit    each model scores the fold it never saw (yuzug-train audit --run ...): the
#            exclusion lists at p >= 0.8 and p >= 0.6;
#   phase 2  in parallel, same seed and time budget: the default preset on train without
#            each list (clean0.8, clean0.6), and a control on all of train (control).
#
# Every fit uses --time-budget and --augment-on device (host augmentation when the device
# path cannot run). Run directories land in $RUNS; with $OUT set (the device tool) they are
# packed there. Calibration, export (TensorFlow) and evaluation run afterwards on a
# workstation: yuzug-train calibrate / export / evaluate --run DIR for each student.
#
#   PYTHON=.venv/bin/python DATA=../shared/datasets/fer2013.zip scripts/gpu-clean-labels.sh
#   PRESET=tiny FOLDS=2 BUDGET_S=200 ... (a dry run on a CPU)
set -u
PYTHON=${PYTHON:-python3}
DATA=${DATA:-../shared/datasets/fer2013.zip}
RUNS=${RUNS:-runs/gpu-clean}
BUDGET_S=${BUDGET_S:-540}
PRESET=${PRESET:-default}
FOLDS=${FOLDS:-5}
SEED=${SEED:-1337}
BATCH_SIZE=${BATCH_SIZE:-256}
LEARNING_RATE=${LEARNING_RATE:-0.004}
RECIPE=(--preset "$PRESET" --other-label none --other-classes neutral --seed "$SEED")
FIT_ARGS=(--batch-size "$BATCH_SIZE" --learning-rate "$LEARNING_RATE" --seed "$SEED")
source "$(dirname "$0")/gpu-lib.sh"

start_gpu_monitor
check_backend || { log "Keras on JAX does not run here"; exit 1; }
choose_augmentation 4

pids=()
for ((fold = 0; fold < FOLDS; fold++)); do
    prepare "$RUNS/fold$fold" "${RECIPE[@]}" --fold "$fold/$FOLDS" &
    pids+=($!)
done
wait "${pids[@]}" || { log "prepare failed: $(tail -n 2 "$RUNS"/fold*/prepare.log)"; exit 1; }
log "prepared $FOLDS folds"

overhead=45 # per fit, outside its budget: start, compilation of evaluation, saving, plots
audit_s=60
fold_s=${FOLD_S:-$((($(left) - 2 * overhead - audit_s - 30) * 45 / 100))}
log "phase 1: $FOLDS cross-fit models, ${fold_s}s each"
pids=()
for ((fold = 0; fold < FOLDS; fold++)); do
    fit "$RUNS/fold$fold" $((fold_s + overhead)) "${RECIPE[@]:0:2}" --epochs 300 \
        --time-budget "$fold_s" &
    pids+=($!)
done
wait "${pids[@]}"
keep_best_weights

runs=()
for ((fold = 0; fold < FOLDS; fold++)); do
    [ -f "$RUNS/fold$fold/model.keras" ] && runs+=(--run "$RUNS/fold$fold")
done
for at in 0.8 0.6; do
    "$PYTHON" -m trainer audit "${runs[@]}" --min-probability "$at" --out "$RUNS/audit-$at" \
        >"$RUNS/audit-$at.log" 2>&1
    log "audit at $at: $(grep -E '^  (train|val):' "$RUNS/audit-$at.log" | tr -s ' ' | tr '\n' ';')"
done
[ -s "$RUNS/audit-0.8/exclude.txt" ] || { log "no audit: $(tail -n 3 "$RUNS/audit-0.8.log")"; exit 1; }

pids=()
prepare "$RUNS/control" "${RECIPE[@]}" &
pids+=($!)
for at in 0.8 0.6; do
    prepare "$RUNS/clean$at" "${RECIPE[@]}" --exclude-list "$RUNS/audit-$at/exclude.txt" &
    pids+=($!)
done
wait "${pids[@]}" # not a bare wait: the GPU monitor runs in the background too
student_s=${STUDENT_S:-$(($(left) - overhead - 10))}
log "phase 2: control and cleaned students, ${student_s}s each"
pids=()
for run in control clean0.8 clean0.6; do
    fit "$RUNS/$run" $((student_s + overhead)) "${RECIPE[@]:0:2}" --epochs 200 \
        --time-budget "$student_s" &
    pids+=($!)
done
wait "${pids[@]}"
folds=()
for ((fold = 0; fold < FOLDS; fold++)); do folds+=("fold$fold"); done
# The fold models in one tar (about 2.5 MB each), the audits and students in another.
[ -z "${OUT:-}" ] || pack folds "${folds[@]}"
finish audit-0.8 audit-0.6 control clean0.8 clean0.6 --
