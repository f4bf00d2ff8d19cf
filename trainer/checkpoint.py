"""A resumable training checkpoint that survives being killed at any instant.

Keras' ``BackupAndRestore`` overwrites ``latest.weights.h5`` in place and falls back on its
``.bkp`` copy only when loading raises ``OSError``. A kill (OOM killer, pre-emption, power loss)
during that write leaves a torn HDF5 file, which h5py reports as ``RuntimeError``, and
``--resume`` then crashes instead of resuming. Here each checkpoint goes to a file of its own,
is flushed to disk, and becomes current only when ``training_metadata.json`` (replaced
atomically) names it: whatever instant the process dies, the metadata points at a whole file.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import keras

from edge.errors import YuzugError

logger = logging.getLogger(__name__)

METADATA_FILE = "training_metadata.json"
LEGACY_WEIGHTS_FILE = "latest.weights.h5"  # what Keras' own callback writes


class CheckpointError(YuzugError):
    """The checkpoint to resume from cannot be read."""


def read_metadata(backup_dir: Path) -> dict[str, Any] | None:
    """The current checkpoint's metadata (``epoch``, ``batch``, ``weights``), or None if none."""
    path = backup_dir / METADATA_FILE
    if not path.exists():
        return None
    try:
        metadata = json.loads(path.read_text())
        int(metadata["epoch"])
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(
            f"{path} is unreadable ({error}); start again without --resume"
        ) from error
    return metadata


def _replace_durably(source: Path, target: Path) -> None:
    """Flushes ``source`` to disk, then renames it over ``target`` in one step."""
    with open(source, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(source, target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # makes the rename itself survive a power cut
    finally:
        os.close(directory)


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` with crash-safe writes (see the module docstring).

    As with Keras' callback, training resumes at the start of the epoch after ``epoch`` with
    the checkpoint's weights and optimizer state.
    """

    def __init__(self, backup_dir: str | Path, save_freq: str | int = "epoch") -> None:
        super().__init__(str(backup_dir), save_freq=save_freq, delete_checkpoint=False)
        self.directory = Path(backup_dir)
        self.saves = 0

    def _save_model(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.saves += 1
        name = f"checkpoint-{self._current_epoch:04d}-{self.saves:06d}.weights.h5"
        # The temporary name must end in .weights.h5 too: save_weights insists on it.
        incoming = self.directory / f"incoming-{name}"
        self.model.save_weights(str(incoming), overwrite=True)
        _replace_durably(incoming, self.directory / name)
        metadata = {"epoch": self._current_epoch, "batch": self._last_batch_seen, "weights": name}
        pending = self.directory / f"{METADATA_FILE}.incoming"
        pending.write_text(json.dumps(metadata))
        _replace_durably(pending, self.directory / METADATA_FILE)
        for stale in self.directory.glob("*.weights.h5"):
            if stale.name != name:
                stale.unlink(missing_ok=True)

    def _load_model(self) -> None:
        metadata = read_metadata(self.directory)
        if metadata is None:
            return
        weights = self.directory / metadata.get("weights", LEGACY_WEIGHTS_FILE)
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        try:
            self.model.load_weights(str(weights))
        except (OSError, RuntimeError, ValueError, KeyError) as error:
            raise CheckpointError(
                f"checkpoint {weights} is unreadable ({error}); start again without --resume"
            ) from error
        self.model._initial_epoch = int(metadata["epoch"])

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._load_model()  # no fallback dance: the current checkpoint is always whole

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        # Keras counts completed epochs only at epoch end, so a mid-epoch save in the first
        # epoch after a resume would record epoch 0 and a second resume would start over.
        self._current_epoch = epoch
