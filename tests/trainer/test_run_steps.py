"""``yuzug-train run`` hands each of its options to the step that owns it."""

from __future__ import annotations

import argparse

from trainer.__main__ import build_parser, run_steps

# Every option of `run`, each away from its default so that forwarding it is what makes the
# step's parsed value match.
RUN = [
    *("run", "faces.zip", "--out", "runs/x", "--seed", "7", "--log-level", "DEBUG"),
    *("--preset", "tiny", "--size", "40", "--classes", "angry,sad", "--other-label", "none"),
    *("--other-classes", "neutral", "--val-fraction", "0.2", "--duplicate-rms", "4"),
    *("--exclude-list", "bad.csv", "--fold", "1/5"),
    *("--epochs", "3", "--batch-size", "16", "--learning-rate", "0.01", "--backend", "torch"),
    *("--augment-on", "device", "--time-budget", "60", "--input-threads", "4"),
    *("--mixup", "0.3", "--cutmix", "1.0"),
    *("--select-by", "emotion-recall", "--ema", "0.998", "--teacher", "t1", "--teacher", "t2"),
    *("--distill-weight", "0.9", "--init-from", "runs/start"),
]


def options(parser: argparse.ArgumentParser, command: str) -> set[str]:
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {action.dest for action in subparsers.choices[command]._actions} - {"help"}


def test_run_forwards_every_option_to_prepare_and_fit():
    parser = build_parser()
    run = parser.parse_args(RUN)
    defaults = parser.parse_args(["run", "faces.zip", "--out", "runs/x"])
    changed = {dest for dest in vars(run) if getattr(run, dest) != getattr(defaults, dest)}
    # A new `run` option must join RUN, or this test would not see it forwarded.
    assert options(parser, "run") - {"data", "run"} <= changed

    steps = {step[0]: parser.parse_args(step) for step in run_steps(run)}
    assert list(steps) == ["prepare", "fit", "calibrate", "export", "evaluate"]
    forwarded: set[str] = set()
    for name, step in steps.items():
        for dest in options(parser, name) & options(parser, "run"):
            assert getattr(step, dest) == getattr(run, dest), f"{name} {dest}"
            forwarded.add(dest)
    assert forwarded == options(parser, "run")  # each one reached a step that takes it
