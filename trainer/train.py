"""``yuzug-train fit``: trains a preset on prepared data with Keras 3 (JAX backend by default).

Outputs in the run directory: ``best.keras`` (best validation checkpoint), ``model.keras``
(the same weights without optimizer state, a third of the size), ``history.csv`` (the original
system's per-epoch accuracy and loss for train and validation, plus the learning rate),
``curves.png``, ``confusion_val.png`` and ``fit.json`` (timing and where it ran).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from edge.preprocess import to_float
from trainer.augment import augment_batch
from trainer.data import PreparedData
from trainer.metrics import classification_report
from trainer.plots import plot_confusion, plot_curves
from trainer.presets import Preset

logger = logging.getLogger(__name__)


class TrainBatches(keras.utils.PyDataset):
    """Shuffled, augmented, class-weighted batches of float pixels, one new order per epoch."""

    def __init__(
        self,
        data: PreparedData,
        preset: Preset,
        seed: int,
        class_weights: np.ndarray | None,
    ) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.x = data.x["train"]
        self.y = data.y["train"]
        self.spec = data.spec
        self.num_classes = len(data.classes)
        self.batch_size = preset.batch_size
        self.augment = preset.augment
        self.class_weights = class_weights
        self.seed = seed
        self.epoch = 0
        self._order = self._shuffle()

    def _shuffle(self) -> np.ndarray:
        return np.random.default_rng((self.seed, self.epoch)).permutation(len(self.x))

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
        batch = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        pixels = self.x[batch]
        if self.augment is not None:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            pixels = augment_batch(pixels, self.augment, rng)
        labels = self.y[batch]
        targets = np.eye(self.num_classes, dtype=np.float32)[labels]
        inputs = to_float(pixels, self.spec)
        if self.class_weights is None:
            return inputs, targets
        return inputs, targets, self.class_weights[labels]

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._shuffle()


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """n / (k * count): each class contributes equally to the loss (sklearn's 'balanced')."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float32)
    return (len(labels) / (num_classes * np.maximum(counts, 1))).astype(np.float32)


class EpochTimer(keras.callbacks.Callback):
    """Records wall time per epoch, so images/s can exclude the first epoch's compilation."""

    def __init__(self) -> None:
        super().__init__()
        self.durations: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.durations.append(time.perf_counter() - self._start)


def make_optimizer(preset: Preset, steps_per_epoch: int, epochs: int) -> keras.optimizers.Optimizer:
    learning_rate: Any = preset.learning_rate
    if preset.schedule == "cosine":
        warmup = preset.warmup_epochs * steps_per_epoch
        learning_rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=preset.learning_rate / 10 if warmup else preset.learning_rate,
            decay_steps=max(1, epochs * steps_per_epoch - warmup),
            alpha=0.01,
            warmup_target=preset.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    if preset.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=preset.weight_decay)
    return keras.optimizers.Adam(learning_rate)


def fit(data: PreparedData, preset: Preset, out: Path, seed: int = 1337) -> dict[str, Any]:
    """Trains ``preset`` on ``data``; returns the ``fit.json`` summary."""
    if data.spec.size != preset.input_size:
        raise ValueError(
            f"prepared data is {data.spec.size}x{data.spec.size} but preset {preset.name!r} "
            f"takes {preset.input_size}x{preset.input_size}; run prepare with --preset "
            f"{preset.name} (or --size {data.spec.size})"
        )
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    num_classes = len(data.classes)
    model = preset.build()(preset.input_size, num_classes)
    weights = (
        balanced_class_weights(data.y["train"], num_classes) if preset.class_weighting else None
    )
    batches = TrainBatches(data, preset, seed, weights)
    model.compile(
        optimizer=make_optimizer(preset, len(batches), preset.epochs),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=preset.label_smoothing),
        metrics=["accuracy"],
    )
    x_val = to_float(data.x["val"], data.spec)
    y_val = np.eye(num_classes, dtype=np.float32)[data.y["val"]]
    timer = EpochTimer()
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.CSVLogger(str(out / "history.csv")),
        timer,
    ]
    best_path = out / "best.keras"
    if preset.checkpoint_best:
        callbacks.append(
            keras.callbacks.ModelCheckpoint(
                str(best_path), monitor="val_accuracy", mode="max", save_best_only=True
            )
        )
    if preset.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", mode="max", patience=preset.early_stopping_patience
            )
        )
    logger.info(
        "training %s (%s params) on %d images, %d classes, backend %s, devices %s",
        preset.name,
        f"{model.count_params():,}",
        len(data.x["train"]),
        num_classes,
        keras.backend.backend(),
        _devices(),
    )
    started = time.perf_counter()
    history = model.fit(
        batches,
        validation_data=(x_val, y_val),
        epochs=preset.epochs,
        callbacks=callbacks,
        verbose=2 if not _interactive() else 1,
    )
    fit_seconds = time.perf_counter() - started
    if not preset.checkpoint_best or not best_path.exists():
        model.save(best_path)
    # Reloading without compile drops the optimizer state: the file shrinks about 3x.
    best = keras.saving.load_model(best_path, compile=False)
    best.save(out / "model.keras")

    val_probs = best.predict(x_val, batch_size=256, verbose=0)
    val_report = classification_report(data.y["val"], val_probs, data.classes)
    plot_curves(out / "history.csv", out / "curves.png", f"{preset.name}: training curves")
    plot_confusion(
        np.array(val_report["confusion"]),
        data.classes,
        out / "confusion_val.png",
        f"{preset.name}: validation (best checkpoint)",
    )
    val_acc = history.history.get("val_accuracy", [])
    steady = timer.durations[1:] or timer.durations
    summary = {
        "preset": preset.name,
        "params": int(model.count_params()),
        "epochs_requested": preset.epochs,
        "epochs_run": len(timer.durations),
        "best_epoch": int(np.argmax(val_acc)) + 1 if val_acc else None,
        "best_val_accuracy": round(float(max(val_acc)), 4) if val_acc else None,
        "fit_seconds": round(fit_seconds, 1),
        "images_per_second": round(len(data.x["train"]) / (sum(steady) / len(steady)), 1),
        "train_images": int(len(data.x["train"])),
        "batch_size": preset.batch_size,
        "seed": seed,
        "backend": keras.backend.backend(),
        "devices": _devices(),
        "val": val_report,
        "data_fingerprint": data.fingerprint,
    }
    (out / "fit.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _devices() -> str:
    if keras.backend.backend() == "jax":
        import jax

        return ", ".join(sorted({f"{d.platform}:{d.device_kind}" for d in jax.devices()}))
    return keras.backend.backend()


def _interactive() -> bool:
    import sys

    return sys.stderr.isatty()
