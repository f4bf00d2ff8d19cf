"""The face-detector interface every backend implements."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from edge.preprocess import Box


@dataclass(frozen=True)
class Face:
    """A detected face: its box in frame pixels, the detector's confidence in [0, 1] and how far
    it leans (``roll``, degrees, from its eyes: positive when the eye on the picture's right is
    the lower one, a clockwise lean as seen; 0 from a detector that finds no eyes)."""

    box: Box
    score: float
    roll: float = 0.0


def eye_line_roll(right_eye: ArrayLike, left_eye: ArrayLike) -> float:
    """The lean of the line from the person's right eye (the picture's left, facing the camera)
    to their left eye, (x, y) points, in degrees, as :attr:`Face.roll` measures it."""
    dx, dy = np.subtract(left_eye, right_eye, dtype=np.float64)
    return math.degrees(math.atan2(dy, dx))


class FaceDetector(ABC):
    """Finds faces in a frame. Built once; ``detect`` is called for every analysed frame."""

    name: str = "base"

    @abstractmethod
    def detect(self, frame: np.ndarray) -> list[Face]:
        """Returns faces, most confident first, in a gray, BGR or BGRA frame."""

    def detect_in_video(self, frame: np.ndarray) -> list[Face]:
        """:meth:`detect` for the next frame of one video: a backend may carry over what it
        measured of a face on the frames before (BlazeFace: its lean). Never call it with
        frames from elsewhere in between (use :meth:`detect` for those)."""
        return self.detect(frame)

    def close(self) -> None:
        """Releases the backend's resources; safe to call more than once."""
        return None  # most backends hold nothing that outlives the object


def non_max_suppression(faces: list[Face], iou_threshold: float) -> list[Face]:
    """Greedy NMS: keeps the best-scoring face of every overlapping cluster."""
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: f.score, reverse=True):
        if all(iou(face.box, other.box) <= iou_threshold for other in kept):
            kept.append(face)
    return kept


def iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0
