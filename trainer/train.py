"""``yuzug-train fit``: trains a preset on prepared data with Keras 3 (JAX backend by default).

Outputs in the run directory: ``best.keras`` (best validation checkpoint), ``model.keras``
(the same weights without optimizer state, a third of the size), ``history.csv`` (the original
system's per-epoch accuracy and loss for train and validation, plus the learning rate),
``curves.png``, ``confusion_val.png`` and ``fit.json`` (timing and where it ran).
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import keras
import numpy as np

from edge.preprocess import to_float
from trainer.augment import augment_batch, device_augmenter, mix_batch
from trainer.checkpoint import AtomicBackupAndRestore, read_metadata
from trainer.data import PreparedData
from trainer.distill import (
    StudentCheckpoint,
    load_teachers,
    teacher_summaries,
    warm_start,
)
from trainer.metrics import classification_report
from trainer.model import load_trained
from trainer.plots import plot_confusion, plot_curves
from trainer.presets import Preset
from trainer.sharpness import training_model

logger = logging.getLogger(__name__)


class AugmentedBatches(keras.utils.PyDataset):
    """Turns uint8 crops into augmented, class-weighted float batches (shared by every source).

    Full batches only: a partial last batch would not split evenly over several devices, and
    dropping it on one device too keeps 1-device and n-device runs identical.
    """

    def __init__(
        self,
        spec: Any,
        num_classes: int,
        preset: Preset,
        seed: int,
        class_weights: np.ndarray | None,
    ) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.spec = spec
        self.num_classes = num_classes
        self.batch_size = preset.batch_size
        self.augment = preset.augment
        self.class_weights = class_weights
        self.mixup_alpha, self.cutmix_alpha = preset.mixup_alpha, preset.cutmix_alpha
        self.seed = seed
        self.epoch = 0
        self.on_device = self.augment is not None and preset.augment_on == "device"
        if self.on_device:
            if keras.backend.backend() != "jax":
                raise ValueError("augmentation on the device needs the JAX backend")
            assert self.augment is not None
            self._device_augment = device_augmenter(self.augment, spec.scale, spec.offset)

    def make_batch(
        self, pixels: np.ndarray, labels: np.ndarray, index: int, epoch: int | None = None
    ) -> tuple[Any, ...]:
        epoch = self.epoch if epoch is None else epoch
        targets = np.eye(self.num_classes, dtype=np.float32)[labels]
        if self.on_device:
            inputs = self._device_augment(pixels, self.seed, epoch, index)
        else:
            if self.augment is not None:
                rng = np.random.default_rng((self.seed, epoch, index))
                pixels = augment_batch(pixels, self.augment, rng)
            inputs = to_float(pixels, self.spec)
        weights = None if self.class_weights is None else self.class_weights[labels]
        if self.mixup_alpha or self.cutmix_alpha:
            # Its own random stream: the per-face augmentation stays what it is without mixing.
            mixing = np.random.default_rng((self.seed, epoch, index, 1))
            inputs, targets, weights = mix_batch(
                inputs, targets, weights, self.mixup_alpha, self.cutmix_alpha, mixing
            )
        if weights is None:
            return inputs, targets
        return inputs, targets, weights


class TrainBatches(AugmentedBatches):
    """In-memory training data, reshuffled every epoch from (seed, epoch).

    ``threads`` > 1 augments the coming batches ahead in a thread pool (OpenCV's warps release
    the GIL): a GPU step is quicker than one thread's augmentation. Each batch is a pure
    function of (seed, epoch, index), made ahead only for the current epoch, so any thread
    count trains on the same batches; a batch not made ahead is made on the spot. (Keras's own
    ``workers`` enqueuer is not used: it hands out batches prefetched before an epoch boundary.)
    """

    def __init__(
        self,
        data: PreparedData,
        preset: Preset,
        seed: int,
        class_weights: np.ndarray | None,
        process_id: int = 0,
        process_count: int = 1,
        threads: int = 1,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        super().__init__(data.spec, len(data.classes), preset, seed, class_weights)
        if threads > 1 and self.on_device:
            raise ValueError(
                "input threads augment on the host; with augmentation on the device leave them at 1"
            )
        self.x = data.x["train"]
        self.y = data.y["train"]
        # In a multi-host job every process holds the arrays and feeds its slice of each
        # global batch (Keras and JAX assemble the global batch from the processes' slices).
        self.local_batch = preset.batch_size // process_count
        self.offset = process_id * self.local_batch
        self._order = self._shuffle()
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads, "augment") if threads > 1 else None
        self._ahead: dict[tuple[int, int], Future[tuple[np.ndarray, ...]]] = {}
        # Each epoch's predicted batch order, and each index's place in it (on_epoch_begin).
        self._plan: list[int] = []
        self._position: dict[int, int] = {}
        self.made_on_the_spot = 0

    def _shuffle(self) -> np.ndarray:
        return np.random.default_rng((self.seed, self.epoch)).permutation(len(self.x))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self._order = self._shuffle()
        for future in self._ahead.values():
            future.cancel()
        self._ahead.clear()

    def __len__(self) -> int:
        return max(1, len(self.x) // self.batch_size)

    def _batch(self, epoch: int, order: np.ndarray, index: int) -> tuple[np.ndarray, ...]:
        start = index * self.batch_size + self.offset
        batch = order[start : start + self.local_batch]
        return self.make_batch(self.x[batch], self.y[batch], index, epoch)

    def on_epoch_begin(self) -> None:
        # Keras's fit (shuffle=True) reorders each epoch's batch indices with Python's global
        # random just after this call. The same draw on a copy of that state tells the pool
        # which batches come next; a wrong guess costs only a batch made on the spot.
        if self._pool is not None:
            predictor = random.Random()
            predictor.setstate(random.getstate())
            self._plan = list(range(len(self)))
            predictor.shuffle(self._plan)
            self._position = {index: position for position, index in enumerate(self._plan)}
            self._make_ahead(0)

    def _make_ahead(self, first: int) -> None:
        """Queues the planned batches from position ``first`` on, two per thread."""
        assert self._pool is not None
        for ahead in self._plan[first : first + 2 * self.threads]:
            if (self.epoch, ahead) not in self._ahead:
                self._ahead[(self.epoch, ahead)] = self._pool.submit(
                    self._batch, self.epoch, self._order, ahead
                )

    def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
        if self._pool is None:
            return self._batch(self.epoch, self._order, index)
        ready = self._ahead.pop((self.epoch, index), None)
        self._make_ahead(self._position.get(index, len(self._plan)) + 1)
        if ready is None:
            self.made_on_the_spot += 1
            return self._batch(self.epoch, self._order, index)
        return ready.result()

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)


def balanced_class_weights(counts: np.ndarray) -> np.ndarray:
    """n / (k * count) from per-class counts: each class contributes equally to the loss
    (sklearn's 'balanced')."""
    counts = np.asarray(counts, np.float32)
    return (counts.sum() / (len(counts) * np.maximum(counts, 1))).astype(np.float32)


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


class StopOnSignal(keras.callbacks.Callback):
    """SIGINT (Ctrl-C) or SIGTERM ends training after the current batch, and the run is then
    saved as usual (its best epoch so far as model.keras, fit.json, curves), so hours of
    training are not lost to a Ctrl-C or a scheduler's stop. A second signal, a second or more
    later, quits at once; within a second it is taken for the same stop delivered twice (a
    terminal's Ctrl-C reaches ``yuzug-train run`` and its fit step both, and ``run`` passes it
    on; a service manager signals every process of the unit)."""

    REPEAT_WINDOW_S = 1.0

    def __init__(self) -> None:
        super().__init__()
        self.received: str | None = None
        self._first_at = 0.0
        self._previous: dict[int, Any] = {}

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if threading.current_thread() is threading.main_thread():  # signal() works there only
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.received:
            self.model.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._restore()

    def _restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def _handle(self, number: int, frame: Any) -> None:
        name = signal.Signals(number).name
        if self.received is None:
            # Keras is told at the next batch end, its own point for stopping: set from here,
            # at any bytecode, about one stop in four broke on a donated JAX buffer.
            self.received, self._first_at = name, time.monotonic()
            logger.warning(
                "%s: stopping after this batch; the best epoch so far will be saved "
                "(send it again to quit at once, losing this run)",
                name,
            )
        elif time.monotonic() - self._first_at > self.REPEAT_WINDOW_S:
            self._restore()
            signal.raise_signal(number)


class TimeBudget(EpochTimer):
    """Fits a cosine schedule into ``seconds`` of training instead of a fixed epoch count
    (whatever the preset's own schedule; its peak rate and warm-up epochs are kept).

    The learning rate is set per epoch: the warm-up, the peak while two epochs are
    timed (the first one's time is mostly compilation), then a cosine decay to 1% over the
    epochs that fit what is left of the budget. That count is planned afresh every epoch from
    the last few epochs' time, because trainings sharing a GPU speed up and slow down as the
    others start and end (a plan made once, from the second epoch, overran by up to 70% on an
    H200 shared four ways); the decay never moves backwards. Training stops when the next
    epoch would overrun the budget. history.csv records each epoch's rate; with a budget that
    never binds, ``--epochs N`` gives the plain per-epoch cosine over N epochs.
    """

    def __init__(self, preset: Preset, seconds: float) -> None:
        super().__init__()
        if seconds <= 0:
            raise ValueError(f"the time budget must be positive, got {seconds}")
        self.peak = preset.learning_rate
        self.max_epochs = preset.epochs
        self.warmup = preset.warmup_epochs
        self.decay_start = max(self.warmup, 2)
        self.seconds = seconds
        self.planned_epochs: int | None = None
        self._progress = 0.0
        self._train_start = 0.0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._train_start = time.perf_counter()

    def _epochs_left(self) -> int:
        """Whole epochs that fit the budget at the pace of the last three (compilation aside)."""
        recent = self.durations[1:][-3:] or self.durations
        left = self.seconds - (time.perf_counter() - self._train_start)
        return int(left // float(np.mean(recent))) if recent else self.max_epochs

    def learning_rate(self, epoch: int) -> float:
        if epoch < self.warmup:
            return self.peak / 10 + (self.peak - self.peak / 10) * epoch / self.warmup
        return self.peak * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * self._progress)))

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        super().on_epoch_begin(epoch, logs)
        if epoch >= self.decay_start:
            planned = max(epoch + 1, min(self.max_epochs, epoch + self._epochs_left()))
            if planned != self.planned_epochs:
                logger.info("time budget %.0f s: %d epochs planned", self.seconds, planned)
            self.planned_epochs = planned
            span = max(1, planned - self.decay_start)
            self._progress = max(self._progress, min(1.0, (epoch - self.decay_start) / span))
        self.model.optimizer.learning_rate = self.learning_rate(epoch)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        if logs is not None:  # for history.csv: this callback runs before the CSV logger
            logs["learning_rate"] = self.learning_rate(epoch)
        if epoch + 1 < self.max_epochs and self._epochs_left() < 1:
            logger.info("time budget %.0f s spent after %d epochs", self.seconds, epoch + 1)
            self.model.stop_training = True


class ClassMeanRecall(keras.metrics.Metric):
    """Mean recall over some classes: a checkpoint metric that weighs them equally.

    When ``none`` holds the data set's four other expressions it is 42% of the validation faces,
    and plain accuracy rewards an epoch that says ``none`` often at the emotions' expense.
    """

    def __init__(
        self, num_classes: int, indices: Sequence[int], name: str = "class_mean_recall", **kw: Any
    ) -> None:
        super().__init__(name=name, **kw)
        self.num_classes, self.indices = num_classes, list(indices)
        self.hits = self.add_variable(shape=(num_classes,), initializer="zeros", name="hits")
        self.totals = self.add_variable(shape=(num_classes,), initializer="zeros", name="totals")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        ops = keras.ops
        true = ops.one_hot(ops.argmax(y_true, axis=-1), self.num_classes)
        right = true * ops.one_hot(ops.argmax(y_pred, axis=-1), self.num_classes)
        self.totals.assign_add(ops.cast(ops.sum(true, axis=0), self.totals.dtype))
        self.hits.assign_add(ops.cast(ops.sum(right, axis=0), self.hits.dtype))

    def result(self) -> Any:
        ops = keras.ops
        hits, totals = ops.take(self.hits, self.indices), ops.take(self.totals, self.indices)
        present = ops.cast(totals > 0, totals.dtype)  # a class with no faces has no recall
        return ops.sum(present * hits / ops.maximum(totals, 1.0)) / ops.maximum(
            ops.sum(present), 1.0
        )

    def reset_state(self) -> None:
        for variable in (self.hits, self.totals):
            variable.assign(keras.ops.zeros(variable.shape, variable.dtype))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_classes": self.num_classes, "indices": self.indices}


# What fit, calibrate, export and evaluate write into a run directory (prepare's data stays).
TRAINED_OUTPUTS = (
    "best.keras",
    "model.keras",
    "model_uncalibrated.keras",
    "model.weights.h5",
    "model.json",
    "model_float.tflite",
    "model_int8.tflite",
    "history.csv",
    "curves.png",
    "confusion.png",
    "confusion_val.png",
    "fit.json",
    "calibration.json",
    "export.json",
    "metrics.json",
    "bundle",
)


def keep_earlier_model(run: Path) -> Path | None:
    """Moves an earlier fit's model and everything made from it to ``run/previous/<time>/``.

    Fitting again into a run used to overwrite hours of training without a word, and left the
    old bundle and metrics beside the new model, as if they were its own. Returns the folder,
    or None when the run had no trained model.
    """
    trained = [run / name for name in ("model.keras", "best.keras") if (run / name).exists()]
    if not trained:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(trained[0].stat().st_mtime))
    target = run / "previous" / stamp
    copy = 1
    while target.exists():
        copy += 1
        target = run / "previous" / f"{stamp}-{copy}"
    target.mkdir(parents=True)
    earlier = [run / name for name in TRAINED_OUTPUTS if (run / name).exists()]
    for path in earlier:
        path.rename(target / path.name)
    logger.warning(
        "%s already held a trained model: it and what was made from it (%d files) are kept in %s",
        run,
        len(earlier),
        target,
    )
    return target


def make_optimizer(
    preset: Preset, steps_per_epoch: int, epochs: int, per_epoch_schedule: bool = False
) -> keras.optimizers.Optimizer:
    """The preset's optimizer; ``per_epoch_schedule`` leaves the rate to a callback."""
    learning_rate: Any = preset.learning_rate
    if preset.schedule == "cosine" and not per_epoch_schedule:
        warmup = preset.warmup_epochs * steps_per_epoch
        learning_rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=preset.learning_rate / 10 if warmup else preset.learning_rate,
            decay_steps=max(1, epochs * steps_per_epoch - warmup),
            alpha=0.01,
            warmup_target=preset.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    ema = {"use_ema": True, "ema_momentum": preset.ema_momentum} if preset.ema_momentum else {}
    if preset.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=preset.weight_decay, **ema)
    if preset.optimizer == "sgd":
        return keras.optimizers.SGD(
            learning_rate,
            momentum=0.9,
            nesterov=True,
            weight_decay=preset.weight_decay or None,
            **ema,
        )
    return keras.optimizers.Adam(learning_rate, **ema)


def fit(
    data: PreparedData,
    preset: Preset,
    out: Path,
    seed: int = 1337,
    *,
    train_batches: AugmentedBatches,
    devices: int = 1,
    checkpoint_every: int | None = None,
    resume: bool = False,
    teachers: Sequence[Path] = (),
    distill_weight: float = 0.5,
    time_budget: float | None = None,
    select_classes: Sequence[str] | None = None,
    init_from: Path | None = None,
) -> dict[str, Any]:
    """Trains ``preset`` on ``data``; returns the ``fit.json`` summary.

    Args:
        data: prepared data for validation (and the label order and preprocessing).
        preset: architecture and recipe (batch size and learning rate already scaled).
        out: the run directory.
        seed: for weights, shuffling and augmentation.
        train_batches: the training source: :class:`TrainBatches` (in memory) or
            :class:`trainer.shards.ShardBatches` (streamed).
        devices: how many devices batches are split over (validation is cut to a multiple).
        checkpoint_every: save a resumable checkpoint every this many steps.
        resume: continue from the run's last checkpoint instead of starting over.
        teachers: run directories or .keras files of trained models to distil from (their
            mean probability); the student is ``preset``'s model and the only one saved.
        distill_weight: the teachers' share of each target, the label's being the rest.
        time_budget: seconds of training to fit the schedule into (:class:`TimeBudget`);
            ``preset.epochs`` is then the most it may run, and early stopping is off.
        select_classes: keep the epoch with the best mean validation recall over these classes
            (and stop early on it) instead of the best validation accuracy.
        init_from: a run directory or .keras file of the same preset and classes to start
            from instead of random weights (fine-tuning; with teachers, a warm-started
            student).
    """
    if data.spec.size != preset.input_size:
        raise ValueError(
            f"prepared data is {data.spec.size}x{data.spec.size} but preset {preset.name!r} "
            f"takes {preset.input_size}x{preset.input_size}; run prepare with --preset "
            f"{preset.name} (or --size {data.spec.size})"
        )
    if teachers and (checkpoint_every or resume):
        raise ValueError("--checkpoint-every/--resume do not support distillation yet")
    if time_budget is not None and (checkpoint_every or resume):
        raise ValueError("--time-budget does not support --checkpoint-every/--resume")
    if preset.ema_momentum and (checkpoint_every or resume):
        # A backup taken while the averaged weights are swapped in would resume from them.
        raise ValueError("--ema does not support --checkpoint-every/--resume yet")
    if preset.sam_rho and (checkpoint_every or resume):
        raise ValueError("--sam does not support --checkpoint-every/--resume yet")
    if resume and not checkpoint_every:
        raise ValueError("--resume needs --checkpoint-every, as the killed run had")
    unknown = sorted(set(select_classes or ()) - set(data.classes))
    if unknown:
        raise ValueError(f"--select-by: {unknown} not among the classes {data.classes}")
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    num_classes = len(data.classes)
    metrics: list[Any] = ["accuracy"]
    monitor = "val_accuracy"
    if select_classes:
        indices = [data.classes.index(name) for name in select_classes]
        metrics.append(ClassMeanRecall(num_classes, indices))
        monitor = "val_class_mean_recall"
    model = preset.build()(preset.input_size, num_classes)
    holdout_fingerprint = data.holdout_fingerprint()
    started_from = (
        warm_start(model, init_from, data.fingerprint, holdout_fingerprint) if init_from else None
    )
    trained = training_model(
        model,
        load_teachers(teachers, num_classes, preset.input_size) if teachers else [],
        distill_weight,
        preset.sam_rho,
    )
    batches = train_batches
    backup_dir = out / "backup"
    start_epoch = 0
    checkpoint_metadata = read_metadata(backup_dir) if resume else None
    if checkpoint_metadata is not None:
        start_epoch = int(checkpoint_metadata["epoch"])
        logger.info("resuming from the checkpoint of epoch %d", start_epoch + 1)
        # Rows for epochs the checkpoint does not hold (one cut short by a Ctrl-C is logged)
        # are run again, so they go: the history has each epoch once.
        _keep_history_rows(out / "history.csv", start_epoch)
    else:
        if backup_dir.exists():
            shutil.rmtree(backup_dir)  # a fresh run must not pick up an old run's checkpoint
        # After warm start and teachers are loaded: either may be this run's own model.
        keep_earlier_model(out)
    batches.set_epoch(start_epoch)
    trained.compile(
        optimizer=make_optimizer(
            preset, len(batches), preset.epochs, per_epoch_schedule=time_budget is not None
        ),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=preset.label_smoothing),
        metrics=metrics,
    )
    x_val = to_float(data.x["val"], data.spec)
    y_val = np.eye(num_classes, dtype=np.float32)[data.y["val"]]
    # Each validation batch must split evenly over the devices.
    usable = len(x_val) - len(x_val) % devices
    budget = TimeBudget(preset, time_budget) if time_budget is not None else None
    timer = budget or EpochTimer()
    stopper = StopOnSignal()
    callbacks: list[keras.callbacks.Callback] = [
        stopper,
        timer,
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=start_epoch > 0),
    ]
    if checkpoint_every:
        callbacks.append(AtomicBackupAndRestore(backup_dir, save_freq=checkpoint_every))
    if preset.ema_momentum:
        # Swaps the average in for validation and for every callback after it at the end of
        # an epoch (the best-epoch checkpoint saves the average), back in for training.
        callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    best_path = out / "best.keras"
    if preset.checkpoint_best:
        checkpoint = StudentCheckpoint if trained is not model else keras.callbacks.ModelCheckpoint
        best_so_far = checkpoint(str(best_path), monitor=monitor, mode="max", save_best_only=True)
        if start_epoch:
            best_so_far.best = max(_history(out, monitor) or [-np.inf])
        callbacks.append(best_so_far)
    if preset.early_stopping_patience and budget is None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor, mode="max", patience=preset.early_stopping_patience
            )
        )
    logger.info(
        "training %s (%s params%s) on %d images, %d classes, backend %s, devices %s",
        preset.name,
        f"{model.count_params():,}",
        (f", distilled from {len(teachers)} teacher(s)" if teachers else "")
        + (f", starting from {started_from['path']}" if started_from else "")
        + (f", sharpness-aware (rho {preset.sam_rho})" if preset.sam_rho else ""),
        len(batches) * preset.batch_size,
        num_classes,
        keras.backend.backend(),
        _devices(),
    )
    started = time.perf_counter()
    trained.fit(
        batches,
        validation_data=(x_val[:usable], y_val[:usable]),
        epochs=preset.epochs,
        callbacks=callbacks,
        verbose=2 if not _interactive() else 1,
    )
    fit_seconds = time.perf_counter() - started
    # Evaluation below runs on one device: partial batches need no even split.
    if devices > 1:
        keras.distribution.set_distribution(None)
    if not preset.checkpoint_best or not best_path.exists():
        model.save(best_path)
    # Reloading without compile drops the optimizer state: the file shrinks about 3x.
    best = load_trained(best_path)
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
    val_acc = _history(out, "val_accuracy")  # the whole run, resumed parts included
    selected = _history(out, monitor)
    best_index = int(np.argmax(selected)) if selected else None
    durations = timer.durations[:-1] if stopper.received else timer.durations  # a cut epoch
    steady = durations[1:] or durations
    summary = {
        "preset": preset.name,
        "params": int(model.count_params()),
        "epochs_requested": preset.epochs,
        "epochs_run": len(val_acc),
        "resumed_from_epoch": start_epoch + 1 if start_epoch else None,
        "selected_by": monitor,
        "select_classes": list(select_classes) if select_classes else None,
        # The kept epoch, and its validation accuracy (the best unless selected otherwise).
        "best_epoch": best_index + 1 if best_index is not None else None,
        "best_val_accuracy": round(float(val_acc[best_index]), 4)
        if best_index is not None
        else None,
        "fit_seconds": round(fit_seconds, 1),
        "images_per_second": round(
            len(batches) * preset.batch_size / (sum(steady) / len(steady)), 1
        )
        if steady
        else None,
        "train_images": int(len(batches) * preset.batch_size),
        "batch_size": preset.batch_size,
        "input_threads": getattr(batches, "threads", 1),
        "input_batches_made_on_the_spot": getattr(batches, "made_on_the_spot", None),
        "learning_rate": preset.learning_rate,
        "optimizer": preset.optimizer,
        "weight_decay": preset.weight_decay or None,
        "class_weights": [round(float(w), 4) for w in train_batches.class_weights]
        if train_batches.class_weights is not None
        else None,
        "ema_momentum": preset.ema_momentum,
        "sam_rho": preset.sam_rho or None,
        "mixup_alpha": preset.mixup_alpha or None,
        "cutmix_alpha": preset.cutmix_alpha or None,
        "augment_on": preset.augment_on if preset.augment is not None else None,
        "augment": asdict(preset.augment) if preset.augment is not None else None,
        "time_budget_s": time_budget,
        # The signal that stopped training early (SIGINT, SIGTERM); the run is complete
        # otherwise, its kept epoch chosen among those that ran.
        "interrupted_by": stopper.received,
        "planned_epochs": budget.planned_epochs if budget is not None else None,
        "device_count": devices,
        "seed": seed,
        "backend": keras.backend.backend(),
        "devices": _devices(),
        "val": val_report,
        "data_fingerprint": data.fingerprint,
        "holdout_fingerprint": holdout_fingerprint,
        "initialised_from": started_from,
    }
    if teachers:
        summary["distilled_from"] = teacher_summaries(teachers)
        summary["distill_weight"] = distill_weight
    (out / "fit.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _keep_history_rows(path: Path, epochs: int) -> None:
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    if lines:  # a run killed before its first epoch ended has an empty (or no) history
        path.write_text("".join(lines[: epochs + 1]))  # the header and the kept epochs


def _history(out: Path, column: str) -> list[float]:
    import csv

    try:
        with open(out / "history.csv", newline="") as handle:
            return [float(row[column]) for row in csv.DictReader(handle) if row.get(column)]
    except OSError:
        return []


def _devices() -> str:
    if keras.backend.backend() == "jax":
        import jax

        return ", ".join(sorted({f"{d.platform}:{d.device_kind}" for d in jax.devices()}))
    return keras.backend.backend()


def _interactive() -> bool:
    import sys

    return sys.stderr.isatty()
