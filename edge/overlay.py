"""Face boxes, labels and confidences drawn on an image: the live view's frames and
``yuzug-edge classify --annotate``'s pictures come from the same code."""

from __future__ import annotations

import cv2
import numpy as np

from edge.preprocess import Box, straightening_turn

# BGR, one colour per emotion; any other label (none, a seven-class model's extras) is grey.
COLOURS = {"happy": (80, 200, 60), "sad": (220, 140, 40), "angry": (50, 50, 230)}
OTHER_COLOUR = (200, 200, 200)


def to_canvas(image: np.ndarray) -> np.ndarray:
    """A BGR copy of a gray, BGR or BGRA image to draw on."""
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image.copy()


def draw_face(
    canvas: np.ndarray, box: Box, label: str, confidence: float, roll: float = 0.0
) -> None:
    """A box in the label's colour with ``label NN%`` on a filled tab above it (in place). A face
    the classifier straightened (``roll`` beyond :func:`~edge.preprocess.straightening_turn`'s
    threshold) gets its box leaning with it, as the crop the model saw was cut."""
    x, y, w, h = box
    colour = COLOURS.get(label, OTHER_COLOUR)
    # Thin lines on small images (a 48x48 face crop), thicker on camera frames.
    scale = max(0.35, min(0.6, min(canvas.shape[:2]) / 400))
    thickness = 1 if scale < 0.5 else 2
    turn = straightening_turn(roll)
    if turn:
        # OpenCV's angle turns clockwise on the picture (y points down), as a roll does.
        corners = cv2.boxPoints(((x + (w - 1) / 2, y + (h - 1) / 2), (w, h), turn))
        cv2.polylines(canvas, [np.round(corners).astype(np.int32)], True, colour, thickness)
        y = int(corners[:, 1].min())  # the tab sits above the turned box's highest corner
    else:
        cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), colour, thickness)
    text = f"{label} {confidence:.0%}"
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    top = max(0, y - th - 8)
    cv2.rectangle(canvas, (x, top), (x + tw + 8, top + th + 8), colour, -1)
    cv2.putText(
        canvas,
        text,
        (x + 4, top + th + 3),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (255, 255, 255),
        thickness,
        cv2.LINE_AA,
    )


IGNORED_COLOUR = (160, 160, 160)


def draw_ignored(canvas: np.ndarray, box: Box) -> None:
    """A part of the picture whose faces are not read (``camera.ignore_regions``): dimmed,
    hatched and outlined in grey, the picture still visible through it (in place)."""
    x, y, w, h = box
    area = canvas[max(0, y) : y + h, max(0, x) : x + w]  # a view: drawing on it draws on canvas
    if area.size == 0:
        return
    height, width = area.shape[:2]
    area //= 2
    for offset in range(-height, width, 16):  # lines at 45 degrees, cut by the area's edges
        cv2.line(area, (offset, 0), (offset + height, height), IGNORED_COLOUR, 1)
    cv2.rectangle(area, (0, 0), (width - 1, height - 1), IGNORED_COLOUR, 2)
