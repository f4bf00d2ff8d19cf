"""The device's recent mood for the live page: the reported emotion once a second over the last
minutes, and the latest emotion events with their suggestions.

In memory only and bounded by ``http.history_minutes``: the page's timeline shows what the
camera saw while nobody was watching, without a database or anything on the SD card. Times are
kept as monotonic seconds and handed out as ages ("12 s ago"), so a wall-clock jump on the
device moves no bar, and the browser places them on its own clock.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

RESOLUTION_SECONDS = 1.0
MAX_EVENTS = 20


@dataclass(frozen=True)
class MoodEvent:
    at: float  # monotonic seconds
    emotion: str
    previous: str
    confidence: float
    suggestion: str | None


class MoodHistory:
    """One sample per ``RESOLUTION_SECONDS`` of the reported emotion (the last value within
    each second wins), and the last ``MAX_EVENTS`` emotion changes.

    Written by the analysis loop and read by the HTTP threads, hence the lock.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._samples: deque[tuple[float, str, float]] = deque(
            maxlen=int(seconds / RESOLUTION_SECONDS) + 1
        )
        self._events: deque[MoodEvent] = deque(maxlen=MAX_EVENTS)
        self._lock = threading.Lock()

    def record(self, now: float, emotion: str, confidence: float) -> None:
        """Notes the emotion reported at monotonic time ``now``."""
        with self._lock:
            if self._samples and now - self._samples[-1][0] < RESOLUTION_SECONDS:
                started = self._samples[-1][0]
                self._samples[-1] = (started, emotion, confidence)
            else:
                self._samples.append((now, emotion, confidence))

    def add_event(self, event: MoodEvent) -> None:
        with self._lock:
            self._events.append(event)

    def snapshot(self, now: float) -> dict[str, Any]:
        """What ``/api/history`` serves: samples oldest first as ``[age_s, emotion,
        confidence]``, events newest first, both within the window."""
        with self._lock:
            samples = [
                [round(now - at, 1), emotion, round(confidence, 3)]
                for at, emotion, confidence in self._samples
                if now - at <= self.seconds
            ]
            events = [
                {
                    "age": round(now - event.at, 1),
                    "emotion": event.emotion,
                    "previous": event.previous,
                    "confidence": round(event.confidence, 3),
                    "suggestion": event.suggestion,
                }
                for event in reversed(self._events)
                if now - event.at <= self.seconds
            ]
        return {
            "seconds": self.seconds,
            "resolution": RESOLUTION_SECONDS,
            "samples": samples,
            "events": events,
        }
