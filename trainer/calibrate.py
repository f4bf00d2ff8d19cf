"""``yuzug-train calibrate``: temperature scaling (Guo et al., 2017), baked into the model.

The daemon acts on the classifier's confidence (``emotion.min_confidence``), so that confidence
has to mean what it says. A distilled student is under-confident — its targets were the
teachers' soft probabilities — with an expected calibration error two to three times the
plainly trained model's. One temperature T, fitted on the validation split by minimising the
negative log-likelihood, fixes that without changing any prediction's argmax. Our models end
in a softmax Dense layer, so dividing that layer's kernel and bias by T is exactly
``softmax(logits / T)``: the exported int8 model needs no extra op and the bundle contract
does not change.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import keras
import numpy as np

from edge.errors import YuzugError
from edge.preprocess import to_float
from trainer.data import PreparedData
from trainer.metrics import expected_calibration_error, scaled
from trainer.model import load_trained

logger = logging.getLogger(__name__)

# A fitted temperature this close to 1 leaves the model untouched (a recipe's own model stays
# bit-identical when it is already calibrated).
UNCHANGED_WITHIN = 0.02


class CalibrationError(YuzugError):
    """A model whose output cannot be temperature-scaled in place."""


def negative_log_likelihood(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0))))


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The T in [0.25, 4] minimising the NLL of :func:`scaled` (convex in 1/T: a ternary
    search on log T finds it)."""
    low, high = math.log(0.25), math.log(4.0)
    for _ in range(60):
        a, b = low + (high - low) / 3, high - (high - low) / 3
        if negative_log_likelihood(scaled(probs, math.exp(a)), labels) <= (
            negative_log_likelihood(scaled(probs, math.exp(b)), labels)
        ):
            high = b
        else:
            low = a
    return math.exp((low + high) / 2)


def apply_temperature(model: keras.Model, temperature: float) -> None:
    """Divides the final softmax Dense layer's kernel and bias by ``temperature``, in place."""
    head = model.layers[-1]
    activation = getattr(getattr(head, "activation", None), "__name__", None)
    if not isinstance(head, keras.layers.Dense) or activation != "softmax":
        raise CalibrationError(
            f"the model's last layer is {type(head).__name__} ({activation}); temperature "
            "scaling in place needs a Dense layer with a softmax"
        )
    head.set_weights([weight / temperature for weight in head.get_weights()])


def calibrate(run_dir: Path, data: PreparedData) -> dict[str, Any]:
    """Fits T on the validation split and rewrites ``model.keras`` when T is not ~1.

    The model as trained stays in ``model_uncalibrated.keras``; ``calibration.json`` records
    T and the validation NLL and ECE before and after. Running it again starts from the
    uncalibrated model, so it is idempotent.
    """
    model_path = run_dir / "model.keras"
    original = run_dir / "model_uncalibrated.keras"
    source = original if original.exists() else model_path
    labels = data.y["val"]
    if not len(labels):
        raise CalibrationError(f"{run_dir}: no validation images to fit a temperature on")
    model = load_trained(source)
    probs = model.predict(to_float(data.x["val"], data.spec), batch_size=256, verbose=0)
    temperature = fit_temperature(probs, labels)
    applied = abs(temperature - 1.0) > UNCHANGED_WITHIN
    after = scaled(probs, temperature) if applied else probs
    report: dict[str, Any] = {
        "temperature": round(temperature, 4) if applied else 1.0,
        "fitted_temperature": round(temperature, 4),
        "applied": applied,
        "val_images": int(len(labels)),
        "val_nll": [
            round(negative_log_likelihood(probs, labels), 4),
            round(negative_log_likelihood(after, labels), 4),
        ],
        "val_ece": [
            round(expected_calibration_error(labels, probs), 4),
            round(expected_calibration_error(labels, after), 4),
        ],
    }
    if applied:
        if source == model_path:
            model.save(original)
        apply_temperature(model, temperature)
        model.save(model_path)
    elif source == original:  # an earlier calibration is undone
        original.replace(model_path)
    (run_dir / "calibration.json").write_text(json.dumps(report, indent=2) + "\n")
    nll, ece = report["val_nll"], report["val_ece"]
    logger.info(
        "temperature %.3f (%s): validation NLL %.4f -> %.4f, ECE %.4f -> %.4f",
        temperature,
        "applied" if applied else f"within {UNCHANGED_WITHIN} of 1, model unchanged",
        nll[0],
        nll[1],
        ece[0],
        ece[1],
    )
    return report
