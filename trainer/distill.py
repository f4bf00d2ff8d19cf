"""Knowledge distillation: a small student learns from an ensemble of larger teachers.

The student's target is ``(1 - weight) * label + weight * teacher``, where ``teacher`` is the
mean probability of the teachers on the same augmented batch (Hinton et al., 2015, at
temperature 1: our models end in a softmax, and the ensemble's mean is already softer than a
one-hot label). The teachers run inside the compiled training step, so every augmented view
gets fresh soft targets at no host cost, and the student is trained and saved on its own:
the bundle never contains a teacher.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras

from edge.errors import YuzugError
from trainer.data import read_run_json
from trainer.model import load_trained

logger = logging.getLogger(__name__)


class DistillationError(YuzugError):
    """A teacher that cannot be used for this student."""


def load_teachers(paths: Sequence[Path], num_classes: int, input_size: int) -> list[keras.Model]:
    """Loads each teacher (a run directory or a .keras file) and checks it fits the student.

    Raises:
        DistillationError: a missing file or a teacher with another input or label count.
    """
    teachers = []
    for path in paths:
        file = path / "model.keras" if path.is_dir() else path
        if path.is_dir() and not file.exists():
            file = path / "best.keras"  # a run cut short still has its best checkpoint
        if not file.exists():
            raise DistillationError(f"teacher {path}: no model.keras or best.keras there")
        teacher = load_trained(file)
        inputs, outputs = teacher.input_shape, teacher.output_shape
        if tuple(inputs[1:3]) != (input_size, input_size) or outputs[-1] != num_classes:
            raise DistillationError(
                f"teacher {file} takes {inputs[1:3]} and gives {outputs[-1]} classes; the "
                f"student takes ({input_size}, {input_size}) and gives {num_classes}"
            )
        teacher.trainable = False
        teachers.append(teacher)
    if not teachers:
        raise DistillationError("distillation needs at least one teacher")
    return teachers


def read_fit_summary(path: Path) -> dict[str, Any]:
    """The ``fit.json`` of a run directory, or of the run a .keras file lies in; {} if there
    is none or it is unreadable."""
    return read_run_json(path / "fit.json" if path.is_dir() else path.parent / "fit.json")


def teacher_summaries(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """What fit.json records of each teacher: where it came from and how it scored."""
    summaries = []
    for path in paths:
        info: dict[str, Any] = {"path": str(path)}
        fit = read_fit_summary(path)
        if fit:
            info.update(
                preset=fit.get("preset"),
                params=fit.get("params"),
                best_val_accuracy=fit.get("best_val_accuracy"),
            )
        summaries.append(info)
    return summaries


def warm_start_file(path: Path) -> Path:
    """The model a warm start begins from: a run's model as trained, before temperature
    scaling (calibration divides the head by T, which the student's own calibration redoes)."""
    if not path.is_dir():
        return path
    for name in ("model_uncalibrated.keras", "best.keras", "model.keras"):
        if (path / name).exists():
            return path / name
    raise DistillationError(
        f"--init-from {path}: no model_uncalibrated.keras, best.keras or model.keras there"
    )


def warm_start(
    model: keras.Model, path: Path, fingerprint: str, holdout_fingerprint: str
) -> dict[str, Any]:
    """Copies a trained model's weights into ``model`` (same preset and label count).

    Returns what fit.json records: the file, whether it was trained on this run's data (or
    at least on other train faces beside the same validation and test faces), and the
    source's preset and validation accuracy.
    A model trained on other prepared data may have trained on this run's validation
    images, which then flatter checkpoint selection and calibration: that is logged, unless
    the source's held-out faces are this run's (a re-cut or an exclude list changes train
    only).

    Raises:
        DistillationError: a missing file, or weights of another architecture.
    """
    file = warm_start_file(path)
    if not file.exists():
        raise DistillationError(f"--init-from {file}: no such model")
    source = load_trained(file)
    theirs, ours = source.get_weights(), model.get_weights()
    if [w.shape for w in theirs] != [w.shape for w in ours]:
        raise DistillationError(
            f"--init-from {file}: its {len(theirs)} weight arrays ({source.count_params():,} "
            f"params, {source.output_shape[-1]} outputs) do not fit this model's {len(ours)} "
            f"({model.count_params():,} params, {model.output_shape[-1]} outputs); use the "
            "same preset and classes"
        )
    model.set_weights(theirs)
    source_fit = read_fit_summary(path)
    source_fingerprint = (source_fit.get("data_fingerprint") or "unknown")[:8]
    same_data = source_fit.get("data_fingerprint") == fingerprint
    same_holdout = same_data or source_fit.get("holdout_fingerprint") == holdout_fingerprint
    if not same_data and same_holdout:
        logger.info(
            "--init-from %s was trained on other train faces (fingerprint %s, this run %s) "
            "but the same validation and test faces: validation stays unseen",
            file,
            source_fingerprint,
            fingerprint[:8],
        )
    elif not same_holdout:
        logger.warning(
            "--init-from %s was not trained on this run's prepared data (fingerprint %s, "
            "this run %s): it may have trained on validation images, which would flatter "
            "the kept epoch and the calibration",
            file,
            source_fingerprint,
            fingerprint[:8],
        )
    return {
        "path": str(file),
        "same_data": same_data,
        "same_holdout": same_holdout,
        "preset": source_fit.get("preset"),
        "best_val_accuracy": source_fit.get("best_val_accuracy"),
    }


class DistilledStudent(keras.Model):
    """Trains ``student`` against label/teacher-mixed targets; predicts with the student alone.

    The teachers are tracked as non-trainable state, so under JAX they are part of the jitted
    step like any frozen layer.
    """

    def __init__(
        self, student: keras.Model, teachers: Sequence[keras.Model], weight: float, **kwargs: Any
    ) -> None:
        super().__init__(name="distilled_" + student.name, **kwargs)
        if not 0.0 < weight <= 1.0:
            raise DistillationError(f"distillation weight must be in (0, 1], got {weight}")
        self.student = student
        self.teachers = list(teachers)
        self.weight = weight

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return self.student(inputs, training=training)

    def teacher_probabilities(self, inputs: Any) -> Any:
        total = keras.ops.sum([teacher(inputs, training=False) for teacher in self.teachers], 0)
        return keras.ops.stop_gradient(total / len(self.teachers))

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        if y is not None:
            y = (1.0 - self.weight) * y + self.weight * self.teacher_probabilities(x)
        return super().compute_loss(x, y, y_pred, sample_weight, training)


class StudentCheckpoint(keras.callbacks.ModelCheckpoint):
    """Keras's ModelCheckpoint, saving the ``student`` inside a training wrapper
    (:class:`DistilledStudent`, :mod:`trainer.sharpness`)."""

    def set_model(self, model: keras.Model) -> None:
        super().set_model(getattr(model, "student", model))
