"""Faces tracked across frames, their scores smoothed, and emotion changes decided with hysteresis.

One frame's classification flickers; a person's mood does not. Each face is tracked by box
overlap and its scores are an exponential moving average. The device's emotion follows the
primary (largest) face and changes only when the new smoothed label has been confident and
stable for ``stable_seconds``: a one-frame flicker is never an event. ``no_face`` and ``none``
("none of these": low confidence, or the model's abstain label) are states of their own.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edge.detect.base import iou
from edge.preprocess import Box

NO_FACE = "no_face"
NONE = "none"


@dataclass
class Track:
    id: int
    box: Box
    scores: np.ndarray
    first_seen: float
    last_seen: float
    hits: int = 1
    roll: float = 0.0  # how far the face leans in its latest frame (Face.roll), degrees

    @property
    def area(self) -> int:
        return self.box[2] * self.box[3]


class FaceTracker:
    """Greedy IoU matching of this frame's faces to existing tracks, with EMA-smoothed scores."""

    def __init__(self, smoothing: float, iou_threshold: float, timeout_seconds: float) -> None:
        self.smoothing = smoothing
        self.iou_threshold = iou_threshold
        self.timeout_seconds = timeout_seconds
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)

    def update(
        self,
        boxes: list[Box],
        probabilities: np.ndarray,
        now: float,
        rolls: Sequence[float] | None = None,
    ) -> list[Track]:
        """Returns the tracks seen in this frame, largest face first (each with its face's
        ``rolls``, when given)."""
        leans = list(rolls) if rolls is not None else [0.0] * len(boxes)
        pairs = sorted(
            (
                (iou(track.box, box), t, d)
                for t, track in enumerate(self.tracks)
                for d, box in enumerate(boxes)
            ),
            reverse=True,
        )
        matched_tracks: set[int] = set()
        matched_faces: set[int] = set()
        seen: list[Track] = []
        for overlap, t, d in pairs:
            if overlap < self.iou_threshold:
                break
            if t in matched_tracks or d in matched_faces:
                continue
            track = self.tracks[t]
            track.box, track.roll = boxes[d], leans[d]
            track.scores = (1 - self.smoothing) * track.scores + self.smoothing * probabilities[d]
            track.last_seen = now
            track.hits += 1
            matched_tracks.add(t)
            matched_faces.add(d)
            seen.append(track)
        for d, box in enumerate(boxes):
            if d not in matched_faces:
                scores = probabilities[d].astype(np.float32)
                track = Track(next(self._ids), box, scores, now, now, roll=leans[d])
                self.tracks.append(track)
                seen.append(track)
        self.tracks = [t for t in self.tracks if now - t.last_seen <= self.timeout_seconds]
        return sorted(seen, key=lambda t: t.area, reverse=True)


@dataclass
class EmotionChange:
    emotion: str
    previous: str
    confidence: float
    at: float


@dataclass
class EmotionState:
    """The device's current emotion, with hysteresis against flicker.

    Args:
        labels: the model's labels in output order.
        min_confidence: smoothed probability needed to report an emotion rather than ``none``.
        stable_seconds: how long a different label must persist before it becomes current.
        no_face_seconds: how long without any face before the state is ``no_face``.
        abstain_label: the model's "none of these" label, reported as ``none``.
    """

    labels: list[str]
    min_confidence: float
    stable_seconds: float
    no_face_seconds: float
    abstain_label: str | None = None
    current: str = NO_FACE
    confidence: float = 0.0
    _candidate: str | None = field(default=None, repr=False)
    _candidate_since: float = field(default=0.0, repr=False)
    _last_face: float | None = field(default=None, repr=False)

    def observe(self, primary: Track | None, now: float) -> EmotionChange | None:
        """Feeds one analysed frame's primary face (or none); returns a change, if any."""
        if primary is not None:
            self._last_face = now
            best = int(np.argmax(primary.scores))
            confidence = float(primary.scores[best])
            label = self.labels[best]
            if label == self.abstain_label or confidence < self.min_confidence:
                target = NONE
            else:
                target = label
            if target == self.current:
                self.confidence = confidence
        else:
            if self._last_face is not None and now - self._last_face < self.no_face_seconds:
                return None  # a face missed for a moment is not gone yet
            target, confidence = NO_FACE, 0.0
            if self.current == NO_FACE:
                self.confidence = 0.0
        if target == self.current:
            self._candidate = None
            return None
        if target != self._candidate:
            self._candidate, self._candidate_since = target, now
        # Losing the face already waited no_face_seconds; other changes wait stable_seconds.
        if target != NO_FACE and now - self._candidate_since < self.stable_seconds:
            return None
        change = EmotionChange(target, self.current, round(confidence, 4), now)
        self.current, self.confidence, self._candidate = target, confidence, None
        return change
