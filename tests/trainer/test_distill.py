"""Distillation: the student's target mixes label and teacher ensemble, the teachers stay frozen,
mismatched teachers are refused, and a distilled fit saves the student alone."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import keras
import numpy as np
import pytest

from edge.bundle import load_bundle
from tests.support import copy_prepared
from tests.support import yuzug_train as trainer
from trainer.distill import (
    DistillationError,
    DistilledStudent,
    load_teachers,
    warm_start,
)
from trainer.model import build_tiny

SIZE, CLASSES = 16, 3


def constant_model(probabilities: list[float], size: int = SIZE) -> keras.Model:
    """A model whose softmax output is ``probabilities`` whatever the input."""
    inputs = keras.Input((size, size, 1))
    dense = keras.layers.Dense(len(probabilities), activation="softmax")
    outputs = dense(keras.layers.Flatten()(inputs))
    dense.set_weights(
        [np.zeros((size * size, len(probabilities)), "float32"), np.log(probabilities)]
    )
    return keras.Model(inputs, outputs)


def test_target_is_the_label_mixed_with_the_teachers_mean():
    p, q = [0.7, 0.2, 0.1], [0.1, 0.3, 0.6]
    # A constant student too: a random one can start so near uniform that every target
    # gives about the same loss.
    distilled = DistilledStudent(
        constant_model([0.6, 0.3, 0.1]), [constant_model(p), constant_model(q)], weight=0.6
    )
    distilled.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy())
    rng = np.random.default_rng(0)
    x = rng.random((5, SIZE, SIZE, 1)).astype("float32")
    y = np.eye(CLASSES, dtype="float32")[[0, 1, 2, 1, 0]]
    y_pred = keras.ops.convert_to_numpy(distilled(x))
    loss = float(distilled.compute_loss(x, y, y_pred))

    targets = 0.4 * y + 0.6 * (np.array(p) + np.array(q)) / 2
    expected = float(np.mean(-(targets * np.log(y_pred)).sum(axis=1)))
    assert loss == pytest.approx(expected, rel=1e-5)
    plain = float(np.mean(-(y * np.log(y_pred)).sum(axis=1)))
    assert abs(loss - plain) > 1e-3  # the teachers changed the target


def test_training_moves_the_student_and_never_the_teachers():
    teacher = constant_model([0.2, 0.5, 0.3])
    student = build_tiny(SIZE, CLASSES)
    distilled = DistilledStudent(student, [teacher], weight=0.5)
    distilled.compile(optimizer="adam", loss="categorical_crossentropy")
    teacher_before = [w.copy() for w in teacher.get_weights()]
    student_before = [w.copy() for w in student.get_weights()]
    rng = np.random.default_rng(1)
    x = rng.random((32, SIZE, SIZE, 1)).astype("float32")
    y = np.eye(CLASSES, dtype="float32")[rng.integers(0, CLASSES, 32)]
    distilled.fit(x, y, epochs=2, batch_size=8, verbose=0)

    for before, after in zip(teacher_before, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    assert any(
        not np.allclose(before, after)
        for before, after in zip(student_before, student.get_weights(), strict=True)
    )
    np.testing.assert_allclose(distilled.predict(x, verbose=0), student.predict(x, verbose=0))


def test_mismatched_or_missing_teachers_are_refused(tmp_path: Path):
    other_size = tmp_path / "other_size.keras"
    constant_model([0.5, 0.25, 0.25], size=SIZE * 2).save(other_size)
    other_classes = tmp_path / "other_classes.keras"
    constant_model([0.5, 0.5]).save(other_classes)
    for path in (other_size, other_classes):
        with pytest.raises(DistillationError, match=path.name):
            load_teachers([path], CLASSES, SIZE)
    with pytest.raises(DistillationError, match="no model.keras"):
        load_teachers([tmp_path / "empty_run"], CLASSES, SIZE)
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(DistillationError, match="no model.keras"):
        load_teachers([tmp_path / "empty_run"], CLASSES, SIZE)
    with pytest.raises(DistillationError, match="weight"):
        DistilledStudent(build_tiny(SIZE, CLASSES), [constant_model([0.4, 0.3, 0.3])], 0.0)


def saved_run(
    run: Path, model: keras.Model, name: str, fingerprint: str, holdout: str = "h" * 64
) -> Path:
    run.mkdir(exist_ok=True)
    model.save(run / name)
    fit = {
        "preset": "tiny",
        "best_val_accuracy": 0.5,
        "data_fingerprint": fingerprint,
        "holdout_fingerprint": holdout,
    }
    (run / "fit.json").write_text(json.dumps(fit))
    return run


def assert_same_weights(model: keras.Model, other: keras.Model) -> None:
    for ours, theirs in zip(model.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_warm_start_copies_the_uncalibrated_weights_and_flags_other_data(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="trainer.distill")
    keras.utils.set_random_seed(1)
    trained, calibrated = build_tiny(SIZE, CLASSES), build_tiny(SIZE, CLASSES)
    run = saved_run(tmp_path / "run", trained, "model_uncalibrated.keras", "f" * 64)
    calibrated.save(run / "model.keras")  # other weights: a warm start must not take these
    student = build_tiny(SIZE, CLASSES)
    with pytest.raises(AssertionError):
        assert_same_weights(student, trained)  # the test would prove nothing otherwise

    started = warm_start(student, run, "f" * 64, "h" * 64)
    assert_same_weights(student, trained)
    assert started == {
        "path": str(run / "model_uncalibrated.keras"),
        "same_data": True,
        "same_holdout": True,
        "preset": "tiny",
        "best_val_accuracy": 0.5,
    }
    assert "validation images" not in caplog.text

    # Other train faces (a camera-framing re-cut, say) beside the same held-out faces:
    # validation stays unseen, so nothing to warn of.
    recut = warm_start(build_tiny(SIZE, CLASSES), run, "0" * 64, "h" * 64)
    assert (recut["same_data"], recut["same_holdout"]) == (False, True)
    assert "validation stays unseen" in caplog.text
    assert "validation images" not in caplog.text

    other = warm_start(build_tiny(SIZE, CLASSES), run, "0" * 64, "9" * 64)
    assert (other["same_data"], other["same_holdout"]) == (False, False)
    assert "may have trained on validation images" in caplog.text


def test_warm_start_refuses_another_architecture_or_a_missing_model(tmp_path: Path):
    run = saved_run(tmp_path / "run", build_tiny(SIZE, CLASSES + 1), "best.keras", "f" * 64)
    with pytest.raises(DistillationError, match="do not fit"):
        warm_start(build_tiny(SIZE, CLASSES), run, "f" * 64, "h" * 64)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DistillationError, match="no model_uncalibrated.keras"):
        warm_start(build_tiny(SIZE, CLASSES), tmp_path / "empty", "f" * 64, "h" * 64)
    with pytest.raises(DistillationError, match="no such model"):
        warm_start(build_tiny(SIZE, CLASSES), tmp_path / "nowhere.keras", "f" * 64, "h" * 64)


@pytest.mark.slow
def test_distilled_fit_saves_the_student_and_records_its_teachers(
    small_fer_dir: Path, tmp_path: Path
):
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    prepared = trainer("prepare", str(small_fer_dir), "--preset", "tiny", "--run", str(teacher))
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    copy_prepared(teacher, student)
    # The teacher: the tiny preset's model, trained for real; the student distils from it.
    taught = trainer("fit", "--preset", "tiny", "--epochs", "2", "--run", str(teacher))
    assert taught.returncode == 0, taught.stderr[-2000:]

    missing = trainer(
        "fit", "--preset", "tiny", "--run", str(student), "--teacher", str(tmp_path / "nowhere")
    )
    assert missing.returncode == 2 and "no model.keras" in missing.stderr

    args = ("fit", "--preset", "tiny", "--epochs", "1", "--run", str(student))
    result = trainer(
        *args,
        *("--teacher", str(teacher), "--distill-weight", "0.7", "--learning-rate", "0.004"),
        *("--init-from", str(teacher)),  # a warm-started student, on the same prepared data
        *("--class-weights", "none"),  # every face counts the same, whatever its class
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "distilled from 1 teacher(s), starting from" in result.stderr
    assert "validation images" not in result.stderr

    summary = json.loads((student / "fit.json").read_text())
    teacher_summary = json.loads((teacher / "fit.json").read_text())
    assert summary["distill_weight"] == 0.7
    assert summary["learning_rate"] == 0.004 != teacher_summary["learning_rate"]
    # The tiny preset weights classes (sklearn's "balanced"); --class-weights none turned it off.
    counts = np.bincount(np.load(teacher / "data.npz")["y_train"])
    balanced = counts.sum() / (len(counts) * counts)
    assert teacher_summary["class_weights"] == pytest.approx(balanced.tolist(), abs=1e-4)
    assert summary["class_weights"] is None
    assert summary["distilled_from"] == [
        {
            "path": str(teacher),
            "preset": "tiny",
            "params": teacher_summary["params"],
            "best_val_accuracy": teacher_summary["best_val_accuracy"],
        }
    ]
    assert summary["initialised_from"] == {
        "path": str(teacher / "best.keras"),
        "same_data": True,
        "same_holdout": True,
        "preset": "tiny",
        "best_val_accuracy": teacher_summary["best_val_accuracy"],
    }
    saved = keras.saving.load_model(student / "model.keras", compile=False)
    assert saved.count_params() == summary["params"] == teacher_summary["params"]
    assert saved.name == "compact"  # the student itself, not the wrapper with its teacher

    exported = trainer("export", "--run", str(student))
    assert exported.returncode == 0, exported.stderr[-2000:]
    evaluated = trainer("evaluate", "--run", str(student))
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    card = (student / "bundle" / "MODEL_CARD.md").read_text()
    assert "Distilled (weight 0.7) from: `tiny`" in card
    assert "Fine-tuned from a trained `tiny` model" in card
    training = load_bundle(student / "bundle").manifest.training
    assert training["distill_weight"] == 0.7
    assert training["initialised_from"] == {
        "preset": "tiny",
        "best_val_accuracy": teacher_summary["best_val_accuracy"],
        "same_data": True,
        "same_holdout": True,
    }
    assert training["distilled_from"] == [
        {
            "preset": "tiny",
            "params": teacher_summary["params"],
            "best_val_accuracy": teacher_summary["best_val_accuracy"],
        }
    ]
