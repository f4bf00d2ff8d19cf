"""Ingestion: folder, zip and fer2013.csv inputs, corrupt files, duplicates and splits."""

from __future__ import annotations

import csv
import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.imagefiles import decode_image
from edge.preprocess import PreprocessSpec, preprocess_face
from tests.conftest import extract_subset
from tests.support import yuzug_train
from trainer.data import (
    MissingClassError,
    PreparedData,
    find_duplicate_groups,
    nested_subset,
    prepare,
    stratified_split,
)

SPEC = PreprocessSpec(size=48)


@pytest.fixture()
def dirty_dir(small_fer_dir: Path, tmp_path: Path) -> Path:
    """The small FER folder plus corrupt files, an exact copy, a near copy and a leak."""
    root = tmp_path / "dirty"
    shutil.copytree(small_fer_dir, root)
    (root / "train" / "angry" / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    (root / "train" / "happy" / "empty.png").write_bytes(b"")
    happy = sorted((root / "train" / "happy").glob("Training_*.jpg"))
    shutil.copy(happy[0], root / "train" / "happy" / "copy_exact.jpg")
    image = cv2.imread(str(happy[1]), cv2.IMREAD_GRAYSCALE).astype(np.int16)
    noisy = np.clip(image + np.random.default_rng(0).integers(-3, 4, image.shape), 0, 255)
    cv2.imwrite(str(root / "train" / "happy" / "copy_near.png"), noisy.astype(np.uint8))
    test_sad = sorted((root / "test" / "sad").glob("*.jpg"))[0]
    # A colour, larger copy of a test image in train: a leak that must be dropped.
    big = cv2.resize(cv2.imread(str(test_sad)), (96, 96), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(root / "train" / "sad" / "leak.png"), big)
    return root


def test_folder_ingestion_skips_corrupt_and_drops_duplicates(dirty_dir: Path):
    data, report = prepare(dirty_dir, SPEC, val_fraction=0.1, seed=3)
    assert report.classes == ["angry", "happy", "sad"]
    reasons = {Path(c["path"]).name for c in report.corrupt}
    assert reasons == {"truncated.jpg", "empty.png"}
    dup = report.duplicates
    assert dup["train_dropped_leaking_eval"] >= 1
    assert dup["train_dropped_repeat"] >= 2
    assert report.ignored_classes == {"neutral": 100}
    # 80 per class before cleaning, 10% of what is left moved to val.
    total_train = sum(report.counts["train"].values()) + sum(report.counts["val"].values())
    assert total_train == 240 + 3 - dup["dropped_total"]  # 3 copies added, duplicates dropped
    assert report.counts["test"] == {"angry": 20, "happy": 20, "sad": 20}
    # No train image is a near copy of a test image any more.
    pool = np.concatenate([data.x["train"], data.x["test"]])[:, :, :, 0]
    groups = find_duplicate_groups(pool, 8.0)
    n_train = len(data.x["train"])
    assert not [g for g in groups if min(g) < n_train <= max(g)]


def test_zip_and_folder_give_identical_data(small_fer_dir: Path, tmp_path: Path):
    archive = tmp_path / "fer.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(small_fer_dir.rglob("*.jpg")):
            # A wrapping folder, as many downloads have, must not matter.
            out.write(path, "fer2013/" + path.relative_to(small_fer_dir).as_posix())
    from_dir, _ = prepare(small_fer_dir, SPEC, seed=1)
    from_zip, _ = prepare(archive, SPEC, seed=1)
    assert from_dir.fingerprint == from_zip.fingerprint
    assert np.array_equal(from_dir.x["val"], from_zip.x["val"])


def test_fer_csv_ingestion(small_fer_dir: Path, tmp_path: Path):
    csv_path = tmp_path / "fer2013.csv"
    order = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        for path in sorted(small_fer_dir.rglob("*.jpg")):
            split, label = path.parts[-3], path.parts[-2]
            pixels = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            usage = "Training" if split == "train" else "PublicTest"
            writer.writerow([order.index(label), " ".join(map(str, pixels.ravel())), usage])
        writer.writerow([3, "1 2 3", "Training"])  # not a square image
        writer.writerow(["x", "1 2 3 4", "Training"])  # bad label
    data, report = prepare(csv_path, SPEC, classes=["happy", "sad"], seed=1)
    assert data.classes == ["happy", "sad"]
    assert len(report.corrupt) == 2
    assert report.counts["test"] == {"happy": 20, "sad": 20}
    assert sum(report.counts["train"].values()) + sum(report.counts["val"].values()) <= 160


def test_other_label_collects_remaining_classes(small_fer_dir: Path):
    data, report = prepare(small_fer_dir, SPEC, other_label="none", seed=1)
    assert data.classes == ["angry", "happy", "sad", "none"]
    assert report.counts["test"]["none"] == 20


def test_other_classes_narrow_what_feeds_the_other_label(fer_zip: Path, tmp_path: Path):
    classes = ("angry", "happy", "sad", "neutral", "surprise")
    extract_subset(fer_zip, tmp_path, {"train": 12, "test": 6}, classes)
    data, report = prepare(
        tmp_path, SPEC, other_label="none", other_classes=["neutral"], duplicate_rms=0, seed=1
    )
    assert data.classes == ["angry", "happy", "sad", "none"]
    assert report.counts["test"]["none"] == 6  # neutral only
    assert report.ignored_classes == {"surprise": 18}
    everything, _ = prepare(tmp_path, SPEC, other_label="none", duplicate_rms=0, seed=1)
    assert everything.y["test"].tolist().count(3) == 12  # neutral and surprise


def test_classes_of_another_name_are_read_under_the_daemons_labels(
    small_fer_dir: Path, tmp_path: Path
):
    """A data set whose folders say anger, mutlu and 5 (RAF-DB numbers its classes) trains a
    model labelled angry/happy/sad, which the suggestions and Home Assistant know."""
    renamed = tmp_path / "renamed"
    # "üzgün" as a zip made on macOS spells it: u and a combining diaeresis.
    names = {"angry": "Anger", "happy": "mutlu", "sad": "u\u0308zgu\u0308n", "neutral": "7"}
    for split in ("train", "test"):
        for label, folder in names.items():
            shutil.copytree(small_fer_dir / split / label, renamed / split / folder)
    data, report = prepare(
        renamed,
        SPEC,
        classes=["angry=anger", "happy = Mutlu", "sad=üzgün"],
        other_label="none",
        other_classes=["7"],
        seed=1,
    )
    assert data.classes == report.classes == ["angry", "happy", "sad", "none"]
    assert report.counts["test"] == {"angry": 20, "happy": 20, "sad": 20, "none": 20}
    same, _ = prepare(small_fer_dir, SPEC, other_label="none", other_classes=["neutral"], seed=1)

    def faces(prepared: PreparedData) -> list[tuple[int, bytes]]:  # in any order (paths differ)
        return sorted(zip(prepared.y["test"].tolist(), map(bytes, prepared.x["test"]), strict=True))

    assert faces(data) == faces(same)  # the same faces under the same labels
    # Part named: the plain names keep working beside the renamed ones.
    part, _ = prepare(renamed, SPEC, classes=["anger", "happy=mutlu"], seed=1)
    assert part.classes == ["anger", "happy"]
    with pytest.raises(ValueError, match=r"'sad=' is not LABEL=CLASS"):
        prepare(renamed, SPEC, classes=["angry=anger", "sad="])
    with pytest.raises(ValueError, match="--classes names mutlu more than once"):
        prepare(renamed, SPEC, classes=["happy=mutlu", "joy=mutlu"])
    with pytest.raises(ValueError, match="--classes names happy more than once"):
        prepare(renamed, SPEC, classes=["happy=mutlu", "happy=üzgün"])
    with pytest.raises(MissingClassError, match=r"\['sadness'\]"):
        prepare(renamed, SPEC, classes=["angry=anger", "sad=sadness"])
    with pytest.raises(ValueError, match="both selected and mapped"):
        prepare(
            renamed,
            SPEC,
            classes=["sad=üzgün", "happy=mutlu"],
            other_label="none",
            other_classes=["Üzgün"],
        )


def test_other_classes_are_checked(small_fer_dir: Path):
    with pytest.raises(ValueError, match="without an 'other' label"):
        prepare(small_fer_dir, SPEC, other_classes=["neutral"])
    with pytest.raises(ValueError, match="both selected and mapped"):
        prepare(small_fer_dir, SPEC, other_label="none", other_classes=["sad"])
    with pytest.raises(ValueError, match="contempt"):
        prepare(small_fer_dir, SPEC, other_label="none", other_classes=["contempt"])


def test_unknown_class_is_a_clear_error(small_fer_dir: Path):
    with pytest.raises(MissingClassError, match="contempt"):
        prepare(small_fer_dir, SPEC, classes=["happy", "contempt"])


def test_a_class_named_twice_or_a_single_class_is_refused(small_fer_dir: Path, tmp_path: Path):
    # Both prepared before: duplicate labels in the bundle, or a one-output model that is
    # always 100% sure.
    with pytest.raises(ValueError, match="--classes names angry more than once"):
        prepare(small_fer_dir, SPEC, classes=["angry", "angry", "happy"])
    with pytest.raises(ValueError, match="--other-classes names fear more than once"):
        prepare(
            small_fer_dir,
            SPEC,
            classes=["happy"],
            other_label="none",
            other_classes=["fear", "fear"],
        )
    with pytest.raises(ValueError, match=r"one class \(angry\) is nothing to tell apart"):
        prepare(small_fer_dir, SPEC, classes=["angry"], min_classes=2)
    # Reading one class's faces stays possible (the benchmarks score each expression alone);
    # `yuzug-train prepare` is what asks for two.
    (alone, _) = prepare(small_fer_dir, SPEC, classes=["angry"])
    assert alone.classes == ["angry"]
    refused = yuzug_train(
        "prepare", str(small_fer_dir), "--run", str(tmp_path / "r"), "--classes", "angry"
    )
    assert (
        refused.returncode == 2 and "one class (angry) is nothing to tell apart" in refused.stderr
    )
    assert not (tmp_path / "r" / "data.npz").exists()
    data, _ = prepare(small_fer_dir, SPEC, classes=["happy"], other_label="none")
    assert data.classes == ["happy", "none"]


def test_a_data_set_missing_one_default_emotion_is_refused(small_fer_dir: Path, tmp_path: Path):
    # It used to prepare the two emotions it found: a model that can never say "sad".
    partial = tmp_path / "no-sad"
    shutil.copytree(small_fer_dir, partial)
    for split in ("train", "test"):
        shutil.rmtree(partial / split / "sad")
    with pytest.raises(ValueError, match=r"no sad class .*--classes"):
        prepare(partial, SPEC)
    data, _ = prepare(partial, SPEC, classes=["angry", "happy"])
    assert data.classes == ["angry", "happy"]


def test_a_broken_zip_is_a_clear_error(tmp_path: Path):
    truncated = tmp_path / "fer2013.zip"
    truncated.write_bytes(b"PK\x03\x04 a download cut short")
    with pytest.raises(ValueError, match="fer2013.zip: not a readable zip archive"):
        prepare(truncated, SPEC)


def test_flat_class_folders_get_deterministic_splits(small_fer_dir: Path):
    flat = small_fer_dir / "train"
    first, _ = prepare(flat, SPEC, seed=5)
    second, _ = prepare(flat, SPEC, seed=5)
    assert set(first.x) == {"train", "val", "test"}
    assert np.array_equal(first.y["val"], second.y["val"])
    assert first.fingerprint == second.fingerprint


def test_stratified_split_keeps_class_shares():
    labels = np.array([0] * 100 + [1] * 50 + [2] * 10)
    keep, held = stratified_split(labels, 0.2, seed=0)
    assert np.bincount(labels[held]).tolist() == [20, 10, 2]
    assert len(set(keep) & set(held)) == 0 and len(keep) + len(held) == 160


def test_nested_subset_keeps_class_shares_and_nests():
    labels = np.repeat([0, 1, 2], [200, 100, 3])
    quarter = nested_subset(labels, 0.25, seed=4)
    half = nested_subset(labels, 0.5, seed=4)
    assert np.bincount(labels[quarter]).tolist() == [50, 25, 1]  # the 3-face class keeps one
    assert np.bincount(labels[half]).tolist() == [100, 50, 2]
    assert set(quarter) < set(half)  # a learning curve's points differ only by the added faces
    assert not np.array_equal(nested_subset(labels, 0.25, seed=5), quarter)


def test_a_train_fraction_shrinks_train_and_keeps_validation_and_test(small_fer_dir: Path):
    full, _ = prepare(small_fer_dir, SPEC, seed=2)
    half, report = prepare(small_fer_dir, SPEC, seed=2, train_fraction=0.5)
    assert report.train_fraction == {
        "fraction": 0.5,
        "kept": len(half.y["train"]),
        "of": len(full.y["train"]),
    }
    assert np.bincount(half.y["train"]).tolist() == [
        round(n / 2) for n in np.bincount(full.y["train"])
    ]
    assert set(half.keys["train"]) < set(full.keys["train"])
    for split in ("val", "test"):
        assert np.array_equal(half.x[split], full.x[split])
        assert np.array_equal(half.keys[split], full.keys[split])
    assert half.holdout_fingerprint() == full.holdout_fingerprint()  # --init-from stays silent
    assert half.fingerprint != full.fingerprint
    with pytest.raises(ValueError, match="train_fraction"):
        prepare(small_fer_dir, SPEC, train_fraction=0)


def test_prepared_pixels_match_edge_preprocessing(small_fer_dir: Path, tmp_path: Path):
    """Train/serve parity: the trainer's arrays are exactly what edge.preprocess makes."""
    data, _ = prepare(
        small_fer_dir, PreprocessSpec(size=40), classes=["angry", "sad"], duplicate_rms=0, seed=1
    )
    tests = [
        p for c in ("angry", "sad") for p in sorted((small_fer_dir / "test" / c).glob("*.jpg"))
    ]
    expected = np.stack(
        [preprocess_face(decode_image(p.read_bytes()), PreprocessSpec(size=40)) for p in tests]
    )
    assert np.array_equal(data.x["test"], expected)
    data.save(tmp_path / "data.npz")
    loaded = PreparedData.load(tmp_path / "data.npz")
    assert loaded.fingerprint == data.fingerprint and loaded.spec == data.spec


def test_photos_are_cropped_to_their_face_as_the_daemon_crops_them(fer_zip: Path, tmp_path: Path):
    """A data set of photos (a face somewhere in a room) trains on the crops the daemon will
    classify: its detector, its crop. Without --detect-faces the whole room would be resized."""
    from edge.camera.base import Frame
    from edge.config import BlazeFaceDetectorConfig
    from edge.detect import detect_faces, face_crops, make_detector
    from edge.preprocess import square_crop_box
    from edge.samples import background, fer_faces, paste_face

    rng = np.random.default_rng(5)
    faces = fer_faces(fer_zip, ["angry", "happy"], 6, split="train", seed=5)
    pasted: dict[str, tuple[int, int, int, int]] = {}
    for label, crops in faces.items():
        folder = tmp_path / "photos" / label
        folder.mkdir(parents=True)
        for i, face in enumerate(crops):
            room = background(rng)
            centre = (int(rng.integers(140, 500)), int(rng.integers(140, 340)))
            pasted[f"{label}{i}.jpg"] = paste_face(room, face, centre, int(rng.integers(160, 260)))
            cv2.imwrite(str(folder / f"{label}{i}.jpg"), room)
    cv2.imwrite(str(tmp_path / "photos" / "happy" / "empty-room.jpg"), background(rng))

    spec = PreprocessSpec(size=48, margin=0.1)
    data, report = prepare(
        tmp_path / "photos", spec, ["angry", "happy"], duplicate_rms=0, detect_faces=True
    )
    assert report.no_face == [str(tmp_path / "photos" / "happy" / "empty-room.jpg")]
    prepared = [
        (str(key), pixels)
        for split in data.x
        for key, pixels in zip(data.keys[split], data.x[split], strict=True)
    ]
    assert sorted(Path(key).name for key, _ in prepared) == sorted(pasted)
    detector = make_detector(BlazeFaceDetectorConfig())
    for key, pixels in prepared:
        name = Path(key).name
        photo = decode_image((tmp_path / "photos" / key).read_bytes())
        largest = detect_faces(detector, Frame(photo))[:1]
        # The daemon's crop of that photo (straightened where the face leans), pixel for pixel ...
        assert np.array_equal(pixels, face_crops(photo, spec, largest)[0]), name
        # ... and it is the face that was pasted there (with the crop's margin), not the room.
        crop, face = square_crop_box(largest[0].box, spec.margin), pasted[name]
        assert min(area(face), area(crop)) * 0.6 < overlap(crop, face), name
    threaded, _ = prepare(
        tmp_path / "photos", spec, ["angry", "happy"], duplicate_rms=0, detect_faces=True, threads=3
    )
    for split in data.x:  # more threads, the same crops in the same order
        assert np.array_equal(threaded.x[split], data.x[split])
        assert np.array_equal(threaded.keys[split], data.keys[split])
    whole, _ = prepare(tmp_path / "photos", spec, ["angry", "happy"], duplicate_rms=0)
    assert sum(len(x) for x in whole.x.values()) == 13  # the empty room too, resized whole

    # The command also draws the crops it found, a row per class, for a look.
    run = tmp_path / "run"
    done = yuzug_train(
        "prepare",
        str(tmp_path / "photos"),
        "--classes",
        "angry,happy",
        "--detect-faces",
        "--out",
        str(run),
    )
    assert done.returncode == 0, done.stderr
    assert "images without a face found (left out): 1" in done.stdout
    sheet = cv2.imread(str(run / "faces.png"), cv2.IMREAD_GRAYSCALE)
    assert sheet.shape == (2 * 96, 10 * 96)  # angry, then happy; 10 places each
    trained = [int((data.y["train"] == i).sum()) for i in range(2)]
    for row, count in enumerate(trained):
        tiles = [sheet[row * 96 : (row + 1) * 96, c * 96 : (c + 1) * 96] for c in range(10)]
        assert all(tile.std() > 10 for tile in tiles[:count])  # faces
        assert all(tile.max() == 0 for tile in tiles[count:])  # the row's blanks
    (tmp_path / "fer.csv").write_text("emotion,pixels\n")
    with pytest.raises(ValueError, match="leave out --detect-faces"):
        prepare(tmp_path / "fer.csv", spec, detect_faces=True)


def area(box: tuple[int, int, int, int]) -> int:
    return box[2] * box[3]


def overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0, width) * max(0, height)
