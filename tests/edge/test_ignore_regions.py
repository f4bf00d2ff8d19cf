"""``camera.ignore_regions``: faces on a TV, a poster or a photo on the wall are left out of what
the daemon reads, counted, and the regions drawn in the live view; on real BlazeFace and the
shipped model."""

from __future__ import annotations

import tomllib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera import make_source
from edge.camera.base import Frame
from edge.config import parse_config, validate_schema
from edge.detect import detect_faces, make_detector, outside_regions, region_boxes
from edge.detect.base import Face
from edge.errors import ConfigError
from edge.http import draw_overlay
from edge.samples import background, centre_inside, fer_faces, paste_face
from tests.support import analysing_app

TV = (0.55, 0.1, 0.4, 0.6)  # the right part of the picture: left, top, width, height


@pytest.fixture(scope="module")
def person_and_tv(fer_zip: Path) -> tuple[np.ndarray, tuple, tuple]:
    """A 640x480 room with a face on the left (the person) and one on the right (the TV)."""
    faces = fer_faces(fer_zip, ["happy", "sad"], 1, seed=5)
    frame = background(np.random.default_rng(2))
    person = paste_face(frame, faces["happy"][0], (170, 250), 160)
    tv = paste_face(frame, faces["sad"][0], (480, 200), 140)
    return frame, person, tv


def config_with(regions: object) -> object:
    return parse_config({"camera": {"ignore_regions": regions}, "mqtt": {"enabled": False}})


def test_regions_are_shares_of_the_frame_checked_by_name():
    assert config_with([list(TV)]).camera.ignore_regions == [TV]  # type: ignore[attr-defined]
    for bad, why in (
        ([[0.7, 0.1, 0.4, 0.5]], "reaches past the frame"),
        ([[-0.1, 0.1, 0.4, 0.5]], "left and top are 0 or more"),
        ([[0.1, 0.1, 0.0, 0.5]], "width and height above 0"),
        ([[0.1, 0.1, 0.5]], "camera.ignore_regions.0"),
        ("tv", "camera.ignore_regions"),
    ):
        with pytest.raises(ConfigError, match="camera.ignore_regions") as raised:
            config_with(bad)
        assert why in str(raised.value)


def test_a_face_is_left_out_when_its_centre_lies_in_a_region():
    image = np.zeros((480, 640, 3), np.uint8)
    assert region_boxes([TV], 640, 480) == [(352, 48, 256, 288)]
    inside, across, outside = (
        Face((400, 100, 100, 100), 0.9),  # centre (450, 150)
        Face((300, 100, 100, 100), 0.9),  # centre (350, 150): reaches in, centred outside
        Face((50, 100, 100, 100), 0.9),
    )
    assert outside_regions([inside, across, outside], [TV], image) == [across, outside]
    assert outside_regions([inside], [], image) == [inside]


def test_the_daemon_reads_the_person_not_the_tv(person_and_tv, tmp_path: Path):
    frame, person, tv = person_and_tv
    plain = analysing_app(tmp_path)
    seen = plain.analyse(Frame(frame)).boxes
    assert len(seen) == 2 and {centre_inside(box, tv) for box in seen} == {True, False}
    assert plain.faces_ignored == 0

    app = analysing_app(tmp_path, camera={"ignore_regions": [list(TV)]})
    for _ in range(3):
        result = app.analyse(Frame(frame))
        (box,) = result.boxes
        assert centre_inside(box, person)
    assert app.faces_ignored == 3 and app.stats()["faces_ignored"] == 3

    # The live view shows the region hatched, the picture still visible through it, and
    # leaves the rest of the picture as it was (the person's box and the banner aside).
    drawn = draw_overlay(result).astype(int)
    x, y, w, h = region_boxes([TV], 640, 480)[0]
    shown, seen_there = drawn[y : y + h, x : x + w], frame[y : y + h, x : x + w].astype(int)
    dimmed = np.all(shown == seen_there // 2, axis=2)
    assert 0.8 < dimmed.mean() < 0.97  # the picture at half brightness between the hatching
    assert np.array_equal(drawn[300:470, 300:340], frame[300:470, 300:340])


def test_the_doctor_and_a_recording_leave_the_tv_out(person_and_tv, tmp_path: Path):
    frame, person, tv = person_and_tv
    detector = make_detector(config_with([]).detector)  # type: ignore[attr-defined]
    only_tv = frame.copy()
    only_tv[person[1] : person[1] + person[3], person[0] : person[0] + person[2]] = 128
    (found,) = detect_faces(detector, Frame(only_tv))
    assert centre_inside(found.box, tv)

    from edge.bundle import load_bundle
    from edge.classify.emotion import EmotionClassifier
    from edge.models import default_bundle_path
    from edge.personalize import record_faces

    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(3):
        cv2.imwrite(str(folder / f"{index}.png"), only_tv)
    classifier = EmotionClassifier.from_bundle(load_bundle(default_bundle_path()))
    camera = parse_config(
        {"camera": {"type": "folder", "path": str(folder), "loop": False, "realtime": False}}
    ).camera
    rows = {}
    for regions in ([], [TV]):
        with make_source(camera) as source:
            rows[len(regions)] = record_faces(
                source, detector, classifier, 30.0, ignore_regions=regions
            )
    assert len(rows[0]) == 3 and len(rows[1]) == 0


def test_regions_are_set_from_the_workstation_and_checked_there():
    from deploy.configure import edit_config, parse_set

    text = (Path(__file__).parents[2] / "edge.example.toml").read_text()
    tv = parse_set("camera.ignore_regions=[[0.7, 0.1, 0.3, 0.35]]")
    camera = validate_schema(tomllib.loads(edit_config(text, [tv], "kitchen"))).camera
    assert camera.ignore_regions == [(0.7, 0.1, 0.3, 0.35)]
    with pytest.raises(ConfigError, match="reaches past the frame"):
        edit_config(text, [parse_set("camera.ignore_regions=[[0.8, 0.1, 0.3, 0.35]]")], "kitchen")
