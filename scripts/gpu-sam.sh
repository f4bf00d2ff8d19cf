#!/usr/bin/env bash
# Sharpness-aware minimization on the shipped recipe: issue #3 on one GPU.
#
# Does SAM (`fit --sam RHO`, trainer/sharpness.py) lift the shipped recipe trained to
# convergence? The recipe (angry/happy/sad + none from neutral, default preset) is prepared
# once; for each seed a plain fit and a SAM fit of the same EPOCHS run in parallel on that data,
# so each pair differs in its steps alone. A SAM step costs two passes, so the SAM fits finish
# last; a fit still running when the budget ends keeps its best epoch so far (the log says
# which). Each is scored on its test split here; on the workstation, after calibrate and export:
#
#   python bench/accuracy.py --model DIR/plain-1337/bundle --model DIR/sam-1337/bundle ...
#
# pairs them face by face. The CPU's 14-epoch pairs are in docs/results.md (SAM section).
#
#   PYTHON=.venv/bin/python DATA=../shared/datasets/fer2013.zip scripts/gpu-sam.sh
#   PRESET=tiny BUDGET_S=300 EPOCHS=2 ... (a dry run on a CPU)
exec "$(dirname "$0")/gpu-paired.sh" sam --sam "${RHO:-0.05}"
