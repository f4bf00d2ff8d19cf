"""Pictures people would rather look at than read: training curves and confusion matrices."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: workstations over SSH and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_curves(history_csv: Path, out_png: Path, title: str) -> None:
    """Accuracy and loss per epoch for train and validation, from Keras's CSVLogger file."""
    with open(history_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("accuracy", "loss"), strict=False):
        axis.plot(epochs, [float(r[metric]) for r in rows], label=f"train {metric}")
        if f"val_{metric}" in rows[0]:
            axis.plot(epochs, [float(r[f"val_{metric}"]) for r in rows], label=f"val {metric}")
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def plot_confusion(matrix: np.ndarray, labels: list[str], out_png: Path, title: str) -> None:
    """Row-normalised confusion matrix with counts, true labels down, predictions across."""
    matrix = np.asarray(matrix)
    normalised = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    size = 1.2 + 0.9 * len(labels)
    fig, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            colour = "white" if normalised[i, j] > 0.5 else "black"
            axis.text(
                j,
                i,
                f"{normalised[i, j]:.0%}\n{matrix[i, j]}",
                ha="center",
                va="center",
                color=colour,
                fontsize=8,
            )
    fig.colorbar(image, ax=axis, fraction=0.046)
    axis.set_title(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def face_grid(
    faces: list[np.ndarray], captions: list[str], out_png: Path, columns: int = 10
) -> None:
    """Faces (``(size, size[, 1])`` uint8) at 96x96 in rows of ``columns``, each captioned."""
    import cv2

    tiles = []
    for face, caption in zip(faces, captions, strict=True):
        tile = cv2.resize(np.ascontiguousarray(face.reshape(face.shape[:2])), (96, 96))
        cv2.putText(tile, caption, (2, 92), cv2.FONT_HERSHEY_SIMPLEX, 0.35, 255, 1)
        tiles.append(tile)
    tiles += [np.zeros((96, 96), np.uint8)] * (-len(tiles) % columns)
    rows = [np.hstack(tiles[start : start + columns]) for start in range(0, len(tiles), columns)]
    cv2.imwrite(str(out_png), np.vstack(rows) if rows else np.zeros((96, 96), np.uint8))
