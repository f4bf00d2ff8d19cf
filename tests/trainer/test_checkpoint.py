"""The resumable checkpoint: a kill in the middle of writing one leaves the previous checkpoint
whole and current, a damaged one is reported by name, and saves after a resume count epochs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import keras
import numpy as np
import pytest

from trainer.checkpoint import (
    METADATA_FILE,
    AtomicBackupAndRestore,
    CheckpointError,
    read_metadata,
)
from trainer.data import PreparedData
from trainer.model import build_tiny
from trainer.presets import get_preset
from trainer.train import fit

SIZE, CLASSES = 16, 3


def compiled_model(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = build_tiny(SIZE, CLASSES)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)  # as fit() has by the first save
    return model


def attach(model: keras.Model, backup: Path) -> AtomicBackupAndRestore:
    callback = AtomicBackupAndRestore(backup, save_freq=1)
    callback.set_model(model)
    return callback


def save_after(callback: AtomicBackupAndRestore, completed_epochs: int) -> None:
    callback.on_epoch_begin(completed_epochs)
    callback._save_model()


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs, not even ``except Exception``."""


def test_kill_while_writing_keeps_the_previous_checkpoint(tmp_path: Path):
    backup = tmp_path / "backup"
    trained = compiled_model(seed=1)
    callback = attach(trained, backup)
    save_after(callback, completed_epochs=2)
    saved = [w.copy() for w in trained.get_weights()]

    trained.set_weights([w + 1 for w in saved])  # training moved on
    real_save = trained.save_weights

    def torn_save(filepath: str, overwrite: bool = True) -> None:
        real_save(filepath, overwrite=overwrite)
        # HDF5 writes blocks at scattered offsets: a kill can leave the file its full size with
        # the later blocks never written. h5py then raises RuntimeError, not OSError, which
        # Keras' own BackupAndRestore does not fall back from (the CI failure this fixes).
        size = os.path.getsize(filepath)
        with open(filepath, "r+b") as handle:
            handle.seek(size // 2)
            handle.write(bytes(size - size // 2))
        raise Killed

    trained.save_weights = torn_save
    with pytest.raises(Killed):
        save_after(callback, completed_epochs=3)

    assert read_metadata(backup)["epoch"] == 2
    resumed = compiled_model(seed=2)
    attach(resumed, backup).on_train_begin()
    assert resumed._initial_epoch == 2
    for got, want in zip(resumed.get_weights(), saved, strict=True):
        np.testing.assert_array_equal(got, want)


def test_only_the_current_checkpoint_is_kept(tmp_path: Path):
    backup = tmp_path / "backup"
    callback = attach(compiled_model(seed=1), backup)
    for epoch in range(3):
        save_after(callback, epoch)
    metadata = json.loads((backup / METADATA_FILE).read_text())
    assert [p.name for p in backup.glob("*.weights.h5")] == [metadata["weights"]]


def test_a_damaged_checkpoint_is_named_not_a_traceback(tmp_path: Path):
    backup = tmp_path / "backup"
    save_after(attach(compiled_model(seed=1), backup), completed_epochs=1)
    weights = backup / read_metadata(backup)["weights"]
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=weights.name):
        attach(compiled_model(seed=1), backup).on_train_begin()

    (backup / METADATA_FILE).write_text("{")
    with pytest.raises(CheckpointError, match=METADATA_FILE):
        read_metadata(backup)


def test_a_save_in_the_first_epoch_after_a_resume_counts_the_earlier_epochs(tmp_path: Path):
    backup = tmp_path / "backup"
    save_after(attach(compiled_model(seed=1), backup), completed_epochs=4)
    resumed = attach(compiled_model(seed=1), backup)
    resumed.on_train_begin()
    resumed.on_epoch_begin(resumed.model._initial_epoch)
    resumed.on_train_batch_end(0)  # save_freq=1: a mid-epoch save before any epoch ends
    assert read_metadata(backup)["epoch"] == 4


def test_resume_without_checkpoints_is_refused_before_training(tmp_path: Path):
    # Without --checkpoint-every no checkpoint would be loaded: the run would restart from
    # random weights while claiming to resume. Refused before any data is touched.
    preset = get_preset("tiny")
    only_a_spec = SimpleNamespace(spec=SimpleNamespace(size=preset.input_size))
    with pytest.raises(ValueError, match="--checkpoint-every"):
        fit(
            cast(PreparedData, only_a_spec),
            preset,
            tmp_path,
            train_batches=cast(Any, None),
            resume=True,
        )
    assert not any(tmp_path.iterdir())
