"""OpenCV ``VideoCapture``: USB cameras (index or /dev/videoN), video files and RTSP/HTTP URLs."""

from __future__ import annotations

import glob
import logging
import os
import re
import time
from pathlib import Path

import cv2

from edge.camera.base import CameraError, EndOfStream, Frame, FrameSource, Pacer
from edge.config import OpenCVCameraConfig, hide_url_password

logger = logging.getLogger(__name__)

# A network stream that delivers nothing for this long counts as lost (FFmpeg's own default
# is 30 s, as long as the systemd watchdog); opening one may take twice as long.
STALL_SECONDS = 5.0


OPENCV_LOG_LEVEL_ERROR = 2  # cv::utils::logging::LOG_LEVEL_ERROR


def quiet_opencv_log() -> None:
    """OpenCV's own log from ERROR up. ``cv2.utils.logging`` exists from OpenCV 4.12; 4.11 (the
    newest that runs with numpy 1.x, as on Raspberry Pi OS Bookworm) has ``cv2.setLogLevel``
    only, and calling the former there ended every camera start with an AttributeError."""
    utils_logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if utils_logging is not None:
        utils_logging.setLogLevel(utils_logging.LOG_LEVEL_ERROR)
    elif hasattr(cv2, "setLogLevel"):
        cv2.setLogLevel(OPENCV_LOG_LEVEL_ERROR)


class OpenCVSource(FrameSource):
    name = "opencv"

    def __init__(self, config: OpenCVCameraConfig) -> None:
        self.config = config
        source = config.source
        if isinstance(source, str) and re.fullmatch(r"\d+", source):
            source = int(source)
        self.source: int | str = source
        self.is_file = config.source_kind == "file"
        self.is_stream = config.source_kind == "stream"  # RTSP, HTTP
        self._capture: cv2.VideoCapture | None = None
        self._index = 0
        self._pacer = Pacer(config.fps, False)
        if not logger.isEnabledFor(logging.DEBUG):
            # OpenCV's own "[ WARN:0@3.1] ... can't open camera by index" lines would repeat
            # every retry beside ours, which say the same with a reason; DEBUG keeps them.
            quiet_opencv_log()

    @property
    def description(self) -> str:
        if isinstance(self.source, int):
            return f"camera {self.source}"
        return hide_url_password(self.source)

    def open(self) -> None:
        if self.is_file and not Path(str(self.source)).is_file():
            raise CameraError(f"video file {self.source} not found")
        if self.is_stream:
            timeouts = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                int(2 * STALL_SECONDS * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                int(STALL_SECONDS * 1000),
            ]
            capture = cv2.VideoCapture(self.source, cv2.CAP_ANY, timeouts)
        else:
            capture = cv2.VideoCapture(self.source)
        if not capture.isOpened():
            capture.release()
            raise CameraError(f"cannot open {self.description}{self._why_not_opened()}")
        if self.is_file:
            fps = capture.get(cv2.CAP_PROP_FPS) or self.config.fps
            self._pacer = Pacer(fps if 0 < fps < 1000 else self.config.fps, self.config.realtime)
        else:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.config.width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.config.height)
            capture.set(cv2.CAP_PROP_FPS, self.config.fps)
            # Keep the driver's queue short: stale frames only add latency.
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._capture = capture
        logger.info("opened %s", self.description)

    def _why_not_opened(self) -> str:
        """For a local camera, what the device nodes say: missing, not permitted, or busy."""
        if isinstance(self.source, int):
            node = f"/dev/video{self.source}"
        elif self.source.startswith("/dev/"):
            node = self.source
        else:
            return ""
        if not os.path.exists(node):
            present = sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))
            found = ", ".join(present) if present else "none (is the camera plugged in?)"
            return f": {node} does not exist; video devices here: {found}"
        if not os.access(node, os.R_OK | os.W_OK):
            return f": no permission on {node} (add the daemon's user to the 'video' group)"
        return f": {node} is there but would not open (in use by another program, or not a camera)"

    def read(self) -> Frame:
        if self._capture is None:
            raise CameraError(f"{self.description} is not open")
        started = time.monotonic()
        ok, image = self._capture.read()
        if not ok or image is None:
            if self.is_file:
                if not Path(str(self.source)).exists():
                    raise CameraError(f"video file {self.source} disappeared")
                if self.config.loop and self._index > 0:
                    self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, image = self._capture.read()
                if not ok or image is None:
                    raise EndOfStream(self.description)
            else:
                waited = time.monotonic() - started
                raise CameraError(f"{self.description} delivered no frame ({waited:.1f} s)")
        self._pacer.wait()
        self._index += 1
        return Frame(image=image, index=self._index)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
