"""Frame sources behind one interface, built from the ``[camera]`` config section."""

from __future__ import annotations

from edge.camera.base import CameraError, EndOfStream, Frame, FrameSource


def make_source(config: object) -> FrameSource:
    """Builds the frame source a validated ``[camera]`` section names (explicit registry)."""
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
