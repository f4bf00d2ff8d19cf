"""The face-detector interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from edge.preprocess import Box


@dataclass(frozen=True)
class Face:
    """A detected face: its box in frame pixels and the detector's confidence in [0, 1]."""

    box: Box
    score: float


class FaceDetector(ABC):
    """Finds faces in a frame. Built once; ``detect`` is called for every analysed frame."""

    name: str = "base"

    @abstractmethod
    def detect(self, frame: np.ndarray) -> list[Face]:
        """Returns faces, most confident first, in a gray, BGR or BGRA frame."""

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
