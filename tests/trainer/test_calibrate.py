"""Temperature scaling: the fit recovers a known temperature, baking it into the softmax head
equals scaling the probabilities, and ``calibrate`` on a run directory is idempotent."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from edge.preprocess import PreprocessSpec, to_float
from trainer.calibrate import (
    CalibrationError,
    apply_temperature,
    calibrate,
    fit_temperature,
    negative_log_likelihood,
    scaled,
)
from trainer.data import PreparedData
from trainer.model import build_tiny


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def test_fit_recovers_the_temperature_of_an_overconfident_model():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1.5, (20000, 4))
    # Labels drawn from softmax(logits): a model that reports softmax(1.6 * logits) is
    # over-confident by exactly T = 1.6.
    labels = (rng.random((20000, 1)) > softmax(logits).cumsum(axis=1)).sum(axis=1)
    overconfident = softmax(1.6 * logits)
    temperature = fit_temperature(overconfident, labels)
    assert temperature == pytest.approx(1.6, abs=0.06)
    fixed = scaled(overconfident, temperature)
    assert negative_log_likelihood(fixed, labels) < negative_log_likelihood(overconfident, labels)
    assert np.array_equal(fixed.argmax(1), overconfident.argmax(1))


def test_baked_temperature_equals_scaled_probabilities():
    keras.utils.set_random_seed(3)
    model = build_tiny(32, 4)
    x = np.random.default_rng(1).random((16, 32, 32, 1)).astype(np.float32)
    before = model.predict(x, verbose=0)
    apply_temperature(model, 0.5)
    np.testing.assert_allclose(model.predict(x, verbose=0), scaled(before, 0.5), atol=1e-5)


def test_a_model_without_a_softmax_head_is_refused():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    with pytest.raises(CalibrationError, match="Dense layer with a softmax"):
        apply_temperature(model, 2.0)


def test_calibrate_rewrites_the_model_once_and_keeps_the_original(tmp_path: Path):
    rng = np.random.default_rng(2)
    spec = PreprocessSpec(size=32)
    images = {split: rng.integers(0, 256, (200, 32, 32, 1), dtype=np.uint8) for split in "tv"}
    data = PreparedData(
        ["angry", "happy", "sad", "none"],
        spec,
        {"train": images["t"], "val": images["v"]},
        {"train": rng.integers(0, 4, 200), "val": rng.integers(0, 4, 200)},
        "test",
    )
    keras.utils.set_random_seed(4)
    model = build_tiny(32, 4)
    head = model.layers[-1]
    head.set_weights([weight * 8 for weight in head.get_weights()])  # over-confident, on noise
    model.save(tmp_path / "model.keras")
    original = model.predict(to_float(data.x["val"], spec), verbose=0)

    report = calibrate(tmp_path, data)
    assert report["applied"] and report["temperature"] > 1.5
    assert report["val_nll"][1] < report["val_nll"][0]
    assert json.loads((tmp_path / "calibration.json").read_text()) == report
    kept = keras.saving.load_model(tmp_path / "model_uncalibrated.keras", compile=False)
    np.testing.assert_allclose(
        kept.predict(to_float(data.x["val"], spec), verbose=0), original, atol=1e-6
    )
    calibrated = keras.saving.load_model(tmp_path / "model.keras", compile=False)
    probs = calibrated.predict(to_float(data.x["val"], spec), verbose=0)
    np.testing.assert_allclose(probs, scaled(original, report["temperature"]), atol=1e-4)
    # Again: it starts from the kept original, so the temperature is not applied twice.
    again = calibrate(tmp_path, data)
    assert again["temperature"] == pytest.approx(report["temperature"], rel=1e-6)
    recalibrated = keras.saving.load_model(tmp_path / "model.keras", compile=False)
    np.testing.assert_allclose(
        recalibrated.predict(to_float(data.x["val"], spec), verbose=0), probs, atol=1e-6
    )


def test_calibrate_needs_validation_images(tmp_path: Path):
    build_tiny(32, 3).save(tmp_path / "model.keras")
    empty = np.zeros((0, 32, 32, 1), np.uint8)
    data = PreparedData(
        ["angry", "happy", "sad"],
        PreprocessSpec(size=32),
        {"train": empty, "val": empty},
        {"train": np.zeros(0, int), "val": np.zeros(0, int)},
        "empty",
    )
    with pytest.raises(CalibrationError, match="no validation images"):
        calibrate(tmp_path, data)
    assert not (tmp_path / "calibration.json").exists()
