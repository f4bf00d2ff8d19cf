"""Idle rate: while nobody is in view the daemon analyses ``classifier.idle_fps`` frames a
second (a Pi on a shelf all day need not run its detector flat out at an empty room), and goes
back to full rate the moment a face is seen, a fit records or somebody watches the live view."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from edge.app import EdgeApp
from edge.config import parse_config
from edge.samples import Segment, fer_faces, scripted_frames, write_video
from tests.support import wait_for

FPS = 20


def run_app(video: Path, idle_fps: float) -> tuple[EdgeApp, threading.Thread]:
    config = parse_config(
        {
            "camera": {"type": "opencv", "source": str(video), "realtime": True},
            "classifier": {"idle_fps": idle_fps},
            "emotion": {"no_face_seconds": 0.5},
            "mqtt": {"enabled": False},
            "http": {"enabled": True, "port": 0},
        }
    )
    app = EdgeApp(config)
    thread = threading.Thread(target=app.run, daemon=True)
    thread.start()
    wait_for(lambda: app.capture is not None and app.capture.frames >= FPS, 30, what="capture")
    return app, thread


def rates(app: EdgeApp, seconds: float) -> tuple[float, float]:
    """Frames analysed and captured per second over the next ``seconds``."""
    assert app.capture is not None
    analysed, captured, start = app.frames_analysed, app.capture.frames, time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - start
    return (app.frames_analysed - analysed) / elapsed, (app.capture.frames - captured) / elapsed


def stop(app: EdgeApp, thread: threading.Thread) -> None:
    app.stop_event.set()
    thread.join(15)
    assert not thread.is_alive()


@pytest.fixture(scope="module")
def room_then_face(fer_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    faces = fer_faces(fer_zip, ["happy"], 1, seed=4)
    path = tmp_path_factory.mktemp("idle") / "room.avi"
    script = [Segment("none", 7.0), Segment("happy", 4.0)]
    write_video(scripted_frames(faces, script, FPS, seed=4), path, FPS)
    return path


def test_an_empty_room_is_analysed_at_the_idle_rate_and_a_face_ends_it_at_once(room_then_face):
    app, thread = run_app(room_then_face, idle_fps=2.0)
    try:
        assert app.capture is not None and app.http is not None
        analysed, captured = rates(app, 1.5)
        assert analysed <= 3.5 and captured >= 10, (analysed, captured)
        assert app.idle and app.stats()["idle"] is True
        assert app.turn_watch.looks == 0  # an empty room is not asked whether faces look turned
        # Somebody opens the live view: smooth video, so full rate while they watch.
        assert app.http.join_stream()
        try:
            time.sleep(0.3)
            analysed, _ = rates(app, 1.0)
            assert analysed >= 8 and not app.idle, analysed
            assert app.turn_watch.looks == 1  # asked at once (then every 15 s), to no answer
            assert app.turn_watch.suggested is None
        finally:
            app.http.leave_stream()
        time.sleep(0.3)
        assert rates(app, 1.0)[0] <= 3.5
        # The face comes at frame 140: found within the idle period (10 frames at 20 fps; a
        # loaded machine's lag allowed for), and from that frame on every frame is analysed.
        wait_for(lambda: app.face_count > 0, 15, what="the face found")
        assert app.capture.frames <= 7.0 * FPS + 20, app.capture.frames
        analysed, _ = rates(app, 1.5)
        assert analysed >= 8 and not app.idle, analysed
        assert app.stats()["idle"] is False
    finally:
        stop(app, thread)


def test_idle_fps_zero_analyses_an_empty_room_at_full_rate(room_then_face):
    app, thread = run_app(room_then_face, idle_fps=0.0)
    try:
        analysed, _ = rates(app, 1.5)
        assert analysed >= 8 and not app.idle, analysed
    finally:
        stop(app, thread)
