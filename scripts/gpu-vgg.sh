#!/usr/bin/env bash
# Does the best published single network reach 72% on seven classes of this copy? Issue #3 on
# one GPU.
#
# Khaireddin & Chen's VGG (2021, 73.28% on the PublicTest split) is the `vgg` preset: their
# network (~40M parameters) and recipe (SGD with Nesterov momentum, shifts and zoom of 20%,
# random erasing, no class weights), with a cosine schedule fitted to the budget instead of
# their 300 epochs with plateau steps, and without ten-crop training. Two fits share the GPU:
# seven classes (the #3 target), and the shipped classes (angry/happy/sad + none from neutral),
# to see whether a network 70 times the shipped one's size reads the three emotions better.
# Each is scored on its test split here (Keras float, plain and with flip averaging; its
# probabilities kept in test_probs.npz for ensembles afterwards). A 40M-parameter model is
# 160 MB, more than the device tool brings back, so only the logs, curves, histories and
# test probabilities come back.
#
#   PYTHON=.venv/bin/python DATA=../shared/datasets/fer2013.zip scripts/gpu-vgg.sh
#   PRESET=tiny BUDGET_S=300 ... (a dry run on a CPU: 194 s here, every step ran)
set -u
PYTHON=${PYTHON:-python3}
DATA=${DATA:-../shared/datasets/fer2013.zip}
RUNS=${RUNS:-runs/gpu-vgg}
BUDGET_S=${BUDGET_S:-540}
PRESET=${PRESET:-vgg}
SEED=${SEED:-1337}
BATCH_SIZE=${BATCH_SIZE:-256}
# Their 0.01 at batch 64, scaled linearly to the batch.
LEARNING_RATE=${LEARNING_RATE:-$(awk "BEGIN {print 0.01 * $BATCH_SIZE / 64}")}
SEVEN=angry,disgust,fear,happy,sad,surprise,neutral
FIT_ARGS=(--batch-size "$BATCH_SIZE" --learning-rate "$LEARNING_RATE" --seed "$SEED"
    --preset "$PRESET" --epochs 300)
source "$(dirname "$0")/gpu-lib.sh"

start_gpu_monitor
check_backend || { log "Keras on JAX does not run here"; exit 1; }
prepare "$RUNS/vgg7" --preset "$PRESET" --seed "$SEED" --classes "$SEVEN" &
pids=($!)
prepare "$RUNS/vgg3" --preset "$PRESET" --seed "$SEED" --other-label none \
    --other-classes neutral &
pids+=($!)
choose_augmentation 6
wait "${pids[@]}" || { log "prepare failed: $(tail -n 2 "$RUNS"/vgg*/prepare.log)"; exit 1; }

overhead=60 # per fit, outside its budget: start, compilation of evaluation, saving, plots
score_s=60
fit_s=${FIT_S:-$(($(left) - overhead - score_s - 20))}
log "the vgg preset on seven and on the shipped classes, ${fit_s}s each"
pids=()
for run in vgg7 vgg3; do
    fit "$RUNS/$run" $((fit_s + overhead)) --time-budget "$fit_s" &
    pids+=($!)
done
wait "${pids[@]}" # not a bare wait: the GPU monitor runs in the background too
keep_best_weights
score "$RUNS/vgg7" "$RUNS/vgg3"
rm -f "$RUNS"/vgg*/*.keras "$RUNS"/vgg*/*.h5 # 160 MB each: too big to bring back
finish vgg7 vgg3 --
