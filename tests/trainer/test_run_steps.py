"""``yuzug-train run`` hands each of its options to the step that owns it."""

from __future__ import annotations

import argparse

import pytest

from trainer.__main__ import _with_augment, build_parser, run_steps
from trainer.presets import get_preset

# Every option of `run`, each away from its default so that forwarding it is what makes the
# step's parsed value match.
RUN = [
    *("run", "faces.zip", "--out", "runs/x", "--seed", "7", "--log-level", "DEBUG"),
    *("--preset", "tiny", "--size", "40", "--classes", "angry,sad", "--other-label", "none"),
    *("--other-classes", "neutral", "--val-fraction", "0.2", "--duplicate-rms", "4"),
    *("--exclude-list", "bad.csv", "--fold", "1/5", "--detect-faces", "--camera-framing", "0.5"),
    *("--epochs", "3", "--batch-size", "16", "--learning-rate", "0.01", "--backend", "torch"),
    *("--augment-on", "device", "--time-budget", "60", "--input-threads", "4"),
    *("--mixup", "0.3", "--cutmix", "1.0", "--optimizer", "sgd", "--weight-decay", "0.001"),
    *("--max-shift", "0.2", "--max-zoom", "0.3", "--threads", "3", "--train-fraction", "0.25"),
    *("--select-by", "emotion-recall", "--ema", "0.998", "--teacher", "t1", "--teacher", "t2"),
    *("--distill-weight", "0.9", "--init-from", "runs/start", "--class-weights", "none"),
    *("--sam", "0.05", "--degrade", "0.25", "--darken", "0.3"),
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


@pytest.mark.parametrize(
    ("command", "flag", "value", "says"),
    [
        ("fit", "--epochs", "0", "must be at least 1"),  # ran, and overwrote the run with nothing
        ("run", "--epochs", "2.5", "takes a whole number"),
        ("fit", "--batch-size", "-3", "must be at least 1"),
        ("run", "--learning-rate", "0", "must be above 0"),
        ("prepare", "--val-fraction", "1.5", "must be above 0 and below 1"),  # left 1 train face
        ("prepare", "--duplicate-rms", "-1", "must be at least 0"),
        ("run", "--camera-framing", "1.5", "must be at least 0 and at most 1"),
        ("prepare", "--train-fraction", "0", "must be above 0 and at most 1"),  # no train faces
        ("fit", "--distill-weight", "2", "must be at least 0 and at most 1"),
        ("run", "--sam", "0", "must be above 0 and at most 1"),  # 0 is no SAM at twice the cost
        ("fit", "--max-shift", "1", "must be at least 0 and below 1"),  # shifts the face out
        ("run", "--max-zoom", "-0.1", "must be at least 0 and below 1"),
        ("fit", "--degrade", "1.5", "must be at least 0 and at most 1"),
        ("fit", "--time-budget", "-60", "must be above 0"),
        ("fit", "--input-threads", "0", "must be at least 1"),
        ("fit", "--checkpoint-every", "0", "must be at least 1"),
        ("prepare", "--size", "4", "must be at least 8"),
        ("shard", "--shard-size", "0", "must be at least 1"),  # wrote one record a shard
        ("audit", "--min-probability", "1.5", "must be above 0 and at most 1"),
        ("audit", "--threads", "0", "must be at least 1"),
        ("fit", "--process-id", "-1", "must be at least 0"),
    ],
)
def test_an_out_of_range_value_is_refused_naming_the_flag(command, flag, value, says, capsys):
    required = {
        "fit": ["--run", "r"],
        "prepare": ["data", "--out", "r"],
        "run": ["d", "--out", "r"],
        "shard": ["--run", "r", "--shards", "s"],
        "audit": ["--run", "r", "--out", "o"],
    }
    with pytest.raises(SystemExit) as refused:
        build_parser().parse_args([command, *required[command], flag, value])
    assert refused.value.code == 2
    assert f"{flag} {says}, got {value}" in capsys.readouterr().err


def test_augment_flags_change_only_the_ranges_given():
    default = get_preset("default")
    assert default.augment is not None
    wider = _with_augment(default, max_shift=0.2, max_zoom=None, degrade_probability=None)
    assert wider.augment is not None
    assert (wider.augment.max_shift, wider.augment.max_zoom) == (0.2, default.augment.max_zoom)
    assert wider.augment.max_rotation_deg == default.augment.max_rotation_deg
    assert wider.augment.degrade_probability == 0.0  # the shipped recipe degrades nothing
    degraded = _with_augment(default, degrade_probability=0.25)
    assert degraded.augment is not None and degraded.augment.degrade_probability == 0.25
    assert wider.augment.darken_probability == 0.0  # nor darkens
    darkened = _with_augment(default, darken_probability=0.3)
    assert darkened.augment is not None and darkened.augment.darken_probability == 0.3
    assert degraded.augment.max_shift == default.augment.max_shift
    assert _with_augment(default, max_shift=None, max_zoom=None) is default
    with pytest.raises(ValueError, match="--max-zoom and --degrade change augmentation, and pre"):
        _with_augment(get_preset("seed"), max_zoom=0.3, degrade_probability=0.2)
