"""The one preprocessing code path shared by training, export, evaluation and the daemon.

Every pixel a model sees, at training time or on the Pi, goes through the functions here:
colour to grayscale, a square face crop with margin, a resize to the model's input size, and
the conversion from uint8 pixels to the model's input scale and dtype. The parameters travel
in the bundle manifest (:class:`PreprocessSpec`), so the daemon feeds the model exactly what
the trainer fed it. Pure numpy + OpenCV, no ML framework: this module runs on the Pi.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

Box = tuple[int, int, int, int]
"""A face box in pixels: x, y, width, height (top-left origin)."""

# How far a face may lean and still be cropped as it lies; one leaning further (a head on one
# side, a camera not quite level) is turned level by its eyes. FER-style training faces lean
# too (their eye lines spread about 15 degrees, one standard deviation) and the model learnt them
# so: levelling every face cost half a point upright, turning a leaning one only back to 10
# degrees left two points of the gain at 30. On the FER2013 test faces in a 640x480 frame,
# turning beyond 15: upright 82.2% against 81.8% as cut (McNemar p 0.24), leaning 30 degrees
# 81.0% against 75.2%. bench/lean.py.
STRAIGHTEN_BEYOND_DEGREES = 15.0

# A second framing of each detected face, averaged with the model's own
# (``classifier.average_framings``): its margin this much tighter (or looser, for a model
# cropped without one). FER2013 frames each face its own way and a detector frames them all
# alike; no single margin or shift did better than the model's beyond noise, two averaged did:
# 82.5% against 81.4% end to end (McNemar p 0.03), bench/framing.py.
SECOND_FRAMING_MARGIN_STEP = 0.1


@dataclass(frozen=True)
class PreprocessSpec:
    """What the model expects as input, recorded in every bundle manifest.

    Attributes:
        size: side of the square model input in pixels.
        color: colour space of the model input; only ``"gray"`` is produced today.
        margin: fraction of the detected face box added on every side before cropping,
            so a detector's tight box matches the looser framing of FER-style face crops.
        scale: float input = uint8 pixel * scale + offset.
        offset: see ``scale``.
    """

    size: int = 48
    color: str = "gray"
    margin: float = 0.1
    scale: float = 1.0 / 255.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError(f"preprocess size must be >= 8, got {self.size}")
        if self.color != "gray":
            raise ValueError(f"preprocess color must be 'gray', got {self.color!r}")
        if not 0.0 <= self.margin <= 1.0:
            raise ValueError(f"preprocess margin must be within [0, 1], got {self.margin}")
        if self.scale <= 0:
            raise ValueError(f"preprocess scale must be positive, got {self.scale}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessSpec:
        known = {k: data[k] for k in ("size", "color", "margin", "scale", "offset") if k in data}
        return cls(**known)


def to_gray(image: np.ndarray) -> np.ndarray:
    """Returns a 2-D uint8 grayscale view of a gray, BGR or BGRA image of any integer/float type."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3:
        if image.shape[2] == 3:
            image = cv2.cvtColor(_as_uint8(image), cv2.COLOR_BGR2GRAY)
        elif image.shape[2] == 4:
            image = cv2.cvtColor(_as_uint8(image), cv2.COLOR_BGRA2GRAY)
        else:
            raise ValueError(f"unsupported channel count {image.shape[2]}")
    elif image.ndim != 2:
        raise ValueError(f"expected a 2-D or 3-D image, got shape {image.shape}")
    return _as_uint8(image)


def _as_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        # Floats are taken to be in [0, 1], as OpenCV and scikit-image produce them.
        return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.clip(image, 0, 255).astype(np.uint8)


def square_crop_box(box: Box, margin: float) -> Box:
    """Expands a face box into a square around its centre, with ``margin`` added on every side."""
    x, y, w, h = box
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    side_px = max(1, int(round(side)))
    return int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), side_px, side_px


def crop(gray: np.ndarray, box: Box) -> np.ndarray:
    """Crops ``box`` from ``gray``, replicating edge pixels where the box leaves the frame."""
    x, y, w, h = box
    height, width = gray.shape[:2]
    pad_left, pad_top = max(0, -x), max(0, -y)
    pad_right, pad_bottom = max(0, x + w - width), max(0, y + h - height)
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + w), min(height, y + h)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"face box {box} lies outside the {width}x{height} frame")
    region = gray[y0:y1, x0:x1]
    if pad_left or pad_top or pad_right or pad_bottom:
        region = cv2.copyMakeBorder(
            region, pad_top, pad_bottom, pad_left, pad_right, cv2.BORDER_REPLICATE
        )
    return region


def framing_margins(spec: PreprocessSpec, average_framings: bool) -> tuple[float, ...]:
    """The margins each detected face is cut with: the model's, and with ``average_framings``
    a second one :data:`SECOND_FRAMING_MARGIN_STEP` tighter (looser when the model's is less)."""
    if not average_framings:
        return (spec.margin,)
    step = SECOND_FRAMING_MARGIN_STEP
    second = spec.margin - step if spec.margin >= step else spec.margin + step
    return (spec.margin, round(second, 6))


def straightening_turn(roll: float) -> float:
    """The degrees to turn a face that leans ``roll`` degrees (a detector's
    :attr:`~edge.detect.base.Face.roll`), counter-clockwise as seen: all of it, to level, when
    it leans beyond :data:`STRAIGHTEN_BEYOND_DEGREES`, else 0."""
    return roll if abs(roll) > STRAIGHTEN_BEYOND_DEGREES else 0.0


def turned_crop(gray: np.ndarray, box: Box, degrees: float) -> np.ndarray:
    """:func:`crop` of ``box`` with the picture turned ``degrees`` counter-clockwise about the
    box's centre (edge pixels replicated where the turned box leaves the frame)."""
    x, y, w, h = box
    centre = (x + (w - 1) / 2.0, y + (h - 1) / 2.0)
    matrix = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    matrix[:, 2] -= (x, y)  # the box's corner becomes the crop's
    return cv2.warpAffine(
        gray, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def face_region(gray: np.ndarray, box: Box, margin: float, roll: float = 0.0) -> np.ndarray:
    """What the model sees of the face in ``box``, at the frame's resolution: the square around
    it with ``margin`` (:func:`square_crop_box`), turned level when the face leans beyond
    :data:`STRAIGHTEN_BEYOND_DEGREES` (:func:`straightening_turn`)."""
    square, turn = square_crop_box(box, margin), straightening_turn(roll)
    return turned_crop(gray, square, turn) if turn else crop(gray, square)


def resize(gray: np.ndarray, size: int) -> np.ndarray:
    """Resizes to a ``size`` square: area averaging when shrinking (no aliasing), else bilinear."""
    if gray.shape[0] == size and gray.shape[1] == size:
        return gray
    shrinking = gray.shape[0] > size or gray.shape[1] > size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(gray, (size, size), interpolation=interpolation)


def preprocess_face(
    image: np.ndarray, spec: PreprocessSpec, box: Box | None = None, roll: float = 0.0
) -> np.ndarray:
    """Turns an image (and optionally a face box in it) into one uint8 model crop.

    Args:
        image: gray, BGR or BGRA frame or face image.
        spec: the model's preprocessing contract.
        box: face box in ``image``; ``None`` means the whole image is already a face crop,
            as in FER-style data sets and ``yuzug-edge classify --no-detect``.
        roll: how far the face in ``box`` leans, in degrees (the detector's); a face leaning
            beyond :data:`STRAIGHTEN_BEYOND_DEGREES` is turned level
            (:func:`straightening_turn`).

    Returns:
        ``(size, size, 1)`` uint8 pixels, ready for :func:`to_model_input`.
    """
    gray = to_gray(image)
    if box is not None:
        gray = face_region(gray, box, spec.margin, roll)
    return resize(gray, spec.size)[:, :, np.newaxis]


def preprocess_faces(
    image: np.ndarray,
    spec: PreprocessSpec,
    boxes: Sequence[Box],
    rolls: Sequence[float] | None = None,
) -> np.ndarray:
    """Crops every face box of one frame (each leaning ``rolls``, when given, as in
    :func:`preprocess_face`); returns ``(n, size, size, 1)`` uint8."""
    gray = to_gray(image)
    leans = rolls if rolls is not None else [0.0] * len(boxes)
    crops = [preprocess_face(gray, spec, box, roll) for box, roll in zip(boxes, leans, strict=True)]
    if not crops:
        return np.zeros((0, spec.size, spec.size, 1), np.uint8)
    return np.stack(crops)


def to_float(pixels: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 crops -> float32 model input, as the Keras model was trained on."""
    return pixels.astype(np.float32) * np.float32(spec.scale) + np.float32(spec.offset)


def to_model_input(
    pixels: np.ndarray,
    spec: PreprocessSpec,
    dtype: np.dtype | type,
    quant_scale: float = 0.0,
    quant_zero_point: int = 0,
) -> np.ndarray:
    """Converts uint8 crops to a model's input tensor dtype, quantizing when the input is integer.

    Args:
        pixels: uint8 crops from :func:`preprocess_face`.
        spec: the preprocessing contract (float = pixel * scale + offset).
        dtype: the interpreter's input dtype (float32, uint8 or int8).
        quant_scale: the input tensor's quantization scale (0 for float inputs).
        quant_zero_point: the input tensor's quantization zero point.
    """
    values = to_float(pixels, spec)
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return values
    if quant_scale <= 0:
        raise ValueError(f"integer input {dtype} needs a positive quantization scale")
    info = np.iinfo(dtype)
    quantized = np.round(values / np.float32(quant_scale)) + quant_zero_point
    return np.clip(quantized, info.min, info.max).astype(dtype)
