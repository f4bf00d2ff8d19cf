"""Checkpoint selection by mean recall over the emotions (``--select-by emotion-recall``): the
metric matches numpy, and the kept model is the epoch that metric chose."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras  # noqa: E402

from edge.preprocess import to_float  # noqa: E402
from tests.support import yuzug_train as trainer  # noqa: E402
from tests.trainer.conftest import SHIPPED_CLASSES  # noqa: E402
from trainer.data import PreparedData  # noqa: E402
from trainer.train import ClassMeanRecall  # noqa: E402


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
