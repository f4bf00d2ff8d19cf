#!/usr/bin/env bash
# A dark room in training, on the shipped recipe: issue #3 on one GPU.
#
# In a dark room (12% light) the detector still finds faces and the shipped model reads about
# half of them right (bench/reach.py --light 0.12), and brightening a dark crop before the
# model reads fewer still (docs/results.md). Does `fit --darken P` (trainer/augment.py: a
# training face at 7-50% of its light with the gain's sensor noise, with probability P) learn
# the dark while keeping FER2013's own faces? As scripts/gpu-degrade.sh: the recipe prepared
# once, for each seed a plain and a darkened fit of the same EPOCHS in parallel (host
# augmentation), each scored on its test split here; on the workstation, after calibrate and
# export:
#
#   python bench/robustness.py --model DIR/plain-1337/bundle --model DIR/darken-1337/bundle
#
# pairs them face by face, the "dark room (12% light) + sensor noise" row among the others.
#
#   PYTHON=.venv/bin/python DATA=../shared/datasets/fer2013.zip scripts/gpu-darken.sh
#   PRESET=tiny BUDGET_S=300 EPOCHS=2 ... (a dry run on a CPU)
AUGMENT_ON=host exec "$(dirname "$0")/gpu-paired.sh" darken --darken "${DARKEN:-0.2}"
