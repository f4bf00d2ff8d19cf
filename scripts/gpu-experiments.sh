#!/usr/bin/env bash
# The model-quality runs of issue #3 on one GPU, inside a fixed time budget.
#
#   phase 0  the default recipe alone (4 outputs: angry/happy/sad + none from neutral),
#            so its fit time and images/s are the GPU's, not shared;
#   phase 1  in parallel: two 2x-wide teachers (seeds 1 and 2) and the default recipe on all
#            seven FER2013 classes;
#   phase 2  in parallel: the default and the wide student distilled from the two teachers.
#
# Each fit gets what is left of BUDGET_S (a fit cut short keeps its best checkpoint). Run
# directories land in $RUNS; with $OUT set (the device tool), they are packed there as tars,
# without data.npz and optimizer-state checkpoints. Calibration, export (TensorFlow) and
# evaluation run afterwards on a workstation: `yuzug-train calibrate --run R`, then export, evaluate.
#
#   PYTHON=.venv/bin/python DATA=../shared/datasets/fer2013.zip scripts/gpu-experiments.sh
#   BATCH_SIZE=256 LEARNING_RATE=0.004 TEACHER_EPOCHS=200 ... (longer teachers, larger batch)
set -u
PYTHON=${PYTHON:-python3}
DATA=${DATA:-../shared/datasets/fer2013.zip}
RUNS=${RUNS:-runs/gpu}
BUDGET_S=${BUDGET_S:-560}
EPOCHS=${EPOCHS:-60}
TEACHER_EPOCHS=${TEACHER_EPOCHS:-50}
PRESET=${PRESET:-default}   # tiny, with the teacher and wide presets swapped for it, for a dry run
TEACHER=${TEACHER:-teacher}
WIDE=${WIDE:-wide}
# Optional for every fit: a larger batch amortises the per-step dispatch that bounds a GPU run
# (about 6 ms per step at 64 on an H200); scale the learning rate with it.
BATCH_SIZE=${BATCH_SIZE:-}
LEARNING_RATE=${LEARNING_RATE:-}
# Threads that augment ahead per training (10,439 vs 8,996 images/s with 6 vs 1 on an H200).
INPUT_THREADS=${INPUT_THREADS:-4}
SEVEN=angry,disgust,fear,happy,sad,surprise,neutral
FIT_ARGS=(--input-threads "$INPUT_THREADS" ${BATCH_SIZE:+--batch-size "$BATCH_SIZE"}
    ${LEARNING_RATE:+--learning-rate "$LEARNING_RATE"})
source "$(dirname "$0")/gpu-lib.sh"

# epochs_for SECONDS SLOWDOWN MAX: how many epochs fit in SECONDS when an epoch takes SLOWDOWN
# times phase 0's (parallel runs share the GPU; distillation adds the teachers' forward passes).
epochs_for() {
    awk -v s="$1" -v f="$2" -v most="$3" -v e="$epoch_seconds" \
        'BEGIN { n = int(s / (e * f)); print (n > most ? most : (n < 1 ? 1 : n)) }'
}

start_gpu_monitor
check_backend || { export KERAS_BACKEND=torch && check_backend; } || { log "no Keras backend runs"; exit 1; }

prepare "$RUNS/default" --preset "$PRESET" --other-label none --other-classes neutral ||
    { log "prepare failed: $(tail -n 3 "$RUNS/default/prepare.log")"; exit 1; }
# The 7-class data is prepared on the CPU while phase 0 trains.
prepare "$RUNS/seven" --preset "$PRESET" --classes "$SEVEN" &
prepare_seven=$!

log "phase 0: the default recipe alone"
phase0_start=$(date +%s)
fit "$RUNS/default" $(($(left) * 3 / 10)) --preset "$PRESET" --epochs "$EPOCHS"
# Seconds per epoch, from fit.json, or from the history if phase 0 was cut short.
epoch_seconds=$("$PYTHON" - "$RUNS/default" $(($(date +%s) - phase0_start)) <<'EOF'
import json, sys
from pathlib import Path
run, elapsed = Path(sys.argv[1]), float(sys.argv[2])
try:
    fit = json.loads((run / "fit.json").read_text())
    print(fit["fit_seconds"] / fit["epochs_run"])
except (OSError, KeyError, ValueError, ZeroDivisionError):
    epochs = max(1, len((run / "history.csv").read_text().splitlines()) - 1) if (run / "history.csv").exists() else 1
    print(elapsed / epochs)
EOF
)
log "phase 0: ${epoch_seconds}s per epoch"
wait "$prepare_seven"

log "phase 1: two teachers and the 7-class run"
share "$RUNS/default" "$RUNS/teacher1" "$RUNS/teacher2"
phase1=$(($(left) * 11 / 20))
teacher_epochs=$(epochs_for $((phase1 - 30)) 2.5 "$TEACHER_EPOCHS")
seven_epochs=$(epochs_for $((phase1 - 30)) 2.6 "$EPOCHS")
fit "$RUNS/teacher1" "$phase1" --preset "$TEACHER" --epochs "$teacher_epochs" --seed 1 &
pids=($!)
fit "$RUNS/teacher2" "$phase1" --preset "$TEACHER" --epochs "$teacher_epochs" --seed 2 &
pids+=($!)
fit "$RUNS/seven" "$phase1" --preset "$PRESET" --epochs "$seven_epochs" &
pids+=($!)
wait "${pids[@]}" # not a bare wait: the GPU monitor runs in the background too

log "phase 2: students distilled from both teachers"
share "$RUNS/default" "$RUNS/distilled" "$RUNS/distilled-wide"
phase2=$(($(left) - 25))
student_epochs=$(epochs_for $((phase2 - 30)) 2.5 "$EPOCHS")
teachers=(--teacher "$RUNS/teacher1" --teacher "$RUNS/teacher2" --distill-weight 0.7)
fit "$RUNS/distilled" "$phase2" --preset "$PRESET" --epochs "$student_epochs" "${teachers[@]}" &
pids=($!)
fit "$RUNS/distilled-wide" "$phase2" --preset "$WIDE" --epochs "$student_epochs" "${teachers[@]}" &
pids+=($!)
wait "${pids[@]}"
finish default seven distilled distilled-wide -- teacher1 teacher2
