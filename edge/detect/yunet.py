"""YuNet through ``cv2.FaceDetectorYN``, for users who supply its ONNX file (not shipped)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.detect.base import Face, FaceDetector, eye_line_roll
from edge.errors import ConfigError


class YuNetDetector(FaceDetector):
    name = "yunet"

    def __init__(
        self, model_path: str | Path, min_score: float = 0.7, iou_threshold: float = 0.3
    ) -> None:
        path = Path(model_path)
        if not path.is_file():
            raise ConfigError(
                f"detector.model_path: YuNet model {path} not found; download "
                "face_detection_yunet_2023mar.onnx from the OpenCV model zoo"
            )
        try:
            self.detector = cv2.FaceDetectorYN.create(
                str(path), "", (320, 320), min_score, iou_threshold
            )
        except cv2.error as exc:
            raise ConfigError(f"detector.model_path: OpenCV cannot load {path}: {exc}") from exc
        self._size = (0, 0)

    def detect(self, frame: np.ndarray) -> list[Face]:
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        elif frame.shape[2] == 4:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
        size = (frame.shape[1], frame.shape[0])
        if size != self._size:
            self.detector.setInputSize(size)
            self._size = size
        _, rows = self.detector.detect(frame)
        if rows is None:
            return []
        # A row: box, then the right eye, left eye, nose and mouth corners, then the score.
        faces = [
            Face(
                (int(r[0]), int(r[1]), int(r[2]), int(r[3])),
                float(r[-1]),
                eye_line_roll((r[4], r[5]), (r[6], r[7])),
            )
            for r in rows
        ]
        return sorted(faces, key=lambda f: f.score, reverse=True)
