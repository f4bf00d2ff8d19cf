"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge.preprocess import Box
from edge.samples import (
    FRAME_SIZE,
    Segment,
    background,
    fer_faces,
    paste_face,
    scripted_frames,
    write_video,
)

ROOT = Path(__file__).resolve().parents[1]


def add_faces_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--data``, ``--face-side`` and ``--limit``, for a benchmark that pastes
    test faces into frames (:func:`pasted_faces`)."""
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/fer2013.zip")
    parser.add_argument("--face-side", type=int, default=240)
    parser.add_argument("--limit", type=int, default=10000, help="test faces per label")


def pasted_faces(
    data: Path, labels: list[str], limit: int, side: int
) -> Iterator[tuple[str, np.ndarray, np.ndarray, Box]]:
    """``(label, face, frame, box)`` for up to ``limit`` test faces of each label: the gray face,
    a 640x480 room scene with it pasted ``side`` px wide at a random place, and where."""
    rng = np.random.default_rng(0)
    scene = background(rng)
    half = side // 2
    for label, images in fer_faces(data, labels, limit).items():
        for image in images:
            frame = scene.copy()
            centre = (
                int(rng.integers(half + 5, FRAME_SIZE[0] - half - 5)),
                int(rng.integers(half + 5, FRAME_SIZE[1] - half - 5)),
            )
            yield label, image, frame, paste_face(frame, image, centre, side)


def emit(results: dict[str, Any], json_path: Path | None) -> None:
    """Prints the results and, when asked, keeps them as JSON."""
    print(json.dumps(results, indent=2))
    if json_path:
        json_path.write_text(json.dumps(results, indent=2) + "\n")


def face_video(
    data: Path, path: Path, script: list[Segment], fps: float = 25, per_label: int = 2
) -> Path:
    """An MJPG video of FER test faces in 640x480 scenes, following ``script``."""
    labels = sorted({s.label for s in script if s.label != "none"})
    write_video(scripted_frames(fer_faces(data, labels, per_label), script, fps), path, fps)
    return path
