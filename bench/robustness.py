"""Robustness benchmark: how models read the test faces as a camera may deliver them.

    python bench/robustness.py --data ../shared/datasets/fer2013.zip \
        [--model models/default ...] [--peer fer] [--json out.json] [--plot robustness.png]

FER2013's test faces are upright, well lit, sharp and near. A camera in a room gives faces that
are tilted, dim, noisy, out of focus, far away, compressed or partly covered, and a camera
mounted on its side or upside down turns every one. Each condition below is applied to the
angry/happy/sad test crops as the model sees them (its own input size), with a fixed seed, and
each model is scored as ``bench/accuracy.py`` scores it (argmax among the emotions), through
the daemon's classifier. Beside the accuracy, the share of the faces given the most frequent
answer says whether a model degrades evenly or collapses onto one emotion (73% "sad" is not
the same failure as 33% each).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.accuracy import (  # noqa: E402
    DEFAULT_EMOTIONS,
    Candidate,
    add_model_arguments,
    bundle_candidate,
    difference_text,
    paired_hits,
    peer_candidate,
    test_faces,
)
from trainer.metrics import target_report  # noqa: E402

Condition = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _each(crops: np.ndarray, change: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    """``change(crop, index)`` for every (H, W, 1) uint8 crop, back to (N, H, W, 1) uint8."""
    out = [change(crop[..., 0], index) for index, crop in enumerate(crops)]
    return np.clip(np.stack(out), 0, 255).astype(np.uint8)[..., np.newaxis]


def tilted(degrees: float) -> Condition:
    """Every other face tilted ``degrees`` one way, the rest the other (a head at an angle)."""

    def apply(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        side = crops.shape[1]
        centre = ((side - 1) / 2, (side - 1) / 2)

        def turn(crop: np.ndarray, index: int) -> np.ndarray:
            matrix = cv2.getRotationMatrix2D(centre, degrees if index % 2 else -degrees, 1.0)
            return cv2.warpAffine(crop, matrix, (side, side), borderMode=cv2.BORDER_REPLICATE)

        return _each(crops, turn)

    return apply


def quarter_turns(turns: int) -> Condition:
    """The camera turned: ``turns`` quarter turns clockwise."""
    return lambda crops, rng: np.rot90(crops, k=-turns, axes=(1, 2)).copy()


def dim(light: float, noise: float = 0.0) -> Condition:
    """A dim room: ``light`` of the light, with the sensor's noise (grey levels, 1 sigma)."""

    def apply(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        dark = crops.astype(np.float32) * light + rng.normal(0.0, noise, crops.shape)
        return np.clip(np.round(dark), 0, 255).astype(np.uint8)

    return apply


def blurred(sigma_at_48: float) -> Condition:
    """Out of focus or moving: a Gaussian blur, ``sigma_at_48`` pixels on a 48-pixel face."""

    def apply(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        sigma = sigma_at_48 * crops.shape[1] / 48
        return _each(crops, lambda crop, _: cv2.GaussianBlur(crop, (0, 0), sigma))

    return apply


def far_away(pixels: int) -> Condition:
    """A distant face: ``pixels`` across at the camera, scaled up to the model's input."""

    def apply(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        side = crops.shape[1]

        def shrink(crop: np.ndarray, _: int) -> np.ndarray:
            small = cv2.resize(crop, (pixels, pixels), interpolation=cv2.INTER_AREA)
            return cv2.resize(small, (side, side), interpolation=cv2.INTER_LINEAR)

        return _each(crops, shrink)

    return apply


def jpeg(quality: int, face_pixels: int) -> Condition:
    """A camera stream compressed hard (MJPEG, or an IP camera at a low bitrate): the face
    ``face_pixels`` across in the compressed frame, then cropped and scaled to the model's
    input as the daemon does (at 48 the crop itself was compressed, the harshest case)."""

    def apply(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        side = crops.shape[1]

        def squeeze(crop: np.ndarray, _: int) -> np.ndarray:
            shown = cv2.resize(crop, (face_pixels, face_pixels), interpolation=cv2.INTER_CUBIC)
            _, encoded = cv2.imencode(".jpg", shown, [cv2.IMWRITE_JPEG_QUALITY, quality])
            decoded = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
            assert decoded is not None  # OpenCV's own JPEG, just written
            return cv2.resize(decoded, (side, side), interpolation=cv2.INTER_AREA)

        return _each(crops, squeeze)

    return apply


def mouth_covered(share: float) -> Condition:
    """The lowest ``share`` of the face hidden (a hand, a mug, a mask), filled with the face's
    own mean grey."""

    def apply(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        covered = crops.copy()
        start = int(round(crops.shape[1] * (1 - share)))
        means = crops.reshape(len(crops), -1).mean(axis=1).astype(np.uint8)
        covered[:, start:] = means[:, np.newaxis, np.newaxis, np.newaxis]
        return covered

    return apply


CONDITIONS: dict[str, Condition] = {
    "as recorded": lambda crops, rng: crops,
    "head tilted 15 degrees": tilted(15),
    "camera on its side (90)": quarter_turns(1),
    "camera upside down (180)": quarter_turns(2),
    "dim room (35% light)": dim(0.35),
    "dim room + sensor noise": dim(0.35, noise=3.0),
    "dark room (12% light) + sensor noise": dim(0.12, noise=2.0),
    "out of focus (blur 1 px)": blurred(1.0),
    "far away (24 px face)": far_away(24),
    "JPEG 30, face 144 px": jpeg(30, 144),
    "JPEG 15, face 144 px": jpeg(15, 144),
    "JPEG 40, face 48 px": jpeg(40, 48),
    "mouth covered (lower 35%)": mouth_covered(0.35),
}


def evaluate(
    candidate: Candidate, data: Path, emotions: tuple[str, ...], seed: int = 0
) -> dict[str, Any]:
    """Accuracy, macro-F1 and the most frequent answer's share under every condition."""
    labels = candidate.labels
    x, y, _ = test_faces(candidate, data, emotions)
    keep = np.isin(y, [labels.index(e) for e in emotions])  # the emotions' faces only
    x, y = x[keep], y[keep]
    others = [label for label in labels if label not in emotions]
    classifier = candidate.make(False)
    rows = {}
    for name, condition in CONDITIONS.items():
        shown = condition(x, np.random.default_rng(seed))
        probabilities = classifier.probabilities(shown)
        report = target_report(y, probabilities, labels, others)
        among = [labels.index(e) for e in emotions]
        answered = np.argmax(probabilities[:, among], axis=1)
        answers = np.bincount(answered, minlength=len(among))
        rows[name] = {
            "_right": np.asarray(among)[answered] == y,  # per face, to pair models (not saved)
            "accuracy": report["accuracy"],
            "macro_f1": report["macro_f1"],
            "top_answer": emotions[int(np.argmax(answers))],
            "top_answer_share": round(float(answers.max() / answers.sum()), 4),
        }
    return {"model": candidate.name, "row": candidate.row, "faces": int(len(y)), "conditions": rows}


def pair_with_first(results: list[dict[str, Any]]) -> None:
    """Adds ``paired`` (:func:`bench.accuracy.paired_hits`) against the first model to every
    condition of the others: the same faces, changed alike, in the same order."""
    for result in results[1:]:
        for name, row in result["conditions"].items():
            reference = results[0]["conditions"][name]["_right"]
            if len(reference) != len(row["_right"]):
                raise SystemExit(
                    f"{result['row']} and {results[0]['row']} were not scored on the same faces"
                )
            row["paired"] = paired_hits(reference, row["_right"])


def format_paired(results: list[dict[str, Any]]) -> str:
    lines = []
    for result in results[1:]:
        lines += [
            "",
            f"{result['row']} against {results[0]['row']}, the same faces paired:",
            "| condition | difference | right only here / only there | McNemar p |",
            "|---|---|---|---|",
        ]
        for name, row in result["conditions"].items():
            paired = row["paired"]
            lines.append(
                f"| {name} | {difference_text(paired)} | {paired['candidate_only_right']} / "
                f"{paired['reference_only_right']} | {paired['mcnemar_p']:.3g} |"
            )
    return "\n".join(lines)


def format_table(results: list[dict[str, Any]]) -> str:
    head = "| condition | " + " | ".join(r["row"] for r in results) + " |"
    lines = [head, "|---" * (len(results) + 1) + "|"]
    for name in CONDITIONS:
        cells = []
        for result in results:
            row = result["conditions"][name]
            cells.append(
                f"{row['accuracy']:.1%} (F1 {row['macro_f1']:.3f}; "
                f"{row['top_answer_share']:.0%} {row['top_answer']})"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(CONDITIONS)
    figure, axes = plt.subplots(figsize=(10, 4.8))
    width = 0.8 / len(results)
    for index, result in enumerate(results):
        values = [result["conditions"][n]["accuracy"] * 100 for n in names]
        positions = np.arange(len(names)) + (index - (len(results) - 1) / 2) * width
        axes.bar(positions, values, width, label=result["row"])
    axes.axhline(100 / 3, color="grey", linestyle=":", linewidth=1, label="chance (3 emotions)")
    axes.set_xticks(np.arange(len(names)), names, rotation=30, ha="right", fontsize=8)
    axes.set_ylabel("accuracy, angry/happy/sad test faces (%)")
    axes.set_ylim(0, 100)
    axes.set_title("The test faces as a camera may deliver them")
    axes.legend(fontsize=8, loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_arguments(parser)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--plot", type=Path, help="draw the accuracies here (PNG)")
    args = parser.parse_args(argv)
    candidates = [bundle_candidate(m) for m in (args.model or [ROOT / "models" / "default"])]
    candidates += [peer_candidate(name) for name in args.peer]
    results = [evaluate(c, args.data, DEFAULT_EMOTIONS) for c in candidates]
    pair_with_first(results)
    print(format_table(results))
    if len(results) > 1:
        print(format_paired(results))
    if args.plot:
        plot(results, args.plot)
    if args.json:
        for result in results:
            for row in result["conditions"].values():
                del row["_right"]
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
