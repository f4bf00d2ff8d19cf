"""The daemon: one ``EdgeApp`` builds every component from the config, runs the analysis loop,
and unwinds in reverse on SIGTERM/SIGINT.

Start-up order: model (verified bundle) -> detector -> suggestions -> MQTT (connects in the
background) -> first retained state -> camera thread. A broken model or config exits with
status 78 (EX_CONFIG), which the systemd unit lists in ``RestartPreventExitStatus=`` so a bad
deployment is reported once instead of restarting in a loop. The one exception is the deploy
layout: when ``current`` is refused and ``previous`` loads, the daemon runs ``previous`` and
reports the refusal in ``/healthz`` (degraded) and ``/metrics``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edge.bundle import ModelBundle, load_bundle
from edge.camera import make_source
from edge.camera.base import Frame
from edge.classify.emotion import EmotionClassifier
from edge.config import (
    EdgeConfig,
    FolderCameraConfig,
    OpenCVCameraConfig,
    live_view_url,
    load_config,
    parse_broker,
    parse_config,
)
from edge.detect import (
    FaceDetector,
    detect_faces,
    make_detector,
    outside_boxes,
    region_boxes,
)
from edge.diary import MoodDiary
from edge.errors import CommandRefused, ConfigError, YuzugError
from edge.history import MoodEvent, MoodHistory
from edge.models import default_bundle_path
from edge.orientation import TurnWatch
from edge.personalize import (
    NOT_APPLIED_CODES,
    FittedForAnotherModel,
    NoPersonalization,
    PersonalizationError,
    PersonalRecorder,
    applied_words,
    load_personalization,
)
from edge.pipeline import CaptureThread, LatestFrameSlot, StageTimer
from edge.preprocess import Box
from edge.publish.mqtt import MQTTPublisher
from edge.publish.payloads import (
    discovery_messages,
    event_payload,
    fit_order,
    state_payload,
    utc_now,
    utc_timestamp,
)
from edge.suggestions import SuggestionPicker, load_catalogue, load_dismissed, save_dismissed
from edge.systemd import Notifier
from edge.tracking import NO_FACE, NONE, EmotionState, FaceTracker, Track

logger = logging.getLogger(__name__)

EXIT_CONFIG = 78  # sysexits.h EX_CONFIG: systemd's RestartPreventExitStatus skips restarts
EXIT_CAMERA_CRASHED = 70  # sysexits.h EX_SOFTWARE: a failure systemd's Restart=on-failure retries
STATE_REFRESH_SECONDS = 1.0
DIARY_PAGE_DAYS = 14


def resolve_config(args: argparse.Namespace) -> EdgeConfig:
    """Loads the config file and applies ``--source``, ``--model``, ``--personal``,
    ``--live-view`` and ``--broker``."""
    config = load_config(getattr(args, "config", None))
    data = config.model_dump()
    if data["mqtt"].get("password") is not None:
        data["mqtt"]["password"] = config.mqtt.password.get_secret_value()  # type: ignore[union-attr]
    source = getattr(args, "source", None)
    if source:
        path = Path(source)
        if path.is_dir() or path.suffix.lower() == ".zip":
            data["camera"] = FolderCameraConfig(path=path).model_dump()
        else:
            camera = data["camera"] if data["camera"]["type"] == "opencv" else {}
            data["camera"] = OpenCVCameraConfig(**{**camera, "source": source}).model_dump()
    if getattr(args, "model", None):
        data["classifier"]["model"] = args.model
    if getattr(args, "personal", None):
        data["classifier"]["personal_file"] = args.personal
    live_view = getattr(args, "live_view", None)
    if live_view is not None:
        data["http"].update(enabled=True, port=live_view)
    broker = getattr(args, "broker", None)
    if broker:
        try:
            host, port = parse_broker(broker, default_port=data["mqtt"]["port"])
        except ValueError as exc:
            raise ConfigError(f"--broker: {exc}") from None
        data["mqtt"].update(host=host, port=port, enabled=True)
    return parse_config(data, "config with command-line overrides")


@dataclass
class FrameResult:
    """What the last analysed frame showed: for the live view and tests."""

    frame: Frame
    boxes: list[Box]
    tracks: list[Track]
    emotion: str
    confidence: float
    suggestion: dict[str, str] | None = None
    labels: list[str] = field(default_factory=list)
    ignored_regions: list[Box] = field(default_factory=list)  # camera.ignore_regions, in pixels


class EdgeApp:
    def __init__(self, config: EdgeConfig) -> None:
        self.config = config
        self.stop_event = threading.Event()
        # Set while any reason in pause_reasons holds: the privacy switch ("switch") or the
        # privacy hours ("privacy_hours"). The camera is closed and nothing is analysed.
        self.paused = threading.Event()
        self.pause_reasons: set[str] = set()
        self._pause_lock = threading.Lock()
        self._privacy_span: str | None = None  # the off_hours span in force, for messages
        self.clock: Callable[[], float] = time.time  # the wall clock privacy.off_hours read
        self.notifier = Notifier()
        self._told_systemd: str | None = None  # the camera error systemd last heard of
        self.timer = StageTimer()
        self.turn_watch = TurnWatch(config.camera.turn_check_seconds)
        self.slot = LatestFrameSlot()
        self.started_at = time.monotonic()
        self.bundle: ModelBundle | None = None
        self.classifier: EmotionClassifier | None = None
        self.detector: FaceDetector | None = None
        self.publisher: MQTTPublisher | None = None
        self.capture: CaptureThread | None = None
        self.tracker: FaceTracker | None = None
        self.state: EmotionState | None = None
        self.picker: SuggestionPicker | None = None
        self.http: Any = None
        self.last_result: FrameResult | None = None
        self.history = MoodHistory(config.http.history_minutes * 60)
        d = config.diary
        self.diary = MoodDiary(d.file, d.keep_days) if d.enabled else None
        self.reload_requested = threading.Event()
        self.reload_failures = 0
        self.last_reload_error: str | None = None
        self._model_target: str | None = None
        # Whether one person's offsets apply: {"state": off | on | not_applied, ...}; "on"
        # adds the offsets and the number of recorded faces, "not_applied" the reason (and
        # its code: "other_model" or "unreadable").
        self.personal_fit: dict[str, Any] = {"state": "off"}
        self.recorder = PersonalRecorder(config.classifier.personal_file)
        # A fit finishing in the analysis thread and a "forget" from HTTP or MQTT must not
        # interleave (the forgotten offsets applied again, or a file saved after its deletion).
        self._personal_lock = threading.Lock()
        self._last_recording: dict[str, Any] | None = None
        self._last_reload_check = 0.0
        self.frames_analysed = 0
        self.faces_ignored = 0  # found in camera.ignore_regions (a TV, a poster) and left out
        self.events = 0
        self._since = utc_now()
        self._last_state_key: tuple[Any, ...] | None = None
        self._last_state_time = 0.0
        self._last_stats_time = time.monotonic()
        self._last_stats_frames = 0
        self._last_stats_captured = 0

    # -- start-up ---------------------------------------------------------------------------

    def start(self) -> None:
        self.init_analysis()
        self.init_publisher()
        self.check_privacy_hours()  # before the camera opens: no picture inside those hours
        self.publish_state(force=True)
        self.init_http()
        self.init_capture()

    def init_analysis(self) -> None:
        """What :meth:`analyse` needs: the model, the detector and the suggestions (a bench, a
        test or a figure calls it alone, without camera, broker or live view)."""
        self.init_model()
        self.init_detector()
        self.init_suggestions()

    def _model_path(self) -> Path:
        return self.config.classifier.model or default_bundle_path()

    def _load_model(self, target: str) -> tuple[ModelBundle, EmotionClassifier]:
        bundle = load_bundle(target)
        classifier = EmotionClassifier.from_bundle(
            bundle,
            num_threads=self.config.classifier.num_threads,
            flip_average=self.config.classifier.flip_average,
            average_framings=self.config.classifier.average_framings,
        )
        return bundle, classifier

    def _install_model(
        self, bundle: ModelBundle, classifier: EmotionClassifier, target: str
    ) -> None:
        """Makes a loaded model current, with fresh tracks; the reported emotion carries over."""
        self.bundle, self.classifier, self._model_target = bundle, classifier, target
        classifier.offsets, self.personal_fit = self._personal_offsets(bundle)
        self.recorder.cancel("the model changed during the recording", "model_changed")
        e = self.config.emotion
        self.tracker = FaceTracker(e.smoothing, e.track_iou, e.track_timeout_seconds)
        self.state = EmotionState(
            labels=bundle.labels,
            min_confidence=e.min_confidence,
            stable_seconds=e.stable_seconds,
            no_face_seconds=e.no_face_seconds,
            abstain_label=bundle.manifest.abstain_label,
            current=self.state.current if self.state else NO_FACE,
        )

    def _personal_offsets(self, bundle: ModelBundle) -> tuple[np.ndarray | None, dict[str, Any]]:
        """The personalization file's offsets for this model, and what became of them (see
        ``personal_fit``). A bad or stale file is logged and left out: the daemon runs on with
        the model's own scores."""
        path = self.config.classifier.personal_file
        if path is None:
            return None, {"state": "off"}
        try:
            personal = load_personalization(path)
            offsets = personal.offsets_for(bundle)
        except NoPersonalization:
            return None, {"state": "off"}
        except PersonalizationError as exc:
            logger.warning("personal offsets not applied: %s", exc)
            other_model, unreadable = NOT_APPLIED_CODES
            code = other_model if isinstance(exc, FittedForAnotherModel) else unreadable
            return None, {"state": "not_applied", "reason": str(exc), "code": code}
        logger.info("personal offsets applied: %s", personal.describe())
        return offsets, personal.applied()

    @property
    def personal(self) -> str:
        """``personal_fit`` in words (``on: sad -0.20 (from 96 recorded faces)``)."""
        return applied_words(self.personal_fit)

    def init_model(self) -> None:
        # A `current` symlink is resolved once, so a deploy that switches it is noticed.
        target = os.path.realpath(self._model_path())
        try:
            self._install_model(*self._load_model(target), target)
        except YuzugError as exc:
            fallback = self._previous_version()
            if fallback is None:
                raise
            # A bundle damaged on the device after its push (an SD card, a power cut) would
            # otherwise stop the daemon until someone pushes again: run the last version that
            # was deployed, and report the refusal like a refused reload.
            self._install_model(*self._load_model(fallback), fallback)
            self._count_refusal(target, exc)
            logger.error("model refused, running the previous version %s: %s", fallback, exc)
        assert self.bundle is not None and self.classifier is not None
        logger.info(
            "model %s (%s, labels %s) on %s",
            self.bundle.manifest.full_name,
            self.bundle.manifest.quantization,
            ", ".join(self.bundle.labels),
            self.classifier.runtime,
        )

    def _previous_version(self) -> str | None:
        """The deploy layout's ``previous`` bundle, when the model is its ``current`` symlink."""
        configured = self._model_path()
        previous = configured.with_name("previous")
        if configured.name != "current" or not configured.is_symlink() or not previous.is_dir():
            return None
        return os.path.realpath(previous)

    def init_detector(self) -> None:
        self.detector = make_detector(
            self.config.detector, measure_lean=self.config.classifier.straighten_faces
        )
        logger.info("face detector: %s", self.detector.name)

    def init_suggestions(self) -> None:
        s = self.config.suggestions
        self.picker = SuggestionPicker(
            load_catalogue(s.language, s.catalogue),
            s.cooldown_seconds,
            dismissed=load_dismissed(s.dismissed_file),
        )
        if self.picker.dismissed:
            logger.info(
                "suggestions: %d dismissed by a person are not suggested (%s)",
                len(self.picker.dismissed),
                ", ".join(sorted(self.picker.dismissed)),
            )

    def init_publisher(self) -> None:
        if not self.config.mqtt.enabled:
            logger.info("MQTT disabled: events go to the log only")
            return
        self.publisher = MQTTPublisher(
            self.config.mqtt,
            self.config.device_id,
            on_pause=self._on_pause,
            discovery=self._discovery,
            commands={
                "personal/set": _from_mqtt("personalization", self.personal_command),
                "suggestion/set": _from_mqtt("suggestion", self.suggestion_command),
            },
        )
        if self.publisher.paused:  # before the camera opens: a restart keeps the privacy switch
            self._set_pause("switch", True)
            logger.info("analysis paused: the privacy switch was ON before this start")
        self.publisher.start()

    def init_http(self) -> None:
        if not self.config.http.enabled:
            return
        from edge.http import HTTPService

        try:
            self.http = HTTPService(self, self.config.http)
        except OSError as exc:
            raise ConfigError(
                f"http: cannot listen on {self.config.http.host}:{self.config.http.port}: {exc}"
            ) from exc
        self.http.start()

    def reload_model(self) -> bool:
        """Loads the bundle the config points to now and swaps it in, keeping MQTT connected.

        A bundle that fails verification is refused: the running model stays, and the refusal
        is logged and counted (``/metrics``, ``/healthz``).
        """
        target = os.path.realpath(self._model_path())
        try:
            bundle, classifier = self._load_model(target)
        except YuzugError as exc:
            self._count_refusal(target, exc)
            logger.error("model reload refused, keeping %s: %s", self.model_version, exc)
            return False
        old = self.model_version
        self._install_model(bundle, classifier, target)
        self.last_reload_error = None
        logger.info("model reloaded: %s -> %s", old, self.model_version)
        if self.publisher is not None:
            self.publisher.republish_discovery()
        self.publish_state(force=True)
        return True

    def _count_refusal(self, target: str, exc: YuzugError) -> None:
        """Reports a refused bundle in ``/healthz`` and ``/metrics``. Its target counts as seen,
        so the same broken bundle is not retried every poll; a new push is still noticed."""
        self.reload_failures += 1
        self.last_reload_error = str(exc)
        self._model_target = target

    def _maybe_reload(self, now: float) -> None:
        if self.reload_requested.is_set():
            self.reload_requested.clear()
            self.reload_model()
            return
        if now - self._last_reload_check < 2.0:
            return
        self._last_reload_check = now
        if os.path.realpath(self._model_path()) != self._model_target:
            self.reload_model()

    def init_capture(self) -> None:
        self.capture = CaptureThread(
            make_source(self.config.camera),
            self.slot,
            self.stop_event,
            self.paused,
            self.timer,
            on_status=lambda status: self.publish_state(force=True),
        )
        self.capture.start()

    def _discovery(self) -> list[tuple[str, dict[str, Any]]]:
        assert self.bundle is not None and self.publisher is not None
        emotions = [
            label for label in self.bundle.labels if label != self.bundle.manifest.abstain_label
        ]
        return discovery_messages(
            topics=self.publisher.topics,
            discovery_prefix=self.config.mqtt.discovery_prefix,
            emotions=emotions,
            model_version=self.model_version,
            software_version=_version(),
            stats_interval_seconds=self.config.mqtt.stats_interval_seconds,
            configuration_url=live_view_url(
                self.config.http, self.http.port if self.http else self.config.http.port
            ),
            fit_labels=self.bundle.labels if self.recorder.path is not None else None,
            diary=self.diary is not None,
            language=self.config.suggestions.language,
            suggestable=[e for e in emotions if self.picker and e in self.picker.catalogue],
        )

    @property
    def model_version(self) -> str:
        return self.bundle.manifest.full_name if self.bundle else "none"

    @property
    def camera_status(self) -> str:
        return self.capture.status if self.capture else "starting"

    @property
    def reported_emotion(self) -> str:
        """The emotion as published: ``paused`` while the camera is closed for privacy."""
        assert self.state is not None
        return "paused" if self.paused.is_set() else self.state.current

    @property
    def face_count(self) -> int:
        return len(self.last_result.tracks) if self.last_result else 0

    def _set_pause(self, reason: str, on: bool) -> bool:
        """Adds or removes one reason to keep the camera closed; it stays closed while any
        holds. Returns whether ``reason`` changed (the switch and the clock run on different
        threads, hence the lock)."""
        with self._pause_lock:
            changed = (reason in self.pause_reasons) != on
            if on:
                self.pause_reasons.add(reason)
            else:
                self.pause_reasons.discard(reason)
            if self.pause_reasons:
                if not self.paused.is_set():
                    self.last_result = None  # nothing of the last picture stays on offer
                    # Frames stop now: a recording would wait, half done, until the camera
                    # opens again, and then finish on whoever is in view by then.
                    self.recorder.cancel("the camera was closed during the recording", "paused")
                self.paused.set()
            else:
                self.paused.clear()
            return changed

    @property
    def paused_by(self) -> list[str]:
        """The reasons the camera is closed, sorted; read under the lock, since the MQTT
        thread may change them while the loop publishes."""
        with self._pause_lock:
            return sorted(self.pause_reasons)

    @property
    def pause_note(self) -> str:
        """Why the camera is closed, for people: refusals, the log."""
        hours = self.privacy_hours_closing
        return f"privacy hours {hours}" if hours else "the privacy switch is on"

    @property
    def privacy_hours_closing(self) -> str | None:
        """The ``privacy.off_hours`` span keeping the camera closed now ("22-7"), if one does."""
        return self._privacy_span if "privacy_hours" in self.pause_reasons else None

    def _on_pause(self, paused: bool) -> None:
        self._set_pause("switch", paused)
        logger.info("analysis %s by MQTT command", "paused" if paused else "resumed")
        if not paused and self.paused.is_set():
            logger.info("the camera stays closed: %s", self.pause_note)
        self.publish_state(force=True)

    def check_privacy_hours(self) -> None:
        """Closes the camera inside ``privacy.off_hours`` and opens it after them (unless the
        switch is on); checked at start and on every pass of the loop."""
        span = self.config.privacy.closed_at(self.clock())
        if span is not None:
            self._privacy_span = span
        if self._set_pause("privacy_hours", span is not None):
            if span is not None:
                logger.info("privacy hours %s: the camera is closed until they end", span)
            else:
                logger.info("privacy hours %s are over", self._privacy_span)
            self.publish_state(force=True)

    # -- main loop --------------------------------------------------------------------------

    def run(self, max_frames: int = 0) -> int:
        """Runs until SIGTERM/SIGINT, the end of a finite source, or ``max_frames``."""
        previous = {}
        # Signal handlers can only be installed from the main thread (tests run apps in others).
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                previous[sig] = signal.signal(sig, self._on_signal)
        try:
            try:
                self.start()
            except YuzugError as exc:
                logger.error("%s", exc)
                return EXIT_CONFIG
            return self.loop(max_frames)
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGHUP:
            logger.info("received SIGHUP: reloading the model")
            self.reload_requested.set()
            return
        logger.info("received %s, stopping", signal.Signals(signum).name)
        self.stop_event.set()

    def loop(self, max_frames: int = 0) -> int:
        assert self.capture is not None
        last_analysed = -float("inf")
        while not self.stop_event.is_set():
            self.check_privacy_hours()
            frame = self.slot.get(timeout=0.5)
            now = time.monotonic()
            self._maybe_reload(now)
            if frame is None:
                if self.capture.ended.is_set():
                    break
                if self.paused.is_set():
                    self.notifier.watchdog()  # paused is healthy, not hung
                elif self.capture.status == "lost" and self.capture.responsive(now):
                    # Retrying a camera that is gone is the daemon working: restarting it
                    # (watchdog) or failing its start (no READY) would only add a restart loop.
                    if self._told_systemd != self.capture.last_error:
                        self._told_systemd = self.capture.last_error
                        self.notifier.ready(f"camera lost, retrying: {self._told_systemd}")
                    self.notifier.watchdog()
                self.publish_state()  # camera status changes reach the state while no frames
                self._record(now, None)  # a recording ends on time without faces too
                self._remember(now)
                self._maybe_stats(now)
                continue
            if now < last_analysed + self.frame_period():
                continue  # taken from the slot all the same: a skipped frame is not a dropped one
            last_analysed = now
            self.analyse(frame)
            self._remember(now)
            if self.turn_watch.due(now) and not self.idle:  # an empty room has no answer
                self._check_turn(frame, now)
            if self.frames_analysed == 1 or self._told_systemd is not None:
                self._told_systemd = None
                self.notifier.ready(f"analysing with {self.model_version}")
            # Frames, a pause or a camera being retried pet the watchdog; a camera call that
            # hangs (HUNG_CALL_SECONDS) or a stuck loop does not, and systemd restarts us.
            self.notifier.watchdog()
            self._maybe_stats(now)
            if max_frames and self.frames_analysed >= max_frames:
                break
        if self.capture.status == "failed":
            # Not the end of a video: exiting 0 would leave the device unwatched for good.
            logger.error(
                "stopping: the capture thread crashed (above); exit %d so that "
                "systemd restarts the daemon",
                EXIT_CAMERA_CRASHED,
            )
            return EXIT_CAMERA_CRASHED
        return 0

    def _check_turn(self, frame: Frame, now: float) -> None:
        """Asks whether the faces look turned (edge.orientation); says so when that changes."""
        assert self.detector is not None
        if not self.turn_watch.observe(frame, self.detector, now):
            return
        rotation = self.suggested_rotation
        self.publish_state(force=True)  # Home Assistant's "Camera rotation to set"
        if rotation is None:
            logger.info("faces look upright again")
        else:
            logger.warning(
                "faces look upright when the picture is turned %d degrees clockwise: is the "
                "camera mounted turned? set camera.rotation = %d (yuzug-edge doctor checks it); "
                "someone lying down looks so too, and their face is read turned as it is",
                self.turn_watch.suggested,
                rotation,
            )

    @property
    def suggested_rotation(self) -> int | None:
        """The ``camera.rotation`` that would stand the faces upright, while they look turned."""
        turn = self.turn_watch.suggested
        return None if turn is None else (self.config.camera.rotation + turn) % 360

    @property
    def idle(self) -> bool:
        """Nobody in view, no fit recording, nobody watching the live view: ``idle_fps`` holds.
        A face in the last analysed frame ends it at once, before the emotion is settled."""
        return bool(
            self.config.classifier.idle_fps
            and self.state is not None
            and self.state.current == NO_FACE
            and self.face_count == 0
            and not self.recorder.recording
            and not (self.http is not None and self.http.viewers)
        )

    def frame_period(self) -> float:
        """The seconds to leave between two analysed frames (0: analyse every frame)."""
        c = self.config.classifier
        period = 1.0 / c.max_fps if c.max_fps else 0.0
        return max(period, 1.0 / c.idle_fps) if self.idle else period

    def analyse(self, frame: Frame) -> FrameResult:
        assert self.detector and self.classifier and self.tracker and self.state
        t0 = time.perf_counter()
        height, width = frame.image.shape[:2]
        ignored = region_boxes(self.config.camera.ignore_regions, width, height)
        found = detect_faces(self.detector, frame, video=True)
        faces = outside_boxes(found, ignored)
        self.faces_ignored += len(found) - len(faces)
        faces = faces[: self.config.classifier.max_faces]
        boxes = [face.box for face in faces]
        t1 = time.perf_counter()
        straighten = self.config.classifier.straighten_faces
        crops = self.classifier.face_crops(frame.image, faces, straighten)
        t2 = time.perf_counter()
        own = (
            self.classifier.own_probabilities(crops, self.classifier.framings)
            if boxes
            else np.zeros((0, len(self.classifier.labels)), np.float32)
        )
        probabilities = self.classifier.personalized(own)
        t3 = time.perf_counter()
        now = time.monotonic()
        self._record(now, own[0] if boxes else None)
        rolls = [face.roll for face in faces] if straighten else None
        tracks = self.tracker.update(boxes, probabilities, now, rolls)
        primary = tracks[0] if tracks else None
        change = self.state.observe(primary, now)
        if change is not None:
            self._emit_event(change.emotion, change.previous, change.confidence)
        self.publish_state()
        t4 = time.perf_counter()
        for stage, start, end in (
            ("detect", t0, t1),
            ("preprocess", t1, t2),
            ("classify", t2, t3),
            ("publish", t3, t4),
        ):
            self.timer.add(stage, (end - start) * 1000)
        self.timer.add_latency((time.monotonic() - frame.timestamp) * 1000)
        self.frames_analysed += 1
        result = FrameResult(
            frame,
            boxes,
            tracks,
            self.state.current,
            self.state.confidence,
            self.current_suggestion(),
            self.classifier.labels,
            ignored,
        )
        self.last_result = result
        return result

    # -- personalization from the live page ------------------------------------------------

    def personal_command(self, command: Any) -> dict[str, Any]:
        """``{"record": LABEL, "seconds": S, "delay": D}`` (8 s, no delay by default) or
        ``{"forget": true}``, from the live page or MQTT. Returns the view's ``personal`` part.

        Raises:
            ValueError: the command is malformed.
            CommandRefused: the camera is closed, or a recording already runs.
            PersonalizationError: it cannot be carried out (see the message).
        """
        assert self.bundle is not None
        if isinstance(command, dict) and command.get("forget") is True:
            self.forget_personal()
        elif isinstance(command, dict) and isinstance(command.get("record"), str):
            seconds, delay = (_number(command, key, default) for key, default in TIMES)
            if self.paused.is_set():
                raise CommandRefused(f"{self.pause_note}: no face is analysed", "paused")
            self.recorder.start(
                command["record"], seconds, self.bundle.labels, time.monotonic(), delay
            )
        else:
            raise ValueError('expected {"record": LABEL, "seconds": S} or {"forget": true}')
        self.publish_state(force=True)
        return self.personal_view()

    @property
    def personal_status(self) -> str:
        """For the state topic: ``recording``, ``on``, ``not_applied`` or ``off``."""
        return "recording" if self.recorder.recording else self.personal_fit["state"]

    def _record(self, now: float, scores: np.ndarray | None) -> None:
        assert self.bundle is not None and self.classifier is not None
        if self.recorder.recording is None and self.recorder.last is self._last_recording:
            return  # nothing recording and nothing new to say: no lock in the frame path
        with self._personal_lock:
            personal = self.recorder.observe(now, scores, self.bundle)
            if personal is not None:  # fitted for this bundle just now
                self.classifier.offsets = personal.offsets_for(self.bundle)
                self.personal_fit = personal.applied()
        if personal is not None or self.recorder.last is not self._last_recording:
            self._last_recording = self.recorder.last
            self.publish_state(force=True)  # the fit's status changed

    def forget_personal(self) -> None:
        """Deletes the recordings and runs on the model's own scores."""
        with self._personal_lock:
            self.recorder.forget()
            if self.classifier is not None:
                self.classifier.offsets = None
            self.personal_fit = {"state": "off"}
        logger.info("personalization forgotten: the model's own scores from now on")

    # -- suggestions a person asks for or turns down ------------------------------------------

    def suggestion_command(self, command: Any) -> dict[str, Any]:
        """``{"next": true}`` (another suggestion for the emotion reported now),
        ``{"dismiss": true}`` (not the one shown now, nor ever again; then another),
        ``{"dismiss": ID}`` (that one, wherever it is shown) or ``{"restore": true}`` (bring
        every dismissed one back), from the live page or MQTT. Returns the view's
        ``suggestions`` part.

        Raises:
            ValueError: the command is malformed.
            CommandRefused: there is nothing to do it on now (see the message).
        """
        assert self.picker is not None
        if not isinstance(command, dict) or len(command) != 1:
            raise ValueError(
                'expected {"next": true}, {"dismiss": true}, {"dismiss": ID} or {"restore": true}'
            )
        ((verb, value),) = command.items()
        if verb == "restore" and value is True:
            count = self.picker.restore()
            self._save_dismissed()
            logger.info("suggestions: %d dismissed ones are suggested again", count)
        elif verb == "dismiss" and (value is True or isinstance(value, str)):
            shown = self.current_suggestion()
            if value is not True:
                target = value
            elif shown is not None:
                target = shown["id"]
            else:
                raise CommandRefused(
                    f"no suggestion is shown for {self.reported_emotion!r} now", "nothing_shown"
                )
            try:
                self.picker.dismiss(target)
            except KeyError:
                raise CommandRefused(
                    f"no suggestion has the id {target!r}", "unknown_suggestion"
                ) from None
            self._save_dismissed()
            logger.info("suggestions: %r dismissed, not suggested again", target)
            if shown and shown["id"] == target:
                self._suggest_again()
        elif verb == "next" and value is True:
            emotion, shown = self.reported_emotion, self.current_suggestion()
            if not self.askable:
                raise CommandRefused(f"nothing to suggest for {emotion!r}", "nothing_to_suggest")
            given = self._suggest_again()
            if given is None or given == shown:
                raise CommandRefused(
                    f"no other suggestion for {emotion!r} suits this hour", "no_other_suggestion"
                )
        else:
            raise ValueError(f"unknown suggestion command {command!r}")
        self.publish_state(force=True)
        return self.suggestions_view()

    def _suggest_again(self) -> dict[str, str] | None:
        """Another suggestion for the emotion reported now, as a person asked (no cooldown)."""
        assert self.picker is not None
        emotion = self.reported_emotion
        suggestion = self.picker.pick(
            emotion, time.monotonic(), time.localtime().tm_hour, asked=True
        )
        if suggestion is not None:
            logger.info("suggestion for %s, asked for: %s", emotion, suggestion.text)
        return suggestion.as_payload() if suggestion else None

    def _save_dismissed(self) -> None:
        """Keeps the dismissed ids on disk; a disk that cannot be written is logged, and they
        hold until the daemon stops."""
        assert self.picker is not None
        path = self.config.suggestions.dismissed_file
        if path is None:
            return
        try:
            save_dismissed(path, self.picker.dismissed)
        except OSError as exc:
            logger.warning(
                "suggestions: cannot write %s (%s): kept until the daemon stops", path, exc
            )

    def suggestions_view(self) -> dict[str, Any]:
        """The live page's suggestion box: what is shown, whether another can be asked for
        (not while nobody is in view, nor paused), and how many are dismissed."""
        return {
            "current": self.current_suggestion(),
            "askable": self.askable,
            "dismissed": len(self.picker.dismissed) if self.picker else 0,
        }

    @property
    def askable(self) -> bool:
        """Whether the emotion reported now has suggestions to ask for."""
        return self.picker is not None and self.reported_emotion in self.picker.catalogue

    def _remember(self, now: float) -> None:
        """Adds the emotion reported now to the live page's timeline."""
        assert self.state is not None
        emotion = self.reported_emotion
        self.history.record(now, emotion, self.state.confidence if emotion != "paused" else 0.0)
        if self.diary is not None:
            self.diary.note(now, date.today(), emotion)

    def current_suggestion(self) -> dict[str, str] | None:
        """The latest suggestion for the emotion reported now: a screen never pairs "sad"
        with an idea that was given for "happy" (or shows one while nobody is there)."""
        if self.picker is None or self.state is None:
            return None
        suggestion = self.picker.latest(self.reported_emotion)
        return suggestion.as_payload() if suggestion else None

    def _emit_event(self, emotion: str, previous: str, confidence: float) -> None:
        assert self.picker is not None
        self._since = utc_now()
        suggestion = self.picker.pick(emotion, time.monotonic(), time.localtime().tm_hour)
        suggestion_dict = suggestion.as_payload() if suggestion else None
        self.events += 1
        self.history.add_event(
            MoodEvent(
                time.monotonic(),
                emotion,
                previous,
                confidence,
                suggestion.text if suggestion else None,
            )
        )
        payload = event_payload(
            device_id=self.config.device_id,
            emotion=emotion,
            previous=previous,
            confidence=confidence,
            model_version=self.model_version,
            suggestion=suggestion_dict,
            sequence=self.events,
        )
        logger.info(
            "emotion %s -> %s (%.0f%%)%s",
            previous,
            emotion,
            confidence * 100,
            f"; suggestion: {suggestion.text}" if suggestion else "",
        )
        if self.publisher is not None:
            self.publisher.publish_event(payload)

    def primary_scores(self) -> dict[str, float]:
        """The smoothed scores of the largest face in the last analysed frame, by label.

        By the labels of the model that analysed that frame: right after a hot reload to a
        model with other labels the frame is still the old model's.
        """
        result = self.last_result
        if result is None or not result.tracks:
            return {}
        return {
            label: round(float(p), 4)
            for label, p in zip(result.labels, result.tracks[0].scores, strict=True)
        }

    def publish_state(self, force: bool = False) -> None:
        if self.publisher is None or self.state is None:
            return
        faces, camera, emotion = self.face_count, self.camera_status, self.reported_emotion
        personal, rotation = self.personal_status, self.suggested_rotation
        key = (emotion, faces, camera, personal, rotation)
        now = time.monotonic()
        if (
            not force
            and key == self._last_state_key
            and (now - self._last_state_time < STATE_REFRESH_SECONDS or emotion == NO_FACE)
        ):
            return
        self.publisher.publish_state(
            state_payload(
                device_id=self.config.device_id,
                emotion=emotion,
                confidence=self.state.confidence,
                faces=faces,
                paused=self.paused.is_set(),
                paused_by=self.paused_by,
                model_version=self.model_version,
                camera=camera,
                since=self._since,
                scores=self.primary_scores(),
                suggestion=self.current_suggestion(),
                personal=personal,
                suggested_rotation=rotation,
            )
        )
        self._last_state_key = key
        self._last_state_time = now

    def stats(self) -> dict[str, Any]:
        """Counters and timings, as published on the stats topic."""
        now = time.monotonic()
        elapsed = max(now - self._last_stats_time, 1e-6)
        captured = self.capture.frames if self.capture else 0
        stats: dict[str, Any] = {
            "device": self.config.device_id,
            "uptime_s": round(now - self.started_at, 1),
            "fps": round((self.frames_analysed - self._last_stats_frames) / elapsed, 2),
            "capture_fps": round((captured - self._last_stats_captured) / elapsed, 2),
            "frames_analysed": self.frames_analysed,
            "frames_captured": captured,
            "frames_dropped": self.slot.dropped,
            "faces_ignored": self.faces_ignored,
            "idle": self.idle,
            "camera": self.camera_status,
            "camera_errors": self.capture.errors if self.capture else 0,
            "events": self.events,
            "latency": self.timer.summary(),
            "model_version": self.model_version,
            "timestamp": utc_now(),
        }
        if self.publisher is not None:
            stats["mqtt"] = dict(self.publisher.counters)
        temperature = cpu_temperature()
        if temperature is not None:
            stats["cpu_temperature_c"] = temperature
        return stats

    def health(self) -> dict[str, Any]:
        """``/healthz``: camera, model, broker and the last frame; status ok or degraded."""
        camera = self.camera_status
        last = self.capture.last_frame_time if self.capture else None
        seen = self.capture.last_frame_monotonic if self.capture else None
        age = round(time.monotonic() - seen, 2) if seen is not None else None
        broker: dict[str, Any] = {"enabled": self.publisher is not None}
        if self.publisher is not None:
            broker.update(
                connected=self.publisher.connected.is_set(),
                endpoint=self.publisher.endpoint,
                last_error=self.publisher.last_error,
                **self.publisher.counters,
            )
        problems = []
        if camera not in ("ok", "paused"):
            problems.append(f"camera {camera}")
        elif camera == "ok" and (age is None or age > 10):
            problems.append("no recent frame")
        if self.publisher is not None and not self.publisher.connected.is_set():
            problems.append("broker disconnected")
        if self.last_reload_error is not None:
            problems.append(f"model refused, running {self.model_version}")
        return {
            "status": "degraded" if problems else "ok",
            "problems": problems,
            "camera": {
                "status": camera,
                "errors": self.capture.errors if self.capture else 0,
                "last_error": self.capture.last_error if self.capture else None,
                # Set while the faces look turned: the rotation that would stand them upright.
                "suggested_rotation": self.suggested_rotation,
            },
            "model": {
                "version": self.model_version,
                "reload_failures": self.reload_failures,
                "last_reload_error": self.last_reload_error,
                "personal": self.personal,
            },
            "broker": broker,
            "last_frame_time": utc_timestamp(last) if last else None,
            "last_frame_age_s": age,
            "frames_analysed": self.frames_analysed,
            "events": self.events,
            "uptime_s": round(time.monotonic() - self.started_at, 1),
        }

    def view_state(self) -> dict[str, Any]:
        """What the live page shows next to the video."""
        assert self.state is not None
        suggestions = self.suggestions_view()
        return {
            "emotion": self.reported_emotion,
            "confidence": round(self.state.confidence, 4),
            "faces": self.face_count,
            "scores": self.primary_scores(),
            "suggestion": suggestions["current"],  # as before the box: for clients that read it
            "suggestions": suggestions,
            "fps": self.timer.recent_fps(),
            "suggested_rotation": self.suggested_rotation,
            "camera": self.camera_status,
            "privacy_hours": self.privacy_hours_closing,
            "model_version": self.model_version,
            "personal": self.personal_view(),
            "ignore_regions": [list(region) for region in self.config.camera.ignore_regions],
        }

    def personal_view(self) -> dict[str, Any]:
        """The live page's fit box: the recording now or the last one, and what applies."""
        return {
            **self.recorder.status(time.monotonic()),
            "applied": self.personal,
            "fit": self.personal_fit,
            "labels": fit_order(self.classifier.labels) if self.classifier else [],
        }

    def _maybe_stats(self, now: float) -> None:
        if now - self._last_stats_time < self.config.mqtt.stats_interval_seconds:
            return
        payload = self.stats()
        if self.publisher is not None:
            self.publisher.publish_stats(payload)
        if self.diary is not None:
            today = date.today()
            self.diary.maybe_save(now, today)
            if self.publisher is not None:
                self.publisher.publish_diary(self.diary_payload(today))
        self._last_stats_time = now
        self._last_stats_frames = self.frames_analysed
        self._last_stats_captured = self.capture.frames if self.capture else 0

    def diary_view(self) -> dict[str, Any]:
        """``/api/diary``: the last ``DIARY_PAGE_DAYS`` days, and the labels in stacking order."""
        if self.diary is None:
            return {"enabled": False, "days": [], "labels": []}
        labels = [*(self.classifier.labels if self.classifier else []), NONE]
        return {
            "enabled": True,
            "days": self.diary.days(date.today(), DIARY_PAGE_DAYS),
            "labels": list(dict.fromkeys(labels)),
        }

    def diary_payload(self, today: date) -> dict[str, Any]:
        """The diary topic: today's seconds per emotion, as ``edge.diary`` sums them."""
        assert self.diary is not None
        return {
            "schema": 1,
            "device": self.config.device_id,
            **self.diary.day(today),
            "timestamp": utc_now(),
        }

    # -- shutdown ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Stops every component in reverse start order; each gets its own try."""
        self.stop_event.set()
        self.notifier.stopping()
        if self.capture is not None and self.capture.is_alive():
            self.capture.join(timeout=5)
        if self.http is not None:
            try:
                self.http.stop()
            except Exception:  # noqa: BLE001 - shutdown must go on
                logger.exception("stopping the HTTP server failed")
        if self.publisher is not None:
            try:
                self.publisher.close()
            except Exception:  # noqa: BLE001 - shutdown must go on
                logger.exception("closing MQTT failed")
        if self.detector is not None:
            try:
                self.detector.close()
            except Exception:  # noqa: BLE001
                logger.exception("closing the detector failed")
        if self.diary is not None:  # the day so far, not only up to the last periodic save
            self.diary.maybe_save(time.monotonic(), date.today(), force=True)


def _from_mqtt(what: str, command: Callable[[Any], Any]) -> Callable[[str], None]:
    """A command topic's handler: the JSON payload to ``command``; a malformed or refused
    command is logged (a broker's message has nobody to answer) and ignored."""

    def handle(text: str) -> None:
        try:
            command(json.loads(text))
        except (ValueError, YuzugError) as exc:  # JSONDecodeError is a ValueError
            logger.warning("MQTT: %s command %r refused: %s", what, text[:80], exc)

    return handle


TIMES = (("seconds", 8.0), ("delay", 0.0))  # a recording command's times, and defaults


def _number(command: dict[str, Any], key: str, default: float) -> float:
    value = command.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{key} must be a number, not {value!r}")
    return float(value)


def cpu_temperature() -> float | None:
    """The SoC temperature on a Pi (and most Linux boards); ``None`` where unreadable."""
    try:
        return round(int(Path("/sys/class/thermal/thermal_zone0/temp").read_text()) / 1000, 1)
    except (OSError, ValueError):
        return None


def _version() -> str:
    try:
        return metadata.version("yuzug")
    except metadata.PackageNotFoundError:
        return os.environ.get("YUZUG_VERSION", "dev")
