"""Face detectors behind one interface, built from the ``[detector]`` config section."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.detect.base import Face, FaceDetector

if TYPE_CHECKING:
    from edge.camera.base import Frame
    from edge.preprocess import Box


def detect_boxes(detector: FaceDetector, frame: Frame) -> list[Box]:
    """The frame's face boxes in full-resolution pixels, largest first.

    Detection runs on the frame's small gray image when the source gives one (picamera2's lores
    Y plane), so its boxes are scaled up to ``frame.image``, where the crops are taken.
    """
    image = frame.gray if frame.gray is not None else frame.image
    scale = frame.gray_scale if frame.gray is not None else 1.0
    boxes: list[Box] = [
        (
            int(round(face.box[0] * scale)),
            int(round(face.box[1] * scale)),
            int(round(face.box[2] * scale)),
            int(round(face.box[3] * scale)),
        )
        for face in detector.detect(image)
    ]
    return sorted(boxes, key=lambda b: b[2] * b[3], reverse=True)


def make_detector(config: object) -> FaceDetector:
    """Builds the detector a validated ``[detector]`` section names (explicit registry)."""
    from edge.config import BlazeFaceDetectorConfig, HaarDetectorConfig, YuNetDetectorConfig

    if isinstance(config, BlazeFaceDetectorConfig):
        from edge.detect.blazeface import BlazeFaceDetector

        return BlazeFaceDetector(
            min_score=config.min_score,
            min_size=config.min_size,
            num_threads=config.num_threads,
            tiles=config.tiles,
        )
    if isinstance(config, HaarDetectorConfig):
        from edge.detect.haar import HaarDetector

        return HaarDetector(
            scale_factor=config.scale_factor,
            min_neighbors=config.min_neighbors,
            min_size=config.min_size,
        )
    if isinstance(config, YuNetDetectorConfig):
        from edge.detect.yunet import YuNetDetector

        return YuNetDetector(config.model_path, min_score=config.min_score)
    raise TypeError(f"unknown detector config {type(config).__name__}")


__all__ = ["Face", "FaceDetector", "detect_boxes", "make_detector"]
