"""OpenCV Haar cascade: the no-extra-model floor (15-35 ms per 640x480 frame, misses many faces).

Shipped with opencv-python(-headless) 4.x only; OpenCV 5 removed CascadeClassifier, which is why
the edge extra pins OpenCV below 5.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.detect.base import Face, FaceDetector
from edge.errors import ConfigError
from edge.preprocess import to_gray


class HaarDetector(FaceDetector):
    """Frontal-face Haar cascade; its scores are a fixed 1.0 (OpenCV gives none by default)."""

    name = "haar"

    def __init__(
        self,
        scale_factor: float = 1.2,
        min_neighbors: int = 5,
        min_size: int = 48,
        cascade_path: str | Path | None = None,
    ) -> None:
        if not hasattr(cv2, "CascadeClassifier"):
            raise ConfigError(
                "detector.type 'haar' needs OpenCV 4.x (OpenCV 5 removed Haar cascades)"
            )
        path = (
            Path(cascade_path)
            if cascade_path
            # cv2.data exists in the opencv-python wheels, not in their type stubs.
            else (Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml")  # type: ignore[attr-defined]
        )
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise ConfigError(f"detector.cascade_path: cannot load Haar cascade {path}")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size

    def detect(self, frame: np.ndarray) -> list[Face]:
        boxes = self.cascade.detectMultiScale(
            to_gray(frame),
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
        )
        faces = [Face((int(x), int(y), int(w), int(h)), 1.0) for x, y, w, h in boxes]
        # Larger faces first: with no scores, the nearest person is the most useful one.
        return sorted(faces, key=lambda f: f.box[2] * f.box[3], reverse=True)
