"""bench/robustness.py: each camera condition changes the faces as it says, and the benchmark
scores a bundle under all of them on a small FER2013 subset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import robustness
from bench.robustness import CONDITIONS, main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def crops() -> np.ndarray:
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (4, 48, 48, 1), dtype=np.uint8)
    faces[:, :8, :8] = 255  # a corner to follow
    return faces


def test_every_condition_keeps_the_models_input_and_changes_the_faces(crops: np.ndarray):
    rng = np.random.default_rng(1)
    for name, condition in CONDITIONS.items():
        shown = condition(crops, rng)
        assert shown.shape == crops.shape and shown.dtype == np.uint8, name
        assert np.array_equal(shown, crops) == (name == "as recorded"), name
    upside_down = CONDITIONS["camera upside down (180)"](crops, rng)
    assert (upside_down[:, -8:, -8:] == 255).all()  # the top-left corner is now bottom-right
    on_its_side = CONDITIONS["camera on its side (90)"](crops, rng)
    assert (on_its_side[:, :8, -8:] == 255).all()  # clockwise: top-left goes top-right
    dim = CONDITIONS["dim room (35% light)"](crops, rng)
    assert dim.max() <= round(255 * 0.35)
    covered = CONDITIONS["mouth covered (lower 35%)"](crops, rng)
    assert (covered[:, 31:] == covered[:, 31:32, :1]).all()  # one grey over the lower part
    assert np.array_equal(covered[:, :31], crops[:, :31])


def test_the_benchmark_scores_a_bundle_under_every_condition(
    small_fer_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "robustness.json"
    picture = tmp_path / "robustness.png"
    assert main(["--data", str(small_fer_dir), "--json", str(out), "--plot", str(picture)]) == 0
    (result,) = json.loads(out.read_text())
    assert result["faces"] == 60 and set(result["conditions"]) == set(CONDITIONS)
    upright = result["conditions"]["as recorded"]["accuracy"]
    upside_down = result["conditions"]["camera upside down (180)"]
    assert upright > 0.7 and upside_down["accuracy"] < upright - 0.2
    assert upside_down["top_answer"] == "sad"  # it collapses onto one emotion
    table = capsys.readouterr().out
    assert table.count("\n| ") == len(CONDITIONS) and "| camera upside down (180) |" in table
    assert picture.stat().st_size > 10_000
    assert robustness.ROOT == ROOT


def test_a_second_model_is_paired_with_the_first_under_every_condition(
    small_fer_dir: Path, tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "robustness.json"
    shipped, tiny = ROOT / "models" / "default", tiny_run / "bundle"
    args = ["--data", str(small_fer_dir), "--model", str(shipped), "--model", str(tiny)]
    assert main([*args, "--json", str(out)]) == 0
    first, second = json.loads(out.read_text())
    assert "paired" not in first["conditions"]["as recorded"]
    for name, row in second["conditions"].items():
        paired = row["paired"]
        assert paired["faces"] == first["faces"] == second["faces"], name
        # The faces one model alone gets right make up the whole difference between them.
        gained = paired["candidate_only_right"] - paired["reference_only_right"]
        accuracy_gap = row["accuracy"] - first["conditions"][name]["accuracy"]
        assert gained == round(accuracy_gap * paired["faces"]), name
        low, high = paired["ci95"]
        assert low <= paired["accuracy_difference"] <= high and 0 <= paired["mcnemar_p"] <= 1
        assert "_right" not in row
    table = capsys.readouterr().out
    assert "the same faces paired:" in table and table.count("| mouth covered (lower 35%) |") == 2
