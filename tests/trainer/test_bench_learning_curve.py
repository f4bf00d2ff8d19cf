"""bench/learning_curve.py: the log-linear fit, the extrapolation to a target, and the command
on real bundles."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from bench.learning_curve import extrapolate, fit_log_linear, format_report, main, train_faces
from edge.bundle import load_bundle

ROOT = Path(__file__).resolve().parents[2]


def test_an_exact_line_is_recovered_and_extrapolated():
    faces = [1000, 2000, 4000, 8000]
    accuracy = [0.70 + 0.02 * math.log2(n / 1000) for n in faces]
    fit = fit_log_linear(faces, accuracy)
    assert fit["per_doubling"] == pytest.approx(0.02)
    assert fit["per_doubling_se"] == pytest.approx(0.0, abs=1e-9)
    goal = extrapolate(0.80, fit, most_faces=8000)
    assert goal["faces"] == pytest.approx(32000)  # 0.70 + 0.02 * 5 doublings of 1,000
    assert goal["times_the_most_here"] == pytest.approx(4.0)
    assert goal["faces_range"] == [pytest.approx(32000), pytest.approx(32000)]


def test_the_slope_and_its_error_match_an_ordinary_regression():
    rng = np.random.default_rng(3)
    faces = np.repeat([1700, 3400, 6900, 13900], 3)
    accuracy = 0.55 + 0.018 * np.log2(faces) + rng.normal(0, 0.006, len(faces))
    fit = fit_log_linear(faces.tolist(), accuracy.tolist())
    reference = stats.linregress(np.log2(faces), accuracy)
    assert fit["per_doubling"] == pytest.approx(reference.slope)
    assert fit["intercept"] == pytest.approx(reference.intercept)
    assert fit["per_doubling_se"] == pytest.approx(reference.stderr)
    t = stats.t.ppf(0.975, len(faces) - 2)
    low, high = fit["per_doubling_95"]
    assert (low, high) == (
        pytest.approx(reference.slope - t * reference.stderr, abs=1e-4),
        pytest.approx(reference.slope + t * reference.stderr, abs=1e-4),
    )
    goal = extrapolate(0.88, fit, most_faces=13900)
    fewest, most = goal["faces_range"]
    assert fewest < goal["faces"] < most  # the steeper slope needs fewer faces
    on_line = fit["intercept"] + fit["per_doubling"] * math.log2(goal["faces"])
    assert on_line == pytest.approx(0.88)


def test_a_curve_that_does_not_rise_never_reaches_the_target():
    fit = fit_log_linear([1000, 2000, 4000], [0.80, 0.79, 0.80])
    goal = extrapolate(0.88, fit, most_faces=4000)
    assert goal["faces"] is None
    rows = [
        {"row": "m", "train_faces": n, "accuracy": 0.8, "macro_f1": 0.7, "recall": {"sad": 0.7}}
        for n in (1000, 2000, 4000)
    ]
    assert "not reached on this line" in format_report(rows, fit, goal)
    with pytest.raises(ValueError, match="at least two face counts"):
        fit_log_linear([1000, 1000], [0.7, 0.8])


@pytest.mark.slow
def test_the_command_places_real_bundles_on_a_curve(
    tiny_run: Path, small_fer_dir: Path, tmp_path: Path, capsys
):
    shipped, tiny = ROOT / "models" / "default", tiny_run / "bundle"
    out, picture = tmp_path / "curve.json", tmp_path / "curve.png"
    argv = ["--data", str(small_fer_dir), "--model", str(tiny), "--model", str(shipped)]
    assert main([*argv, "--json", str(out), "--plot", str(picture), "--target", "0.9"]) == 0
    results = json.loads(out.read_text())
    rows = {row["bundle"]: row for row in results["bundles"]}
    for bundle in (tiny, shipped):
        counts = load_bundle(bundle).manifest.training["counts"]["train"]
        assert rows[str(bundle)]["train_faces"] == train_faces(bundle) == sum(counts.values())
    small, large = rows[str(tiny)], rows[str(shipped)]
    assert large["train_faces"] > 10 * small["train_faces"]
    slope = (large["accuracy"] - small["accuracy"]) / math.log2(
        large["train_faces"] / small["train_faces"]
    )
    assert results["fit"]["per_doubling"] == pytest.approx(slope)  # two points: through both
    for label, gained in results["fit"]["recall_per_doubling"].items():
        change = large["recall"][label] - small["recall"][label]
        assert gained == pytest.approx(
            change / math.log2(large["train_faces"] / small["train_faces"])
        )
    assert results["target"]["target"] == 0.9
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "points per doubling of the train faces" in capsys.readouterr().out

    with pytest.raises(SystemExit) as refused:
        main(["--data", str(small_fer_dir), "--model", str(shipped)])
    assert refused.value.code == 2
    assert "at least two train shares" in capsys.readouterr().err
