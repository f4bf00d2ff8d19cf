"""What fitting the model to a person's recordings does to faces it never recorded.

    python bench/personalize.py [--data fer2013.zip] [--model models/default] [--json out.json]

FER2013 has no identities, so its training faces stand in for "the person": for each label of
a scenario, ``--faces`` of them are filmed (640x480 scenes, ``--seconds`` each) and recorded the
way ``yuzug-edge personalize`` records a camera (OpenCV, BlazeFace, the daemon's crop, the
model's own scores), offsets are fitted, and the test split (PublicTest: other people) is
scored with and without them: how often neutral faces are named an emotion (argmax over all
labels), and the recall of each emotion. A real person's recordings are far more alike than
30 strangers', so these are what the fit does to everyone else's faces, not to theirs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import emit  # noqa: E402
from edge.bundle import load_bundle  # noqa: E402
from edge.camera import make_source  # noqa: E402
from edge.classify.emotion import EmotionClassifier  # noqa: E402
from edge.config import BlazeFaceDetectorConfig, OpenCVCameraConfig  # noqa: E402
from edge.detect import make_detector  # noqa: E402
from edge.models import default_bundle_path  # noqa: E402
from edge.personalize import personalize, record_faces  # noqa: E402
from edge.preprocess import PreprocessSpec, preprocess_face  # noqa: E402
from edge.samples import Segment, fer_faces, scripted_frames, write_video  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets" / "fer2013.zip"
# Which FER2013 class shows each label's face.
FACE_OF = {"none": "neutral", "angry": "angry", "happy": "happy", "sad": "sad"}
SCENARIOS = (("none",), ("none", "happy"), ("none", "sad"), ("none", "angry", "happy", "sad"))
FPS = 10.0


def recordings(
    data: Path, labels: list[str], faces: int, seconds: float, classifier: EmotionClassifier
) -> dict[str, np.ndarray]:
    """Each label's recorded scores, from a video of ``faces`` training faces."""
    detector = make_detector(BlazeFaceDetectorConfig())
    shown = fer_faces(data, [FACE_OF[label] for label in labels], faces, split="train", seed=7)
    recorded = {}
    with tempfile.TemporaryDirectory() as folder:
        for label in labels:
            crops = {label: shown[FACE_OF[label]]}
            clip = Path(folder) / f"{label}.avi"
            script = [Segment(label, seconds)] * faces
            write_video(scripted_frames(crops, script, FPS, seed=7), clip, FPS)
            camera = OpenCVCameraConfig(source=str(clip), realtime=False)
            with make_source(camera) as source:
                recorded[label] = record_faces(source, detector, classifier, 3600)
    return recorded


def test_faces(
    data: Path, spec: PreprocessSpec, classes: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Every test-split crop of ``classes`` (edge code only: this runs on a Pi too)."""
    every = fer_faces(data, list(classes), per_label=sys.maxsize, split="test")
    crops = [preprocess_face(face, spec) for label in classes for face in every[label]]
    labels = [i for i, label in enumerate(classes) for _ in every[label]]
    return np.stack(crops), np.array(labels)


def scores(
    classifier: EmotionClassifier, x: np.ndarray, y: np.ndarray, classes: tuple[str, ...]
) -> dict[str, Any]:
    decided = np.argmax(classifier.probabilities(x), axis=1)
    labels = classifier.labels
    out: dict[str, Any] = {}
    for i, name in enumerate(classes):
        mine = decided[y == i]
        if name == "neutral":
            abstain = labels.index("none")
            out["neutral_named_an_emotion"] = round(float(np.mean(mine != abstain)), 4)
        else:
            out[f"recall_{name}"] = round(float(np.mean(mine == labels.index(name))), 4)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--faces", type=int, default=30, help="faces filmed per label")
    parser.add_argument("--seconds", type=float, default=0.3, help="seconds each face is held")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    bundle = load_bundle(args.model or default_bundle_path())
    if bundle.manifest.abstain_label != "none":
        parser.error("the scenarios record a relaxed face as 'none': use a bundle with it")
    classifier = EmotionClassifier.from_bundle(bundle)
    order = ("angry", "happy", "sad", "neutral")
    x, y = test_faces(args.data, bundle.preprocess, order)
    rows = [{"recorded": "nothing", **scores(classifier, x, y, order)}]
    for scenario in SCENARIOS:
        recorded = recordings(args.data, list(scenario), args.faces, args.seconds, classifier)
        personal = personalize(bundle, recorded)
        classifier.offsets = personal.offsets_array()
        rows.append(
            {
                "recorded": " + ".join(scenario),
                "faces_recorded": {label: len(rows) for label, rows in recorded.items()},
                **scores(classifier, x, y, order),
                "offsets": personal.offsets,
            }
        )
        classifier.offsets = None
    results = {
        "model": bundle.manifest.full_name,
        "test_faces": {name: int((y == i).sum()) for i, name in enumerate(order)},
        "faces_per_label": args.faces,
        "seconds_per_face": args.seconds,
        "rows": rows,
    }
    emit(results, args.json)
    print("\nrecorded                      neutral→emotion  angry  happy    sad  offsets")
    for row in rows:
        offsets = ", ".join(f"{k} {v:+.2f}" for k, v in row.get("offsets", {}).items() if v)
        print(
            f"{row['recorded']:<29} {row['neutral_named_an_emotion']:>15.1%} "
            f"{row['recall_angry']:>6.1%} {row['recall_happy']:>6.1%} {row['recall_sad']:>6.1%}"
            f"  {offsets}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
