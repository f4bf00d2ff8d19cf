#!/usr/bin/env bash
# Camera degradations in training, on the shipped recipe: issue #3 on one GPU.
#
# Does `fit --degrade P` (trainer/augment.py: a far face, defocus, sensor noise and JPEG, each
# striking a training face with probability P) keep the shipped recipe's accuracy on FER2013's
# own faces while it lifts the camera's conditions? The recipe (angry/happy/sad + none from
# neutral, default preset) is prepared once; for each seed a plain fit and a degraded fit of
# the same EPOCHS run in parallel on that data, so each pair differs in its augmentation alone.
# The degradations run on the host (JPEG has no JAX form), so every fit here augments on the
# host, each on its share of the cores. Each is scored on its test split here; on the
# workstation, after calibrate and export:
#
#   python bench/robustness.py --model DIR/plain-1337/bundle --model DIR/degrade-1337/bundle
#   python bench/accuracy.py --model DIR/plain-1337/bundle --model DIR/degrade-1337/bundle
#
# pairs them face by face. The CPU's 14-epoch pair is in docs/results.md (camera degradations).
#
#   PYTHON=.venv/bin/python DATA=../shared/datasets/fer2013.zip scripts/gpu-degrade.sh
#   PRESET=tiny BUDGET_S=300 EPOCHS=2 ... (a dry run on a CPU)
AUGMENT_ON=host exec "$(dirname "$0")/gpu-paired.sh" degrade --degrade "${DEGRADE:-0.2}"
