"""The live view's MJPEG stream, served by the real HTTP service to real sockets: each frame is
encoded once for every viewer, viewers past ``http.max_viewers`` are turned away, and a viewer
that stops reading loses its place instead of holding it for good."""

from __future__ import annotations

import base64
import http.client
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

import edge.http
from edge.app import EdgeApp, FrameResult
from edge.camera.base import Frame
from edge.config import parse_config
from edge.http import HTTPService, prometheus_metrics
from tests.support import wait_for


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> Iterator[HTTPService]:
    monkeypatch.setattr(edge.http, "STREAM_WRITE_TIMEOUT_S", 1.0)
    config = parse_config(
        {
            "mqtt": {"enabled": False},
            "http": {"enabled": True, "port": 0, "max_viewers": 2, "stream_fps": 30},
        }
    )
    app = EdgeApp(config)
    rng = np.random.default_rng(0)

    def analyse() -> None:  # a new analysed frame every 20 ms; noise makes large JPEGs
        index = 0
        while not app.stop_event.is_set():
            image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
            app.last_result = FrameResult(Frame(image, index=index), [], [], "none", 0.0)
            index += 1
            time.sleep(0.02)

    producer = threading.Thread(target=analyse, daemon=True)
    producer.start()
    # On a loaded machine the producer may not have run yet: a first snapshot would get 503.
    wait_for(lambda: app.last_result is not None, 10, what="the first analysed frame")
    service = HTTPService(app, config.http)
    service.start()
    try:
        yield service
    finally:
        app.stop_event.set()
        producer.join(5)
        service.stop()


def open_stream(port: int) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/stream.mjpg")
    return connection.getresponse()


def read_frames(response: http.client.HTTPResponse, count: int) -> list[bytes]:
    frames = []
    while len(frames) < count:
        assert response.readline() == b"--frame\r\n"
        assert response.readline() == b"Content-Type: image/jpeg\r\n"
        length = int(response.readline().split(b":")[1])
        response.readline()
        frames.append(response.read(length))
        response.readline()
    return frames


def test_two_viewers_share_each_encoded_frame_and_a_third_is_turned_away(service: HTTPService):
    first, second = open_stream(service.port), open_stream(service.port)
    assert first.status == second.status == 200
    frames = [read_frames(first, 15), read_frames(second, 15)]
    assert all(frame.startswith(b"\xff\xd8") for frame in frames[0] + frames[1])
    third = open_stream(service.port)
    assert third.status == 503
    assert b"2 viewers are already watching (http.max_viewers)" in third.read()
    # Reading both streams cost about one encoding per frame, not one per frame and viewer.
    # (A stream counts a frame once it is written, which may be just after the viewer read it.)
    wait_for(lambda: service.frames_streamed >= 30, 5, what="30 frames counted as streamed")
    assert service.frames_encoded < 0.75 * service.frames_streamed
    metrics = prometheus_metrics(service.app, service)
    assert "yuzug_http_viewers 2\n" in metrics and "yuzug_http_viewers_refused_total 1\n" in metrics
    first.close()
    second.close()
    wait_for(lambda: service.viewers == 0, 10, what="both viewers counted out")
    assert open_stream(service.port).status == 200  # a place is free again


def test_a_viewer_that_stops_reading_loses_its_place(service: HTTPService):
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", service.port))
    stalled.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")  # and never reads
    try:
        wait_for(lambda: service.viewers == 1, 10, what="the stalled viewer counted in")
        reading = open_stream(service.port)
        assert reading.status == 200
        # The stalled viewer's writes block once the socket buffers are full, then time out.
        wait_for(lambda: service.viewers == 1, 30, what="the stalled viewer dropped")
        read_frames(reading, 5)  # the reading viewer is served all along
        assert open_stream(service.port).status == 200
    finally:
        stalled.close()


def test_a_paused_camera_is_never_shown_not_even_its_last_picture(
    service: HTTPService, monkeypatch: pytest.MonkeyPatch
):
    import cv2

    monkeypatch.setattr(edge.http, "PAUSED_RESEND_S", 0.2)

    def picture(jpeg: bytes) -> np.ndarray:
        return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)

    watching = open_stream(service.port)
    assert all(picture(f).std() > 50 for f in read_frames(watching, 3))  # the camera's noise
    # The privacy switch goes on while the analysis goes on producing (a frame in flight).
    service.app.paused.set()
    for _ in range(5):  # at most the frames already on their way
        placeholder = read_frames(watching, 1)[0]
        if picture(placeholder).std() < 50:
            break
    else:
        raise AssertionError("no paused picture after the switch went on")
    # While paused only the paused picture goes out, again every PAUSED_RESEND_S (a browser
    # shows a part once the next one begins), never an analysed frame going on behind it.
    assert read_frames(watching, 2) == [placeholder, placeholder]
    streamed = service.frames_streamed
    time.sleep(0.5)  # 25 new analysed frames, none of them sent
    assert service.frames_streamed - streamed <= 4
    newcomer = open_stream(service.port)
    assert read_frames(newcomer, 1)[0] == placeholder  # not the last picture before the pause
    service.app.paused.clear()
    assert picture(read_frames(newcomer, 2)[1]).std() > 50  # the camera is back
    watching.close()
    newcomer.close()


def test_a_snapshot_is_the_latest_analysed_frame_or_the_paused_picture(service: HTTPService):
    import cv2

    def snapshot() -> tuple[int, str, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
        try:
            connection.request("GET", "/snapshot.jpg")
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type", ""), response.read()
        finally:
            connection.close()

    status, kind, first = snapshot()
    assert (status, kind) == (200, "image/jpeg")
    picture = cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert picture.shape == (480, 640) and picture.std() > 50  # the camera's noise
    time.sleep(0.1)
    assert snapshot()[2] != first  # a newer frame, not a cached one
    service.app.paused.set()
    status, kind, paused = snapshot()
    assert (status, kind) == (200, "image/jpeg") and paused == service.paused_jpeg()
    # A pause sign and no words (the page says why in its own language); the privacy hours
    # add their span under it, without the English note on an unset clock.
    app = service.app
    app.pause_reasons.add("privacy_hours")
    app._privacy_span = "22-7 (the clock is not set yet)"
    hours = service.paused_jpeg()
    app._privacy_span = "22-7"
    assert service.paused_jpeg() == hours != paused

    def grey(jpeg: bytes) -> np.ndarray:
        return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)

    sign, caption = (slice(110, 310), slice(220, 420)), (slice(330, 390), slice(200, 440))
    for jpeg in (paused, hours):
        assert (grey(jpeg)[sign] > 150).sum() > 3000  # the ring and its two bars
        assert (grey(jpeg)[:100] > 100).sum() == 0  # nothing written above it
    assert (grey(paused)[caption] > 100).sum() == 0 < (grey(hours)[caption] > 100).sum()


@contextmanager
def served(**http: object) -> Iterator[HTTPService]:
    """The live view's HTTP service alone, on a free port, with these ``[http]`` settings."""
    config = parse_config(
        {"mqtt": {"enabled": False}, "http": {"enabled": True, "port": 0, **http}}
    )
    service = HTTPService(EdgeApp(config), config.http)
    service.start()
    try:
        yield service
    finally:
        service.stop()


def status_of(service: HTTPService, path: str, headers: dict[str, str] | None = None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        return connection.getresponse().status
    finally:
        connection.close()


def test_the_browsers_token_stays_out_of_the_request_log(caplog):
    with served(token="s3cret-T") as service:
        caplog.set_level("DEBUG", logger="edge.http")
        for query in ("?token=s3cret-T", "?a=1&token=s3cret-T&b=2"):
            assert status_of(service, "/" + query) == 200
        wait_for(lambda: caplog.text.count('"GET /') == 2, 5, what="both requests logged")
    assert "s3cret-T" not in caplog.text
    assert "GET /?token=******** HTTP/1.1" in caplog.text and "&b=2" in caplog.text


@pytest.mark.parametrize(
    ("credentials", "status"),
    [
        ("ayşe:şifre-Ğ", 200),
        ("ayşe:sifre-G", 401),
        ("ayse:şifre-Ğ", 401),
        ("ayşe:ş", 401),
    ],
)
def test_basic_auth_takes_a_password_beyond_ascii(credentials: str, status: int):
    # hmac.compare_digest raised TypeError on non-ASCII str: a Turkish password never got in,
    # and every such request died with a traceback instead of an answer.
    with served(username="ayşe", password="şifre-Ğ") as service:
        encoded = base64.b64encode(credentials.encode()).decode()
        assert status_of(service, "/", {"Authorization": f"Basic {encoded}"}) == status
        # A non-ASCII token offered where no token is configured is a plain 401 too.
        assert status_of(service, "/?token=%C5%9F") == 401


def test_no_snapshot_before_the_first_frame_and_none_without_the_token():
    with served(token="s3cret") as service:
        assert status_of(service, "/snapshot.jpg") == 401
        assert status_of(service, "/snapshot.jpg?token=s3cret") == 503  # nothing analysed yet


def test_a_token_beyond_ascii_is_compared_not_crashed_on():
    with served(token="gizli-ş") as service:
        assert status_of(service, "/?token=gizli-%C5%9F") == 200
        assert status_of(service, "/?token=%C5%9F%C5%9F") == 401
