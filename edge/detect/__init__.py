"""Face detectors behind one interface, built from the ``[detector]`` config section."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from edge.detect.base import Face, FaceDetector
from edge.preprocess import Box, PreprocessSpec, preprocess_faces, to_gray

if TYPE_CHECKING:
    from edge.camera.base import Frame
    from edge.config import Region


def detect_faces(detector: FaceDetector, frame: Frame, video: bool = False) -> list[Face]:
    """The frame's faces with their boxes in full-resolution pixels, largest first.

    Detection runs on the frame's small gray image when the source gives one (picamera2's lores
    Y plane), so its boxes are scaled up to ``frame.image``, where the crops are taken (a lean
    is the same at either scale). ``video``: the frame follows the last one given with it
    (:meth:`~edge.detect.base.FaceDetector.detect_in_video`).
    """
    image = frame.gray if frame.gray is not None else frame.image
    scale = frame.gray_scale if frame.gray is not None else 1.0
    faces = []
    for face in detector.detect_in_video(image) if video else detector.detect(image):
        x, y, w, h = (int(round(value * scale)) for value in face.box)
        faces.append(replace(face, box=(x, y, w, h)))
    return sorted(faces, key=lambda face: face.box[2] * face.box[3], reverse=True)


def region_boxes(regions: Sequence[Region], width: int, height: int) -> list[Box]:
    """``camera.ignore_regions`` (shares of the frame) in the pixels of a ``width`` x
    ``height`` image."""
    return [
        (round(left * width), round(top * height), round(w * width), round(h * height))
        for left, top, w, h in regions
    ]


def outside_boxes(faces: Sequence[Face], boxes: Sequence[Box]) -> list[Face]:
    """The ``faces`` whose box centre lies in none of ``boxes`` (pixels)."""

    def ignored(face: Face) -> bool:
        cx, cy = face.box[0] + face.box[2] / 2, face.box[1] + face.box[3] / 2
        return any(x <= cx < x + w and y <= cy < y + h for x, y, w, h in boxes)

    return [face for face in faces if not ignored(face)]


def outside_regions(
    faces: Sequence[Face], regions: Sequence[Region], image: np.ndarray
) -> list[Face]:
    """The ``faces`` whose box centre lies in none of ``regions`` (``camera.ignore_regions``,
    shares of ``image``'s sides): a face on a TV or a poster is not the person's."""
    height, width = image.shape[:2]
    return outside_boxes(faces, region_boxes(regions, width, height))


def face_crops(
    image: np.ndarray,
    spec: PreprocessSpec,
    faces: Sequence[Face],
    straighten: bool = True,
    margins: Sequence[float] | None = None,
) -> np.ndarray:
    """The model crops of ``faces`` in ``image``, each leaning face turned back towards upright
    by its :attr:`~edge.detect.base.Face.roll` unless ``straighten`` is off
    (``classifier.straighten_faces``): ``(n, size, size, 1)`` uint8. With ``margins``
    (:func:`~edge.preprocess.framing_margins`) each face is cut once per margin, in place of the
    model's, its crops one after another: ``(n * len(margins), size, size, 1)``."""
    gray = to_gray(image)  # once, however many framings are cut from it
    rolls = [face.roll for face in faces] if straighten else None
    boxes = [face.box for face in faces]
    framed = [
        preprocess_faces(gray, replace(spec, margin=margin), boxes, rolls)
        for margin in margins or (spec.margin,)
    ]
    return np.stack(framed, axis=1).reshape(-1, spec.size, spec.size, 1)


def make_detector(config: object, measure_lean: bool = True) -> FaceDetector:
    """Builds the detector a validated ``[detector]`` section names (explicit registry);
    ``measure_lean`` off (``classifier.straighten_faces`` off) spares BlazeFace its second look
    at each face for the eyes."""
    from edge.config import BlazeFaceDetectorConfig, HaarDetectorConfig, YuNetDetectorConfig

    if isinstance(config, BlazeFaceDetectorConfig):
        from edge.detect.blazeface import BlazeFaceDetector

        return BlazeFaceDetector(
            min_score=config.min_score,
            min_size=config.min_size,
            num_threads=config.num_threads,
            tiles=config.tiles,
            tile_fraction=config.tile_fraction,
            measure_lean=measure_lean,
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


__all__ = [
    "Face",
    "FaceDetector",
    "detect_faces",
    "face_crops",
    "make_detector",
    "outside_boxes",
    "outside_regions",
    "region_boxes",
]
