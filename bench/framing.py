"""Where the daemon's face crops lose accuracy against the data set's own framing.

    python bench/framing.py [--model models/default] [--data fer2013.zip] [--face-side 240]
                            [--against OTHER_BUNDLE ...] [--json out.json]

Every angry/happy/sad FER2013 test face is pasted into a 640x480 room scene, found by BlazeFace
as the daemon finds it and classified: as the data set framed it (the 48x48 image itself), as
the daemon crops it (:func:`edge.preprocess.preprocess_face`), cropped with other margins and
with the box moved up or down, resampled otherwise (bilinear, bicubic, a little blur), and with
two framings averaged as ``classifier.average_framings`` does (also with flip averaging). The
faces are split into two halves (every other face): a change that helps one half and not the
other is noise. Accuracy is the argmax among the emotions, as ``bench/accuracy.py`` scores;
each row is compared with the daemon's crop face by face (McNemar p).

It also gives where the daemon's square (BlazeFace's box with the model's margin) lies against
the pasted face's, in fractions of the pasted side: the framing a model trained on the data
set's has to cope with, and what ``yuzug-train prepare --camera-framing`` trains on.

``--against`` scores other bundles on the same found faces, as framed and as the daemon crops
them, each paired face by face with ``--model`` (accuracy difference, 95% interval, McNemar p):
how two training recipes compare on the camera's view.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.accuracy import difference_text, paired_hits  # noqa: E402
from bench.common import add_faces_arguments, emit, pasted_faces  # noqa: E402
from edge.bundle import load_bundle  # noqa: E402
from edge.classify.emotion import EmotionClassifier  # noqa: E402
from edge.detect import Face  # noqa: E402
from edge.detect.blazeface import BlazeFaceDetector  # noqa: E402
from edge.preprocess import (  # noqa: E402
    PreprocessSpec,
    face_region,
    preprocess_face,
    square_crop_box,
    to_gray,
)
from edge.samples import centre_inside  # noqa: E402

LABELS = ["angry", "happy", "sad"]
DAEMON = "the daemon's crop"
AVERAGED = "two framings averaged"
MARGINS = (0.0, 0.05, 0.1, 0.15, 0.2)
SHIFTS = (-0.1, -0.05, 0.0, 0.05)  # of the box's height; negative moves the crop up

Variant = Callable[[np.ndarray, Face, PreprocessSpec], np.ndarray]


def reframed(margin: float | None, shift: float) -> Variant:
    """The daemon's crop (:func:`preprocess_face`) with another margin (``None``: the model's)
    and the box moved down by ``shift`` of its height."""

    def cut(gray: np.ndarray, face: Face, spec: PreprocessSpec) -> np.ndarray:
        x, y, w, h = face.box
        moved = (x, int(round(y + shift * h)), w, h)
        framing = spec if margin is None else dataclasses.replace(spec, margin=margin)
        return preprocess_face(gray, framing, moved, face.roll)

    return cut


def resampled(interpolation: int, blur: float = 0.0) -> Variant:
    """The daemon's crop resized with another interpolation, then blurred by ``blur`` px."""

    def cut(gray: np.ndarray, face: Face, spec: PreprocessSpec) -> np.ndarray:
        region = face_region(gray, face.box, spec.margin, face.roll)
        small = cv2.resize(region, (spec.size, spec.size), interpolation=interpolation)
        return (cv2.GaussianBlur(small, (0, 0), blur) if blur else small)[:, :, np.newaxis]

    return cut


def variants() -> dict[str, Variant]:
    found: dict[str, Variant] = {DAEMON: reframed(None, 0.0)}
    for margin in MARGINS:
        for shift in SHIFTS:
            found[f"margin {margin:.2f}, moved {shift:+.2f}"] = reframed(margin, shift)
    found["bilinear resize"] = resampled(cv2.INTER_LINEAR)
    found["bicubic resize"] = resampled(cv2.INTER_CUBIC)
    found["area resize, blur 0.5 px"] = resampled(cv2.INTER_AREA, 0.5)
    found["area resize, blur 0.8 px"] = resampled(cv2.INTER_AREA, 0.8)
    return found


def halves(hits: np.ndarray) -> dict[str, float]:
    """Accuracy over all faces and over each half (every other face), to six places so that
    a printed percentage is not rounded twice."""
    first = np.arange(len(hits)) % 2 == 0
    return {
        "accuracy": round(float(hits.mean()), 6),
        "first_half": round(float(hits[first].mean()), 6),
        "second_half": round(float(hits[~first].mean()), 6),
    }


def right_emotions(scores: np.ndarray, labels: list[str], truth: np.ndarray) -> np.ndarray:
    """Whether each row's most likely emotion (argmax among LABELS) is its true one."""
    emotions = [labels.index(label) for label in LABELS]
    return np.argmax(scores[:, emotions], axis=1) == truth


def emotion_hits(
    classifier: EmotionClassifier, crops: list[np.ndarray], truth: np.ndarray
) -> np.ndarray:
    """:func:`right_emotions` of the classifier's answers to ``crops``."""
    return right_emotions(classifier.probabilities(np.stack(crops)), classifier.labels, truth)


def evaluate(
    model: Path, data: Path, side: int, limit: int, against: list[Path] | None = None
) -> dict[str, Any]:
    bundle = load_bundle(model)
    classifier = EmotionClassifier.from_bundle(bundle, num_threads=1)
    # The daemon's averaging: flip_average, average_framings, and both.
    averaging = {
        f"{DAEMON}, flipped": EmotionClassifier.from_bundle(bundle, flip_average=True),
        AVERAGED: EmotionClassifier.from_bundle(bundle, average_framings=True),
        f"{AVERAGED} and flipped": EmotionClassifier.from_bundle(
            bundle, average_framings=True, flip_average=True
        ),
    }
    averaged: dict[str, list[np.ndarray]] = {name: [] for name in averaging}
    spec = classifier.spec
    detector = BlazeFaceDetector()
    cuts = variants()
    others = {path: EmotionClassifier.from_bundle(load_bundle(path)) for path in against or []}
    # Each other bundle's own input contract: as framed and the daemon's crop.
    other_crops: dict[Path, tuple[list[np.ndarray], list[np.ndarray]]] = {
        path: ([], []) for path in others
    }
    crops: dict[str, list[np.ndarray]] = {name: [] for name in ["as framed", *cuts]}
    truth: list[int] = []
    geometry: list[tuple[float, float, float]] = []
    faces = 0
    for label, image, frame, square in pasted_faces(data, LABELS, limit, side):
        faces += 1
        found = [f for f in detector.detect(frame) if centre_inside(f.box, square)][:1]
        if not found:
            continue
        left, top, cut_side, _ = square_crop_box(found[0].box, spec.margin)
        geometry.append(
            ((left - square[0]) / square[2], (top - square[1]) / square[3], cut_side / square[2])
        )
        gray = to_gray(frame)
        crops["as framed"].append(preprocess_face(image, spec))
        for name, cut in cuts.items():
            crops[name].append(cut(gray, found[0], spec))
        for path, other in others.items():
            other_crops[path][0].append(preprocess_face(image, other.spec))
            other_crops[path][1].append(cuts[DAEMON](gray, found[0], other.spec))
        for name, both in averaging.items():
            face_crops = both.face_crops(frame, found)
            averaged[name].append(both.probabilities(face_crops, both.framings)[0])
        truth.append(LABELS.index(label))
    if not truth:
        raise SystemExit(
            f"BlazeFace found none of the {faces} faces pasted {side} px wide: too small for "
            "the detector; give a larger --face-side"
        )
    expected = np.array(truth)
    right = {name: emotion_hits(classifier, kept, expected) for name, kept in crops.items()}
    for name, scores in averaged.items():
        right[name] = right_emotions(np.stack(scores), classifier.labels, expected)
    rows = [
        {
            "crop": name,
            **halves(hits),
            "mcnemar_p_vs_daemon": paired_hits(right[DAEMON], hits)["mcnemar_p"],
        }
        for name, hits in right.items()
    ]
    compared: list[dict[str, Any]] = []
    for path, other in others.items():
        as_framed, daemon = (emotion_hits(other, kept, expected) for kept in other_crops[path])
        compared.append(
            {
                "model": str(path),
                "daemon_crop": {**halves(daemon), "paired": paired_hits(right[DAEMON], daemon)},
                "as_framed": {
                    **halves(as_framed),
                    "paired": paired_hits(right["as framed"], as_framed),
                },
            }
        )
    rows.sort(key=lambda row: row["accuracy"], reverse=True)
    placed = np.array(geometry)
    placement = {
        name: {
            "mean": round(float(placed[:, i].mean()), 3),
            "sd": round(float(placed[:, i].std()), 3),
        }
        for i, name in enumerate(("left_offset", "top_offset", "side"))
    }
    return {
        "face_side_px": side,
        "faces": faces,
        "found": len(truth),
        "daemon_square_vs_pasted": placement,
        "rows": rows,
        "against": compared,
    }


def format_against(results: dict[str, Any], model: Path) -> str:
    lines = [
        f"other bundles on the same faces, paired with {model} (points, 95% interval, McNemar p):",
        f"{'bundle':<34} {'crop':<18} {'accuracy':>8} {'half 1':>7} {'half 2':>7}  difference",
    ]
    for other in results["against"]:
        for crop, key in ((DAEMON, "daemon_crop"), ("as framed", "as_framed")):
            row = other[key]
            lines.append(
                f"{other['model']:<34} {crop:<18} {row['accuracy']:>8.1%} "
                f"{row['first_half']:>7.1%} {row['second_half']:>7.1%}  "
                f"{difference_text(row['paired'])}, McNemar p {row['paired']['mcnemar_p']:.3g}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_faces_arguments(parser)
    parser.add_argument(
        "--against",
        type=Path,
        action="append",
        metavar="BUNDLE",
        help="another bundle to score on the same faces and pair with --model (repeatable)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = evaluate(args.model, args.data, args.face_side, args.limit, args.against)
    print(f"{results['found']} of {results['faces']} faces found at {args.face_side} px")
    print("the daemon's square against the pasted face's, in its side (mean, sd):")
    for name, spread in results["daemon_square_vs_pasted"].items():
        print(f"  {name.replace('_', ' '):<12} {spread['mean']:+.3f}  {spread['sd']:.3f}")
    print(f"{'crop':<34} {'accuracy':>8} {'half 1':>7} {'half 2':>7}  McNemar p vs the daemon's")
    for row in results["rows"]:
        print(
            f"{row['crop']:<34} {row['accuracy']:>8.1%} {row['first_half']:>7.1%} "
            f"{row['second_half']:>7.1%}  {row['mcnemar_p_vs_daemon']:.3f}"
        )
    if results["against"]:
        print(format_against(results, args.model))
    if args.json:
        emit(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
