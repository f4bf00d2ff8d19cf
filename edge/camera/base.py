"""The frame-source interface: open, read frames, close; errors split into lost vs ended."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from types import TracebackType

import cv2
import numpy as np

from edge.errors import YuzugError


class CameraError(YuzugError):
    """The camera is unavailable or stopped delivering; the pipeline retries with backoff."""


class EndOfStream(Exception):
    """A finite source (a video file, a folder) has no more frames."""


@dataclass
class Frame:
    """One captured frame.

    Attributes:
        image: BGR (or gray) pixels at full resolution, for face crops and the live view.
        gray: an optional grayscale image for detection (picamera2's lores Y plane); when it
            differs in size from ``image``, ``gray_scale`` maps its coordinates up.
        timestamp: monotonic capture time in seconds.
        index: frame counter from the source.
    """

    image: np.ndarray
    timestamp: float = field(default_factory=time.monotonic)
    index: int = 0
    gray: np.ndarray | None = None
    gray_scale: float = 1.0


class FrameSource(ABC):
    """A camera or a recording. ``read`` blocks until the next frame."""

    name = "source"

    @abstractmethod
    def open(self) -> None:
        """Starts capture. Raises :class:`CameraError` when the device cannot be opened."""

    @abstractmethod
    def read(self) -> Frame:
        """Returns the next frame.

        Raises:
            CameraError: the device failed or stalled (the caller retries after ``close``).
            EndOfStream: a finite source is exhausted.
        """

    @abstractmethod
    def close(self) -> None:
        """Stops capture and releases the device; safe to call more than once."""

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


ROTATE_CODES = {
    90: cv2.ROTATE_90_CLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_COUNTERCLOCKWISE,
}


def rotate_image(image: np.ndarray, degrees: int) -> np.ndarray:
    """``image`` turned clockwise by 0, 90, 180 or 270 degrees."""
    return image if degrees == 0 else cv2.rotate(image, ROTATE_CODES[degrees])


class RotatedSource(FrameSource):
    """Turns every frame of another source (``camera.rotation``), detection plane included, so
    that everything after it (detection, crops, the live view) sees faces upright."""

    def __init__(self, source: FrameSource, degrees: int) -> None:
        self.source, self.degrees = source, degrees
        self.name = source.name

    def open(self) -> None:
        self.source.open()

    def read(self) -> Frame:
        frame = self.source.read()
        frame.image = rotate_image(frame.image, self.degrees)
        if frame.gray is not None:  # a quarter turn keeps the two planes' scale
            frame.gray = rotate_image(frame.gray, self.degrees)
        return frame

    def close(self) -> None:
        self.source.close()


class Pacer:
    """Sleeps so that frames come out at ``fps``, for files played in real time."""

    def __init__(self, fps: float, enabled: bool) -> None:
        self.period = 1.0 / fps if enabled and fps > 0 else 0.0
        self._next = 0.0

    def wait(self) -> None:
        if not self.period:
            return
        now = time.monotonic()
        if self._next > now:
            time.sleep(self._next - now)
            now = self._next
        # Never bank more than one period of lag: a slow consumer must not cause a burst.
        self._next = max(self._next + self.period, now)
