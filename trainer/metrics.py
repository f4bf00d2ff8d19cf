"""Classification metrics shared by evaluation, the accuracy benchmark and the model card."""

from __future__ import annotations

from collections.abc import Collection
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


def scaled(
    probs: np.ndarray, temperature: float = 1.0, offsets: np.ndarray | float = 0.0
) -> np.ndarray:
    """``softmax(log(probs) / T + offsets)``: the probabilities the temperature-scaled model
    gives; ``offsets`` are per-class biases on those logits (bench/class_offsets.py)."""
    logits = np.log(np.clip(probs, 1e-12, 1.0)) / temperature + offsets
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


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


Others = str | Collection[str] | None
"""Outputs that are not target emotions: a bundle's abstain label (``"none"``), a seven-class
model's other classes (disgust, fear, surprise, neutral), or ``None`` when every output is one."""


def other_labels(others: Others) -> set[str]:
    """``others`` as a set of labels."""
    if others is None:
        return set()
    return {others} if isinstance(others, str) else set(others)


def target_probabilities(
    y_true: np.ndarray, probs: np.ndarray, labels: list[str], others: Others
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The target-emotion view of every row: which images show a target emotion, the target
    outputs' indices, and each row's probabilities renormalised over those outputs."""
    skipped = other_labels(others)
    target_index = np.array([i for i, label in enumerate(labels) if label not in skipped])
    on_targets = np.isin(y_true, target_index)
    restricted = probs[:, target_index]
    restricted = restricted / np.clip(restricted.sum(1, keepdims=True), 1e-12, None)
    return on_targets, target_index, restricted


def target_report(
    y_true: np.ndarray, probs: np.ndarray, labels: list[str], others: Others
) -> dict[str, Any]:
    """The emotions-only view of a model with an abstain class or more classes than the targets.

    Only images of the target emotions count, and the prediction is the argmax among the target
    outputs (renormalised), so the figure compares with a plain classifier of those emotions.
    When no output is an "other" one this is :func:`classification_report` itself.
    """
    if not other_labels(others) & set(labels):
        return classification_report(y_true, probs, labels)
    on_targets, target_index, restricted = target_probabilities(y_true, probs, labels, others)
    remap = np.full(len(labels), -1)
    remap[target_index] = np.arange(len(target_index))
    targets = [labels[i] for i in target_index]
    return classification_report(remap[y_true[on_targets]], restricted[on_targets], targets)


def emotion_rate(
    probs: np.ndarray, labels: list[str], others: Others, min_confidence: float
) -> dict[str, float]:
    """How often images that show none of the target emotions still get one.

    ``argmax``: the top output is an emotion. ``daemon``: the daemon would report it, i.e. the
    top output is an emotion with at least ``min_confidence``.
    """
    best = probs.argmax(1)
    skipped = other_labels(others)
    emotion = np.array([label not in skipped for label in labels])[best]
    confident = probs.max(1) >= min_confidence
    return {
        "argmax": round(float(emotion.mean()), 4) if len(probs) else 0.0,
        "daemon": round(float((emotion & confident).mean()), 4) if len(probs) else 0.0,
        "min_confidence": min_confidence,
    }
