"""Frame sources behind one interface, built from the ``[camera]`` config section."""

from __future__ import annotations

from edge.camera.base import CameraError, EndOfStream, Frame, FrameSource, RotatedSource


def make_source(config: object) -> FrameSource:
    """Builds the frame source a validated ``[camera]`` section names (explicit registry),
    turned by its ``rotation``."""
    from edge.config import TurnableCamera

    source = _make_upright_source(config)
    if isinstance(config, TurnableCamera) and config.rotation:
        return RotatedSource(source, config.rotation)
    return source


def _make_upright_source(config: object) -> FrameSource:
    from edge.config import FolderCameraConfig, OpenCVCameraConfig, Picamera2CameraConfig

    if isinstance(config, OpenCVCameraConfig):
        from edge.camera.opencv_source import OpenCVSource

        return OpenCVSource(config)
    if isinstance(config, FolderCameraConfig):
        from edge.camera.folder_source import FolderSource

        return FolderSource(config)
    if isinstance(config, Picamera2CameraConfig):
        from edge.camera.picamera2_source import Picamera2Source

        return Picamera2Source(config)
    raise TypeError(f"unknown camera config {type(config).__name__}")


__all__ = ["CameraError", "EndOfStream", "Frame", "FrameSource", "make_source"]
