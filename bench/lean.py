"""Leaning faces: what straightening them by their eyes (``classifier.straighten_faces``) gives.

    python bench/lean.py [--model models/default] [--data fer2013.zip] [--leans 0,15,30,45]
                         [--confirm-score 0.5] [--json out.json] [--plot lean.png]

Every angry/happy/sad FER2013 test face is pasted into a 640x480 room scene, leaning by the
given degrees (every other face the other way: a head on one side, or a camera not quite
level; 90 a person lying on their side, 180 upside down), found by BlazeFace as the daemon
finds it with ``straighten_faces`` off (one look) and on (a closer look at each face reads its
eyes, under each quarter turn unless the face is clearly upright), and classified twice:
cropped as its box lies, and straightened (:func:`edge.preprocess.straightening_turn`). Per
lean: the share of faces found, the accuracy of each crop on the faces both found (argmax among
the emotions, as ``bench/accuracy.py`` scores), the paired difference with McNemar's p, how far
the eyes' lean was from the lean given, either way round (a FER face's own lean adds to that
spread), and detection plus crop time per frame with each setting.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.accuracy import mcnemar_p  # noqa: E402
from bench.common import emit  # noqa: E402
from edge.bundle import load_bundle  # noqa: E402
from edge.classify.emotion import EmotionClassifier  # noqa: E402
from edge.detect import Face, face_crops  # noqa: E402
from edge.detect.blazeface import TILE_CONFIRM_SCORE, BlazeFaceDetector  # noqa: E402
from edge.samples import background, centre_inside, fer_faces, leaning_frame  # noqa: E402

LABELS = ["angry", "happy", "sad"]


def evaluate(
    model: Path,
    data: Path,
    leans: list[float],
    side: int,
    limit: int,
    confirm_score: float = TILE_CONFIRM_SCORE,
) -> list[dict[str, Any]]:
    classifier = EmotionClassifier.from_bundle(load_bundle(model), num_threads=1)
    # One detector as the daemon runs with straighten_faces off, one with it on (which reads
    # each face's lean in a second, closer look).
    detectors = {
        "plain": BlazeFaceDetector(confirm_score=confirm_score, measure_lean=False),
        "straight": BlazeFaceDetector(confirm_score=confirm_score, measure_lean=True),
    }
    emotions = [classifier.labels.index(label) for label in LABELS]
    faces = [
        (label, image)
        for label, images in fer_faces(data, LABELS, limit).items()
        for image in images
    ]
    scene = background(np.random.default_rng(0))
    rows = []
    for lean in leans:
        crops: dict[str, list[np.ndarray]] = {kind: [] for kind in detectors}
        seconds = dict.fromkeys(detectors, 0.0)
        truth: list[int] = []
        errors: list[float] = []
        for index, (label, image) in enumerate(faces):
            tilt = lean if index % 2 else -lean
            frame, square = leaning_frame(scene, image, tilt, side)
            found: dict[str, list[Face]] = {}
            cut: dict[str, np.ndarray] = {}
            for kind, detector in detectors.items():
                started = time.perf_counter()
                found[kind] = [f for f in detector.detect(frame) if centre_inside(f.box, square)][
                    :1
                ]
                cut[kind] = face_crops(frame, classifier.spec, found[kind], kind == "straight")
                seconds[kind] += time.perf_counter() - started
            if not (found["plain"] and found["straight"]):
                continue  # both crops are scored on the same faces
            for kind, kept in crops.items():
                kept.append(cut[kind][0])
            truth.append(LABELS.index(label))
            errors.append((found["straight"][0].roll - tilt + 180) % 360 - 180)  # either way round
        right = {}
        for kind, kept in crops.items():
            probabilities = classifier.probabilities(np.stack(kept))
            right[kind] = np.argmax(probabilities[:, emotions], axis=1) == np.array(truth)
        only_straight = int(np.sum(right["straight"] & ~right["plain"]))
        only_plain = int(np.sum(right["plain"] & ~right["straight"]))
        rows.append(
            {
                "lean": lean,
                "faces": len(faces),
                "found": round(len(truth) / len(faces), 4),
                "accuracy_as_cut": round(float(right["plain"].mean()), 4),
                "accuracy_straightened": round(float(right["straight"].mean()), 4),
                "right_only_straightened": only_straight,
                "right_only_as_cut": only_plain,
                "mcnemar_p": round(mcnemar_p(only_plain, only_straight), 4),
                "eye_lean_error_mean": round(float(np.mean(errors)), 1),
                "eye_lean_error_sd": round(float(np.std(errors)), 1),
                "detect_crop_ms_as_cut": round(seconds["plain"] * 1000 / len(faces), 3),
                "detect_crop_ms_straightened": round(seconds["straight"] * 1000 / len(faces), 3),
            }
        )
        print(format_row(rows[-1]), flush=True)
    return rows


def format_row(row: dict[str, Any]) -> str:
    return (
        f"lean {row['lean']:>4g}: found {row['found']:.1%}; accuracy as cut "
        f"{row['accuracy_as_cut']:.1%}, straightened {row['accuracy_straightened']:.1%} "
        f"(right only straightened {row['right_only_straightened']}, only as cut "
        f"{row['right_only_as_cut']}, McNemar p {row['mcnemar_p']:.3g}); eyes' lean off by "
        f"{row['eye_lean_error_mean']:+.1f} +- {row['eye_lean_error_sd']:.1f} degrees; detect + "
        f"crop {row['detect_crop_ms_as_cut']:.2f} / {row['detect_crop_ms_straightened']:.2f} ms"
    )


def plot(rows: list[dict[str, Any]], model: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    leans = [row["lean"] for row in rows]
    figure, axis = plt.subplots(figsize=(6.4, 4.0))
    axis.plot(leans, [row["accuracy_straightened"] for row in rows], "o-", label="straightened")
    axis.plot(
        leans, [row["accuracy_as_cut"] for row in rows], "s--", label="cropped as the box lies"
    )
    axis.plot(leans, [row["found"] for row in rows], ":", color="grey", label="faces found")
    axis.set_xlabel("how far the face leans (degrees, either way)")
    axis.set_ylabel("share of angry/happy/sad test faces")
    axis.set_xticks(leans)
    lowest = min(min(row["accuracy_as_cut"], row["found"]) for row in rows)
    axis.set_ylim(min(0.5, lowest - 0.05), 1.0)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower left")
    axis.set_title(f"Leaning faces, BlazeFace + {model}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/fer2013.zip")
    parser.add_argument("--leans", default="0,15,30,45", help="degrees, comma-separated")
    parser.add_argument("--face-side", type=int, default=160, help="face size in the frame, px")
    parser.add_argument("--limit", type=int, default=10000, help="test faces per label")
    parser.add_argument(
        "--confirm-score",
        type=float,
        default=TILE_CONFIRM_SCORE,
        help="how sure the tile pass's closer look must be to keep a small face "
        f"(shipped {TILE_CONFIRM_SCORE:g}; faces the one pass misses come from the tiles)",
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    leans = [float(value) for value in args.leans.split(",")]
    rows = evaluate(args.model, args.data, leans, args.face_side, args.limit, args.confirm_score)
    if args.plot:
        plot(rows, load_bundle(args.model).manifest.full_name, args.plot)
    emit({"model": str(args.model), "leans": rows}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
