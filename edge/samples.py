"""Sample camera footage built from face photos, for the demo, the tests and the benchmarks.

FER2013's faces are 48x48 crops. Pasted, enlarged, onto a 640x480 background they make frames a
camera could plausibly deliver (one face, 240 px tall, about 60 cm from a webcam). A *script*
of ``(label, seconds)`` segments turns them into a sequence with known ground truth.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.imagefiles import decode_image
from edge.preprocess import Box

FRAME_SIZE = (640, 480)


@dataclass(frozen=True)
class Segment:
    label: str  # a class name; one with no faces given (such as "nobody") is an empty scene
    seconds: float


def fer_faces(
    zip_path: Path, labels: list[str], per_label: int, split: str = "test", seed: int = 0
) -> dict[str, list[np.ndarray]]:
    """``per_label`` gray faces per label from a FER-layout zip, picked deterministically."""
    rng = np.random.default_rng(seed)
    faces: dict[str, list[np.ndarray]] = {}
    with zipfile.ZipFile(zip_path) as archive:
        names = sorted(archive.namelist())
        for label in labels:
            members = [
                n
                for n in names
                if n.startswith(f"{split}/{label}/") and n.lower().endswith((".jpg", ".png"))
            ]
            if not members:
                raise ValueError(f"{zip_path}: no {split}/{label}/ images")
            chosen = rng.choice(len(members), min(per_label, len(members)), replace=False)
            faces[label] = []
            for i in sorted(chosen):
                image = decode_image(archive.read(members[i]))
                if image is None:
                    raise ValueError(f"{zip_path}: {members[i]} is not a decodable image")
                faces[label].append(image)
    return faces


def background(rng: np.random.Generator, size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """A soft, uneven gray-brown room-like background (BGR)."""
    width, height = size
    gradient = np.linspace(70, 150, width, dtype=np.float32)[np.newaxis, :]
    base = np.repeat(gradient, height, axis=0)
    noise = cv2.GaussianBlur(rng.normal(0, 12, (height, width)).astype(np.float32), (0, 0), 9)
    gray = np.clip(base + noise, 0, 255).astype(np.uint8)
    return cv2.merge([gray, (gray * 0.95).astype(np.uint8), (gray * 0.9).astype(np.uint8)])


def paste_face(
    frame: np.ndarray, face: np.ndarray, centre: tuple[int, int], side: int
) -> tuple[int, int, int, int]:
    """Pastes ``face`` enlarged to ``side`` px at ``centre``; returns its box."""
    if face.ndim == 2:
        face = cv2.cvtColor(face, cv2.COLOR_GRAY2BGR)
    big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    x, y = centre[0] - side // 2, centre[1] - side // 2
    frame[y : y + side, x : x + side] = big
    return x, y, side, side


def centre_inside(box: Box, truth: Box) -> bool:
    """Whether a found face's box has its centre inside the pasted face's."""
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return truth[0] <= cx <= truth[0] + truth[2] and truth[1] <= cy <= truth[1] + truth[3]


def leaning_frame(
    scene: np.ndarray, face: np.ndarray, lean: float, side: int
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A copy of ``scene`` with the gray ``face`` enlarged to ``side`` px in its middle, turned
    ``lean`` degrees clockwise as seen; returns the frame and the face's upright square. The
    face's edges are replicated around it first, so that no corner is left empty."""
    big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    pad = side // 4  # room for the corners of a square turned by up to 45 degrees
    tile = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    height, width = tile.shape
    # OpenCV turns counter-clockwise for a positive angle.
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), -lean, 1.0)
    tile = cv2.warpAffine(tile, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)
    frame = scene.copy()
    top, left = (FRAME_SIZE[1] - height) // 2, (FRAME_SIZE[0] - width) // 2
    frame[top : top + height, left : left + width] = cv2.cvtColor(tile, cv2.COLOR_GRAY2BGR)
    return frame, (left + pad, top + pad, side, side)


def scripted_frames(
    faces: dict[str, list[np.ndarray]],
    script: list[Segment],
    fps: float,
    face_side: int = 240,
    seed: int = 0,
) -> Iterator[tuple[np.ndarray, str]]:
    """Yields ``(frame, label)``: one face per segment, held still with slight jitter."""
    rng = np.random.default_rng(seed)
    scene = background(rng)
    width, height = FRAME_SIZE
    used: dict[str, int] = {}
    for segment in script:
        count = max(1, int(round(segment.seconds * fps)))
        face = None
        if segment.label in faces:
            index = used.get(segment.label, 0)
            face = faces[segment.label][index % len(faces[segment.label])]
            used[segment.label] = index + 1
        centre = (
            int(rng.integers(face_side // 2 + 10, width - face_side // 2 - 10)),
            int(rng.integers(face_side // 2 + 10, height - face_side // 2 - 10)),
        )
        for _ in range(count):
            frame = scene.copy()
            if face is not None:
                jitter = rng.integers(-3, 4, 2)
                paste_face(
                    frame, face, (centre[0] + int(jitter[0]), centre[1] + int(jitter[1])), face_side
                )
            yield frame, segment.label


def write_video(frames: Iterator[tuple[np.ndarray, str]], path: Path, fps: float) -> list[str]:
    """Writes frames to an MJPG AVI (decodable by every OpenCV build); returns the labels."""
    fourcc = cv2.VideoWriter_fourcc(*"MJPG")  # type: ignore[attr-defined]
    writer = cv2.VideoWriter(str(path), fourcc, fps, FRAME_SIZE)
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {path}")
    labels = []
    try:
        for frame, label in frames:
            writer.write(frame)
            labels.append(label)
    finally:
        writer.release()
    return labels


def write_folder(frames: Iterator[tuple[np.ndarray, str]], folder: Path) -> list[str]:
    """Writes frames as numbered JPEGs; returns the labels."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = []
    for index, (frame, label) in enumerate(frames):
        cv2.imwrite(str(folder / f"frame_{index:05d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
        labels.append(label)
    return labels
