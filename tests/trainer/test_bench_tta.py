"""bench/tta.py: shifted and mirrored views of each test face, averaged and paired with the
plain model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench import accuracy
from bench.accuracy import bundle_candidate
from bench.tta import CENTRE, TTA_SETS, evaluate, shifted, view_of
from tests.support import bench_script
from trainer.metrics import target_report

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "default"
EMOTIONS = ["angry", "happy", "sad"]


def test_a_shift_moves_the_face_and_repeats_the_border():
    crops = np.arange(2 * 5 * 5, dtype=np.uint8).reshape(2, 5, 5, 1)
    moved = shifted(crops, dx=2, dy=-1)  # two right, one up
    assert moved.shape == crops.shape
    np.testing.assert_array_equal(moved[:, 0:4, 2:5], crops[:, 1:5, 0:3])
    # The two columns it leaves repeat the old left edge; the bottom row repeats the old bottom.
    np.testing.assert_array_equal(moved[:, 0:4, 0], crops[:, 1:5, 0])
    np.testing.assert_array_equal(moved[:, 0:4, 1], crops[:, 1:5, 0])
    np.testing.assert_array_equal(moved[:, 4, 2:5], crops[:, 4, 0:3])
    np.testing.assert_array_equal(shifted(crops, 0, 0), crops)
    mirrored = view_of(crops, (0, 0, True), step=2)
    np.testing.assert_array_equal(mirrored[:, :, 0], crops[:, :, 4])


def test_the_sets_are_the_crops_they_name():
    assert TTA_SETS["plain"] == [CENTRE]
    for name, views in TTA_SETS.items():
        assert len(set(views)) == len(views), name
    assert len(TTA_SETS["10 crops"]) == 10 and sum(v[2] for v in TTA_SETS["10 crops"]) == 5
    assert set(TTA_SETS["5 crops"]) < set(TTA_SETS["10 crops"]) < set(TTA_SETS["18 views"])


def test_plain_and_flip_agree_with_the_daemons_classifier(small_fer_dir):
    candidate = bundle_candidate(SHIPPED)
    sets = {"plain": TTA_SETS["plain"], "flip": TTA_SETS["flip"]}
    result = evaluate(candidate, small_fer_dir, EMOTIONS, sets)
    rows = {row["set"]: row for row in result["rows"]}
    assert result["shift_px"] == 2  # 1/24 of 48

    labels = candidate.labels
    x, y, _ = accuracy.test_faces(candidate, small_fer_dir, EMOTIONS)
    others = [label for label in labels if label not in EMOTIONS]
    for name, flip in (("plain", False), ("flip", True)):
        probs = candidate.make(flip).probabilities(x)  # the daemon's own flip_average
        expected = target_report(y, probs, labels, others)
        assert rows[name]["accuracy"] == expected["accuracy"], name
        assert rows[name]["views"] == (2 if flip else 1)
    paired = rows["flip"]["paired"]
    faces = paired["faces"]
    assert faces == 60  # 20 test faces of each emotion
    gained = paired["candidate_only_right"] - paired["reference_only_right"]
    assert (
        round(rows["flip"]["accuracy"] * faces) - round(rows["plain"]["accuracy"] * faces) == gained
    )
    assert "paired" not in rows["plain"]


def test_the_command_scores_every_set(small_fer_dir, tmp_path):
    out = tmp_path / "tta.json"
    done = bench_script(
        "tta",
        "--data",
        str(small_fer_dir),
        "--model",
        str(SHIPPED),
        "--shift",
        "0.0834",
        "--json",
        str(out),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (result,) = json.loads(out.read_text())
    assert result["shift_px"] == 4  # the published ten crops' reach at 48x48
    assert [row["set"] for row in result["rows"]] == list(TTA_SETS)
    assert [row["views"] for row in result["rows"]] == [len(v) for v in TTA_SETS.values()]
    for row in result["rows"]:
        assert 0.5 < row["accuracy"] <= 1 and set(row["recall"]) == set(EMOTIONS)
        assert f"{row['views']:>2} views" in done.stdout
    assert result["rows"][-1]["ms_per_face"] > result["rows"][0]["ms_per_face"]


def test_a_shift_past_the_middle_is_refused():
    done = bench_script("tta", "--shift", "0.6")
    assert done.returncode == 2 and "--shift" in done.stderr
