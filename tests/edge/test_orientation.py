"""A camera mounted turned: the detector asked under each quarter turn, by doctor once and by
the daemon now and then (edge.orientation), on FER2013 faces filmed through the real BlazeFace."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edge.app import EdgeApp
from edge.camera.base import Frame, rotate_image
from edge.config import BlazeFaceDetectorConfig, parse_config
from edge.detect import make_detector
from edge.orientation import TurnWatch, upright_turn
from edge.samples import Segment, fer_faces, scripted_frames, write_folder

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def upright_frames(fer_zip: Path) -> list[np.ndarray]:
    """Twelve 640x480 frames, each of another FER2013 face, upright."""
    faces = fer_faces(fer_zip, ["angry", "happy", "sad", "neutral"], 3, seed=5)
    script = [Segment(label, 0.1) for label in faces for _ in range(3)]
    return [frame for frame, _ in scripted_frames(faces, script, 10, seed=5)]


@pytest.fixture(scope="module")
def detector():
    return make_detector(BlazeFaceDetectorConfig())


@pytest.mark.parametrize(("mounted", "turn"), [(0, 0), (90, 270), (180, 180), (270, 90)])
def test_each_frame_is_asked_every_way_up(upright_frames, detector, mounted: int, turn: int):
    answers = [upright_turn(Frame(rotate_image(f, mounted)), detector)[0] for f in upright_frames]
    assert answers.count(turn) >= 10, answers  # most single frames: four of five is the rule


def test_four_of_five_frames_with_a_face_make_a_verdict(upright_frames, detector):
    watch = TurnWatch(interval=10.0)
    assert watch.due(0.0)
    empty = Frame(np.full((480, 640, 3), 90, np.uint8))
    assert not watch.observe(empty, detector, 0.0)  # nobody any way up: no vote
    assert not watch.due(5.0) and watch.due(10.0)
    upside_down = [Frame(rotate_image(frame, 180)) for frame in upright_frames]
    changes = [watch.observe(frame, detector, 10.0 * i) for i, frame in enumerate(upside_down)]
    assert watch.suggested == 180
    assert changes.count(True) == 1 and changes.index(True) >= 3  # said once, after 4 votes
    # Mounted right after all: as many upright frames take the suggestion back.
    changes = [watch.observe(Frame(frame), detector, 200.0) for frame in upright_frames[:6]]
    assert watch.suggested is None and changes.count(True) == 1
    assert not TurnWatch(interval=0).due(1e9)  # camera.turn_check_seconds = 0: never asked


@pytest.mark.parametrize("rotation", [0, 180])
def test_the_daemon_says_which_rotation_stands_the_faces_upright(
    upright_frames, tmp_path: Path, caplog: pytest.LogCaptureFixture, rotation: int
):
    """Filmed upside down: with rotation 0 the daemon asks now and then, and its log, /healthz
    and the live page's state name rotation 180; with rotation 180 the faces stand upright and
    nothing is said."""
    folder = tmp_path / "upside-down"
    write_folder(((rotate_image(frame, 180), "") for frame in upright_frames), folder)
    config = parse_config(
        {
            "camera": {
                "type": "folder",
                "path": str(folder),
                "realtime": False,
                "loop": True,
                "rotation": rotation,
                "turn_check_seconds": 0.001,
            },
            "mqtt": {"enabled": False},
        }
    )
    caplog.set_level(logging.INFO)
    app = EdgeApp(config)
    assert app.run(max_frames=len(upright_frames)) == 0
    expected = 180 if rotation == 0 else None
    assert app.health()["camera"]["suggested_rotation"] == expected
    assert app.view_state()["suggested_rotation"] == expected
    said = "is the camera mounted turned? set camera.rotation = 180"
    assert (said in caplog.text) == (rotation == 0), caplog.text[-2000:]


@pytest.mark.mqtt
def test_home_assistant_hears_which_rotation_to_set(upright_frames, mosquitto, tmp_path: Path):
    """The retained state carries it ("Camera rotation to set" in Home Assistant), as soon as
    the daemon's check decides."""
    import json

    import jsonschema

    from tests.support import Subscriber, wait_for

    folder = tmp_path / "upside-down"
    write_folder(((rotate_image(frame, 180), "") for frame in upright_frames), folder)
    schema = json.loads((ROOT / "docs/schemas/state.schema.json").read_text())
    config = parse_config(
        {
            "device_id": "hall",
            "camera": {
                "type": "folder",
                "path": str(folder),
                "realtime": False,
                "loop": True,
                "turn_check_seconds": 0.001,
            },
            "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "discovery": False},
        }
    )
    sub = Subscriber(mosquitto.port, ["yuzug/hall/state"])
    try:
        app = EdgeApp(config)
        assert app.run(max_frames=3 * len(upright_frames)) == 0
        states = wait_for(lambda: [json.loads(p) for p in sub.payloads("/state")], 10, "states")
        for state in states:
            jsonschema.validate(state, schema)
        assert states[0]["suggested_rotation"] is None  # nothing decided before four looks
        turned = [s["suggested_rotation"] for s in states if s["suggested_rotation"] is not None]
        assert turned and set(turned) == {180}
    finally:
        sub.close()
