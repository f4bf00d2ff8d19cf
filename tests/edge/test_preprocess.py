"""The shared preprocessing path: colour handling, crops, resizing and input quantization."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.preprocess import (
    PreprocessSpec,
    crop,
    preprocess_face,
    preprocess_faces,
    square_crop_box,
    to_gray,
    to_model_input,
)


def test_to_gray_accepts_gray_bgr_bgra_and_floats():
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    expected = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    assert np.array_equal(to_gray(bgr), expected)
    assert np.array_equal(to_gray(cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)), expected)
    assert np.array_equal(to_gray(expected[:, :, None]), expected)
    as_float = to_gray(expected.astype(np.float32) / 255.0)
    assert np.abs(as_float.astype(int) - expected).max() <= 1
    with pytest.raises(ValueError):
        to_gray(np.zeros((4, 4, 2), np.uint8))


def test_square_crop_box_adds_margin_around_centre():
    assert square_crop_box((100, 100, 40, 60), 0.0) == (90, 100, 60, 60)
    x, y, w, h = square_crop_box((100, 100, 50, 50), 0.2)
    assert (w, h) == (70, 70) and (x + w / 2, y + h / 2) == (125, 125)


def test_crop_outside_frame_replicates_edges():
    gray = np.arange(100, dtype=np.uint8).reshape(10, 10)
    region = crop(gray, (-2, -2, 5, 5))
    assert region.shape == (5, 5)
    assert region[0, 0] == gray[0, 0] and region[4, 4] == gray[2, 2]
    with pytest.raises(ValueError, match="outside"):
        crop(gray, (20, 20, 5, 5))


def test_preprocess_face_shapes_and_box():
    spec = PreprocessSpec(size=48, margin=0.0)
    frame = np.zeros((200, 200, 3), np.uint8)
    frame[50:150, 50:150] = 255
    whole = preprocess_face(frame, spec)
    face = preprocess_face(frame, spec, box=(50, 50, 100, 100))
    assert whole.shape == face.shape == (48, 48, 1) and face.dtype == np.uint8
    assert face.min() == 255  # the box holds only the white square
    assert preprocess_faces(frame, spec, []).shape == (0, 48, 48, 1)
    assert preprocess_faces(frame, spec, [(0, 0, 10, 10), (50, 50, 100, 100)]).shape[0] == 2


def test_to_model_input_quantizes_with_model_parameters():
    spec = PreprocessSpec(size=8)
    pixels = np.arange(64, dtype=np.uint8).reshape(1, 8, 8, 1) * 4
    as_float = to_model_input(pixels, spec, np.float32)
    assert as_float.dtype == np.float32 and np.isclose(as_float.max(), 252 / 255)
    # uint8 input with scale 1/255 and zero point 0 is the identity on pixels.
    as_uint8 = to_model_input(pixels, spec, np.uint8, 1 / 255, 0)
    assert np.array_equal(as_uint8, pixels)
    as_int8 = to_model_input(pixels, spec, np.int8, 1 / 255, -128)
    assert np.array_equal(as_int8.astype(int), pixels.astype(int) - 128)
    with pytest.raises(ValueError):
        to_model_input(pixels, spec, np.uint8, 0.0, 0)


def test_spec_validates_and_round_trips():
    spec = PreprocessSpec(size=64, margin=0.25)
    assert PreprocessSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="margin"):
        PreprocessSpec(margin=2.0)
