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
# without data.npz and optimizer-state checkpoints. Export and evaluation need TensorFlow and
# run afterwards on a workstation: `yuzug-train export --run R && yuzug-train evaluate --run R`.
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
# Several trainings share one GPU: allocate on demand instead of 75% up front per process.
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
export KERAS_BACKEND=${KERAS_BACKEND:-jax}
started=$(date +%s)
mkdir -p "$RUNS"
log() { echo "[$(($(date +%s) - started))s] $*" | tee -a "$RUNS/experiments.log"; }
left() { echo $((BUDGET_S - ($(date +%s) - started))); }

# fit RUN_DIR SECONDS ARGS...: one training, killed after SECONDS (its best checkpoint stays).
fit() {
    local run=$1 seconds=$2
    shift 2
    log "fit $run (${seconds}s max): $*"
    timeout --signal=TERM --kill-after=10 "$seconds" \
        "$PYTHON" -m trainer fit --run "$run" --input-threads "$INPUT_THREADS" \
        ${BATCH_SIZE:+--batch-size "$BATCH_SIZE"} ${LEARNING_RATE:+--learning-rate "$LEARNING_RATE"} \
        "$@" >"$run/fit.log" 2>&1
    log "fit $run exit $? $(tail -n 1 "$run/fit.log")"
}

# epochs_for SECONDS SLOWDOWN MAX: how many epochs fit in SECONDS when an epoch takes SLOWDOWN
# times phase 0's (parallel runs share the GPU; distillation adds the teachers' forward passes).
epochs_for() {
    awk -v s="$1" -v f="$2" -v most="$3" -v e="$epoch_seconds" \
        'BEGIN { n = int(s / (e * f)); print (n > most ? most : (n < 1 ? 1 : n)) }'
}

# share DIR...: gives each run directory the 4-output prepared data of $RUNS/default.
share() {
    for dir in "$@"; do
        mkdir -p "$dir"
        ln -f "$RUNS/default/data.npz" "$dir/data.npz"
        cp "$RUNS/default/prepare_report.json" "$dir/"
    done
}

nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 5 \
    >"$RUNS/gpu-utilisation.csv" 2>/dev/null &
gpu_monitor=$!
log "host $(hostname), $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null)"
# One training step on a toy model: Keras on JAX first, Keras on PyTorch if that cannot run.
check_backend() {
    "$PYTHON" - <<'EOF' 2>&1 | tail -n 3 | tee -a "$RUNS/experiments.log"
import keras, numpy as np
model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3),
                          keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")])
model.compile("adam", "categorical_crossentropy")
model.train_on_batch(np.zeros((4, 8, 8, 1), "float32"), np.eye(2, dtype="float32")[[0, 1, 0, 1]])
if keras.backend.backend() == "jax":
    import jax
    where = f"jax {jax.__version__} {jax.devices()}"
else:
    import torch
    where = f"torch {torch.__version__} {torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}"
print("backend ok: keras", keras.__version__, where)
EOF
    grep -q "backend ok: keras" <(tail -n 1 "$RUNS/experiments.log")
}
check_backend || { export KERAS_BACKEND=torch && check_backend; } || { log "no Keras backend runs"; exit 1; }

mkdir -p "$RUNS/default" "$RUNS/seven"
"$PYTHON" -m trainer prepare "$DATA" --preset "$PRESET" --other-label none \
    --other-classes neutral --run "$RUNS/default" >"$RUNS/default/prepare.log" 2>&1 ||
    { log "prepare failed: $(tail -n 3 "$RUNS/default/prepare.log")"; exit 1; }
# The 7-class data is prepared on the CPU while phase 0 trains.
"$PYTHON" -m trainer prepare "$DATA" --preset "$PRESET" --classes "$SEVEN" \
    --run "$RUNS/seven" >"$RUNS/seven/prepare.log" 2>&1 &
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
share "$RUNS/teacher1" "$RUNS/teacher2"
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
share "$RUNS/distilled" "$RUNS/distilled-wide"
phase2=$(($(left) - 25))
student_epochs=$(epochs_for $((phase2 - 30)) 2.5 "$EPOCHS")
teachers=(--teacher "$RUNS/teacher1" --teacher "$RUNS/teacher2" --distill-weight 0.7)
fit "$RUNS/distilled" "$phase2" --preset "$PRESET" --epochs "$student_epochs" "${teachers[@]}" &
pids=($!)
fit "$RUNS/distilled-wide" "$phase2" --preset "$WIDE" --epochs "$student_epochs" "${teachers[@]}" &
pids+=($!)
wait "${pids[@]}"
kill "$gpu_monitor" 2>/dev/null
# A fit cut short has only best.keras (with optimizer state, 3x the size): keep its weights.
"$PYTHON" - "$RUNS" <<'EOF' 2>&1 | tee -a "$RUNS/experiments.log"
import sys
from pathlib import Path
import keras
for best in sorted(Path(sys.argv[1]).glob("*/best.keras")):
    if not (best.parent / "model.keras").exists():
        keras.saving.load_model(best, compile=False).save(best.parent / "model.keras")
        print("cut short, kept its best checkpoint:", best.parent.name)
EOF
log "done"

if [ -n "${OUT:-}" ]; then
    # At most 8 files of 16 MiB come back: students in one tar, each teacher in its own.
    skip=(--exclude=data.npz --exclude=best.keras --exclude=backup)
    tar -cf "$OUT/students.tar" "${skip[@]}" -C "$RUNS" default seven distilled distilled-wide
    tar -cf "$OUT/teacher1.tar" "${skip[@]}" -C "$RUNS" teacher1
    tar -cf "$OUT/teacher2.tar" "${skip[@]}" -C "$RUNS" teacher2
    cp "$RUNS/experiments.log" "$RUNS/gpu-utilisation.csv" "$OUT/"
    ls -la "$OUT"
fi
