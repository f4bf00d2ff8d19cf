"""Checkpoint selection by mean recall over the emotions (``--select-by emotion-recall``): the
metric matches numpy, and the kept model is the epoch that metric chose."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from edge.bundle import load_bundle
from edge.preprocess import to_float
from tests.support import copy_prepared
from tests.support import yuzug_train as trainer
from tests.trainer.conftest import SHIPPED_CLASSES
from trainer.data import PreparedData
from trainer.train import ClassMeanRecall


def mean_recall(true: np.ndarray, predicted: np.ndarray, classes: list[int]) -> float:
    return float(np.mean([np.mean(predicted[true == c] == c) for c in classes]))


def test_class_mean_recall_matches_numpy_over_batches_and_resets():
    rng = np.random.default_rng(3)
    true = rng.integers(0, 4, 200)
    # Mostly class 3 ("none"), so accuracy and the emotions' mean recall part ways.
    probs = rng.dirichlet([1, 1, 1, 4], 200).astype("float32")
    metric = ClassMeanRecall(4, [0, 1, 2])
    for part in (slice(0, 120), slice(120, 200)):
        metric.update_state(np.eye(4, dtype="float32")[true[part]], probs[part])
    expected = mean_recall(true, probs.argmax(1), [0, 1, 2])
    assert float(metric.result()) == np.float32(expected)
    assert abs(expected - np.mean(probs.argmax(1) == true)) > 0.05
    metric.reset_state()
    metric.update_state(np.eye(4, dtype="float32")[[0, 1]], np.eye(4, dtype="float32")[[0, 2]])
    assert float(metric.result()) == np.float32(0.5)  # angry right, happy wrong, sad absent


def history_column(run: Path, column: str) -> list[float]:
    with open(run / "history.csv", newline="") as handle:
        return [float(row[column]) for row in csv.DictReader(handle)]


def test_fit_keeps_the_epoch_with_the_best_emotion_recall(small_fer_dir: Path, tmp_path: Path):
    run = tmp_path / "run"
    for step in (
        ("prepare", str(small_fer_dir), *SHIPPED_CLASSES),
        ("fit", "--epochs", "4", "--select-by", "emotion-recall"),
    ):
        result = trainer(*step, "--preset", "tiny", "--run", str(run))
        assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((run / "fit.json").read_text())
    assert summary["selected_by"] == "val_class_mean_recall"
    assert summary["select_classes"] == ["angry", "happy", "sad"]
    recall = history_column(run, "val_class_mean_recall")
    accuracy = history_column(run, "val_accuracy")
    best = int(np.argmax(recall))
    assert summary["best_epoch"] == best + 1
    assert summary["best_val_accuracy"] == round(accuracy[best], 4)
    # The saved model is that epoch's: its validation predictions give the recorded recall.
    data = PreparedData.load(run / "data.npz")
    model = keras.saving.load_model(run / "model.keras", compile=False)
    predicted = model.predict(to_float(data.x["val"], data.spec), verbose=0).argmax(1)
    emotions = [data.classes.index(name) for name in ("angry", "happy", "sad")]
    assert abs(mean_recall(data.y["val"], predicted, emotions) - recall[best]) < 1e-3


def trainable_distance(run: Path, other: Path) -> float:
    """The largest difference between two saved models' trainable weights."""
    ours = keras.saving.load_model(run, compile=False).trainable_weights
    theirs = keras.saving.load_model(other, compile=False).trainable_weights
    return max(
        float(np.max(np.abs(a.numpy() - b.numpy()))) for a, b in zip(ours, theirs, strict=True)
    )


@pytest.mark.slow
def test_ema_validates_selects_and_saves_the_averaged_weights(small_fer_dir: Path, tmp_path: Path):
    start, averaged, raw = tmp_path / "start", tmp_path / "averaged", tmp_path / "raw"
    for step in (("prepare", str(small_fer_dir), *SHIPPED_CLASSES), ("fit", "--epochs", "1")):
        result = trainer(*step, "--preset", "tiny", "--run", str(start))
        assert result.returncode == 0, result.stderr[-2000:]
    fine_tune = ("fit", "--preset", "tiny", "--epochs", "2", "--learning-rate", "0.01")
    for run, ema in ((averaged, ("--ema", "0.99999")), (raw, ())):
        copy_prepared(start, run)
        result = trainer(*fine_tune, *ema, "--init-from", str(start), "--run", str(run))
        assert result.returncode == 0, result.stderr[-2000:]

    summary = json.loads((averaged / "fit.json").read_text())
    assert summary["ema_momentum"] == 0.99999
    assert json.loads((raw / "fit.json").read_text())["ema_momentum"] is None
    # An average this slow stays where Keras starts it, the weights after the first step (at
    # most one Adam step, the learning rate, from the start); the raw weights travel on.
    one_step = 0.01 * 1.02
    averaged_moved = trainable_distance(averaged / "model.keras", start / "best.keras")
    assert (
        averaged_moved
        < one_step
        < trainable_distance(raw / "model.keras", start / "best.keras") / 3
    )
    # What was validated is what was kept: the saved model reproduces the logged accuracy.
    data = PreparedData.load(averaged / "data.npz")
    model = keras.saving.load_model(averaged / "model.keras", compile=False)
    predicted = model.predict(to_float(data.x["val"], data.spec), verbose=0).argmax(1)
    best = summary["best_val_accuracy"]
    assert abs(float(np.mean(predicted == data.y["val"])) - best) < 1e-3

    for step in ("export", "evaluate"):
        result = trainer(step, "--run", str(averaged))
        assert result.returncode == 0, result.stderr[-2000:]
    assert load_bundle(averaged / "bundle").manifest.training["ema_momentum"] == 0.99999
    card = (averaged / "bundle" / "MODEL_CARD.md").read_text()
    assert "an exponential moving average (momentum 0.99999)" in card

    bad = trainer(*fine_tune, "--ema", "1.5", "--run", str(raw))
    assert bad.returncode == 2 and "--ema must be above 0 and below 1, got 1.5" in bad.stderr
