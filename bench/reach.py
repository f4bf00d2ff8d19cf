"""How far the daemon sees: the share of faces BlazeFace finds at each size, and at what cost.

    python bench/reach.py [--model models/default] [--data fer2013.zip] [--limit 30]
                          [--sides 40 48 56 64 80 96 128] [--tile-fraction 0.6 ...]
                          [--confirm-score 0.6 ...]
                          [--empty 100] [--light 0.25] [--detect-on colour|gray|lores]
                          [--video-side 64] [--json out.json] [--plot reach.png]

For every face side, up to ``--limit`` angry/happy/sad test faces of each label are pasted into
640x480 room scenes (the same scenes as ``bench/framing.py``) and looked for by BlazeFace in one
pass over the whole frame, and with the tile pass at each ``--tile-fraction`` (the shipped
0.6 when none is given), and at the first fraction with each ``--confirm-score`` (how sure
the closer look at a small face the tiles found must be; 0.5 shipped). A face is found when
a reported box's centre lies inside it. Per setting and side: the share found, the median
detection time per frame (one thread, no second look for the lean) and the accuracy of the
found faces as the daemon crops and classifies them (argmax among the emotions). Then the
false faces: how many each setting reports in ``--empty`` scenes with nobody in them, where the
tile pass always runs, and in 22 photos of scikit-image's with nobody in them (coins, a galaxy
field, a cat, a motorbike, textures). With ``--light`` every one of those pictures is dimmed,
with sensor noise: a dim room at the camera's exposure limit. ``--detect-on`` gives detection
the gray frame, or a gray frame of half the size as picamera2's lores Y plane (boxes scaled
back, as the daemon does), instead of the colour one.

Last, a video (25 fps; an angry, a happy and a sad face, each held 2 s ``--video-side`` px wide
with a slight jitter, then nobody for 2 s): the detection time per frame when every frame is
searched as a still image (``detect``) and when the daemon's ``detect_in_video`` follows a face
the tiles found in one square around it, with the share of face frames where the face is found.

A face pasted S px wide is as wide as a 15 cm face about 554 * 0.15 / S metres from a camera
with a 60-degree horizontal view at 640x480: 1.3 m at 64 px, 1.7 m at 48.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import add_faces_arguments, emit, pasted_faces  # noqa: E402
from bench.framing import LABELS, emotion_hits  # noqa: E402
from bench.robustness import dim  # noqa: E402
from edge.bundle import load_bundle  # noqa: E402
from edge.camera.base import Frame  # noqa: E402
from edge.classify.emotion import EmotionClassifier  # noqa: E402
from edge.detect import Face, detect_faces  # noqa: E402
from edge.detect.blazeface import (  # noqa: E402
    TILE_CONFIRM_SCORE,
    TILE_FRACTION,
    BlazeFaceDetector,
)
from edge.preprocess import to_gray  # noqa: E402
from edge.samples import (  # noqa: E402
    FRAME_SIZE,
    Segment,
    background,
    centre_inside,
    fer_faces,
    scripted_frames,
)

SIDES = (40, 48, 56, 64, 80, 96, 128)
PHOTOS = (
    "brick.png", "cell.png", "chelsea.png", "chessboard_RGB.png", "clock_motion.png",
    "coffee.png", "coins.png", "color.png", "grass.png", "gravel.png", "horse.png",
    "hubble_deep_field.jpg", "ihc.png", "logo.png", "microaneurysms.png", "moon.png",
    "motorcycle_left.png", "page.png", "phantom.png", "retina.jpg", "rocket.jpg", "text.png",
)  # fmt: skip
ONE_PASS = "one pass"
SENSOR_NOISE = 2.0  # grey levels (sd) added to a dimmed frame


def detectors(
    fractions: list[float], confirm_scores: Sequence[float]
) -> dict[str, BlazeFaceDetector]:
    """The settings compared: one pass, the tile pass at each fraction, and at the first
    fraction with each other confirmation score."""
    found = {ONE_PASS: BlazeFaceDetector(tiles=False, measure_lean=False)}
    for fraction in fractions:
        found[f"tiles {fraction:g}"] = BlazeFaceDetector(tile_fraction=fraction, measure_lean=False)
    for score in confirm_scores:
        found[f"tiles {fractions[0]:g}, confirm {score:g}"] = BlazeFaceDetector(
            tile_fraction=fractions[0], confirm_score=score, measure_lean=False
        )
    return found


DETECT_ON = ("colour", "gray", "lores")


def searched(detector: BlazeFaceDetector, frame: np.ndarray, detect_on: str) -> list[Face]:
    """The faces ``detector`` finds in ``frame`` (boxes in its pixels) when detection runs on
    ``detect_on``: the colour frame (an OpenCV camera), its gray copy, or a gray copy of half
    its width and height (picamera2's default lores Y plane, 320x240 beside 640x480)."""
    if detect_on == "colour":
        return detector.detect(frame)
    gray = to_gray(frame)
    if detect_on == "gray":
        return detector.detect(gray)
    height, width = gray.shape
    lores = cv2.resize(gray, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    return detect_faces(detector, Frame(frame, gray=lores, gray_scale=2.0))


def dimmed(frame: np.ndarray, light: float, rng: np.random.Generator) -> np.ndarray:
    """``frame`` at ``light`` of its brightness with :data:`SENSOR_NOISE` grey levels of noise,
    as a camera at its exposure limit delivers a dim room; as it is at full light."""
    return frame if light >= 1 else dim(light, SENSOR_NOISE)(frame, rng)


def reach(
    model: Path,
    data: Path,
    sides: list[int],
    limit: int,
    fractions: list[float],
    empty: int,
    confirm_scores: Sequence[float] = (),
    light: float = 1.0,
    detect_on: str = "colour",
) -> dict[str, Any]:
    classifier = EmotionClassifier.from_bundle(load_bundle(model), num_threads=1)
    settings = detectors(fractions, confirm_scores)
    noise = np.random.default_rng(7)
    rows = []
    for side in sides:
        times: dict[str, list[float]] = {name: [] for name in settings}
        crops: dict[str, list[np.ndarray]] = {name: [] for name in settings}
        truth: dict[str, list[int]] = {name: [] for name in settings}
        faces = 0
        for label, _, bright, square in pasted_faces(data, LABELS, limit, side):
            faces += 1
            frame = dimmed(bright, light, noise)
            for name, detector in settings.items():
                start = time.perf_counter()
                found = searched(detector, frame, detect_on)
                times[name].append(time.perf_counter() - start)
                inside = [face for face in found if centre_inside(face.box, square)][:1]
                if inside:
                    crops[name].append(classifier.face_crops(frame, inside)[0])
                    truth[name].append(LABELS.index(label))
        for name in settings:
            hits = (
                emotion_hits(classifier, crops[name], np.array(truth[name]))
                if truth[name]
                else np.zeros(0, bool)
            )
            rows.append(
                {
                    "setting": name,
                    "face_side_px": side,
                    "faces": faces,
                    "found": len(truth[name]),
                    "found_share": round(len(truth[name]) / faces, 6),
                    "accuracy_of_found": round(float(hits.mean()), 6) if hits.size else None,
                    "detect_ms_median": round(statistics.median(times[name]) * 1000, 3),
                }
            )
    rng = np.random.default_rng(1)
    scenes = [dimmed(background(rng), light, noise) for _ in range(empty)]
    photos = [dimmed(photo, light, noise) for photo in photos_without_people()]
    return {
        "light": light,
        "detect_on": detect_on,
        "empty_scenes": empty,
        "false_faces": false_faces(settings, scenes, detect_on),
        "photos": len(photos),
        "photo_false_faces": false_faces(settings, photos, detect_on),
        "rows": rows,
    }


def photos_without_people() -> list[np.ndarray]:
    """scikit-image's sample photos with no person in them (coins, a galaxy field, a cat, a
    motorbike, textures, text...), each stretched to 640x480: the textures that fool a face
    detector at small scales."""
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    photos = []
    for name in PHOTOS:
        photo = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
        if photo is None:
            raise SystemExit(f"{folder / name}: not readable; reinstall scikit-image")
        photos.append(cv2.resize(photo, FRAME_SIZE, interpolation=cv2.INTER_AREA))
    return photos


def false_faces(
    settings: dict[str, BlazeFaceDetector], frames: list[np.ndarray], detect_on: str = "colour"
) -> dict[str, int]:
    """How many faces each setting reports in frames with nobody in them."""
    return {
        name: sum(len(searched(detector, frame, detect_on)) for frame in frames)
        for name, detector in settings.items()
    }


def video(data: Path, side: int, fraction: float) -> dict[str, Any]:
    """Detection time and found share on a video of far faces, searched frame by frame as
    stills and followed as the daemon does."""
    script = [Segment(label, 2.0) for label in LABELS] + [Segment("nobody", 2.0)]
    faces = fer_faces(data, LABELS, 1)
    frames = list(scripted_frames(faces, script, 25, face_side=side, seed=3))
    results = {}
    for name, follow in (("each frame searched", False), ("followed", True)):
        detector = BlazeFaceDetector(tile_fraction=fraction, measure_lean=False)
        look = detector.detect_in_video if follow else detector.detect
        times, found, with_face = [], 0, 0
        for frame, label in frames:
            start = time.perf_counter()
            faces_found = look(frame)
            times.append(time.perf_counter() - start)
            if label != "nobody":
                with_face += 1
                found += bool(faces_found)
        results[name] = {
            "detect_ms_median": round(statistics.median(times) * 1000, 3),
            "detect_ms_mean": round(statistics.fmean(times) * 1000, 3),
            "found_share": round(found / with_face, 6),
        }
    return {"face_side_px": side, "tile_fraction": fraction, "frames": len(frames), **results}


def format_table(results: dict[str, Any]) -> str:
    width = max(12, *(len(row["setting"]) for row in results["rows"]))
    lines = [f"{'setting':<{width}} {'face px':>7} {'found':>15} {'accuracy':>9} {'detect ms':>9}"]
    for row in results["rows"]:
        accuracy = row["accuracy_of_found"]
        found = f"{row['found']}/{row['faces']} {row['found_share']:>4.0%}"
        lines.append(
            f"{row['setting']:<{width}} {row['face_side_px']:>7} {found:>15} "
            f"{'-' if accuracy is None else f'{accuracy:.1%}':>9} {row['detect_ms_median']:>9.2f}"
        )
    lines.append(
        f"faces reported in {results['empty_scenes']} empty scenes / in {results['photos']} "
        "photos with nobody in them:"
    )
    lines += [
        f"  {name:<{width}} {count} / {results['photo_false_faces'][name]}"
        for name, count in results["false_faces"].items()
    ]
    clip = results["video"]
    lines.append(
        f"video, {clip['frames']} frames, faces {clip['face_side_px']} px, tiles "
        f"{clip['tile_fraction']:g}:"
    )
    for name in ("each frame searched", "followed"):
        row = clip[name]
        lines.append(
            f"  {name:<20} detect {row['detect_ms_median']:.2f} ms median, "
            f"{row['detect_ms_mean']:.2f} mean; the face found on {row['found_share']:.0%} "
            "of its frames"
        )
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    for name in dict.fromkeys(row["setting"] for row in results["rows"]):
        rows = [row for row in results["rows"] if row["setting"] == name]
        smallest = rows[0]
        axes.plot(
            [row["face_side_px"] for row in rows],
            [100 * row["found_share"] for row in rows],
            marker="o",
            label=f"{name}: {smallest['detect_ms_median']:.1f} ms a frame at "
            f"{smallest['face_side_px']} px",
        )
    axes.set_xlabel("face side in a 640x480 frame (px)")
    axes.set_ylabel("faces found (%)")
    axes.set_ylim(0, 102)
    axes.grid(alpha=0.3)
    axes.legend(title="BlazeFace, one thread (median)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_faces_arguments(parser)
    parser.set_defaults(limit=30)
    parser.add_argument("--sides", type=int, nargs="+", default=list(SIDES), metavar="PX")
    parser.add_argument(
        "--tile-fraction",
        type=float,
        action="append",
        metavar="F",
        help=f"a tile side to compare, as a share of the frame's shorter side (repeatable; "
        f"default {TILE_FRACTION:g}, the shipped one)",
    )
    parser.add_argument(
        "--confirm-score",
        type=float,
        action="append",
        default=[],
        metavar="S",
        help="also the tile pass at the first fraction with this confirmation score "
        f"(repeatable; shipped {TILE_CONFIRM_SCORE:g})",
    )
    parser.add_argument("--empty", type=int, default=100, help="empty scenes for false faces")
    parser.add_argument(
        "--light",
        type=float,
        default=1.0,
        metavar="F",
        help="frames, empty scenes and photos at this share of their brightness, with "
        f"{SENSOR_NOISE:g} grey levels of sensor noise (a dim room)",
    )
    parser.add_argument(
        "--video-side", type=int, default=64, metavar="PX", help="the video's face side"
    )
    parser.add_argument(
        "--detect-on",
        choices=DETECT_ON,
        default="colour",
        help="what detection sees: the colour frame (an OpenCV camera, default), its gray "
        "copy, or a gray copy at half the size (picamera2's default lores Y plane)",
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path, help="draw the share found against face side (PNG)")
    args = parser.parse_args(argv)
    fractions = args.tile_fraction or [TILE_FRACTION]
    results = reach(
        args.model,
        args.data,
        args.sides,
        args.limit,
        fractions,
        args.empty,
        args.confirm_score,
        args.light,
        args.detect_on,
    )
    results["video"] = video(args.data, args.video_side, fractions[0])
    print(format_table(results))
    if args.json:
        emit(results, args.json)
    if args.plot:
        plot(results, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
