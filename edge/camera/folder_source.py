"""A folder or .zip of images played as a video: demos, tests and benchmarks."""

from __future__ import annotations

import logging

from edge.camera.base import CameraError, EndOfStream, Frame, FrameSource, Pacer
from edge.config import FolderCameraConfig
from edge.imagefiles import ImageEntry, iter_decoded, list_images

logger = logging.getLogger(__name__)


class FolderSource(FrameSource):
    name = "folder"

    def __init__(self, config: FolderCameraConfig) -> None:
        self.config = config
        self._entries: list[ImageEntry] = []
        self._position = 0
        self._index = 0
        self._pacer = Pacer(config.fps, config.realtime)

    def open(self) -> None:
        try:
            self._entries = list_images(self.config.path)
        except (OSError, ValueError) as exc:
            raise CameraError(f"camera.path: {exc}") from exc
        if not self._entries:
            raise CameraError(f"camera.path: no images in {self.config.path}")
        self._position = 0
        logger.info("playing %d images from %s", len(self._entries), self.config.path)

    def read(self) -> Frame:
        while True:
            if self._position >= len(self._entries):
                if not self.config.loop or not self._entries:
                    raise EndOfStream(str(self.config.path))
                self._position = 0
            entry = self._entries[self._position]
            self._position += 1
            ((_, image, error),) = list(iter_decoded([entry]))
            if image is None:
                logger.warning("skipping %s: %s", entry.path, error)
                continue
            self._pacer.wait()
            self._index += 1
            return Frame(image=image, index=self._index)

    def close(self) -> None:
        self._entries = []
