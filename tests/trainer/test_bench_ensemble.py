"""bench/accuracy.py --ensemble: the mean of the members' probabilities, scored like a bundle."""

from __future__ import annotations

import numpy as np
import pytest

from bench.accuracy import ensemble_result
from trainer.metrics import target_report

LABELS = ["angry", "happy", "none"]


def member(probs: list[list[float]], size_kib: float, median_ms: float) -> dict:
    y = np.array([0, 1, 0, 1])
    arrays = {
        "y": y,
        "labels": LABELS,
        "abstain": "none",
        "probs": np.array(probs),
        "flip_probs": np.array(probs),
    }
    latency = {"median_ms": median_ms, "p90_ms": median_ms * 2}
    return {
        "model": f"m{size_kib}",
        "size_kib": size_kib,
        "latency": latency,
        "flip_average": {"latency": latency},
        "_arrays": arrays,
    }


def test_ensemble_scores_the_mean_probability_and_sums_costs():
    # Each member is sure and right on two faces, unsure and wrong on the other two.
    first = member([[0.9, 0.1, 0], [0.1, 0.9, 0], [0.4, 0.6, 0], [0.6, 0.4, 0]], 100, 0.5)
    second = member([[0.4, 0.6, 0], [0.6, 0.4, 0], [0.9, 0.1, 0], [0.1, 0.9, 0]], 200, 0.7)
    for single in (first, second):
        arrays = single["_arrays"]
        assert target_report(arrays["y"], arrays["probs"], LABELS, "none")["accuracy"] == 0.5
    result = ensemble_result([first, second], min_confidence=0.5)
    assert result["accuracy"] == 1.0 and result["flip_average"]["accuracy"] == 1.0
    assert result["size_kib"] == 300 and result["members"] == ["m100", "m200"]
    assert result["latency"] == {"median_ms": pytest.approx(1.2), "p90_ms": pytest.approx(2.4)}
    assert "neutral" not in result  # no member had neutral faces to score


def test_ensemble_refuses_members_with_other_labels():
    first = member([[1, 0, 0]] * 4, 1, 1)
    other = member([[1, 0, 0]] * 4, 1, 1)
    other["_arrays"]["labels"] = ["happy", "angry", "none"]
    with pytest.raises(SystemExit, match="other labels"):
        ensemble_result([first, other], min_confidence=0.5)
