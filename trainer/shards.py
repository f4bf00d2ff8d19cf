"""Sharded training data for data sets larger than memory: WebDataset-style tar shards.

Why tar shards: each shard is one sequential read (fast on disks, NFS and object stores), needs
no TensorFlow in the JAX input path (tf.data/TFRecord would) and no extra native dependency
(ArrayRecord/grain would), and any tool can list or extract it. Each shard holds
``<key>.png`` (the face image) and ``<key>.cls`` (the label index); ``index.json`` lists the
shards per split with their counts, the label order and the preprocessing contract.

Reading decodes each PNG and sends it through :func:`edge.preprocess.preprocess_face`, the code
the daemon runs, then the same augmentation as in-memory training. With several hosts each
process reads only its own shards (``shards[process_id::process_count]``) and feeds its share of
the global batch; every host runs the same number of steps.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.imagefiles import decode_image
from edge.preprocess import PreprocessSpec, preprocess_face
from trainer.data import PreparedData
from trainer.presets import Preset
from trainer.train import AugmentedBatches

INDEX = "index.json"


class ShardWriter:
    """Appends (image, label) records to numbered tar shards of one split.

    Each shard's entry in ``shards`` counts its records and its records per label, so readers
    get class weights and step counts from the index without reading the data.
    """

    def __init__(self, out: Path, split: str, shard_size: int, num_classes: int) -> None:
        self.out, self.split, self.shard_size = out, split, shard_size
        self.num_classes = num_classes
        self.shards: list[dict[str, Any]] = []
        self._tar: tarfile.TarFile | None = None
        self._total = 0

    def add(self, image: np.ndarray, label: int) -> None:
        if self._tar is None or self.shards[-1]["count"] >= self.shard_size:
            self._roll()
        ok, png = cv2.imencode(".png", image)
        if not ok:
            raise ValueError("cannot encode image as PNG")
        key = f"{self._total:09d}"
        for suffix, payload in ((".png", png.tobytes()), (".cls", str(label).encode())):
            info = tarfile.TarInfo(key + suffix)
            info.size = len(payload)
            assert self._tar is not None
            self._tar.addfile(info, io.BytesIO(payload))
        self._total += 1
        self.shards[-1]["count"] += 1
        self.shards[-1]["labels"][label] += 1

    def _roll(self) -> None:
        self.close()
        name = f"{self.split}-{len(self.shards):05d}.tar"
        self._tar = tarfile.open(self.out / name, "w")
        self.shards.append({"file": name, "count": 0, "labels": [0] * self.num_classes})

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None


def write_shards(data: PreparedData, out: Path, shard_size: int = 10000) -> dict[str, Any]:
    """Writes every split of prepared data to shards plus ``index.json``; returns the index."""
    out.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {
        "classes": data.classes,
        "spec": data.spec.to_dict(),
        "fingerprint": data.fingerprint,
        "splits": {},
    }
    for split in sorted(data.x):
        writer = ShardWriter(out, split, shard_size, len(data.classes))
        for image, label in zip(data.x[split], data.y[split], strict=True):
            writer.add(image[:, :, 0], int(label))
        writer.close()
        index["splits"][split] = writer.shards
    (out / INDEX).write_text(json.dumps(index, indent=2) + "\n")
    return index


def read_index(shard_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((shard_dir / INDEX).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{shard_dir}: no {INDEX}; write shards with `yuzug-train shard`"
        ) from None


def iter_records(path: Path, spec: PreprocessSpec) -> Iterator[tuple[np.ndarray, int]]:
    """Streams one shard: (preprocessed uint8 crop, label) per record."""
    pending: dict[str, dict[str, bytes]] = {}
    with tarfile.open(path, "r|") as archive:  # "r|": a stream, never seeks
        for member in archive:
            handle = archive.extractfile(member)
            if handle is None:
                continue
            key, _, suffix = member.name.rpartition(".")
            record = pending.setdefault(key, {})
            record[suffix] = handle.read()
            if "png" in record and "cls" in record:
                del pending[key]
                image = decode_image(record["png"])
                if image is None:
                    continue  # a damaged record is skipped, like an unreadable file
                yield preprocess_face(image, spec), int(record["cls"])


def load_split(shard_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Loads a (small) split fully into memory: validation and test."""
    index = read_index(shard_dir)
    spec = PreprocessSpec.from_dict(index["spec"])
    images, labels = [], []
    for shard in index["splits"].get(split, []):
        for image, label in iter_records(shard_dir / shard["file"], spec):
            images.append(image)
            labels.append(label)
    if not images:
        return np.zeros((0, spec.size, spec.size, 1), np.uint8), np.zeros(0, np.int32)
    return np.stack(images), np.array(labels, np.int32)


def prepared_from_shards(shard_dir: Path) -> PreparedData:
    """Validation and test in memory (train is streamed by :class:`ShardBatches`)."""
    index = read_index(shard_dir)
    data = PreparedData(
        classes=index["classes"],
        spec=PreprocessSpec.from_dict(index["spec"]),
        x={},
        y={},
        fingerprint=index["fingerprint"],
    )
    for split in ("val", "test"):
        data.x[split], data.y[split] = load_split(shard_dir, split)
    return data


def host_shards(
    shards: list[dict[str, Any]], process_id: int, process_count: int
) -> list[dict[str, Any]]:
    return shards[process_id::process_count]


class ShardBatches(AugmentedBatches):
    """Streams this host's training shards with a shuffle buffer; batches read in order.

    Args:
        shard_dir: written by :func:`write_shards`.
        preset: batch size (global) and augmentation.
        seed: shard order, shuffle buffer and augmentation are drawn from (seed, epoch).
        class_weights: per-label loss weights, or None.
        process_id, process_count: this host's place in a multi-host job.
        shuffle_buffer: records held for shuffling.
    """

    def __init__(
        self,
        shard_dir: Path,
        preset: Preset,
        seed: int,
        class_weights: np.ndarray | None,
        process_id: int = 0,
        process_count: int = 1,
        shuffle_buffer: int = 4096,
    ) -> None:
        index = read_index(shard_dir)
        spec = PreprocessSpec.from_dict(index["spec"])
        super().__init__(spec, len(index["classes"]), preset, seed, class_weights)
        if preset.batch_size % process_count:
            raise ValueError(
                f"batch {preset.batch_size} does not split over {process_count} processes"
            )
        self.shard_dir = shard_dir
        all_shards = index["splits"]["train"]
        self.shards = host_shards(all_shards, process_id, process_count)
        self.local_batch = preset.batch_size // process_count
        # Every host must run the same number of steps: the smallest host decides.
        per_host = [
            sum(s["count"] for s in host_shards(all_shards, p, process_count))
            for p in range(process_count)
        ]
        self.steps = max(1, min(per_host) // self.local_batch)
        self.shuffle_buffer = shuffle_buffer
        self._stream: Iterator[tuple[np.ndarray, int]] | None = None
        self._next_index = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self._stream = None

    def __len__(self) -> int:
        return self.steps

    def _records(self) -> Iterator[tuple[np.ndarray, int]]:
        rng = np.random.default_rng((self.seed, self.epoch, 7))
        buffer: list[tuple[np.ndarray, int]] = []
        for position in rng.permutation(len(self.shards)):
            for record in iter_records(self.shard_dir / self.shards[position]["file"], self.spec):
                if len(buffer) < self.shuffle_buffer:
                    buffer.append(record)
                    continue
                slot = int(rng.integers(len(buffer)))
                yield buffer[slot]
                buffer[slot] = record
        rng.shuffle(buffer)
        yield from buffer

    def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
        if index == 0 or self._stream is None or index != self._next_index:
            # Keras asks for batches in order; a restart (new epoch, resume) rewinds the stream.
            self._stream = self._records()
            for _ in range(index * self.local_batch):
                next(self._stream)
        records = [next(self._stream) for _ in range(self.local_batch)]
        self._next_index = index + 1
        pixels = np.stack([r[0] for r in records])
        labels = np.array([r[1] for r in records], np.int32)
        return self.make_batch(pixels, labels, index)

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)


def label_counts(shard_dir: Path, split: str = "train") -> np.ndarray:
    """Per-label counts of a split, from the index (for class weights)."""
    index = read_index(shard_dir)
    counts = np.zeros(len(index["classes"]), np.int64)
    for shard in index["splits"].get(split, []):
        counts += np.asarray(shard["labels"], np.int64)
    return counts
