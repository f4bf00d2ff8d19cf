"""bench/class_offsets.py: per-class offsets fitted on validation, applied to test once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.class_offsets import evaluate, fit_offsets, summary
from trainer.metrics import scaled

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "default"
LABELS = ["a", "b", "none"]


def test_an_offset_against_an_over_called_class_recovers_the_other():
    # Every "a" face leans to b (0.55 against 0.4); "b" faces are sure of b (0.85).
    probs = np.array([[0.40, 0.55, 0.05]] * 10 + [[0.10, 0.85, 0.05]] * 10)
    y = np.array([0] * 10 + [1] * 10)
    assert summary(y, probs, LABELS, "none")["recall"] == {"a": 0.0, "b": 1.0}
    np.testing.assert_allclose(scaled(probs, offsets=np.zeros(3)), probs, atol=1e-6)
    for objective in ("macro_f1", "min_recall"):
        offsets = fit_offsets(probs, y, LABELS, "none", objective)
        # b must drop below ln(0.4 / 0.55) to free the a faces, and stay above ln(0.1 / 0.85)
        # to keep the b faces; the first target and the abstain output are not moved.
        assert offsets[0] == 0 and offsets[2] == 0
        assert np.log(0.1 / 0.85) < offsets[1] < np.log(0.4 / 0.55)
        scores = summary(y, scaled(probs, offsets=offsets), LABELS, "none")
        assert scores["recall"] == {"a": 1.0, "b": 1.0}


def test_fitted_offsets_never_score_worse_on_validation_than_none(fer_zip):
    result = evaluate(SHIPPED, fer_zip)
    rows = {row["objective"]: row for row in result["rows"]}
    assert rows["none"]["test"]["accuracy"] > 0.8  # the shipped model, scored among emotions
    assert rows["macro_f1"]["val"]["macro_f1"] >= rows["none"]["val"]["macro_f1"]
    assert min(rows["min_recall"]["val"]["recall"].values()) >= min(
        rows["none"]["val"]["recall"].values()
    )
    assert result["faces"]["val"] > 1000 and result["faces"]["test"] > 2000


def test_a_data_set_other_than_the_models_is_refused(small_fer_dir):
    with pytest.raises(ValueError, match="trained on other data"):
        evaluate(SHIPPED, small_fer_dir)
