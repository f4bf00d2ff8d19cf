"""The camera-turn check (``yuzug-edge doctor``, the daemon's ``TurnWatch``): how often it names
the right rotation, with and without the eyes BlazeFace reads.

    python bench/orientation.py [--data fer2013.zip] [--per-label 34] [--leans 0,30] [--json F]

Angry/happy/sad FER2013 test faces are pasted into a 640x480 room scene, leaning by the given
degrees (every other face the other way), and the picture is turned as a camera mounted upright,
on either side or upside down would deliver it. :func:`edge.orientation.upright_turn` is asked
once per picture, as doctor asks: "upright kept" counts the upright pictures it leaves alone,
"turned righted" the turned ones for which it names the turn that stands them up (out of three
per face). Once with a detector that reads each face's eyes (``straighten_faces`` on: a face
lying on its side under a turn does not count there), once without.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import emit  # noqa: E402
from bench.lean import LABELS  # noqa: E402
from edge.camera.base import Frame, rotate_image  # noqa: E402
from edge.detect.blazeface import BlazeFaceDetector  # noqa: E402
from edge.orientation import TURNS, upright_turn  # noqa: E402
from edge.samples import background, fer_faces, leaning_frame  # noqa: E402


def evaluate(data: Path, per_label: int, leans: list[float]) -> list[dict[str, Any]]:
    faces = [
        image for images in fer_faces(data, LABELS, per_label, seed=1).values() for image in images
    ]
    detectors = {
        "with_eyes": BlazeFaceDetector(measure_lean=True),
        "without_eyes": BlazeFaceDetector(measure_lean=False),
    }
    scene = background(np.random.default_rng(0))
    rows = []
    for lean in leans:
        row: dict[str, Any] = {"lean": lean, "faces": len(faces)}
        for name, detector in detectors.items():
            kept = righted = 0
            for index, face in enumerate(faces):
                frame = leaning_frame(scene, face, lean if index % 2 else -lean, 160)[0]
                for mounted in TURNS:
                    turn, _ = upright_turn(Frame(rotate_image(frame, mounted)), detector)
                    if mounted == 0:
                        kept += turn == 0
                    else:
                        righted += turn == (360 - mounted) % 360
            row[f"upright_kept_{name}"] = kept
            row[f"turned_righted_{name}"] = round(righted / (len(TURNS) - 1), 1)
        print(
            f"lean {lean:>3g}, {len(faces)} faces: upright kept {row['upright_kept_with_eyes']} "
            f"with the eyes ({row['upright_kept_without_eyes']} without), turned righted "
            f"{row['turned_righted_with_eyes']} ({row['turned_righted_without_eyes']}) per turn",
            flush=True,
        )
        rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/fer2013.zip")
    parser.add_argument("--per-label", type=int, default=34, help="test faces per emotion")
    parser.add_argument("--leans", default="0,30", help="degrees, comma-separated")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    leans = [float(value) for value in args.leans.split(",")]
    emit({"leans": evaluate(args.data, args.per_label, leans)}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
