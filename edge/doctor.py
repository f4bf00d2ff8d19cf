"""``yuzug-edge doctor``: checks, one by one, what the daemon needs on this device.

A Pi that "does nothing" after installation has one of a handful of causes: a config typo, a
damaged model, a camera that is busy or absent, a broker that is down or refuses the password,
the live-view port taken. Each check here uses the daemon's own code (config validation, bundle
verification, frame source, detector, MQTT client settings) and says what it found in one line,
so the first failing line is the answer. Nothing is published and no state is changed: the
MQTT check connects under its own client id (the daemon's session is not taken over) and
disconnects at once.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TextIO

import numpy as np

from edge.errors import ConfigError, YuzugError

if TYPE_CHECKING:
    from edge.config import Region

Status = Literal["ok", "warn", "FAIL", "skip"]


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str


class Doctor:
    def __init__(self, out: TextIO, timeout: float) -> None:
        self.out = out
        self.timeout = timeout
        self.findings: list[Finding] = []

    def report(self, check: str, status: Status, detail: str) -> None:
        self.findings.append(Finding(check, status, detail))
        print(f"  {status:<5} {check:<12} {detail}", file=self.out, flush=True)

    @property
    def failures(self) -> int:
        return sum(f.status == "FAIL" for f in self.findings)


def run_doctor(args: argparse.Namespace, out: TextIO, timeout: float = 10.0) -> int:
    """Runs every check in the daemon's start-up order; returns 0, or 1 if any failed."""
    from edge.app import EdgeApp, resolve_config

    doctor = Doctor(out, timeout)
    print("yuzug-edge doctor", file=out)
    try:
        config = resolve_config(args)
    except YuzugError as exc:
        doctor.report("config", "FAIL", str(exc).replace("\n", "\n" + " " * 21))
        return _verdict(doctor)
    doctor.report("config", "ok", str(args.config) if args.config else "built-in defaults")
    # The daemon's own start-up steps (model with its fallback to `previous`, detector,
    # catalogue), so what passes here is what `yuzug-edge run` would load.
    app = EdgeApp(config)
    classifier = _check_model(doctor, app)
    if app.personal_status != "off":  # only when someone recorded: most devices never do
        doctor.report("personal", "ok" if app.personal_status == "on" else "warn", app.personal)
    detector = _check_detector(doctor, app)
    _check_suggestions(doctor, app)
    _check_privacy(doctor, config)
    # Beside a running daemon, which holds the camera (it opens once) and the live-view port:
    # asking for either would only find it busy.
    beside_daemon = getattr(args, "while_running", False)
    left = "left to the running daemon (--while-running)"
    if beside_daemon:
        doctor.report("camera", "skip", left)
        doctor.report("faces", "skip", left)
    else:
        frame = _check_camera(doctor, config)
        _check_faces(
            doctor,
            frame,
            detector,
            classifier,
            config.camera.rotation,
            config.classifier.straighten_faces,
            config.camera.ignore_regions,
        )
    _check_mqtt(doctor, config)
    _check_spool(doctor, config)
    if beside_daemon:
        doctor.report("http", "skip", left)
    else:
        _check_http(doctor, config)
    return _verdict(doctor)


def _verdict(doctor: Doctor) -> int:
    failures = doctor.failures
    if failures:
        print(f"{failures} problem{'s' if failures > 1 else ''} found", file=doctor.out)
        return 1
    print("everything the daemon needs works", file=doctor.out)
    return 0


def _started(doctor: Doctor, check: str, step: Callable[[], None]) -> bool:
    """Runs one of the daemon's start-up steps; a refusal is that check's FAIL line."""
    try:
        step()
    except YuzugError as exc:
        doctor.report(check, "FAIL", str(exc))
        return False
    return True


def _check_model(doctor: Doctor, app: Any) -> Any:
    if not _started(doctor, "model", app.init_model):
        return None
    bundle, classifier = app.bundle, app.classifier
    face = np.zeros((1, classifier.spec.size, classifier.spec.size, 1), np.uint8)
    classifier.probabilities(face)  # the first call allocates
    started = time.perf_counter()
    for _ in range(10):
        classifier.probabilities(face)
    per_face_ms = (time.perf_counter() - started) * 100
    detail = (
        f"{bundle.manifest.full_name} ({bundle.manifest.quantization}, labels "
        f"{', '.join(bundle.labels)}), {per_face_ms:.2f} ms/face on {classifier.runtime}"
    )
    if app.last_reload_error:  # `current` was refused; the daemon would fall back to `previous`
        doctor.report(
            "model", "FAIL", f"{app.last_reload_error}; the daemon would run previous: {detail}"
        )
    else:
        doctor.report("model", "ok", detail)
    return classifier


def _check_detector(doctor: Doctor, app: Any) -> Any:
    if not _started(doctor, "detector", app.init_detector):
        return None
    doctor.report("detector", "ok", app.detector.name)
    return app.detector


def _check_suggestions(doctor: Doctor, app: Any) -> None:
    s = app.config.suggestions
    if not _started(doctor, "suggestions", app.init_suggestions):
        return
    catalogue, dismissed = app.picker.catalogue, app.picker.dismissed
    counts = ", ".join(f"{len(items)} {emotion}" for emotion, items in catalogue.items())
    source = s.catalogue or f"built-in, {s.language}"
    if dismissed:
        counts += f"; {len(dismissed)} dismissed by a person: {', '.join(sorted(dismissed))}"
    uncovered = []
    if app.bundle is not None:
        abstain = app.bundle.manifest.abstain_label
        uncovered = [
            label
            for label in app.bundle.labels
            if label != abstain and all(i.id in dismissed for i in catalogue.get(label, []))
        ]
    if uncovered:
        doctor.report(
            "suggestions",
            "warn",
            f"{source}: none left for {', '.join(uncovered)} ({counts}; dismissed ones come "
            'back with {"restore": true} on suggestion/set or the live page)',
        )
    else:
        doctor.report("suggestions", "ok", f"{source}: {counts}")


def _within(timeout: float, work: Callable[[], Any]) -> Any:
    """Runs ``work`` in a thread; raises TimeoutError if it has not returned in time (a camera
    read can block for good on a wedged device)."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = work()
        except BaseException as exc:  # handed to the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="doctor-check")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout:g} s")
    if "error" in result:
        raise result["error"]
    return result.get("value")


def _check_camera(doctor: Doctor, config: Any) -> Any:
    from edge.camera import make_source
    from edge.config import hide_url_password

    camera = config.camera
    if camera.type == "opencv":
        where = hide_url_password(str(camera.source))
    elif camera.type == "folder":
        where = camera.path
    else:
        where = f"camera {camera.camera_index}"
    source = None
    try:
        source = make_source(camera)
        started = time.monotonic()
        _within(doctor.timeout, source.open)
        frame = _within(doctor.timeout, source.read)
        seconds = time.monotonic() - started
    except (YuzugError, OSError, TimeoutError) as exc:
        doctor.report("camera", "FAIL", f"{camera.type} {where}: {exc}")
        return None
    finally:
        if source is not None:
            try:
                source.close()
            except Exception:  # noqa: BLE001 - closing a broken source must not hide the finding
                pass
    height, width = frame.image.shape[:2]
    detail = f"{camera.type} {where}: {width}x{height} frame in {seconds:.2f} s"
    doctor.report("camera", "ok", detail)
    return frame


def _check_faces(
    doctor: Doctor,
    frame: Any,
    detector: Any,
    classifier: Any,
    rotation: int = 0,
    straighten: bool = True,
    ignore_regions: Sequence[Region] = (),
) -> None:
    from edge.detect import detect_faces, outside_regions
    from edge.orientation import upright_turn
    from edge.preprocess import straightening_turn

    if frame is None or detector is None:
        doctor.report("faces", "skip", "needs a camera frame and a detector")
        return
    turn, scores = upright_turn(frame, detector)
    if turn:
        doctor.report(
            "faces",
            "warn",
            f"faces look upright when the picture is turned {turn} degrees clockwise "
            f"(detector {scores[turn]:.2f} against {scores[0]:.2f} as it comes): is the "
            f"camera mounted turned? set camera.rotation = {(rotation + turn) % 360}",
        )
        return
    found = detect_faces(detector, frame)
    faces = outside_regions(found, ignore_regions, frame.image)
    # Said either way, so that a region drawn in the wrong place shows at once.
    left_out = (
        f", {len(found) - len(faces)} left out in camera.ignore_regions" if ignore_regions else ""
    )
    if not faces:
        doctor.report(
            "faces",
            "warn",
            f"none in this frame{left_out} (fine if nobody is in front of the camera)",
        )
        return
    detail = f"{len(faces)} in this frame{left_out}"
    if classifier is not None:
        crops = classifier.face_crops(frame.image, faces[:1], straighten)
        (prediction,) = classifier.predict(crops, classifier.framings)
        detail += f"; the largest looks {prediction.label} ({prediction.confidence:.0%})"
    if straightening_turn(faces[0].roll):  # a head on one side, or a camera not level
        lean = f"it leans {abs(faces[0].roll):.0f} degrees"
        detail += f", {lean} (straightened)" if straighten else f", {lean}"
    doctor.report("faces", "ok", detail)


def _check_mqtt(doctor: Doctor, config: Any) -> None:
    from edge.config import format_broker
    from edge.publish.mqtt import try_login

    mqtt_config = config.mqtt
    if not mqtt_config.enabled:
        doctor.report("mqtt", "skip", "disabled (events go to the log only)")
        return
    where = format_broker(mqtt_config.host, mqtt_config.port)
    try:
        # Its own client id: the daemon's id would disconnect a daemon that is running.
        why = try_login(mqtt_config, f"yuzug-doctor-{config.device_id}", doctor.timeout)
    except ConfigError as exc:  # an unreadable or invalid TLS file
        doctor.report("mqtt", "FAIL", f"{where}: {exc}")
        return
    if why is not None:
        doctor.report("mqtt", "FAIL", f"{where}: {why}")
        return
    user = mqtt_config.username or "anonymous"
    doctor.report("mqtt", "ok", f"{where}: connected as {user}{', TLS' if mqtt_config.tls else ''}")


def _check_privacy(doctor: Doctor, config: Any) -> None:
    """A device that analyses nothing because someone paused it is not broken: say so first."""
    from edge.publish.mqtt import read_pause_file

    path = config.mqtt.pause_file
    if config.mqtt.enabled and path is not None and read_pause_file(path):
        doctor.report(
            "privacy",
            "ok",
            f"the privacy switch is ON ({path}): the daemon keeps the camera closed and "
            "analyses nothing until pause/set OFF (this check still opens the camera once)",
        )
    if config.privacy.off_hours:
        import time

        span = config.privacy.closed_at(time.time())
        now = f"closed now ({span})" if span else "open now"
        doctor.report(
            "hours",
            "ok",
            f"privacy hours {', '.join(config.privacy.off_hours)}: the daemon's camera is {now}",
        )


def _check_spool(doctor: Doctor, config: Any) -> None:
    """Where undelivered events would survive a restart, and whether some already wait."""
    import os

    from edge.publish.spool import EventSpool

    if not config.mqtt.enabled:
        return
    path = config.mqtt.spool_file
    if path is None:
        doctor.report(
            "spool",
            "skip",
            "undelivered events are kept in memory only (no mqtt.spool_file; under systemd "
            "it is $STATE_DIRECTORY/pending-events.jsonl)",
        )
        return
    folder = next((p for p in (path.parent, *path.parent.parents) if p.exists()), path.parent)
    if not (folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)):
        doctor.report("spool", "FAIL", f"{path}: {folder} is not a writable folder")
        return
    # Only looks: a running daemon may be appending to the file.
    waiting = len(EventSpool(path, config.mqtt.queue_limit).load(repair=False))
    held = (
        f"{waiting} event{'s' if waiting > 1 else ''} from an earlier run wait"
        if waiting
        else "no event waits"
    )
    doctor.report("spool", "ok", f"{path}: {held}")


def _check_http(doctor: Doctor, config: Any) -> None:
    from edge.config import LOOPBACK_HOSTS

    http = config.http
    if not http.enabled:
        doctor.report("http", "skip", "live view disabled")
        return
    try:
        with socket.create_server((http.host, http.port)):
            pass
    except OSError as exc:
        doctor.report(
            "http",
            "FAIL",
            f"cannot listen on {http.host}:{http.port}: {exc.strerror or exc} (is yuzug-edge "
            "already running? stop it first, or pick another http.port)",
        )
        return
    where = f"{http.host}:{http.port} is free for the live view"
    if http.host in LOOPBACK_HOSTS:
        doctor.report("http", "ok", f"{where} (this machine only)")
    elif http.token is not None:
        doctor.report("http", "ok", f"{where}, which asks for its token")
    elif http.username:
        doctor.report("http", "ok", f"{where}, which asks {http.username} to log in")
    else:
        doctor.report(
            "http",
            "warn",
            f"{where}, where anyone on the network can watch the camera: give it a token "
            "(from a workstation: yuzug-deploy config HOST --set-secret http.token; here: the "
            "http_token credential or $YUZUG_HTTP_TOKEN)",
        )
