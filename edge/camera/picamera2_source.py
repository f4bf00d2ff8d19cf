"""Raspberry Pi camera through picamera2: a thin adapter.

Two streams, as picamera2's own face-detection examples do: ``main`` (BGR, full size) for face
crops and the live view, and ``lores`` (YUV420) whose Y plane is a free grayscale image for
detection, resized by the ISP rather than in Python. Requests are always released through
``captured_request()``. picamera2 comes from apt (``python3-picamera2``); the venv must be made
with ``--system-site-packages`` to see it.
"""

from __future__ import annotations

import logging
from typing import Any

from edge.camera.base import CameraError, Frame, FrameSource
from edge.config import Picamera2CameraConfig

logger = logging.getLogger(__name__)


class Picamera2Source(FrameSource):
    name = "picamera2"

    def __init__(self, config: Picamera2CameraConfig) -> None:
        self.config = config
        self._camera: Any = None
        self._index = 0

    def open(self) -> None:
        try:
            from picamera2 import Picamera2  # type: ignore[import-not-found]
        except ImportError as exc:
            raise CameraError(
                "picamera2 is not importable: `sudo apt install python3-picamera2` and create "
                "the venv with --system-site-packages (yuzug-deploy install does both)"
            ) from exc
        except ValueError as exc:
            # apt's picamera2 imports simplejpeg, built for the system's numpy; on Raspberry Pi
            # OS Bookworm that is numpy 1.x, and a numpy 2 in the venv breaks it ("numpy.dtype
            # size changed"). An error of the camera, retried and reported, not a crash loop.
            raise CameraError(
                f"picamera2 cannot load with this venv's numpy ({exc}): the system's camera "
                "stack was built for numpy 1.x; `pip install 'numpy<2'` in the venv "
                "(yuzug-deploy install pins it on such systems)"
            ) from exc
        c = self.config
        try:
            camera = Picamera2(c.camera_index)
        except (RuntimeError, IndexError, OSError) as exc:
            raise CameraError(f"cannot start Pi camera {c.camera_index}: {exc}") from exc
        try:
            configuration = camera.create_preview_configuration(
                main={"size": (c.width, c.height), "format": "RGB888"},
                lores={"size": (c.lores_width, c.lores_height), "format": "YUV420"},
                buffer_count=4,
                controls={"FrameRate": c.fps},
            )
            camera.configure(configuration)
            camera.start()
        except (RuntimeError, IndexError, OSError, ValueError) as exc:
            # Acquired but not started: release it, or every retry finds the camera busy.
            camera.close()
            raise CameraError(f"cannot start Pi camera {c.camera_index}: {exc}") from exc
        self._camera = camera
        logger.info(
            "Pi camera %d started: main %dx%d, lores %dx%d",
            c.camera_index,
            c.width,
            c.height,
            c.lores_width,
            c.lores_height,
        )

    def read(self) -> Frame:
        if self._camera is None:
            raise CameraError("Pi camera is not open")
        c = self.config
        try:
            with self._camera.captured_request() as request:
                # "RGB888" is BGR in memory, OpenCV's order. Copies: the buffers go back.
                image = request.make_array("main").copy()
                lores = request.make_array("lores")
                gray = lores[: c.lores_height, : c.lores_width].copy()
        except (RuntimeError, OSError, TimeoutError) as exc:
            raise CameraError(f"Pi camera capture failed: {exc}") from exc
        self._index += 1
        return Frame(image=image, index=self._index, gray=gray, gray_scale=c.width / c.lores_width)

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is None:
            return
        # A camera that has gone away may fail to stop: closing must still release it and
        # never raise, or the capture thread would die instead of retrying.
        for step in (camera.stop, camera.close):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - libcamera raises assorted errors here
                logger.warning("Pi camera %s failed: %s", step.__name__, exc)
