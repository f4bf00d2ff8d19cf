"""Capture thread -> newest-frame-wins slot -> analysis, with per-stage timings and counters.

A slow classifier must never grow memory or add latency: the capture thread overwrites the one
waiting frame instead of queueing behind it, and counts the frame it dropped. A camera that
fails or stalls is closed and reopened with exponential backoff; the loss is visible in the
stats and the state until frames flow again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from edge.camera.base import CameraError, EndOfStream, Frame, FrameSource

logger = logging.getLogger(__name__)

STAGES = ("capture", "detect", "preprocess", "classify", "publish")


class LatestFrameSlot:
    """A one-frame queue where the newest frame wins; overwritten frames are counted."""

    def __init__(self) -> None:
        self._frame: Frame | None = None
        self._condition = threading.Condition()
        self.dropped = 0

    def put(self, frame: Frame) -> None:
        with self._condition:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._condition.notify()

    def get(self, timeout: float) -> Frame | None:
        with self._condition:
            if self._frame is None:
                self._condition.wait(timeout)
            frame, self._frame = self._frame, None
            return frame


# Histogram bucket bounds in milliseconds, for /metrics (Prometheus wants seconds).
BUCKETS_MS = (0.5, 1, 2, 5, 10, 20, 50, 100, 250, 500, 1000)


class StageTimer:
    """Recent per-stage durations (ms) for percentiles, plus lifetime histograms."""

    def __init__(self, window: int = 2000) -> None:
        self.samples: dict[str, deque[float]] = {s: deque(maxlen=window) for s in STAGES}
        self.frame_latency: deque[float] = deque(maxlen=window)
        self.frame_ends: deque[float] = deque(maxlen=window)
        names = (*STAGES, "frame")
        self.histograms = {s: [0] * (len(BUCKETS_MS) + 1) for s in names}
        self.sums = dict.fromkeys(names, 0.0)
        self._lock = threading.Lock()

    def _observe(self, name: str, milliseconds: float) -> None:
        index = next(
            (i for i, bound in enumerate(BUCKETS_MS) if milliseconds <= bound), len(BUCKETS_MS)
        )
        self.histograms[name][index] += 1
        self.sums[name] += milliseconds

    def add(self, stage: str, milliseconds: float) -> None:
        with self._lock:
            self.samples[stage].append(milliseconds)
            self._observe(stage, milliseconds)

    def add_latency(self, milliseconds: float) -> None:
        with self._lock:
            self.frame_latency.append(milliseconds)
            self.frame_ends.append(time.monotonic())
            self._observe("frame", milliseconds)

    def recent_fps(self, seconds: float = 5.0) -> float:
        """Analysed frames per second over the last ``seconds``."""
        now = time.monotonic()
        with self._lock:
            count = sum(1 for t in self.frame_ends if now - t <= seconds)
        return round(count / seconds, 2)

    def histogram_snapshot(self) -> dict[str, tuple[list[int], float]]:
        with self._lock:
            return {k: (list(v), self.sums[k]) for k, v in self.histograms.items()}

    def summary(self) -> dict[str, dict[str, float]]:
        with self._lock:
            series = {
                **{s: list(v) for s, v in self.samples.items()},
                "frame": list(self.frame_latency),
            }
        out = {}
        for name, values in series.items():
            if values:
                array = np.asarray(values)
                out[name] = {
                    "mean_ms": round(float(array.mean()), 3),
                    "p50_ms": round(float(np.percentile(array, 50)), 3),
                    "p99_ms": round(float(np.percentile(array, 99)), 3),
                }
        return out


# One open() or read() running longer than this counts as hung: the frame loop then stops
# petting the systemd watchdog, which restarts the daemon. Network streams time out well
# before (edge.camera.opencv_source); a camera that is merely gone is retried, not restarted.
HUNG_CALL_SECONDS = 20.0


class CaptureThread(threading.Thread):
    """Reads frames into the slot until stopped; reopens a lost camera with backoff.

    Args:
        source: the frame source (opened and closed here).
        slot: where frames go.
        stop: the application's stop event.
        paused: while set, the camera is released (privacy) and no frames are read.
        timer: records capture durations.
        backoff: (first, longest) reopen delay in seconds.
    """

    def __init__(
        self,
        source: FrameSource,
        slot: LatestFrameSlot,
        stop: threading.Event,
        paused: threading.Event,
        timer: StageTimer,
        backoff: tuple[float, float] = (1.0, 30.0),
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(name="capture", daemon=True)
        self.source = source
        self.slot = slot
        self.stop_event = stop
        self.paused = paused
        self.timer = timer
        self.backoff = backoff
        self.on_status = on_status
        self.status = "starting"
        self.ended = threading.Event()
        self.frames = 0
        self.errors = 0
        self.reconnects = 0
        self.last_frame_time: float | None = None  # wall clock, for reports
        # For ages: a Pi sets its clock by NTP after boot, and a wall-clock jump of months
        # would make a fresh frame look stale (or from the future) in /healthz.
        self.last_frame_monotonic: float | None = None
        self.last_error: str | None = None
        self._call_started: float | None = None  # monotonic start of an open() or read()

    def responsive(self, now: float) -> bool:
        """Alive and not stuck inside the camera: retrying a lost camera is healthy."""
        started = self._call_started
        return self.is_alive() and (started is None or now - started < HUNG_CALL_SECONDS)

    def _set_status(self, status: str) -> None:
        if status != self.status:
            self.status = status
            if self.on_status is not None:
                self.on_status(status)

    def run(self) -> None:
        delay = self.backoff[0]
        is_open = False
        try:
            while not self.stop_event.is_set():
                if self.paused.is_set():
                    if is_open:
                        self.source.close()
                        is_open = False
                    self._set_status("paused")  # also when it starts paused (kept over a restart)
                    self.stop_event.wait(0.2)
                    continue
                if not is_open:
                    self._call_started = time.monotonic()
                    try:
                        self.source.open()
                        is_open = True
                        if self.errors:
                            self.reconnects += 1
                    except CameraError as exc:
                        self._call_started = None  # waiting out the backoff is not hanging
                        self._lost(exc, delay)
                        self.stop_event.wait(delay)
                        delay = min(delay * 2, self.backoff[1])
                        continue
                    self._call_started = None
                started = time.perf_counter()
                self._call_started = time.monotonic()
                try:
                    frame = self.source.read()
                except EndOfStream:
                    logger.info("source ended after %d frames", self.frames)
                    self._set_status("ended")
                    self.ended.set()
                    return
                except CameraError as exc:
                    self._call_started = None
                    self.source.close()
                    is_open = False
                    self._lost(exc, delay)
                    self.stop_event.wait(delay)
                    delay = min(delay * 2, self.backoff[1])
                    continue
                self._call_started = None
                delay = self.backoff[0]
                self.timer.add("capture", (time.perf_counter() - started) * 1000)
                frame.timestamp = time.monotonic()
                self.frames += 1
                self.last_frame_time = time.time()
                self.last_frame_monotonic = frame.timestamp
                self._set_status("ok")
                self.slot.put(frame)
        except Exception:  # noqa: BLE001 - thread boundary: log, mark, let the app decide
            logger.exception("capture thread crashed")
            self._set_status("failed")
            self.ended.set()
        finally:
            self.source.close()

    def _lost(self, exc: Exception, delay: float) -> None:
        self.errors += 1
        self.last_error = str(exc)
        self._set_status("lost")
        logger.warning("camera: %s; retrying in %.0f s (failure %d)", exc, delay, self.errors)
