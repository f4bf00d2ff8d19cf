"""Face detectors behind one interface, built from the ``[detector]`` config section."""

from __future__ import annotations

from edge.detect.base import Face, FaceDetector


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


__all__ = ["Face", "FaceDetector", "make_detector"]
