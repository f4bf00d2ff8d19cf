"""Test-time augmentation: does averaging shifted and mirrored copies of each face lift accuracy?

    python bench/tta.py --model models/default [--model B ...] [--peer fer] [--shift 0.0834] \
        [--json out.json]

The published 72-73% single networks on FER2013 were scored with ten crops (the four corners
and the centre, each also mirrored: 40x40 crops of the 48x48 face, for a network trained on such
crops). A model that takes the whole face has no room to crop, so the corners are the face
shifted towards each corner by ``--shift`` of its side (default 1/24: 2 px at 48x48; 1/12 is the
published crops' 4 px), the border repeated. Every view of every test face goes through the
daemon's own int8 classifier (one thread); a set's probabilities are the views' mean, scored as
bench/accuracy.py scores them (argmax among ``--emotions`` on their faces) and paired with the
plain model on the same faces. The time per face grows with the views: the daemon offers only
the flip (``classifier.flip_average``, twice the time).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.accuracy import (  # noqa: E402
    DEFAULT_EMOTIONS,
    Candidate,
    add_model_arguments,
    bundle_candidate,
    difference_text,
    paired_difference,
    peer_candidate,
    test_faces,
)
from trainer.evaluate import measure_latency  # noqa: E402
from trainer.metrics import target_report  # noqa: E402

# A view: shift right and down in units of the shift step (-1, 0 or 1), and mirrored or not.
View = tuple[int, int, bool]
CENTRE: View = (0, 0, False)
CORNERS = [(-1, -1), (1, -1), (-1, 1), (1, 1)]
TTA_SETS: dict[str, list[View]] = {
    "plain": [CENTRE],
    "flip": [CENTRE, (0, 0, True)],
    "5 crops": [CENTRE] + [(dx, dy, False) for dx, dy in CORNERS],
    "10 crops": [(dx, dy, flip) for dx, dy in [(0, 0), *CORNERS] for flip in (False, True)],
    "18 views": [
        (dx, dy, flip) for dx in (-1, 0, 1) for dy in (-1, 0, 1) for flip in (False, True)
    ],
}
SHIFT_FRACTION = 1 / 24  # of the crop's side: 2 px at 48x48


def shifted(crops: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``(n, size, size, 1)`` crops moved ``dx`` px right and ``dy`` px down, the border
    repeated into the space they leave."""
    if dx == 0 and dy == 0:
        return crops
    reach = max(abs(dx), abs(dy))
    padded = np.pad(crops, ((0, 0), (reach, reach), (reach, reach), (0, 0)), mode="edge")
    size = crops.shape[1]
    top, left = reach - dy, reach - dx
    return np.ascontiguousarray(padded[:, top : top + size, left : left + size])


def view_of(crops: np.ndarray, view: View, step: int) -> np.ndarray:
    dx, dy, mirrored = view
    moved = shifted(crops, dx * step, dy * step)
    return np.ascontiguousarray(moved[:, :, ::-1]) if mirrored else moved


def evaluate(
    candidate: Candidate,
    data: Path,
    emotions: list[str],
    sets: dict[str, list[View]] = TTA_SETS,
    shift_fraction: float = SHIFT_FRACTION,
) -> dict[str, Any]:
    """Each set's accuracy, macro-F1 and recall over ``emotions``, paired with the first set
    (the plain model), and its time per face: the plain median times its views."""
    labels = candidate.labels
    x, y, keys = test_faces(candidate, data, emotions)
    others = [label for label in labels if label not in emotions]
    classifier = candidate.make(False)  # the views are made here, so no built-in flip
    step = max(1, round(candidate.spec.size * shift_fraction))
    views = sorted({view for chosen in sets.values() for view in chosen})
    probs = {view: classifier.probabilities(view_of(x, view, step)) for view in views}
    plain_ms = measure_latency(classifier, x[:1])["median_ms"]
    rows: list[dict[str, Any]] = []
    reference: dict[str, Any] | None = None
    for name, chosen in sets.items():
        mean = np.mean([probs[view] for view in chosen], axis=0)
        report = target_report(y, mean, labels, others)
        arrays = {"y": y, "probs": mean, "labels": labels, "others": others, "keys": keys}
        row: dict[str, Any] = {
            "set": name,
            "views": len(chosen),
            "accuracy": report["accuracy"],
            "macro_f1": report["macro_f1"],
            "recall": {k: v["recall"] for k, v in report["per_class"].items()},
            "ms_per_face": round(plain_ms * len(chosen), 3),
        }
        if reference is None:
            reference = arrays
        else:
            row["paired"] = paired_difference(reference, arrays)
        rows.append(row)
    return {"model": candidate.name, "row": candidate.row, "shift_px": step, "rows": rows}


def format_result(result: dict[str, Any]) -> str:
    lines = [f"{result['row']} (corners shifted {result['shift_px']} px)"]
    for row in result["rows"]:
        recalls = " / ".join(f"{v:.1%}" for v in row["recall"].values())
        against = (
            f"; {difference_text(row['paired'])}, McNemar p = {row['paired']['mcnemar_p']:.3g}"
            if "paired" in row
            else ""
        )
        lines.append(
            f"  {row['set']:<9} {row['views']:>2} views, ~{row['ms_per_face']:.2f} ms/face: "
            f"{row['accuracy']:.1%}, F1 {row['macro_f1']:.3f}, recall {recalls}{against}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_arguments(parser)
    parser.add_argument(
        "--emotions",
        default=",".join(DEFAULT_EMOTIONS),
        help="the emotions scored, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--shift",
        type=float,
        default=SHIFT_FRACTION,
        help="how far the corner views move, as a fraction of the side (default 1/24: 2 px at "
        "48x48; the training shifts reach 0.1)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not 0 < args.shift < 0.5:
        parser.error("--shift: a fraction of the side between 0 and 0.5")
    emotions = [e.strip() for e in args.emotions.split(",") if e.strip()]
    candidates = [bundle_candidate(m) for m in (args.model or [ROOT / "models" / "default"])]
    candidates += [peer_candidate(name) for name in args.peer]
    results = [
        evaluate(candidate, args.data, emotions, shift_fraction=args.shift)
        for candidate in candidates
    ]
    print("\n".join(format_result(result) for result in results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
