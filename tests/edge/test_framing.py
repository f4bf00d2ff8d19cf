"""Averaging two framings of each detected face (``classifier.average_framings``): the crops,
the average, and that the daemon, ``doctor`` and ``classify`` take the same path, on real
BlazeFace and the shipped model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.bundle import load_bundle
from edge.camera.base import Frame
from edge.classify.emotion import EmotionClassifier
from edge.detect import Face, face_crops
from edge.detect.blazeface import BlazeFaceDetector
from edge.models import default_bundle_path
from edge.preprocess import PreprocessSpec, framing_margins, preprocess_face
from edge.samples import Segment, fer_faces, scripted_frames
from tests.edge.test_sources_and_cli import run_edge
from tests.support import analysing_app


@pytest.fixture(scope="module")
def scene(fer_zip: Path) -> tuple[np.ndarray, list[Face]]:
    """A 640x480 frame with one FER2013 test face, and the face BlazeFace finds in it."""
    faces = fer_faces(fer_zip, ["sad"], 1, seed=2)
    frame = next(scripted_frames(faces, [Segment("sad", 0.1)], 10))[0]
    found = BlazeFaceDetector().detect(frame)[:1]
    assert found, "BlazeFace finds the test face"
    return frame, found


def test_the_second_framing_is_a_tenth_tighter_or_looser():
    spec = PreprocessSpec(size=48, margin=0.1)
    assert framing_margins(spec, False) == (0.1,)
    assert framing_margins(spec, True) == (0.1, 0.0)
    assert framing_margins(dataclasses.replace(spec, margin=0.05), True) == (0.05, 0.15)


def test_each_face_is_cut_once_per_margin_one_face_after_another():
    gray = np.random.default_rng(0).integers(0, 256, (240, 320), dtype=np.uint8)
    spec = PreprocessSpec(size=48, margin=0.1)
    faces = [Face((40, 30, 80, 90), 0.9), Face((180, 60, 70, 70), 0.8, roll=25.0)]
    crops = face_crops(gray, spec, faces, margins=(0.1, 0.0))
    assert crops.shape == (4, 48, 48, 1)
    for index, (face, margin) in enumerate((f, m) for f in faces for m in (0.1, 0.0)):
        framed = dataclasses.replace(spec, margin=margin)
        assert np.array_equal(crops[index], preprocess_face(gray, framed, face.box, face.roll))
    assert not np.array_equal(crops[0], crops[1])


def test_the_probabilities_average_each_face_framings(scene: tuple[np.ndarray, list[Face]]):
    frame, found = scene
    bundle = load_bundle(default_bundle_path())
    averaging = EmotionClassifier.from_bundle(bundle, average_framings=True)
    assert averaging.framings == 2
    crops = averaging.face_crops(frame, found)
    each = averaging.own_probabilities(crops)
    assert not np.allclose(each[0], each[1], atol=1e-3)  # the two framings read differently
    averaged = averaging.own_probabilities(crops, averaging.framings)
    assert averaged.shape == (1, len(bundle.labels))
    assert np.allclose(averaged[0], each.mean(axis=0), atol=1e-6)
    with pytest.raises(ValueError, match="not 2 for each face"):
        averaging.own_probabilities(crops[:1].repeat(3, axis=0), 2)
    plain = EmotionClassifier.from_bundle(bundle)
    assert plain.framings == 1
    assert np.allclose(plain.own_probabilities(plain.face_crops(frame, found)), each[:1])


@pytest.mark.parametrize("average", [True, False])
def test_the_daemon_classifies_as_its_setting_says(
    scene: tuple[np.ndarray, list[Face]], tmp_path: Path, average: bool
):
    frame, found = scene
    app = analysing_app(tmp_path, {"average_framings": average})
    (track,) = app.analyse(Frame(frame)).tracks
    reference = EmotionClassifier.from_bundle(load_bundle(default_bundle_path()))
    each = reference.own_probabilities(face_crops(frame, reference.spec, found, margins=(0.1, 0.0)))
    assert np.allclose(track.scores, each.mean(axis=0) if average else each[0], atol=1e-6)


def test_classify_averages_framings_when_asked(
    scene: tuple[np.ndarray, list[Face]], tmp_path: Path
):
    frame, found = scene
    cv2.imwrite(str(tmp_path / "scene.png"), frame)
    reads = {}
    for flags in ((), ("--average-framings",)):
        result = run_edge("classify", *flags, str(tmp_path / "scene.png"))
        assert result.returncode == 0, result.stderr
        (record,) = [json.loads(line) for line in result.stdout.splitlines()]
        (face,) = record["faces"]
        reads[flags] = np.array(list(face["scores"].values()))
    # The PNG is lossless: the subprocess cuts what the scene fixture found.
    reference = EmotionClassifier.from_bundle(load_bundle(default_bundle_path()))
    each = reference.own_probabilities(face_crops(frame, reference.spec, found, margins=(0.1, 0.0)))
    assert np.allclose(reads[()], each[0], atol=1e-3)
    assert np.allclose(reads[("--average-framings",)], each.mean(axis=0), atol=1e-3)
