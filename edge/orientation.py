"""Whether the camera is mounted turned: upside down, or on its side.

BlazeFace finds fewer faces in a turned picture, and less surely, and the classifier, trained on
upright faces, misreads the ones it finds (upside down, the shipped model reads 36% of the test
faces right and 73% of them as sad). Nothing in the emotions says why. Asking the detector under
each quarter turn does: it is surest of a face the way up the face is.

``yuzug-edge doctor`` asks once, on the frame it reads; the daemon asks now and then
(:class:`TurnWatch`) and says so in its log, ``/healthz`` and the live page.
"""

from __future__ import annotations

import logging
from collections import Counter, deque

from edge.camera.base import Frame, rotate_image
from edge.detect.base import FaceDetector

logger = logging.getLogger(__name__)

TURNS = (0, 90, 180, 270)
# How much surer of a face the detector must be with the picture turned than as it comes. On 100
# FER2013 faces pasted into 640x480 frames, each turned every way: the right turn for 91-96 of
# each 100, and a turn suggested for 4 of the 100 upright ones (at 0.1: 79-89 right, 3 wrong).
TURN_MARGIN = 0.05
# A face counts for a turn only if its eyes agree that it is upright there: the detector is at
# times surer of a face lying on its side than of the same face leaning 30 degrees as it comes.
# With the eyes (BlazeFace's Face.roll, read under each quarter turn), on 102 test faces leaning
# 30 degrees: upright pictures left as they are 92 times (71 without the eyes), turned ones
# righted 84.7 times per turn (48.7); upright faces 99 (89) and 96.3 (74.7). bench/orientation.py.
UPRIGHT_LEAN_LIMIT = 45.0


def upright_turn(frame: Frame, detector: FaceDetector) -> tuple[int, dict[int, float]]:
    """The clockwise quarter turn of ``frame`` under which the detector is surest of an upright
    face (0 unless clearly surer than as it comes), and its best score under each turn (all 0:
    no face any way up)."""
    image = frame.gray if frame.gray is not None else frame.image
    scores = {}
    for turn in TURNS:
        faces = detector.detect(rotate_image(image, turn))
        upright = [face.score for face in faces if abs(face.roll) <= UPRIGHT_LEAN_LIMIT]
        scores[turn] = max(upright, default=0.0)
    best = max(scores, key=lambda turn: scores[turn])
    return (best if scores[best] >= scores[0] + TURN_MARGIN else 0), scores


class TurnWatch:
    """Asks :func:`upright_turn` of a frame every ``interval`` seconds; once ``needed`` of the
    last ``window`` frames that showed a face agree on a turn other than 0, that is
    ``suggested`` (a single frame is wrong for a few faces in a hundred; four of five seldom
    are), and it stays until as many say otherwise."""

    def __init__(self, interval: float, window: int = 5, needed: int = 4) -> None:
        self.interval, self.needed = interval, needed
        self._turns: deque[int] = deque(maxlen=window)
        self._next = 0.0
        self.looks = 0  # frames asked so far
        self.suggested: int | None = None

    def due(self, now: float) -> bool:
        return bool(self.interval) and now >= self._next

    def observe(self, frame: Frame, detector: FaceDetector, now: float) -> bool:
        """Asks this frame; returns whether ``suggested`` changed."""
        self._next = now + self.interval
        self.looks += 1
        turn, scores = upright_turn(frame, detector)
        if not any(scores.values()):
            return False  # nobody in view, any way up: no evidence either way
        self._turns.append(turn)
        (common, count), *_ = Counter(self._turns).most_common(1)
        if count < self.needed:
            return False
        verdict = common or None
        changed, self.suggested = verdict != self.suggested, verdict
        return changed
