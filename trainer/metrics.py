"""Classification metrics shared by evaluation, the accuracy benchmark and the model card."""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows are true labels, columns predictions."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """ECE over equal-width confidence bins (Guo et al., 2017): mean |accuracy - confidence|."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=False):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            error += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(error)


def classification_report(
    y_true: np.ndarray, probs: np.ndarray, labels: list[str]
) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1, macro-F1, ECE and the confusion matrix."""
    y_pred = probs.argmax(1)
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    per_class = {}
    f1s = []
    for i, label in enumerate(labels):
        tp = matrix[i, i]
        support = matrix[i].sum()
        predicted = matrix[:, i].sum()
        recall = tp / support if support else 0.0
        precision = tp / predicted if predicted else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        f1s.append(f1)
        per_class[label] = {
            "precision": round(float(precision), 4),
            "recall": round(float(recall), 4),
            "f1": round(float(f1), 4),
            "support": int(support),
        }
    return {
        "samples": int(len(y_true)),
        "accuracy": round(float((y_pred == y_true).mean()) if len(y_true) else 0.0, 4),
        "macro_f1": round(float(np.mean(f1s)), 4),
        "ece": round(expected_calibration_error(y_true, probs), 4),
        "per_class": per_class,
        "confusion": matrix.tolist(),
    }


def top1_agreement(probs_a: np.ndarray, probs_b: np.ndarray) -> float:
    return round(float((probs_a.argmax(1) == probs_b.argmax(1)).mean()), 4)
