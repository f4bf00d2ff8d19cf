# Helpers shared by the GPU experiment scripts; sourced, not run. The sourcing script sets
# PYTHON, RUNS, BUDGET_S and FIT_ARGS (an array of flags every fit gets) first.
# Several trainings share one GPU: allocate on demand instead of 75% up front per process.
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
export KERAS_BACKEND=${KERAS_BACKEND:-jax}
started=$(date +%s)
mkdir -p "$RUNS"
log() { echo "[$(($(date +%s) - started))s] $*" | tee -a "$RUNS/experiments.log"; }
left() { echo $((BUDGET_S - ($(date +%s) - started))); }

# fit RUN_DIR SECONDS ARGS...: one training, stopped after SECONDS: SIGTERM makes fit save
# its best epoch so far as model.keras with fit.json (exit 130); SIGKILL 10 s later if not.
fit() {
    local run=$1 seconds=$2
    shift 2
    log "fit $run (${seconds}s max): ${FIT_ARGS[*]} $*"
    timeout --signal=TERM --kill-after=10 "$seconds" \
        "$PYTHON" -m trainer fit --run "$run" "${FIT_ARGS[@]}" "$@" >"$run/fit.log" 2>&1
    log "fit $run exit $? $(tail -n 1 "$run/fit.log")"
}

# share FROM DIR...: gives each run directory FROM's prepared data.
share() {
    local from=$1
    shift
    for dir in "$@"; do
        mkdir -p "$dir"
        ln -f "$from/data.npz" "$dir/data.npz"
        cp "$from/prepare_report.json" "$dir/"
    done
}

# GPU utilisation every 5 s into $RUNS/gpu-utilisation.csv; stop it with stop_gpu_monitor.
start_gpu_monitor() {
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 5 \
        >"$RUNS/gpu-utilisation.csv" 2>/dev/null &
    gpu_monitor=$!
    log "host $(hostname), $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null)"
}
stop_gpu_monitor() { kill "$gpu_monitor" 2>/dev/null; }

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

# A fit killed outright has only best.keras (with optimizer state, 3x the size): keep its weights.
keep_best_weights() {
    "$PYTHON" - "$RUNS" <<'EOF' 2>&1 | tee -a "$RUNS/experiments.log"
import sys
from pathlib import Path
import keras
for best in sorted(Path(sys.argv[1]).glob("*/best.keras")):
    if not (best.parent / "model.keras").exists():
        keras.saving.load_model(best, compile=False).save(best.parent / "model.keras")
        print("cut short, kept its best checkpoint:", best.parent.name)
EOF
}

# pack NAME DIR...: run directories into $OUT/NAME.tar, without data or optimizer state; a tar
# over 16 MB (the largest file the device tool brings back) is split into NAME.tar.0, .1, ...:
# cat NAME.tar.* | tar -x.
pack() {
    local name=$1
    shift
    tar -cf "$OUT/$name.tar" --exclude=data.npz --exclude=best.keras --exclude=backup \
        -C "$RUNS" "$@"
    if [ "$(stat -c %s "$OUT/$name.tar")" -gt 16000000 ]; then
        split -b 16000000 -d -a 1 "$OUT/$name.tar" "$OUT/$name.tar." && rm "$OUT/$name.tar"
    fi
}

# finish STUDENT_DIR... -- TEACHER_DIR...: ends the experiment; with $OUT set (the device tool)
# packs the students into one tar and each teacher into its own (at most 8 files of 16 MiB,
# 64 MiB in all, come back), with the log and the GPU utilisation.
finish() {
    stop_gpu_monitor
    keep_best_weights
    log "done"
    [ -n "${OUT:-}" ] || return 0
    local students=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        students+=("$1")
        shift
    done
    shift
    pack students "${students[@]}"
    for teacher in "$@"; do pack "$teacher" "$teacher"; done
    cp "$RUNS/experiments.log" "$RUNS/gpu-utilisation.csv" "$OUT/"
    ls -la "$OUT"
}

# prepare DIR ARGS...: yuzug-train prepare of $DATA into run directory DIR.
prepare() {
    local dir=$1
    shift
    mkdir -p "$dir"
    "$PYTHON" -m trainer prepare "$DATA" "$@" --run "$dir" >"$dir/prepare.log" 2>&1
}

# choose_augmentation THREADS: adds --augment-on device to FIT_ARGS if one batch augments on
# the device here, host augmentation on THREADS threads otherwise.
choose_augmentation() {
    if "$PYTHON" - <<'PY' >>"$RUNS/experiments.log" 2>&1; then
import numpy as np
from trainer.augment import AugmentConfig, device_augmenter
batch = np.random.default_rng(0).integers(0, 256, (256, 48, 48, 1), dtype=np.uint8)
out = device_augmenter(AugmentConfig(), 1 / 255, 0.0)(batch, 1, 0, 0).block_until_ready()
print("device augmentation ok:", out.shape, out.devices())
PY
        FIT_ARGS+=(--augment-on device)
    else
        FIT_ARGS+=(--input-threads "$1")
    fi
    log "fit flags: ${FIT_ARGS[*]}"
}

# score DIR...: each run's Keras model on its test split, on the GPU box (the bundles are made
# on a workstation): accuracy over all its classes and argmax over angry/happy/sad on those
# faces (the issue's measure), each also with flip averaging, into the log. The probabilities
# go to DIR/test_probs.npz (plain, flipped, y, classes), so models too big to bring back can
# still be combined into ensembles afterwards.
score() {
    "$PYTHON" - "$@" <<'EOF_PY' 2>&1 | grep -v WARNING | tee -a "$RUNS/experiments.log"
import sys
from pathlib import Path
import numpy as np
from edge.preprocess import to_float
from trainer.data import PreparedData
from trainer.model import load_trained
for run in map(Path, sys.argv[1:]):
    if not (run / "model.keras").exists():
        print(f"score {run.name}: no model")
        continue
    data = PreparedData.load(run / "data.npz")
    x, y = to_float(data.x["test"], data.spec), data.y["test"]
    model = load_trained(run / "model.keras")
    plain = np.asarray(model.predict(x, batch_size=512, verbose=0))
    flipped = np.asarray(model.predict(x[:, :, ::-1], batch_size=512, verbose=0))
    np.savez_compressed(run / "test_probs.npz", plain=plain, flipped=flipped, y=y,
                        classes=np.asarray(data.classes))
    emotions = [data.classes.index(c) for c in ("angry", "happy", "sad") if c in data.classes]
    faces = np.isin(y, emotions)
    line = [f"score {run.name} ({len(data.classes)} classes, {model.count_params():,} params):"]
    for name, probs in (("plain", plain), ("flip-avg", (plain + flipped) / 2)):
        overall = float(np.mean(probs.argmax(1) == y))
        three = np.asarray(emotions)[probs[faces][:, emotions].argmax(1)]
        line.append(f"{name} all {overall:.4f} a/h/s {float(np.mean(three == y[faces])):.4f};")
    print(" ".join(line))
EOF_PY
}

# score_and_finish RUN...: once the fits of $RUNS/RUN... have ended: keeps the best weights of
# any cut short, scores each on its test split and ends the experiment with them as students.
score_and_finish() {
    keep_best_weights
    score "${@/#/$RUNS/}"
    finish "$@" --
}

# shipped_variants NAME FLAG VALUE...: the shipped recipe (SHIPPED: prepare flags) prepared with
# `FLAG VALUE` into $RUNS/NAME-VALUE for each VALUE, all in parallel; then fitted in parallel
# for the time left (FIT_ARGS, plus `prepare_args_for VALUE` and `fit_args_for VALUE` when the
# script defines them), each scored on its test split and packed by finish.
shipped_variants() {
    local name=$1 flag=$2 value run
    shift 2
    local values=("$@") runs=() pids=()
    for value in "${values[@]}"; do
        runs+=("$name-$value")
        prepare "$RUNS/$name-$value" "${SHIPPED[@]}" "$flag" "$value" \
            $(declare -F prepare_args_for >/dev/null && prepare_args_for "$value") &
        pids+=($!)
    done
    choose_augmentation 4
    wait "${pids[@]}" || { log "prepare failed: $(tail -n 2 "$RUNS/$name"-*/prepare.log)"; exit 1; }
    for run in "${runs[@]}"; do
        log "$run: $(grep -h 'train faces\|fingerprint' "$RUNS/$run/prepare.log" | tr '\n' ' ')"
    done
    local overhead=45 # per fit, outside its budget: start, compilation of evaluation, saving, plots
    local score_s=40
    local fit_s=${FIT_S:-$(($(left) - overhead - score_s - 20))}
    log "${#runs[@]} fits of the shipped recipe in parallel, at most ${fit_s}s each"
    pids=()
    for value in "${values[@]}"; do
        fit "$RUNS/$name-$value" $((fit_s + overhead)) --time-budget "$fit_s" \
            $(declare -F fit_args_for >/dev/null && fit_args_for "$value") &
        pids+=($!)
    done
    wait "${pids[@]}"
    score_and_finish "${runs[@]}"
}

# paired_fits NAME FLAG...: the shipped recipe (SHIPPED: prepare flags) prepared once into
# $RUNS/data; for each seed of SEEDS a plain fit ($RUNS/plain-SEED) and one with FLAG...
# ($RUNS/NAME-SEED), all in parallel on that data (FIT_ARGS), so each pair differs in those
# flags alone; scored and packed by finish. A fit still running when the budget ends keeps its
# best epoch so far (the log says which).
paired_fits() {
    local name=$1 seed
    shift
    prepare "$RUNS/data" "${SHIPPED[@]}" || { log "prepare failed: $(tail -n 2 "$RUNS/data/prepare.log")"; exit 1; }
    log "data: $(grep -h 'train faces\|fingerprint' "$RUNS/data/prepare.log" | tr '\n' ' ')"
    local runs=() pids=()
    for seed in "${SEEDS[@]}"; do runs+=("plain-$seed" "$name-$seed"); done
    share "$RUNS/data" "${runs[@]/#/$RUNS/}"
    local score_s=40
    local fit_s=$(($(left) - score_s - 20))
    log "${#runs[@]} fits in parallel, at most ${fit_s}s each: ${FIT_ARGS[*]}; $name adds $*"
    for seed in "${SEEDS[@]}"; do
        fit "$RUNS/plain-$seed" "$fit_s" --seed "$seed" &
        pids+=($!)
        fit "$RUNS/$name-$seed" "$fit_s" --seed "$seed" "$@" &
        pids+=($!)
    done
    wait "${pids[@]}"
    score_and_finish "${runs[@]}"
}
