"""Data ingestion (``yuzug-train prepare``): folder, zip or fer2013.csv -> clean, split arrays.

The original system's preprocessing, done properly:

* every image is decoded, made grayscale and resized by :mod:`edge.preprocess`, the code the
  daemon runs;
* exact and near duplicates are found across *all* splits; train copies of validation or test
  images are dropped (no leakage), repeated train images are kept once, and groups whose copies
  disagree on the label are dropped from train as ambiguous;
* unreadable files are skipped, counted and listed in the report, never fatal;
* a validation split is carved from train, stratified and deterministic for a seed;
* optionally, one of k stratified folds of train is held out (``heldout`` split: the faces a
  cross-fitted model scores out of sample for :mod:`trainer.audit`), and train faces named in
  an exclusion list (label errors found by that audit) are dropped from train only.

Every face keeps its key, its path inside the data set (``train/angry/x.jpg``) or its CSV row
(``row 12``), so audits and exclusion lists work on any copy of the same data set.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from tqdm import tqdm

from edge.detect.base import Face, FaceDetector
from edge.imagefiles import ImageEntry, iter_decoded, list_images
from edge.preprocess import (
    PreprocessSpec,
    crop,
    preprocess_face,
    resize,
    square_crop_box,
    to_gray,
)
from trainer.detector_threads import map_with_detectors

logger = logging.getLogger(__name__)

# One image from edge.imagefiles.iter_decoded: its entry, the pixels (None if unreadable), why.
Decoded = tuple[ImageEntry, np.ndarray | None, str | None]

DEFAULT_CLASSES = ("angry", "happy", "sad")
# fer2013.csv's integer labels, in the order of the Kaggle challenge.
FER_CSV_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_CSV_USAGE = {"Training": "train", "PublicTest": "test", "PrivateTest": "private_test"}
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "publictest": "test",
    "test": "test",
    "testing": "test",
    "privatetest": "private_test",
}
SPLITS = ("train", "val", "test", "private_test", "heldout")

# Duplicates are judged on a fixed 48x48 canonical copy whatever the model's input size, so
# the result does not change with the preset. RMS difference below 8/255 is the threshold the
# shared FER2013 copy was cleaned with.
CANONICAL_SIZE = 48
DEFAULT_DUPLICATE_RMS = 8.0


def read_run_json(path: Path) -> dict[str, Any]:
    """A run's JSON record, or {} when a step that writes it has not run (or it is damaged)."""
    try:
        record: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return record


@dataclass
class Sample:
    source: str  # for reports: the file path, or archive.zip/member
    key: str  # stable across copies of the data set: the member path, or "row N" of a CSV
    split: str
    label: str
    pixels: np.ndarray  # (size, size, 1) uint8 model input
    canonical: np.ndarray  # (48, 48) uint8, for duplicate search


class ClassSelection(NamedTuple):
    """Which classes to keep, in label order, and the label for the others (if any).

    ``other_classes`` narrows which of the remaining classes become ``other_label``; the rest
    are left out. ``None`` means all of them.
    """

    classes: list[str] | None
    other_label: str | None
    other_classes: list[str] | None = None
    # Training needs two labels at least; reading one class's faces (the benchmarks do) does not.
    min_classes: int = 1


@dataclass
class PrepareReport:
    source: str
    classes: list[str]
    corrupt: list[dict[str, str]] = field(default_factory=list)
    # With face detection: the images in which the detector found no face (left out).
    no_face: list[str] | None = None
    ignored_classes: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, Any] = field(default_factory=dict)
    fold: dict[str, int] | None = None
    excluded: dict[str, Any] | None = None
    # With camera framing: how many train faces were re-cut as the daemon cuts them.
    camera_framing: dict[str, Any] | None = None
    # With a train fraction: the share of the train faces kept, for a learning curve.
    train_fraction: dict[str, Any] | None = None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    fingerprint: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "classes": self.classes,
            "corrupt_count": len(self.corrupt),
            "corrupt": self.corrupt,
            "no_face_count": None if self.no_face is None else len(self.no_face),
            "no_face": self.no_face,
            "ignored_classes": self.ignored_classes,
            "duplicates": self.duplicates,
            "fold": self.fold,
            "excluded": self.excluded,
            "camera_framing": self.camera_framing,
            "train_fraction": self.train_fraction,
            "counts": self.counts,
            "fingerprint": self.fingerprint,
        }


@dataclass
class PreparedData:
    """Arrays per split (uint8 pixels, int labels, face keys), the label order and the
    preprocessing spec."""

    classes: list[str]
    spec: PreprocessSpec
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    fingerprint: str
    keys: dict[str, np.ndarray] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        arrays: dict[str, Any] = {}
        for split in self.x:
            arrays[f"x_{split}"] = self.x[split]
            arrays[f"y_{split}"] = self.y[split]
            if split in self.keys:
                arrays[f"k_{split}"] = self.keys[split]
        meta = {
            "classes": self.classes,
            "spec": self.spec.to_dict(),
            "fingerprint": self.fingerprint,
        }
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)

    def holdout_fingerprint(self) -> str:
        """sha256 of the validation and test faces and their labels.

        Two preparations whose train faces differ (a camera-framing re-cut, an exclude list)
        share it when their held-out faces are the same, so a model trained on one never saw
        the other's validation faces.
        """
        digest = hashlib.sha256()
        _digest_splits(digest, self.x, self.y, [s for s in ("val", "test") if s in self.x])
        return digest.hexdigest()

    @classmethod
    def load(cls, path: Path) -> PreparedData:
        with np.load(path) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            splits = [key[2:] for key in data.files if key.startswith("x_")]
            return cls(
                classes=meta["classes"],
                spec=PreprocessSpec.from_dict(meta["spec"]),
                x={s: data[f"x_{s}"] for s in splits},
                y={s: data[f"y_{s}"] for s in splits},
                fingerprint=meta["fingerprint"],
                # Data prepared before keys were kept has none; nothing but the audit needs them.
                keys={s: data[f"k_{s}"] for s in splits if f"k_{s}" in data.files},
            )


def _digest_splits(
    digest: Any, x: dict[str, np.ndarray], y: dict[str, np.ndarray], splits: Iterable[str]
) -> None:
    """Feeds each split's name, pixels and labels to ``digest``: the one recipe behind the
    data fingerprint and the held-out faces' fingerprint."""
    for split in splits:
        digest.update(split.encode())
        digest.update(x[split].tobytes())
        digest.update(y[split].tobytes())


def _normalise_split(name: str) -> str | None:
    return SPLIT_ALIASES.get(name.lower().replace("_", "").replace("-", ""))


def _layout(relatives: Sequence[str]) -> tuple[int, bool]:
    """Finds where split and class folders sit in the relative paths.

    Returns ``(depth, has_splits)``: the index of the first meaningful path part (skipping a
    single wrapping folder such as ``fer2013/``) and whether that part names splits.
    """
    if not relatives:
        return 0, False
    depth = 0
    while True:
        parts = [r.split("/") for r in relatives]
        if any(len(p) <= depth + 1 for p in parts):
            return depth, False
        firsts = {p[depth] for p in parts}
        if all(_normalise_split(f) for f in firsts):
            if all(len(p) >= depth + 3 for p in parts):
                return depth, True
            return depth, False
        if len(firsts) == 1:
            depth += 1
            continue
        return depth, False


def class_key(name: str) -> str:
    """A class folder's name as classes are matched: case-insensitive, and composed (NFC), since
    a zip made on macOS spells "üzgün" with a combining diaeresis."""
    return unicodedata.normalize("NFC", name.strip()).lower()


class MissingClassError(ValueError):
    """A class asked for is not in the data set (callers may skip it; other errors they may not)."""


def class_selection(
    found: Iterable[str],
    classes: Sequence[str] | None,
    other_label: str | None,
    other_classes: Sequence[str] | None = None,
    min_classes: int = 1,
) -> tuple[list[str], dict[str, str]]:
    """Maps source class names to output labels; returns (label order, mapping).

    A class given as ``label=folder`` reads that folder under another name, so that a data
    set whose folders say ``anger``, ``mutlu`` or ``6`` (RAF-DB) trains a model whose labels
    are those the daemon's suggestions and Home Assistant know (``angry=anger``).
    """
    found = sorted(set(found))
    if classes:
        wanted, sources = [], []  # each label, and the data set's class it is read from
        for entry in classes:
            label, equals, source = entry.partition("=")
            label, source = label.strip(), class_key(source)
            if equals and not (label and source):
                raise ValueError(f"--classes: {entry!r} is not LABEL=CLASS (angry=anger, say)")
            wanted.append(label)
            sources.append(source if equals else label)
    else:
        wanted = [c for c in DEFAULT_CLASSES if c in found] or found
        absent = [c for c in DEFAULT_CLASSES if c not in found]
        if absent and len(absent) < len(DEFAULT_CLASSES):
            # Silently training a two-emotion model would ship one that never says the third.
            raise ValueError(
                f"the data set has no {', '.join(absent)} class (it has {found}); "
                "to train without it, name the classes with --classes"
            )
        sources = wanted
    others = [class_key(c) for c in other_classes or []]
    for name, given in (("--classes", wanted), ("--classes", sources), ("--other-classes", others)):
        repeated = sorted({c for c in given if given.count(c) > 1})
        if repeated:
            # Two outputs with one name, or one class read twice: the bundle's labels could
            # not tell them apart.
            raise ValueError(f"{name} names {', '.join(repeated)} more than once")
    missing = [c for c in [*sources, *others] if c not in found]
    if missing:
        raise MissingClassError(f"classes {missing} are not in the data set (it has {found})")
    if others and not other_label:
        raise ValueError("other classes were given without an 'other' label to map them to")
    mapping = dict(zip(sources, wanted, strict=True))
    labels = list(wanted)
    if other_label:
        if other_label in wanted:
            raise ValueError(f"the 'other' label {other_label!r} is also a selected class")
        overlap = sorted(set(sources) & set(others))
        if overlap:
            raise ValueError(f"classes {overlap} are both selected and mapped to {other_label!r}")
        for c in others or found:
            mapping.setdefault(c, other_label)
        labels.append(other_label)
    if len(labels) < min_classes:
        # A one-output softmax is always 100% sure and always right: nothing to learn.
        raise ValueError(
            f"one class ({labels[0]}) is nothing to tell apart: name at least two with "
            "--classes, or add --other-label for the rest"
        )
    return labels, mapping


def read_images(
    source: Path,
    spec: PreprocessSpec,
    selection: ClassSelection,
    report: PrepareReport,
    new_detector: Callable[[], FaceDetector] | None = None,
    threads: int = 1,
) -> tuple[list[Sample], list[str]]:
    """Reads a class-folder tree or zip. Splits come from ``train/``/``test/``/``val/`` folders.

    With ``new_detector``, each image's largest face is cropped as the daemon crops it (photos
    rather than face crops), found on ``threads`` threads with a detector each; images without
    a face are listed in ``report.no_face``.
    """
    report_classes, corrupt = report.ignored_classes, report.corrupt
    entries = list_images(source)
    depth, has_splits = _layout([e.relative for e in entries])
    located = []
    for entry in entries:
        parts = entry.relative.split("/")[depth:]
        if has_splits:
            split, class_name = _normalise_split(parts[0]) or "train", parts[1]
        elif len(parts) >= 2:
            split, class_name = "train", parts[0]
        else:
            corrupt.append({"path": entry.path, "reason": "image outside any class folder"})
            continue
        located.append((entry, split, class_key(class_name)))
    if not located:
        raise ValueError(f"{source}: no images in class folders (expected <class>/<image>)")
    labels, mapping = class_selection((c for _, _, c in located), *selection)
    wanted = [(e, s, c) for e, s, c in located if c in mapping]
    for _, _, c in located:
        if c not in mapping:
            report_classes[c] = report_classes.get(c, 0) + 1
    by_entry = {id(e): (s, c) for e, s, c in wanted}
    samples = []
    decoded = iter_decoded([e for e, _, _ in wanted])
    found: Iterator[tuple[Decoded, Face | None]]
    if new_detector is None:
        found = ((item, None) for item in decoded)
    else:
        found = map_with_detectors(_largest_decoded_face, decoded, new_detector, threads)
    for (entry, image, error), face in tqdm(found, total=len(wanted), desc="decode", unit="img"):
        if image is None:
            corrupt.append({"path": entry.path, "reason": error or "unreadable"})
            continue
        if new_detector is not None:
            if face is None:
                assert report.no_face is not None
                report.no_face.append(entry.path)
                continue
        split, class_name = by_entry[id(entry)]
        samples.append(
            _sample(entry.path, entry.relative, split, mapping[class_name], image, spec, face)
        )
    return samples, labels


def largest_face(detector: FaceDetector, image: np.ndarray) -> Face | None:
    faces = detector.detect(image)
    return max(faces, key=lambda face: face.box[2] * face.box[3]) if faces else None


def _largest_decoded_face(detector: FaceDetector, decoded: Decoded) -> Face | None:
    image = decoded[1]
    return None if image is None else largest_face(detector, image)


def read_fer_csv(
    source: Path, spec: PreprocessSpec, selection: ClassSelection, report: PrepareReport
) -> tuple[list[Sample], list[str]]:
    """Reads the original ``fer2013.csv`` (emotion, pixels, Usage)."""
    labels, mapping = class_selection(FER_CSV_LABELS, *selection)
    report_classes, corrupt = report.ignored_classes, report.corrupt
    samples = []
    with open(source, newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"emotion", "pixels"} <= set(reader.fieldnames):
            raise ValueError(f"{source}: expected columns emotion, pixels[, Usage]")
        for row_number, row in enumerate(tqdm(reader, desc="decode", unit="row"), start=2):
            where = f"{source}:{row_number}"
            try:
                class_name = FER_CSV_LABELS[int(row["emotion"])]
                values = np.array(row["pixels"].split(), dtype=np.float32)
                side = int(round(np.sqrt(values.size)))
                if side * side != values.size or side < 8 or values.min() < 0 or values.max() > 255:
                    raise ValueError(f"{values.size} pixel values do not form a square image")
            except (ValueError, IndexError, TypeError, AttributeError) as exc:
                corrupt.append({"path": where, "reason": f"bad row: {exc}"})
                continue
            if class_name not in mapping:
                report_classes[class_name] = report_classes.get(class_name, 0) + 1
                continue
            split = FER_CSV_USAGE.get((row.get("Usage") or "Training").strip(), "train")
            image = values.reshape(side, side).astype(np.uint8)
            samples.append(
                _sample(where, f"row {row_number}", split, mapping[class_name], image, spec)
            )
    return samples, labels


def _sample(
    source: str,
    key: str,
    split: str,
    label: str,
    image: np.ndarray,
    spec: PreprocessSpec,
    face: Face | None = None,
) -> Sample:
    """One image as a sample: the whole of it as the face, or the detected ``face`` in it
    cropped as the daemon crops it (straightened when it leans)."""
    gray = to_gray(image)
    if face is None:
        pixels, region = preprocess_face(gray, spec), gray
    else:
        pixels = preprocess_face(gray, spec, face.box, face.roll)
        region = crop(gray, square_crop_box(face.box, spec.margin))
    return Sample(
        source=source,
        key=key,
        split=split,
        label=label,
        pixels=pixels,
        canonical=resize(region, CANONICAL_SIZE),
    )


def find_duplicate_groups(canonical: np.ndarray, max_rms: float) -> list[list[int]]:
    """Groups images whose RMS pixel difference is below ``max_rms`` (0-255 scale).

    Exact: a 2,304-dimensional RMS test on every candidate pair. Candidates come from a k-d tree
    over a 16-component PCA of 16x16 area-averaged thumbnails. Averaging and orthonormal
    projection never increase distances, so the tree's radius query misses no true pair.
    """
    n = len(canonical)
    if n < 2:
        return []
    from scipy.spatial import cKDTree

    flat = canonical.reshape(n, -1).astype(np.float32)
    exact: dict[bytes, list[int]] = defaultdict(list)
    for index in range(n):
        exact[hashlib.blake2b(canonical[index].tobytes(), digest_size=16).digest()].append(index)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for members in exact.values():
        for other in members[1:]:
            union(members[0], other)

    if max_rms > 0:
        # Only one representative of each exact group needs the near-duplicate search.
        reps = np.array([members[0] for members in exact.values()])
        thumbs = canonical[reps].reshape(len(reps), 16, 3, 16, 3).astype(np.float32).mean((2, 4))
        thumbs = thumbs.reshape(len(reps), -1)
        centred = thumbs - thumbs.mean(0)
        _, _, components = np.linalg.svd(centred[:: max(1, len(reps) // 4000)], full_matrices=False)
        projected = centred @ components[:16].T
        radius = max_rms * 16.0  # L2 over 256 thumbnail pixels <= 16 * RMS
        pairs = cKDTree(projected).query_pairs(radius, output_type="ndarray")
        if len(pairs):
            a, b = reps[pairs[:, 0]], reps[pairs[:, 1]]
            for start in range(0, len(a), 20000):
                sa, sb = a[start : start + 20000], b[start : start + 20000]
                rms = np.sqrt(((flat[sa] - flat[sb]) ** 2).mean(1))
                for i, j in zip(sa[rms < max_rms], sb[rms < max_rms], strict=False):
                    union(int(i), int(j))
    groups: dict[int, list[int]] = defaultdict(list)
    for index in range(n):
        groups[find(index)].append(index)
    return [members for members in groups.values() if len(members) > 1]


def deduplicate(samples: list[Sample], max_rms: float) -> tuple[list[Sample], dict[str, Any]]:
    """Drops train copies that leak evaluation images, repeats and label-conflicting groups."""
    canonical = np.stack([s.canonical for s in samples]) if samples else np.zeros((0, 48, 48))
    groups = find_duplicate_groups(canonical, max_rms)
    drop: set[int] = set()
    stats: Counter[str] = Counter()
    examples: list[dict[str, Any]] = []
    for members in groups:
        splits = {samples[i].split for i in members}
        train = sorted(
            (i for i in members if samples[i].split == "train"), key=lambda i: samples[i].source
        )
        labels = {samples[i].label for i in members}
        if not train:
            # Repeats inside a held-out split are reported but kept: the benchmark stays intact.
            stats["eval_groups_with_repeats"] += 1
            reason = "repeated in a held-out split (kept)"
        elif splits - {"train"}:
            # A train copy of a validation/test image would leak it: drop every train copy.
            drop.update(train)
            stats["train_dropped_leaking_eval"] += len(train)
            reason = "leaks a held-out image"
        elif len(labels) > 1:
            drop.update(train)
            stats["train_dropped_label_conflict"] += len(train)
            reason = "same image, different labels"
        else:
            drop.update(train[1:])
            stats["train_dropped_repeat"] += len(train) - 1
            reason = "repeated in train"
        stats["groups"] += 1
        if len(examples) < 50:
            examples.append(
                {
                    "reason": reason,
                    "members": [
                        f"{samples[i].split}:{samples[i].label}:{samples[i].source}"
                        for i in members
                    ],
                }
            )
    kept = [s for i, s in enumerate(samples) if i not in drop]
    report = {"max_rms": max_rms, **dict(stats), "dropped_total": len(drop), "examples": examples}
    return kept, report


def shuffled_classes(labels: np.ndarray, seed: int) -> Iterator[np.ndarray]:
    """Each class's indices, class by class in label order, each shuffled by the seed: the one
    draw behind every stratified cut (splits, folds, train shares), so a cut depends only on the
    labels and the seed."""
    rng = np.random.default_rng(seed)
    for label in np.unique(labels):
        indices = np.flatnonzero(labels == label)
        yield indices[rng.permutation(len(indices))]


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split of indices into (keep, held_out)."""
    keep, held = [], []
    for indices in shuffled_classes(labels, seed):
        count = int(round(len(indices) * fraction))
        if len(indices) > 1:
            count = min(max(count, 1), len(indices) - 1)
        else:
            count = 0
        held.append(indices[:count])
        keep.append(indices[count:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def nested_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a stratified share of ``labels``, deterministic for a seed.

    Nested: each class is ordered by one permutation of the seed and the first share of it is
    kept, so a smaller fraction's faces are all in a larger one's and the points of a learning
    curve differ only by the faces added. Every class keeps at least one face.
    """
    kept = [
        indices[: max(1, int(round(len(indices) * fraction)))]
        for indices in shuffled_classes(labels, seed)
    ]
    return np.sort(np.concatenate(kept))


def fold_of(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Each index's fold in 0..folds-1: stratified, deterministic for a seed, so the k runs of
    a cross-fit agree on the folds without sharing anything but the seed."""
    assignment = np.empty(len(labels), np.int64)
    for indices in shuffled_classes(labels, seed):
        assignment[indices] = np.arange(len(indices)) % folds
    return assignment


def read_exclusion_list(path: Path) -> set[str]:
    """Face keys, one a line; blank lines and ``#`` comments are skipped (``yuzug-train
    audit`` writes this format)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the exclusion list ({exc.strerror})") from exc
    return {line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")}


def prepare(
    source: str | os.PathLike[str],
    spec: PreprocessSpec,
    classes: Sequence[str] | None = None,
    *,
    other_label: str | None = None,
    other_classes: Sequence[str] | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    duplicate_rms: float = DEFAULT_DUPLICATE_RMS,
    seed: int = 1337,
    fold: tuple[int, int] | None = None,
    exclude: Collection[str] = (),
    min_classes: int = 1,
    detect_faces: bool = False,
    camera_framing: float = 0.0,
    threads: int = 1,
    train_fraction: float = 1.0,
) -> tuple[PreparedData, PrepareReport]:
    """Reads a data set, cleans it and splits it.

    Args:
        source: a folder of class subfolders (optionally under ``train/``/``test/``), the same
            as a .zip, or ``fer2013.csv``.
        spec: the preprocessing the model will use (input size).
        classes: class names to keep, in label order; default angry, happy, sad.
        other_label: if set, every other class of the data set becomes this one label, a
            "none of these" class for the daemon.
        other_classes: which of the other classes feed ``other_label`` (default: all); the
            rest are left out and counted as ignored.
        val_fraction: share of train held out for validation when the source has no val split.
        test_fraction: share held out for test when the source has no test split.
        duplicate_rms: near-duplicate threshold, RMS pixel difference on 0-255; 0 = exact only.
        seed: for the splits.
        fold: ``(index, count)``: fold ``index`` of ``count`` stratified folds of train becomes
            the ``heldout`` split, for out-of-sample scoring by a cross-fitted model.
        exclude: face keys to drop from train (after the splits are made, so validation, test
            and folds stay those of the full data set); keys elsewhere are counted, not dropped.
        min_classes: fewer labels than this is refused (``yuzug-train prepare`` asks for 2).
        detect_faces: the images are photos, not face crops: crop each one's largest face
            with the daemon's detector (BlazeFace) and crop, leaving out images without one.
        camera_framing: share of the train faces replaced by the daemon's crop of the face
            pasted into a camera frame (:mod:`trainer.camera_framing`); other splits keep the
            data set's framing.
        threads: detector threads for ``detect_faces`` and ``camera_framing`` (the result is
            the same for any count).
        train_fraction: share of the train faces kept (stratified and nested, see
            :func:`nested_subset`), after the splits and the exclusion list, so validation and
            test are those of the full data set: the points of a learning curve.

    Raises:
        MissingClassError: a class asked for is not in the data set.
        ValueError: any other unusable selection or data set.
    """
    if not 0 < train_fraction <= 1:
        raise ValueError(f"train_fraction must be in (0, 1], got {train_fraction}")
    if fold is not None and not (fold[1] >= 2 and 0 <= fold[0] < fold[1]):
        raise ValueError(
            f"fold must be index/count with 0 <= index < count and count >= 2, "
            f"got {fold[0]}/{fold[1]}"
        )
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: data set not found")
    report = PrepareReport(source=str(path), classes=[])
    selection = ClassSelection(
        list(classes) if classes else None,
        other_label,
        list(other_classes) if other_classes else None,
        min_classes,
    )
    if path.is_file() and path.suffix.lower() == ".csv":
        if detect_faces:
            raise ValueError(f"{path}: a FER2013 CSV holds face crops; leave out --detect-faces")
        samples, labels = read_fer_csv(path, spec, selection, report)
    else:
        if detect_faces:
            report.no_face = []
        new_detector = _daemon_detector if detect_faces else None
        samples, labels = read_images(path, spec, selection, report, new_detector, threads)
    report.classes = labels
    if not samples:
        raise ValueError(f"{path}: no readable images of classes {labels}")

    samples, report.duplicates = deduplicate(samples, duplicate_rms)
    label_index = {label: i for i, label in enumerate(labels)}
    by_split: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_split[sample.split].append(sample)
    x = {s: np.stack([v.pixels for v in items]) for s, items in by_split.items()}
    y = {
        s: np.array([label_index[v.label] for v in items], np.int32)
        for s, items in by_split.items()
    }
    keys = {s: np.array([v.key for v in items]) for s, items in by_split.items()}
    if "train" not in x:
        raise ValueError(f"{path}: no training images found")

    def move(indices: np.ndarray, keep: np.ndarray, split: str) -> None:
        for arrays in (x, y, keys):
            arrays[split], arrays["train"] = arrays["train"][indices], arrays["train"][keep]

    if "test" not in x:
        keep, held = stratified_split(y["train"], test_fraction, seed + 1)
        move(held, keep, "test")
    if "val" not in x:
        keep, held = stratified_split(y["train"], val_fraction, seed)
        move(held, keep, "val")
    if fold is not None:
        assignment = fold_of(y["train"], fold[1], seed + 2)
        move(
            np.flatnonzero(assignment == fold[0]), np.flatnonzero(assignment != fold[0]), "heldout"
        )
        report.fold = {"index": fold[0], "count": fold[1], "heldout": len(y["heldout"])}
    if exclude:
        listed = set(exclude)
        dropped = np.isin(keys["train"], list(listed))
        elsewhere = sum(int(np.isin(keys[s], list(listed)).sum()) for s in keys if s != "train")
        report.excluded = {
            "listed": len(listed),
            "dropped_from_train": int(dropped.sum()),
            "in_other_splits": elsewhere,
            "not_found": len(listed) - int(dropped.sum()) - elsewhere,
            "by_label": {
                label: int((dropped & (y["train"] == i)).sum()) for i, label in enumerate(labels)
            },
        }
        for arrays in (x, y, keys):
            arrays["train"] = arrays["train"][~dropped]
    if train_fraction < 1:
        available = len(y["train"])
        kept = nested_subset(y["train"], train_fraction, seed + 4)
        for arrays in (x, y, keys):
            arrays["train"] = arrays["train"][kept]
        report.train_fraction = {
            "fraction": train_fraction,
            "kept": len(kept),
            "of": available,
        }
    if camera_framing:
        from trainer.camera_framing import recut_as_camera

        x["train"], report.camera_framing = recut_as_camera(
            x["train"], spec, camera_framing, seed + 3, _daemon_detector, threads
        )

    digest = hashlib.sha256(json.dumps({"classes": labels, "spec": spec.to_dict()}).encode())
    _digest_splits(digest, x, y, sorted(x))
    report.fingerprint = digest.hexdigest()
    report.counts = {
        split: {label: int((y[split] == i).sum()) for i, label in enumerate(labels)}
        for split in SPLITS
        if split in y
    }
    data = PreparedData(
        classes=labels, spec=spec, x=x, y=y, fingerprint=report.fingerprint, keys=keys
    )
    return data, report


def _daemon_detector() -> FaceDetector:
    """The daemon's default face detector (BlazeFace)."""
    from edge.config import BlazeFaceDetectorConfig
    from edge.detect import make_detector

    return make_detector(BlazeFaceDetectorConfig())


def format_summary(report: PrepareReport) -> str:
    """A counts-per-class-and-split table plus what was dropped, for the terminal."""
    splits = list(report.counts)
    width = max([len(c) for c in report.classes] + [5])
    lines = ["class".ljust(width) + "".join(f"{s:>14}" for s in splits)]
    for label in report.classes:
        lines.append(
            label.ljust(width) + "".join(f"{report.counts[s][label]:>14,}" for s in splits)
        )
    lines.append(
        "total".ljust(width) + "".join(f"{sum(report.counts[s].values()):>14,}" for s in splits)
    )
    dup = report.duplicates
    lines.append(
        f"duplicates: {dup.get('groups', 0)} groups; dropped from train: "
        f"{dup.get('train_dropped_leaking_eval', 0)} leaking val/test, "
        f"{dup.get('train_dropped_repeat', 0)} repeats, "
        f"{dup.get('train_dropped_label_conflict', 0)} label conflicts"
    )
    if report.fold:
        lines.append(
            f"cross-fit: fold {report.fold['index']} of {report.fold['count']} held out "
            f"({report.fold['heldout']:,} train faces, not trained on)"
        )
    if report.excluded:
        excluded = report.excluded
        lines.append(
            f"exclusion list: {excluded['dropped_from_train']:,} of {excluded['listed']:,} "
            f"listed faces dropped from train ({excluded['in_other_splits']} in other splits "
            f"kept, {excluded['not_found']} not in this data set)"
        )
    if report.camera_framing:
        framed = report.camera_framing
        lines.append(
            f"camera framing: {framed['recut']:,} train faces cut as the daemon cuts them "
            f"({framed['not_found']:,} more not found in their frames, left as they were)"
        )
    if report.train_fraction:
        share = report.train_fraction
        lines.append(
            f"train fraction: {share['kept']:,} of {share['of']:,} train faces kept "
            f"({share['fraction']:g}; validation and test unchanged)"
        )
    lines.append(f"unreadable files skipped: {len(report.corrupt)}")
    if report.no_face is not None:
        lines.append(f"images without a face found (left out): {len(report.no_face)}")
    if report.ignored_classes:
        ignored = ", ".join(f"{k} ({v:,})" for k, v in sorted(report.ignored_classes.items()))
        lines.append(f"classes not selected: {ignored}")
    lines.append(f"fingerprint: {report.fingerprint[:16]}")
    return "\n".join(lines)
