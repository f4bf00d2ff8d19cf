"""``prepare --camera-framing``: train faces re-cut as the daemon cuts them from a camera frame."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from edge.camera.base import Frame
from edge.config import BlazeFaceDetectorConfig
from edge.detect import detect_faces, face_crops, make_detector
from edge.preprocess import PreprocessSpec, square_crop_box
from edge.samples import background, centre_inside, fer_faces
from tests.support import yuzug_train
from tests.trainer.test_data import area, overlap
from trainer.camera_framing import (
    SIDE_RANGE,
    camera_frame,
    daemon_cut,
    draw_placement,
    recut_as_camera,
)
from trainer.data import format_summary, prepare

SPEC = PreprocessSpec(size=48, margin=0.1)


def new_detector():
    return make_detector(BlazeFaceDetectorConfig())


@pytest.fixture(scope="module")
def detector():
    return new_detector()


@pytest.fixture(scope="module")
def train_faces(fer_zip: Path) -> np.ndarray:
    faces = fer_faces(fer_zip, ["happy", "sad"], 12, split="train", seed=4)
    return np.stack([face for crops in faces.values() for face in crops])[:, :, :, np.newaxis]


def test_the_cut_is_the_daemons_crop_of_the_pasted_face(train_faces: np.ndarray, detector):
    rng = np.random.default_rng(1)
    scenes = [background(rng)]
    cut_count = 0
    for face in train_faces:
        frame, square = camera_frame(face[:, :, 0], scenes, draw_placement(rng, len(scenes)))
        assert SIDE_RANGE[0] <= square[2] == square[3] <= SIDE_RANGE[1]
        assert 0 <= square[0] <= frame.shape[1] - square[2]
        assert 0 <= square[1] <= frame.shape[0] - square[3]
        cut = daemon_cut(frame, square, SPEC, detector)
        if cut is None:
            continue
        cut_count += 1
        (found,) = [f for f in detect_faces(detector, Frame(frame)) if centre_inside(f.box, square)]
        # What the daemon would classify in that frame, pixel for pixel ...
        assert np.array_equal(cut, face_crops(frame, SPEC, [found])[0])
        # ... and it is the pasted face, not the room.
        crop = square_crop_box(found.box, SPEC.margin)
        assert overlap(crop, square) > 0.6 * min(area(crop), area(square))
    assert cut_count >= 0.8 * len(train_faces)


def test_a_share_of_the_faces_is_recut_the_rest_left_alone(train_faces: np.ndarray):
    blank = np.full((1, 48, 48, 1), 128, np.uint8)  # no face for the detector to find
    pixels = np.concatenate([train_faces, blank])
    recut, report = recut_as_camera(pixels, SPEC, 1.0, seed=3, new_detector=new_detector)
    changed = np.any(recut != pixels, axis=(1, 2, 3))
    assert report["chosen"] == len(pixels)
    assert report["recut"] + report["not_found"] == len(pixels)
    assert int(changed.sum()) == report["recut"] >= 0.8 * len(train_faces)
    assert not changed[-1] and report["not_found"] >= 1  # the blank kept as it was

    again, _ = recut_as_camera(pixels, SPEC, 1.0, seed=3, new_detector=new_detector)
    assert np.array_equal(again, recut)  # the seed fixes scenes, sizes and places
    other, _ = recut_as_camera(pixels, SPEC, 1.0, seed=4, new_detector=new_detector)
    assert not np.array_equal(other, recut)

    half, report = recut_as_camera(pixels, SPEC, 0.5, seed=3, new_detector=new_detector)
    assert 0.2 * len(pixels) <= report["chosen"] <= 0.8 * len(pixels)
    assert int(np.any(half != pixels, axis=(1, 2, 3)).sum()) == report["recut"]
    none, report = recut_as_camera(pixels, SPEC, 0.0, seed=3, new_detector=new_detector)
    assert np.array_equal(none, pixels) and report["chosen"] == 0
    with pytest.raises(ValueError, match=r"within \[0, 1\]"):
        recut_as_camera(pixels, SPEC, 1.5, seed=3, new_detector=new_detector)


def test_threads_cut_the_same_faces_each_with_its_own_detector(train_faces: np.ndarray):
    made: list[object] = []
    users: dict[int, set[int]] = {}  # detector -> threads that called it

    def counted_detector():
        detector = new_detector()
        made.append(detector)
        detect = detector.detect

        def detect_and_note(frame):
            users.setdefault(id(detector), set()).add(threading.get_ident())
            return detect(frame)

        detector.detect = detect_and_note
        return detector

    alone, report = recut_as_camera(train_faces, SPEC, 0.7, seed=5, new_detector=new_detector)
    threaded, threaded_report = recut_as_camera(
        train_faces, SPEC, 0.7, seed=5, new_detector=counted_detector, workers=3
    )
    assert np.array_equal(threaded, alone) and threaded_report == report
    assert report["recut"] >= 0.5 * len(train_faces)
    assert 1 <= len(made) <= 3
    assert all(len(threads) == 1 for threads in users.values())  # never shared
    with pytest.raises(ValueError, match="at least one worker"):
        recut_as_camera(train_faces, SPEC, 0.7, seed=5, new_detector=new_detector, workers=0)


def test_prepare_recuts_train_only(small_fer_dir: Path, tmp_path: Path):
    plain, _ = prepare(small_fer_dir, SPEC, duplicate_rms=0, seed=2)
    framed, report = prepare(small_fer_dir, SPEC, duplicate_rms=0, seed=2, camera_framing=0.5)
    for split in ("val", "test"):  # the figures a run reports stay comparable
        assert np.array_equal(framed.x[split], plain.x[split])
        assert np.array_equal(framed.y[split], plain.y[split])
    assert np.array_equal(framed.y["train"], plain.y["train"])
    assert np.array_equal(framed.keys["train"], plain.keys["train"])
    changed = int(np.any(framed.x["train"] != plain.x["train"], axis=(1, 2, 3)).sum())
    assert report.camera_framing is not None
    assert changed == report.camera_framing["recut"]
    assert 0.3 * len(plain.x["train"]) <= changed <= 0.7 * len(plain.x["train"])
    assert framed.fingerprint != plain.fingerprint
    # A model trained on either never saw the other's validation faces (fit --init-from).
    assert framed.holdout_fingerprint() == plain.holdout_fingerprint()
    plain.x["val"][0, 0, 0, 0] ^= 1
    assert framed.holdout_fingerprint() != plain.holdout_fingerprint()
    assert f"camera framing: {changed} train faces" in format_summary(report)
    assert report.to_dict()["camera_framing"]["fraction"] == 0.5

    done = yuzug_train(
        "prepare", str(small_fer_dir), "--camera-framing", "0.25", "--out", str(tmp_path / "r")
    )
    assert done.returncode == 0, done.stderr
    assert "camera framing: " in done.stdout
