"""Frame sources (OpenCV file, folder, picamera2 at its hardware boundary), the classify command's
JSON contract, and the daemon's handling of bad inputs, run as real processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera import make_source
from edge.camera.base import CameraError, EndOfStream
from edge.config import (
    FolderCameraConfig,
    OpenCVCameraConfig,
    Picamera2CameraConfig,
    parse_config,
)
from edge.errors import ConfigError
from edge.models import default_bundle_path
from edge.samples import Segment, fer_faces, scripted_frames, write_video

ROOT = Path(__file__).resolve().parents[2]


def run_edge(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def clip(fer_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    faces = fer_faces(fer_zip, ["happy", "sad"], 1)
    path = tmp_path_factory.mktemp("clip") / "clip.avi"
    write_video(scripted_frames(faces, [Segment("happy", 1), Segment("sad", 1)], 10), path, 10)
    return path


def test_opencv_file_source_plays_and_ends(clip: Path):
    source = make_source(OpenCVCameraConfig(source=str(clip), realtime=False))
    with source:
        frames = []
        with pytest.raises(EndOfStream):
            while True:
                frames.append(source.read())
    assert len(frames) == 20 and frames[0].image.shape == (480, 640, 3)


def test_an_opencv_without_cv2_utils_logging_still_opens_a_video(clip: Path, monkeypatch):
    # OpenCV 4.11, the newest that runs with numpy 1.x (Raspberry Pi OS Bookworm, whose apt
    # picamera2 needs it), has cv2.setLogLevel but no cv2.utils.logging: every camera start
    # died there with AttributeError. Its API is what the monkeypatch leaves (found by running
    # tests/edge under numpy 1.26 + opencv-python-headless 4.11.0.86, where they all pass).
    levels: list[int] = []
    monkeypatch.setattr(cv2, "utils", types.SimpleNamespace())
    monkeypatch.setattr(cv2, "setLogLevel", levels.append, raising=False)
    with make_source(OpenCVCameraConfig(source=str(clip), realtime=False)) as source:
        assert source.read().image.shape == (480, 640, 3)
    assert levels == [2]  # ERROR and up


def test_opencv_missing_or_vanishing_file_is_a_camera_error(clip: Path, tmp_path: Path):
    with pytest.raises(CameraError, match="not found"):
        make_source(OpenCVCameraConfig(source=str(tmp_path / "nope.avi"))).open()
    moving = tmp_path / "moving.avi"
    shutil.copy(clip, moving)
    source = make_source(OpenCVCameraConfig(source=str(moving), realtime=False))
    source.open()
    source.read()
    moving.unlink()
    with pytest.raises((CameraError, EndOfStream)):
        for _ in range(100):
            source.read()
    source.close()
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(b"not a video")
    with pytest.raises(CameraError, match="cannot open"):
        make_source(OpenCVCameraConfig(source=str(garbage))).open()


def test_folder_source_skips_broken_images_and_loops(tmp_path: Path):
    cv2.imwrite(str(tmp_path / "a.png"), np.full((10, 10, 3), 50, np.uint8))
    (tmp_path / "b.png").write_bytes(b"broken")
    cv2.imwrite(str(tmp_path / "c.png"), np.full((10, 10, 3), 90, np.uint8))
    source = make_source(FolderCameraConfig(path=tmp_path, realtime=False, loop=True))
    with source:
        values = [int(source.read().image[0, 0, 0]) for _ in range(4)]
    assert values == [50, 90, 50, 90]
    # A truncated .zip as the camera path is a camera error naming the key, not a crash.
    truncated = tmp_path / "clips.zip"
    truncated.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(CameraError, match="camera.path: .*not a readable zip archive"):
        make_source(FolderCameraConfig(path=truncated, realtime=False)).open()


class FakeRequest:
    """Stands in for a libcamera request: the only fake, at the hardware boundary."""

    def __init__(self, camera: FakePicamera2) -> None:
        self.camera = camera

    def make_array(self, stream: str) -> np.ndarray:
        config = self.camera.configuration[stream]
        width, height = config["size"]
        # A white block at the top left of each picture: which way up a frame came out.
        if stream == "main":
            image = np.full((height, width, 3), 120, np.uint8)
            image[:40, :80] = 255
            return image
        planes = np.full((height * 3 // 2, width), 60, np.uint8)  # YUV420: Y then U/V planes
        planes[:20, :40] = 255
        return planes

    def __enter__(self) -> FakeRequest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.camera.released += 1


class FakePicamera2:
    instances: list[FakePicamera2] = []

    def __init__(self, index: int = 0) -> None:
        self.index, self.started, self.closed, self.released = index, False, False, 0
        FakePicamera2.instances.append(self)

    def create_preview_configuration(self, main, lores, buffer_count, controls):
        return {"main": main, "lores": lores, "buffer_count": buffer_count, "controls": controls}

    def configure(self, configuration) -> None:
        self.configuration = configuration

    def start(self) -> None:
        self.started = True

    def captured_request(self) -> FakeRequest:
        return FakeRequest(self)

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True


def test_picamera2_adapter_uses_two_streams_and_releases_requests(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakePicamera2))
    config = Picamera2CameraConfig(width=640, height=480, lores_width=320, lores_height=240)
    source = make_source(config)
    with source:
        frame = source.read()
        camera = FakePicamera2.instances[-1]
        assert camera.configuration["main"]["format"] == "RGB888"
        assert camera.configuration["lores"]["format"] == "YUV420"
        assert frame.image.shape == (480, 640, 3)
        assert frame.gray.shape == (240, 320) and frame.gray_scale == 2.0
        source.read()
    assert camera.released == 2 and camera.closed


@pytest.mark.parametrize(
    ("rotation", "shape", "corner"),
    [
        (0, (480, 640), "top left"),
        (90, (640, 480), "top right"),  # clockwise: the top edge becomes the right one
        (180, (480, 640), "bottom right"),
        (270, (640, 480), "bottom left"),
    ],
)
def test_a_camera_mounted_turned_gives_upright_frames_in_both_planes(
    monkeypatch, rotation: int, shape: tuple[int, int], corner: str
):
    """camera.rotation turns the picture and the detection plane alike, so boxes found on the
    lores plane still land on the face in the main picture."""
    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakePicamera2))
    config = Picamera2CameraConfig(rotation=rotation)
    with make_source(config) as source:
        frame = source.read()
    assert frame.image.shape == (*shape, 3) and frame.gray.shape == (shape[0] // 2, shape[1] // 2)
    assert frame.gray_scale == 2.0
    for plane, side in ((frame.image[..., 0], 80), (frame.gray, 40)):
        height, width = plane.shape
        rows = slice(0, 10) if corner.startswith("top") else slice(height - 10, height)
        columns = slice(0, 10) if corner.endswith("left") else slice(width - 10, width)
        assert (plane[rows, columns] == 255).all(), (rotation, plane.shape)
        assert plane[height // 2, width // 2] != 255
        assert (plane == 255).sum() == side * side // 2  # the block, whole, nowhere else


def test_a_camera_turned_by_other_than_quarter_turns_is_refused_by_name():
    refusal = r"camera\.rotation: Input should be 0, 90, 180 or 270 \(got 45\)"
    with pytest.raises(ConfigError, match=refusal):
        parse_config({"camera": {"type": "picamera2", "rotation": 45}})


def test_a_pi_camera_that_will_not_start_is_released_for_the_next_try(monkeypatch):
    class RefusingPicamera2(FakePicamera2):
        def configure(self, configuration) -> None:
            raise RuntimeError("Failed to configure camera")

    monkeypatch.setitem(
        sys.modules, "picamera2", types.SimpleNamespace(Picamera2=RefusingPicamera2)
    )
    source = make_source(Picamera2CameraConfig())
    with pytest.raises(CameraError, match="cannot start Pi camera 0: Failed to configure"):
        source.open()
    # Left acquired, every later open would find the camera busy until a restart.
    assert FakePicamera2.instances[-1].closed


def test_a_pi_camera_that_fails_to_stop_is_still_closed_without_an_error(monkeypatch, caplog):
    class UnpluggedPicamera2(FakePicamera2):
        def stop(self) -> None:
            raise RuntimeError("Device or resource busy")

    monkeypatch.setitem(
        sys.modules, "picamera2", types.SimpleNamespace(Picamera2=UnpluggedPicamera2)
    )
    source = make_source(Picamera2CameraConfig())
    source.open()
    source.close()  # the capture thread's retry path: it must not raise
    assert FakePicamera2.instances[-1].closed
    assert "Pi camera stop failed: Device or resource busy" in caplog.text


def test_a_local_camera_that_will_not_open_says_why():
    missing = next(i for i in range(60, 200) if not Path(f"/dev/video{i}").exists())
    with pytest.raises(CameraError) as refused:
        make_source(OpenCVCameraConfig(source=missing)).open()
    message = str(refused.value)
    assert f"cannot open camera {missing}: /dev/video{missing} does not exist" in message
    assert "video devices here: " in message
    with pytest.raises(CameraError, match="/dev/null is there but would not open"):
        make_source(OpenCVCameraConfig(source="/dev/null")).open()
    # A URL or file gets no device talk.
    with pytest.raises(CameraError) as url:
        make_source(OpenCVCameraConfig(source="rtsp://127.0.0.1:1/none")).open()
    assert "/dev/" not in str(url.value)


def test_a_network_stream_that_stalls_is_lost_before_the_watchdog_fires():
    """An MJPEG camera on loopback that sends a few frames, then nothing on an open
    connection: the read fails after STALL_SECONDS, well inside HUNG_CALL_SECONDS, so the
    daemon reconnects on its own instead of hanging in FFmpeg's 30 s default until systemd's
    watchdog (30 s) kills it."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from edge.camera.opencv_source import STALL_SECONDS
    from edge.pipeline import HUNG_CALL_SECONDS

    jpeg = cv2.imencode(".jpg", np.full((120, 160, 3), 128, np.uint8))[1].tobytes()
    release = threading.Event()

    class StallingCamera(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
            for _ in range(10):
                self.wfile.write(part % len(jpeg) + jpeg + b"\r\n")
                self.wfile.flush()
            release.wait(60)  # the connection stays open and silent

    server = ThreadingHTTPServer(("127.0.0.1", 0), StallingCamera)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    source = make_source(
        OpenCVCameraConfig(source=f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg")
    )
    try:
        source.open()
        frames = 0
        with pytest.raises(CameraError, match="delivered no frame"):
            while True:
                source.read()
                frames += 1
                stalled_since = time.monotonic()
        waited = time.monotonic() - stalled_since
        assert frames >= 5
        assert STALL_SECONDS - 1 <= waited < HUNG_CALL_SECONDS
    finally:
        release.set()
        source.close()
        server.shutdown()


def test_an_ip_cameras_password_stays_out_of_errors_doctor_and_validate_config(tmp_path: Path):
    # rtsp://user:password@host is how IP cameras are addressed; the URL went into the log
    # line "opened ...", every camera error, doctor's report and validate-config's output.
    from edge.config import hide_url_password

    url = "rtsp://admin:s3cr:et@127.0.0.1:1/stream"
    assert hide_url_password(url) == "rtsp://admin:********@127.0.0.1:1/stream"
    assert hide_url_password("rtsp://cam.local/stream") == "rtsp://cam.local/stream"
    with pytest.raises(CameraError) as failed:
        make_source(OpenCVCameraConfig(source=url)).open()
    assert "s3cr" not in str(failed.value) and "admin:********@" in str(failed.value)
    config = tmp_path / "edge.toml"
    config.write_text(f'[camera]\ntype = "opencv"\nsource = "{url}"\n[mqtt]\nenabled = false\n')
    shown = run_edge("validate-config", "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["camera"]["source"] == hide_url_password(url)
    doctor = run_edge("doctor", "--config", str(config), "--timeout", "5")
    assert "admin:********@" in doctor.stdout + doctor.stderr
    assert "s3cr" not in shown.stdout + shown.stderr + doctor.stdout + doctor.stderr


def test_picamera2_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(CameraError, match="python3-picamera2"):
        make_source(Picamera2CameraConfig()).open()


def test_picamera2_built_for_another_numpy_is_a_camera_error_not_a_crash(monkeypatch, tmp_path):
    # apt's picamera2 on Raspberry Pi OS Bookworm imports simplejpeg, built for numpy 1.x; with
    # numpy 2 in the venv the import raises ValueError, which crashed the capture thread (exit
    # 70) on every restart. Faked at the boundary: a picamera2 whose import fails that way.
    fake = tmp_path / "picamera2"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        'raise ValueError("numpy.dtype size changed, may indicate binary incompatibility. '
        'Expected 96 from C header, got 88 from PyObject")\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    with pytest.raises(CameraError, match=r"dtype size changed.*numpy<2"):
        make_source(Picamera2CameraConfig()).open()


def _read_or_nothing(fd: int) -> bytes:
    """A pty's master end raises EIO once the other end is closed and drained."""
    try:
        return os.read(fd, 4096)
    except OSError:
        return b""


def test_classify_json_contract(fer_zip: Path, tmp_path: Path):
    faces = fer_faces(fer_zip, ["happy"], 1)["happy"]
    crop = tmp_path / "crop.png"
    cv2.imwrite(str(crop), faces[0])
    frame = next(scripted_frames({"happy": faces}, [Segment("happy", 0.1)], 10))[0]
    cv2.imwrite(str(tmp_path / "scene.jpg"), frame)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 broken")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 cut short")
    result = run_edge(
        "classify",
        "--no-detect",
        str(crop),
        str(tmp_path / "broken.jpg"),
        str(tmp_path / "broken.zip"),
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["path"] == str(crop)
    (face,) = lines[0]["faces"]
    assert face["box"] == [0, 0, 48, 48]
    labels = default_bundle_path().joinpath("labels.txt").read_text().split()
    assert set(face["scores"]) == set(labels) and face["label"] in labels
    assert abs(sum(face["scores"].values()) - 1) < 0.05
    assert lines[1] == {"path": str(tmp_path / "broken.jpg"), "error": "not a decodable image"}
    # A broken archive is one error line too, and the run goes on to its end.
    assert lines[2]["path"] == str(tmp_path / "broken.zip") and len(lines) == 3
    assert "not a readable zip archive" in lines[2]["error"]
    # A count on stderr; stdout stays JSON lines only, and a pipe gets no progress redraws.
    assert result.stderr.strip().splitlines()[-1] == "classify: 1 image, 1 face, 2 unreadable"
    assert "\r" not in result.stderr

    # On a terminal, a running count (cleared before the summary), as stdout goes to a file.
    import pty

    terminal, terminal_end = pty.openpty()
    shown = subprocess.run(
        [sys.executable, "-m", "edge", "classify", "--no-detect", str(crop), str(crop)],
        stdout=subprocess.PIPE,
        stderr=terminal_end,
        timeout=120,
    )
    os.close(terminal_end)
    seen = b""
    while chunk := _read_or_nothing(terminal):
        seen += chunk
    os.close(terminal)
    assert shown.returncode == 0 and len(shown.stdout.splitlines()) == 2
    text = seen.decode()
    assert "\rclassify: 0 images…" in text, text
    assert text.index("\r\x1b[K") < text.index("classify: 2 images, 2 faces, 0 unreadable")

    mirrored = tmp_path / "mirrored.png"
    cv2.imwrite(str(mirrored), faces[0][:, ::-1])
    plain = run_edge("classify", "--no-detect", str(mirrored))
    mirrored_scores = json.loads(plain.stdout)["faces"][0]["scores"]
    averaged = run_edge("classify", "--no-detect", "--flip-average", str(crop))
    (both,) = json.loads(averaged.stdout)["faces"]
    for label in labels:
        expected = (face["scores"][label] + mirrored_scores[label]) / 2
        assert abs(both["scores"][label] - expected) < 1e-3

    detected = run_edge("classify", str(tmp_path / "scene.jpg"))
    (record,) = [json.loads(line) for line in detected.stdout.splitlines()]
    (face,) = record["faces"]
    x, y, w, h = face["box"]
    assert 150 < w < 330 and 0 <= x < 640 and 0 <= y < 480  # the pasted 240 px face


def test_classify_sees_phone_photos_upright_and_reads_deep_or_tiny_images(
    fer_zip: Path, tmp_path: Path
):
    from PIL import Image  # matplotlib's dependency, so in every dev install

    faces = fer_faces(fer_zip, ["happy"], 1)
    scene = cv2.cvtColor(
        next(scripted_frames(faces, [Segment("happy", 0.1)], 10))[0], cv2.COLOR_BGR2GRAY
    )
    cv2.imwrite(str(tmp_path / "a-upright.png"), scene)
    # A phone stores a portrait photo's pixels sideways and says "rotate 90 clockwise" (EXIF
    # orientation 6); viewers, and so the user, see it upright.
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = cv2.rotate(scene, cv2.ROTATE_90_COUNTERCLOCKWISE)
    Image.fromarray(sideways).save(tmp_path / "b-phone.jpg", exif=exif, quality=95)
    cv2.imwrite(str(tmp_path / "c-16bit.png"), scene.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "d-float.tiff"), scene.astype(np.float32) / 255)
    cv2.imwrite(str(tmp_path / "e-one-pixel.png"), np.zeros((1, 1), np.uint8))
    cv2.imwrite(str(tmp_path / "f-one-row.png"), np.zeros((1, 640), np.uint8))

    result = run_edge("classify", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    records = {Path(r["path"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert len(records) == 6
    (upright,) = records["a-upright.png"]["faces"]
    for name in ("b-phone.jpg", "c-16bit.png", "d-float.tiff"):
        (face,) = records[name]["faces"]
        assert np.abs(np.subtract(face["box"], upright["box"])).max() <= 4, name
        assert face["label"] == upright["label"], name
        assert abs(face["confidence"] - upright["confidence"]) < 0.05, name
    assert records["e-one-pixel.png"] == {"path": str(tmp_path / "e-one-pixel.png"), "faces": []}
    assert records["f-one-row.png"]["faces"] == []
    assert result.stderr.strip().splitlines()[-1] == "classify: 6 images, 4 faces, 0 unreadable"


def test_an_image_no_step_can_handle_is_its_own_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    import edge.detect
    from edge.__main__ import main
    from edge.detect.blazeface import BlazeFaceDetector

    class Refuses(BlazeFaceDetector):
        def detect(self, frame: np.ndarray):  # a shape the detector was never written for
            if frame.shape[1] == 333:
                raise cv2.error("OpenCV(4.x) color.cpp: error: (-215:Assertion failed) odd")
            return super().detect(frame)

    monkeypatch.setattr(edge.detect, "make_detector", lambda config: Refuses())
    for name, width in (("a.png", 640), ("b.png", 333), ("c.png", 640)):
        cv2.imwrite(str(tmp_path / name), np.full((480, width), 90, np.uint8))
    assert main(["classify", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert [Path(r["path"]).name for r in records] == ["a.png", "b.png", "c.png"]
    assert records[0]["faces"] == [] == records[2]["faces"]
    assert records[1]["error"].startswith("could not classify: OpenCV(4.x)")
    assert err.strip().splitlines()[-1] == "classify: 2 images, 0 faces, 0 unreadable, 1 failed"


def test_every_detector_takes_frames_too_small_for_a_face():
    from edge.detect.blazeface import BlazeFaceDetector
    from edge.detect.haar import HaarDetector

    for detector in (BlazeFaceDetector(), BlazeFaceDetector(tiles=False), HaarDetector()):
        for shape in ((1, 1), (1, 640, 3), (19, 19, 3), (480, 1)):
            assert detector.detect(np.zeros(shape, np.uint8)) == [], (detector, shape)


def test_16_bit_and_float_pixels_are_scaled_to_8_bits():
    from edge.imagefiles import to_8bit

    ramp16 = np.array([[0, 257, 32896, 65535]], np.uint16)
    assert to_8bit(ramp16).tolist() == [[0, 1, 128, 255]]
    unit = np.array([[0.0, 0.5, 1.0, np.nan]], np.float32)
    assert to_8bit(unit).tolist() == [[0, 128, 255, 0]]
    wide = np.array([[-3.0, 12.0, 300.0]], np.float32)  # already 0-255, some out of range
    assert to_8bit(wide).tolist() == [[0, 12, 255]]
    same = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert to_8bit(same) is same


def test_classify_annotate_draws_each_face_box_in_its_label_colour(fer_zip: Path, tmp_path: Path):
    from edge.overlay import COLOURS, OTHER_COLOUR

    faces = fer_faces(fer_zip, ["happy"], 1)["happy"]
    frame = next(scripted_frames({"happy": faces}, [Segment("happy", 0.1)], 10))[0]
    for folder in ("a", "b"):  # the same file name twice: two pictures, not one overwritten
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "scene.png"), frame)
    cv2.imwrite(str(tmp_path / "crop.png"), faces[0])
    out = tmp_path / "annotated"
    result = run_edge("classify", "--annotate", str(out), str(tmp_path / "a"), str(tmp_path / "b"))
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len({r["annotated"] for r in records}) == 2
    for record in records:
        picture = cv2.imread(record["annotated"])
        assert picture.shape == frame.shape
        (face,) = record["faces"]
        x, y, w, h = face["box"]
        colour = COLOURS.get(face["label"], OTHER_COLOUR)
        # The box's left edge is drawn in the label's colour (JPEG-close), the source is gray.
        edge = picture[y + h // 4 : y + 3 * h // 4, x].astype(int)
        assert np.abs(edge - colour).max(axis=1).mean() < 40, (edge[:3], colour)
        assert np.abs(frame[y + h // 4 : y + 3 * h // 4, x].astype(int) - colour).max() > 40
    # A 48x48 crop is enlarged for reading, and --no-detect boxes the whole of it.
    crop = run_edge("classify", "--no-detect", "--annotate", str(out), str(tmp_path / "crop.png"))
    (record,) = [json.loads(line) for line in crop.stdout.splitlines()]
    assert cv2.imread(record["annotated"]).shape == (240, 240, 3)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        Path(r["annotated"]).name for r in [*records, record]
    )


def test_classify_takes_a_bundle_file_for_its_folder_and_names_a_bad_annotate_folder(
    tmp_path: Path,
):
    image = tmp_path / "grey.png"
    cv2.imwrite(str(image), np.full((64, 64), 120, np.uint8))
    by_folder = run_edge(
        "classify", "--no-detect", "--model", str(default_bundle_path()), str(image)
    )
    by_file = run_edge(
        "classify",
        "--no-detect",
        "--model",
        str(default_bundle_path() / "model.tflite"),
        str(image),
    )
    assert by_file.returncode == 0, by_file.stderr
    assert json.loads(by_file.stdout) == json.loads(by_folder.stdout)
    # A file outside any bundle is still refused.
    image_as_model = run_edge("classify", "--model", str(image), str(image))
    assert image_as_model.returncode != 0 and "not a directory" in image_as_model.stderr

    # Was a NotADirectoryError traceback.
    bad = run_edge("classify", "--annotate", str(image / "out"), str(image))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert f"--annotate: cannot create {image / 'out'} (Not a directory)" in bad.stderr
    # A path deeper than a file name may be long still gets its picture.
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 12)
    deep.mkdir(parents=True)
    cv2.imwrite(str(deep / "face.png"), np.full((64, 64), 120, np.uint8))
    drawn = run_edge("classify", "--no-detect", "--annotate", str(tmp_path / "out"), str(deep))
    assert drawn.returncode == 0, drawn.stderr
    assert Path(json.loads(drawn.stdout)["annotated"]).is_file()


def test_daemon_refuses_bad_config_and_bad_models(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[classifier]\nnum_threads = 0\n")
    result = run_edge("run", "--config", str(bad))
    assert result.returncode == 2 and "classifier.num_threads" in result.stderr

    missing = run_edge("run", "--model", str(tmp_path / "no-model"), "--source", str(tmp_path))
    assert missing.returncode == 78 and "not a directory" in missing.stderr

    tampered = tmp_path / "tampered"
    shutil.copytree(default_bundle_path(), tampered)
    data = bytearray((tampered / "model.tflite").read_bytes())
    data[-100] ^= 0x55
    (tampered / "model.tflite").write_bytes(bytes(data))
    refused = run_edge("run", "--model", str(tampered), "--source", str(tmp_path))
    assert refused.returncode == 78 and "sha256" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        ("labels", "cannot read labels.txt"),
        ("format_version=null", "invalid manifest key 'format_version'"),
        ("format_version=two", "invalid manifest key 'format_version'"),
        ("format_version=99", "bundle format 99 is newer than this daemon understands"),
        ('format_version="99"', "bundle format 99 is newer than this daemon understands"),
        # Hand-edited manifests: were IndexError and ValueError, or a model from elsewhere.
        ("output.shape=[]", "invalid manifest key 'output.shape'"),
        ("preprocess.scale=0", "invalid manifest key 'preprocess': .*scale must be positive"),
        ("preprocess.margin=-1", "invalid manifest key 'preprocess': .*margin"),
        ("model.file=/tmp/model.tflite", "invalid manifest key 'model.file'"),
        ("model.file=../default/model.tflite", "invalid manifest key 'model.file'"),
    ],
)
def test_a_damaged_labels_file_or_manifest_is_a_refused_bundle(
    tmp_path: Path, damage: str, named: str
):
    # Were a UnicodeDecodeError and a TypeError: a traceback and exit 1 at start-up (systemd
    # restarts that, unlike 78), and a crash of the running daemon on a hot reload.
    from edge.bundle import load_bundle
    from edge.errors import BundleError

    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle_path(), bundle)
    if damage == "labels":
        labels = (bundle / "labels.txt").read_bytes()
        (bundle / "labels.txt").write_bytes(labels.replace(b"happy", b"h\xe4ppy"))
    else:
        manifest = json.loads((bundle / "manifest.json").read_text())
        key, text = damage.split("=", 1)
        if key == "format_version":
            manifest[key] = {"null": None, "two": "two", "99": 99}.get(text, "99")
        else:
            section, field = key.split(".")
            manifest[section][field] = text if field == "file" else json.loads(text)
        (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=named):
        load_bundle(bundle)
    if damage == "labels":  # and the daemon says so with the exit status systemd won't retry
        refused = run_edge("run", "--model", str(bundle), "--source", str(tmp_path))
        assert refused.returncode == 78 and "labels.txt" in refused.stderr
        assert "Traceback" not in refused.stderr


def test_unreadable_video_is_retried_not_fatal(tmp_path: Path):
    config = tmp_path / "edge.toml"
    config.write_text(
        f'[camera]\ntype = "opencv"\nsource = "{tmp_path / "gone.avi"}"\n[mqtt]\nenabled = false\n'
    )
    daemon = subprocess.Popen(
        [sys.executable, "-m", "edge", "run", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        daemon.wait(6)
        pytest.fail("the daemon exited instead of retrying the camera")
    except subprocess.TimeoutExpired:
        pass
    daemon.terminate()
    _, stderr = daemon.communicate(timeout=15)
    assert daemon.returncode == 0  # SIGTERM is a clean stop
    assert stderr.count("retrying in") >= 2 and "Traceback" not in stderr


def test_blazeface_finds_small_and_large_faces_where_haar_misses(fer_zip: Path):
    from edge.detect.blazeface import BlazeFaceDetector
    from edge.samples import FRAME_SIZE, background, paste_face

    faces = fer_faces(fer_zip, ["happy", "sad"], 10, seed=2)
    detector, single_pass = BlazeFaceDetector(), BlazeFaceDetector(tiles=False)
    rng = np.random.default_rng(0)
    found = {"tiles": 0, "single": 0}
    for side in (100, 240):
        for image in faces["happy"] + faces["sad"]:
            frame = background(rng)
            x, y, w, h = paste_face(frame, image, (FRAME_SIZE[0] // 3, FRAME_SIZE[1] // 2), side)
            for name, det in (("tiles", detector), ("single", single_pass)):
                boxes = [f.box for f in det.detect(frame)]
                found[name] += any(
                    x <= bx + bw / 2 <= x + w and y <= by + bh / 2 <= y + h
                    for bx, by, bw, bh in boxes
                )
    assert found["tiles"] >= 36  # of 40: small (100 px) and large (240 px) faces
    assert found["tiles"] > found["single"]
    assert detector.detect(background(rng)) == []  # an empty room is empty


def test_boxes_found_on_a_lores_gray_image_are_scaled_to_the_main_image(fer_zip: Path):
    # picamera2 detects on its 320x240 lores Y plane and crops from the 640x480 main stream.
    from edge.camera.base import Frame
    from edge.detect import detect_faces
    from edge.detect.blazeface import BlazeFaceDetector

    faces = fer_faces(fer_zip, ["happy"], 1)
    image = next(scripted_frames(faces, [Segment("happy", 0.1)], 10))[0]
    lores = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (320, 240))
    detector = BlazeFaceDetector()
    (full,) = detect_faces(detector, Frame(image))
    (scaled,) = detect_faces(detector, Frame(image, gray=lores, gray_scale=2.0))
    assert np.abs(np.subtract(full.box, scaled.box)).max() <= 8, (full, scaled)
    assert scaled.box[2] > 150  # in main-stream pixels, not the lores image's ~120
