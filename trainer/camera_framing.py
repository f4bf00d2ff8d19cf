"""Training faces cut the way the daemon cuts them from a camera frame
(``yuzug-train prepare --camera-framing FRACTION``).

A data set's crops are framed by whoever made it; the daemon frames a face by BlazeFace's box
plus the model's margin. On FER2013 test faces pasted into camera scenes the two disagree a lot
(the daemon's square is as wide as FER2013's on average, but 6% lower, with a spread of 11% of
the side in place and 18% in size), and the shipped model loses 2-3 points on the daemon's crops
(``bench/framing.py``), whatever the surroundings: a room scene or the face's own edge pixels
repeated outwards. The training augmentation's shifts and zooms (up to 10%) do not cover that.

So a share of the training faces is replaced by the daemon's own cut of it: each face is pasted
into a room scene (:mod:`edge.samples`) at a random size and place, found by the detector and
cut by :func:`edge.preprocess.preprocess_face`, the daemon's code path. Only the train split
changes: validation and test keep the data set's framing, so a run's figures stay comparable
with every other run's, and ``bench/framing.py`` measures the camera's view.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from edge.detect.base import FaceDetector
from edge.preprocess import Box, PreprocessSpec, preprocess_face
from edge.samples import FRAME_SIZE, background, centre_inside, paste_face
from trainer.detector_threads import map_with_detectors

# Pasted face sizes in a 640x480 frame: from a face across the room (BlazeFace's short-range
# model still finds it) to one close to the camera.
SIDE_RANGE = (96, 288)
# Room scenes to paste onto, made once: a blurred scene costs more than the detection.
SCENES = 8


@dataclass(frozen=True)
class Placement:
    """Where one face goes: the room scene, the pasted side and its centre in the frame."""

    scene: int
    side: int
    centre: tuple[int, int]


def draw_placement(rng: np.random.Generator, scene_count: int) -> Placement:
    """A random size (:data:`SIDE_RANGE`), place and scene for one face."""
    side = int(rng.integers(SIDE_RANGE[0], SIDE_RANGE[1], endpoint=True))
    half = side // 2
    centre = (
        int(rng.integers(half, FRAME_SIZE[0] - half)),
        int(rng.integers(half, FRAME_SIZE[1] - half)),
    )
    return Placement(int(rng.integers(scene_count)), side, centre)


def camera_frame(
    face: np.ndarray, scenes: list[np.ndarray], placement: Placement
) -> tuple[np.ndarray, Box]:
    """A copy of one of ``scenes`` with the gray ``face`` pasted as ``placement`` says;
    returns the frame and the pasted square."""
    frame = scenes[placement.scene].copy()
    return frame, paste_face(frame, face, placement.centre, placement.side)


def daemon_cut(
    frame: np.ndarray, square: Box, spec: PreprocessSpec, detector: FaceDetector
) -> np.ndarray | None:
    """The daemon's crop of the face pasted at ``square`` (the largest face found with its
    centre there), or None when the detector finds none there."""
    found = [face for face in detector.detect(frame) if centre_inside(face.box, square)]
    if not found:
        return None
    face = max(found, key=lambda candidate: candidate.box[2] * candidate.box[3])
    return preprocess_face(frame, spec, face.box, face.roll)


def recut_as_camera(
    pixels: np.ndarray,
    spec: PreprocessSpec,
    fraction: float,
    seed: int,
    new_detector: Callable[[], FaceDetector],
    workers: int = 1,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Returns ``pixels`` (``(n, size, size, 1)`` uint8 face crops) with about ``fraction`` of
    them replaced by the daemon's crop of the face in a camera frame, and a report.

    A face the detector does not find keeps the data set's framing (counted as ``not_found``).
    The choice of faces, scenes, sizes and places follows ``seed`` alone: every placement is
    drawn before any detection, so the result is the same for any number of ``workers``
    (:func:`~trainer.detector_threads.map_with_detectors`).
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"camera framing must be a fraction within [0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    chosen = np.flatnonzero(rng.random(len(pixels)) < fraction)
    scenes = [background(rng) for _ in range(SCENES)]
    placements = [draw_placement(rng, len(scenes)) for _ in chosen]

    def cut(detector: FaceDetector, job: tuple[int, Placement]) -> np.ndarray | None:
        index, placement = job
        frame, square = camera_frame(pixels[index, :, :, 0], scenes, placement)
        return daemon_cut(frame, square, spec, detector)

    recut = pixels.copy()
    not_found = 0
    jobs = zip(chosen.tolist(), placements, strict=True)
    results = tqdm(
        map_with_detectors(cut, jobs, new_detector, workers),
        total=len(chosen),
        desc="camera framing",
        unit="face",
    )
    for (index, _), face_cut in results:
        if face_cut is None:
            not_found += 1
        else:
            recut[index] = face_cut
    report = {
        "fraction": fraction,
        "chosen": len(chosen),
        "recut": len(chosen) - not_found,
        "not_found": not_found,
    }
    return recut, report
