"""Finding and decoding images in a file, a folder tree or a .zip, tolerating broken files.

Shared by ``yuzug-edge classify`` and the trainer's data ingestion, so both accept the same
inputs and treat an unreadable file the same way: reported, never fatal.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# Formats OpenCV 4.x decodes everywhere (GIF support depends on the build, so it is left out).
IMAGE_SUFFIXES = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".png",
        ".bmp",
        ".dib",
        ".webp",
        ".tif",
        ".tiff",
        ".pgm",
        ".ppm",
        ".pbm",
        ".pnm",
        ".pxm",
        ".jp2",
        ".sr",
        ".ras",
    }
)


def is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


@dataclass(frozen=True)
class ImageEntry:
    """One image file, on disk or inside a zip.

    Attributes:
        path: for display and reports: the file path, or ``archive.zip/member``.
        relative: the path relative to the folder or archive root, with ``/`` separators;
            the trainer reads split and class names from it.
    """

    path: str
    relative: str
    archive: str | None = None

    def read_bytes(self, archive: zipfile.ZipFile | None = None) -> bytes:
        if self.archive is None:
            return Path(self.path).read_bytes()
        if archive is not None:
            return archive.read(self.relative)
        with zipfile.ZipFile(self.archive) as opened:
            return opened.read(self.relative)


def list_images(path: str | os.PathLike[str]) -> list[ImageEntry]:
    """Lists the images in a file, a folder (recursively) or a .zip, sorted by path.

    Hidden files and macOS ``__MACOSX`` metadata are skipped. A single image path is listed
    even when its suffix is unusual, so that decoding (not the name) decides whether it is bad.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if a ``.zip`` path is not a readable zip archive (truncated, not a zip).
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    if root.is_file() and root.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(root) as archive:
                names = [
                    info.filename
                    for info in archive.infolist()
                    if not info.is_dir()
                    and is_image_name(info.filename)
                    and not _hidden(info.filename)
                ]
        except zipfile.BadZipFile as exc:
            # A ValueError like every other bad input here, so callers need no zipfile import.
            raise ValueError(f"{root}: not a readable zip archive ({exc})") from exc
        return [
            ImageEntry(path=f"{root}/{name}", relative=name, archive=str(root))
            for name in sorted(names)
        ]
    if root.is_file():
        return [ImageEntry(path=str(root), relative=root.name)]
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
        for filename in filenames:
            if is_image_name(filename) and not _hidden(filename):
                full = Path(dirpath) / filename
                entries.append(
                    ImageEntry(path=str(full), relative=full.relative_to(root).as_posix())
                )
    return sorted(entries, key=lambda entry: entry.relative)


def _hidden(name: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))


def decode_image(data: bytes) -> np.ndarray | None:
    """Decodes image bytes to 8-bit gray or BGR, upright as the file's EXIF orientation says;
    ``None`` if undecodable.

    Not ``IMREAD_UNCHANGED``: that flag also skips the EXIF orientation, so a phone's portrait
    photo (pixels stored sideways) would reach the detector and classifier on its side.
    16-bit and floating-point images (scans, TIFF exports) are scaled to 8 bits.
    """
    if not data:
        return None
    buffer = np.frombuffer(data, np.uint8)
    image = cv2.imdecode(buffer, cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH)
    if image is None or image.size == 0:
        return None
    return to_8bit(image)


def to_8bit(image: np.ndarray) -> np.ndarray:
    """``image`` as uint8: 16-bit values scaled by 1/257, floats in [0, 1] by 255 (others
    clipped to 0-255, as OpenCV stores floats either way)."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    values = np.nan_to_num(image.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
    if np.issubdtype(image.dtype, np.floating) and values.max(initial=0.0) <= 1.0:
        values = values * 255.0
    return np.clip(values + 0.5, 0, 255).astype(np.uint8)


def iter_decoded(
    entries: list[ImageEntry],
) -> Iterator[tuple[ImageEntry, np.ndarray | None, str | None]]:
    """Yields ``(entry, image or None, error or None)`` for each entry, opening each zip once."""
    archives: dict[str, zipfile.ZipFile] = {}
    try:
        for entry in entries:
            try:
                archive = None
                if entry.archive is not None:
                    archive = archives.get(entry.archive)
                    if archive is None:
                        archive = archives[entry.archive] = zipfile.ZipFile(entry.archive)
                data = entry.read_bytes(archive)
            except (OSError, KeyError, zipfile.BadZipFile, RuntimeError) as exc:
                # zipfile raises RuntimeError for encrypted members, BadZipFile for CRC errors.
                yield entry, None, f"unreadable: {exc}"
                continue
            image = decode_image(data)
            if image is None:
                yield entry, None, "not a decodable image"
            else:
                yield entry, image, None
    finally:
        for archive in archives.values():
            archive.close()
