"""bench/leakage.py: train's near-duplicate groups split into originals and twins, twins scored
by whether the bundle trained on their original, and FER2013's removed copies counted."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.leakage import FER2013_TRAINING, difference, evaluate, leaked_faces, twin_groups
from edge.bundle import load_bundle
from edge.classify.emotion import EmotionClassifier
from edge.preprocess import PreprocessSpec, preprocess_face
from tests.support import bench_script
from trainer.data import ClassSelection, PreparedData, Sample

ROOT = Path(__file__).resolve().parents[2]


def face(seed: int, split: str, label: str, source: str, shade: int = 0) -> Sample:
    pixels = np.random.default_rng(seed).integers(0, 200, (48, 48), np.uint8) + shade
    return Sample(source, source, split, label, pixels[..., None], pixels)


def test_groups_keep_the_first_face_by_source_and_leave_out_conflicts_and_test_copies():
    samples = [
        face(1, "train", "sad", "train/sad/b.jpg"),
        face(1, "train", "sad", "train/sad/a.jpg", shade=3),  # the original: first by source
        face(1, "train", "sad", "train/sad/c.jpg", shade=5),
        face(2, "train", "sad", "train/sad/d.jpg"),
        face(2, "train", "angry", "train/angry/e.jpg", shade=1),  # same face, other label
        face(3, "train", "happy", "train/happy/f.jpg"),
        face(3, "test", "happy", "test/happy/g.jpg", shade=2),  # a copy of a test face
        face(4, "train", "happy", "train/happy/h.jpg"),
        face(5, "train", "happy", "train/happy/i.jpg", shade=40),  # not a copy of anything
    ]
    groups, left_out = twin_groups(samples, max_rms=8.0)
    assert [
        (samples[g.original].source, sorted(samples[t].source for t in g.twins)) for g in groups
    ] == [("train/sad/a.jpg", ["train/sad/b.jpg", "train/sad/c.jpg"])]
    assert left_out == {"label_conflict": 1, "held_out_split": 1}
    # Closer than the threshold is a copy; further is another face.
    assert twin_groups(samples[:3], max_rms=2.0)[0] == []


def test_the_gain_is_seen_minus_unseen_with_a_two_sample_interval():
    gain = difference(np.array([1, 1, 1, 0], bool), np.array([1, 0, 0, 0], bool))
    spread = math.sqrt(0.75 * 0.25 / 4 + 0.25 * 0.75 / 4)
    assert gain["points"] == 0.5
    assert gain["ci95"] == [round(0.5 - 1.96 * spread, 4), round(0.5 + 1.96 * spread, 4)]
    assert difference(np.array([1], bool), np.zeros(0, bool)) == {"points": None, "ci95": None}


def write_faces(root: Path, counts: dict[str, int]) -> None:
    for label, count in counts.items():
        folder = root / "train" / label
        folder.mkdir(parents=True)
        for i in range(count):
            cv2.imwrite(str(folder / f"{i}.png"), np.full((48, 48), 10 * i % 250, np.uint8))


def test_removed_copies_are_counted_per_label_and_only_for_fer2013(tmp_path):
    counts = dict.fromkeys(FER2013_TRAINING, 3)
    write_faces(tmp_path / "fer", counts)
    three_and_neutral = ClassSelection(["angry", "happy", "sad"], "none", ["neutral"], 1)
    leaked = leaked_faces(tmp_path / "fer", three_and_neutral, test_share=0.5)
    assert leaked == {
        "angry": 0.5 * (3995 - 3),
        "happy": 0.5 * (7215 - 3),
        "sad": 0.5 * (4830 - 3),
        "none": 0.5 * (4965 - 3),  # neutral only: the other classes feed no label
    }
    every_other = ClassSelection(["angry", "happy", "sad"], "none", None, 1)
    assert leaked_faces(tmp_path / "fer", every_other, 1.0)["none"] == sum(
        FER2013_TRAINING[c] - 3 for c in ("disgust", "fear", "neutral", "surprise")
    )
    # Not FER2013: a class missing, or more faces than FER2013's Training split holds.
    write_faces(tmp_path / "three", {"angry": 2, "happy": 2, "sad": 2})
    assert leaked_faces(tmp_path / "three", three_and_neutral, 0.5) is None
    write_faces(tmp_path / "more", {**counts, "disgust": FER2013_TRAINING["disgust"] + 1})
    assert leaked_faces(tmp_path / "more", three_and_neutral, 0.5) is None


@pytest.mark.slow
def test_twins_are_scored_by_whether_the_bundle_trained_on_their_original(
    tiny_run: Path, small_fer_dir: Path, tmp_path: Path
):
    # A copy of the run's data set with a twin (two grey levels lighter) of every angry train
    # face. Each twin sorts after its original, so prepare drops it and the run's split, and
    # its fingerprint, stay as they were.
    data = tmp_path / "fer"
    shutil.copytree(small_fer_dir, data)
    originals = sorted((data / "train" / "angry").glob("*.jpg"))
    twins = []
    for path in originals:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        twin = path.with_name(f"zz-twin-{path.stem}.png")
        cv2.imwrite(str(twin), cv2.add(image, 2))
        twins.append(twin)

    out, picture = tmp_path / "leak.json", tmp_path / "leak.png"
    run = bench_script(
        "leakage",
        "--data",
        str(data),
        "--model",
        str(tiny_run / "bundle"),
        "--json",
        str(out),
        "--plot",
        str(picture),
    )
    assert run.returncode == 0, run.stderr[-2000:]
    (result,) = json.loads(out.read_text())["models"]

    # Which originals the run trained on, from the run's own saved split.
    prepared = PreparedData.load(tiny_run / "data.npz")
    trained = {str(key) for key in prepared.keys["train"]}
    seen = [
        t
        for o, t in zip(originals, twins, strict=True)
        if o.relative_to(data).as_posix() in trained
    ]
    unseen = [t for o, t in zip(originals, twins, strict=True) if t not in seen]
    assert seen and unseen  # validation took some angry faces
    assert result["train_faces"] == len(trained)
    assert result["twins_of_trained_faces"]["faces"] == len(seen)
    assert result["twins_of_unseen_faces"]["faces"] == len(unseen)

    bundle = load_bundle(tiny_run / "bundle")
    classifier = EmotionClassifier.from_bundle(bundle, num_threads=1)
    spec: PreprocessSpec = bundle.preprocess
    for name, group in (("twins_of_trained_faces", seen), ("twins_of_unseen_faces", unseen)):
        pixels = np.stack(
            [preprocess_face(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), spec) for p in group]
        )
        right = classifier.probabilities(pixels).argmax(1) == bundle.labels.index("angry")
        assert result[name]["accuracy"] == round(float(right.mean()), 4), name
    gain = result["leak_gain"]["points"]
    assert gain == round(
        result["twins_of_trained_faces"]["accuracy"] - result["twins_of_unseen_faces"]["accuracy"],
        4,
    )
    assert "fer2013_copies" not in result  # four classes of FER2013: not its Training split
    assert "| tiny (" in run.stdout
    drawn = cv2.imread(str(picture))
    assert drawn is not None and drawn.shape[0] > 300 and drawn.std() > 10


def test_a_bundle_trained_on_other_data_is_refused_by_name(small_fer_dir: Path):
    run = bench_script(
        "leakage", "--data", str(small_fer_dir), "--model", str(ROOT / "models" / "default")
    )
    assert run.returncode == 1
    assert "--model" in run.stderr and "trained on other data" in run.stderr


def test_a_bundle_trained_without_listed_faces_is_refused(
    tiny_run: Path, small_fer_dir: Path, tmp_path: Path
):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_run / "bundle", bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["training"]["excluded"] = {"dropped_from_train": 3, "list_sha256": "0" * 64}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="exclusion list"):
        evaluate(small_fer_dir, bundle, max_rms=8.0, test_share=0.5)
