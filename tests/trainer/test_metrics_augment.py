"""Metrics on hand-checked cases, and the contract of both augmentation paths (numpy/OpenCV on
the host, JAX on the device)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from trainer.augment import AugmentConfig, augment_batch, darken, degrade, device_augmenter
from trainer.metrics import (
    classification_report,
    emotion_rate,
    expected_calibration_error,
    target_report,
    top1_agreement,
)
from trainer.train import balanced_class_weights

NO_AUGMENTATION = AugmentConfig(
    flip=False,
    max_rotation_deg=0,
    max_shift=0,
    max_zoom=0,
    max_brightness=0,
    max_contrast=0,
    erase_probability=0,
)
# Every camera degradation on every face, at its widest (JPEG quality down to 5 for the tests).
DEGRADE_ALWAYS = replace(
    NO_AUGMENTATION, degrade_probability=1.0, min_face_pixels=12, min_jpeg_quality=5
)


def test_classification_report_by_hand():
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[[0, 1, 1, 1, 2, 0]] * 0.9 + 0.1 / 3
    report = classification_report(y, probs, ["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(4 / 6, abs=1e-4)
    assert report["per_class"]["a"]["recall"] == 0.5
    assert report["per_class"]["b"]["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert report["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    f1 = [0.5, 0.8, 2 / 3]
    assert report["macro_f1"] == pytest.approx(np.mean(f1), abs=1e-4)


def test_ece_zero_when_confidence_matches_accuracy():
    y = np.array([0, 1, 0, 1])
    probs = np.array([[0.5, 0.5]] * 4)  # argmax 0: half right at confidence 0.5
    assert expected_calibration_error(y, probs) == pytest.approx(0.0)
    overconfident = np.array([[1.0, 0.0]] * 4)
    assert expected_calibration_error(y, overconfident) == pytest.approx(0.5)
    assert top1_agreement(probs, overconfident) == 1.0


def test_balanced_class_weights_equalise_classes():
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    weights = balanced_class_weights(np.bincount(labels, minlength=3))
    totals = np.bincount(labels) * weights
    assert np.allclose(totals, totals[0])


def test_augment_is_deterministic_and_keeps_contract():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 48, 48, 1), dtype=np.uint8)
    config = AugmentConfig()
    a = augment_batch(images, config, np.random.default_rng(7))
    b = augment_batch(images, config, np.random.default_rng(7))
    assert a.shape == images.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, images)
    off = NO_AUGMENTATION
    assert np.array_equal(augment_batch(images, off, np.random.default_rng(1)), images)


def test_flip_only_mirrors():
    image = np.zeros((1, 8, 8, 1), np.uint8)
    image[0, :, 0, 0] = 255
    flip = replace(NO_AUGMENTATION, flip=True)
    outs = [augment_batch(image, flip, np.random.default_rng(s)) for s in range(10)]
    assert any(np.array_equal(o, image[:, :, ::-1]) for o in outs)
    assert all(np.array_equal(o, image) or np.array_equal(o, image[:, :, ::-1]) for o in outs)


def test_target_report_ignores_the_abstain_class():
    labels = ["a", "b", "none"]
    y = np.array([0, 1, 2, 0])
    probs = np.array(
        [
            [0.3, 0.1, 0.6],  # "none" wins, but among the targets "a" does: correct
            [0.5, 0.4, 0.1],  # wrong
            [0.2, 0.2, 0.6],  # a "none" image: not counted
            [0.7, 0.2, 0.1],  # correct
        ]
    )
    report = target_report(y, probs, labels, "none")
    assert report["samples"] == 3
    assert report["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert list(report["per_class"]) == ["a", "b"]
    assert report["confusion"] == [[2, 0], [1, 0]]
    assert target_report(y, probs, labels, None)["samples"] == 4


def test_emotion_rate_by_argmax_and_as_the_daemon_reports():
    labels = ["a", "b", "none"]
    probs = np.array([[0.4, 0.3, 0.3], [0.8, 0.1, 0.1], [0.1, 0.1, 0.8], [0.2, 0.6, 0.2]])
    rate = emotion_rate(probs, labels, "none", min_confidence=0.5)
    assert rate["argmax"] == 0.75
    assert rate["daemon"] == 0.5  # the 0.4 one falls below min_confidence


def test_device_augmentation_is_seeded_and_feeds_the_model_contract():
    images = np.random.default_rng(0).integers(0, 256, (32, 48, 48, 1), dtype=np.uint8)
    augment = device_augmenter(AugmentConfig(), 1 / 255, 0.0)
    a, b = np.asarray(augment(images, 7, 0, 3)), np.asarray(augment(images, 7, 0, 3))
    assert a.shape == images.shape and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.array_equal(a, np.asarray(augment(images, 7, 0, 4)))  # next batch index
    assert not np.array_equal(a, np.asarray(augment(images, 7, 1, 3)))  # next epoch
    # Pixels stay on the camera's uint8 grid, scaled as the model's input.
    pixels = a * 255
    assert pixels.min() >= 0 and pixels.max() <= 255
    np.testing.assert_allclose(pixels, np.round(pixels), atol=1e-3)
    identity = device_augmenter(NO_AUGMENTATION, 1 / 255, 0.0)
    np.testing.assert_allclose(np.asarray(identity(images, 1, 0, 0)), images / 255, atol=1e-6)


def test_device_flip_only_mirrors_whole_images():
    images = np.random.default_rng(1).integers(0, 256, (64, 16, 16, 1), dtype=np.uint8)
    flip = device_augmenter(replace(NO_AUGMENTATION, flip=True), 1.0, 0.0)
    out = np.asarray(flip(images, 3, 0, 0))
    mirrored = np.all(np.isclose(out, images[:, :, ::-1]), axis=(1, 2, 3))
    unchanged = np.all(np.isclose(out, images), axis=(1, 2, 3))
    assert np.all(mirrored | unchanged)
    assert 16 <= mirrored.sum() <= 48


def test_device_and_host_augmentation_change_faces_alike(small_fer_dir: Path):
    # The same ranges on both paths: a face moves by about as much either way (rotation in
    # radians instead of degrees, or a zoom applied twice, would break this).
    faces = np.stack(
        [
            cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            for path in sorted(small_fer_dir.rglob("*.jpg"))[:128]
        ]
    )[..., None]
    for name, config in (
        ("geometry", replace(NO_AUGMENTATION, max_rotation_deg=10, max_shift=0.1, max_zoom=0.1)),
        ("photometric", replace(NO_AUGMENTATION, max_brightness=0.15, max_contrast=0.2)),
        ("erasing", replace(NO_AUGMENTATION, erase_probability=0.25)),
    ):
        host = augment_batch(faces, config, np.random.default_rng(5)).astype(np.float32)
        device = np.asarray(device_augmenter(config, 1.0, 0.0)(faces, 5, 0, 0))
        host_change = np.abs(host - faces).mean()
        device_change = np.abs(device - faces).mean()
        assert host_change > 1 and device_change > 1, name
        assert 0.7 < device_change / host_change < 1.4, (name, host_change, device_change)


def _sharpness(images: np.ndarray) -> float:
    """Mean absolute Laplacian: fine detail, which distance, defocus and JPEG take away."""
    return float(np.mean([np.abs(cv2.Laplacian(i[..., 0], cv2.CV_32F)).mean() for i in images]))


def test_camera_degradations_are_off_in_the_shipped_recipe_and_seeded_when_on(
    small_fer_dir: Path,
):
    faces = np.stack(
        [
            cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            for path in sorted(small_fer_dir.rglob("*.jpg"))[:64]
        ]
    )[..., None]
    assert AugmentConfig().degrade_probability == 0.0
    # Off, the random stream is untouched: a shipped-recipe run trains on the same batches.
    shipped = augment_batch(faces, AugmentConfig(), np.random.default_rng(3))
    again = augment_batch(faces, replace(AugmentConfig(), max_noise=0), np.random.default_rng(3))
    assert np.array_equal(shipped, again)
    first = augment_batch(faces, DEGRADE_ALWAYS, np.random.default_rng(4))
    assert np.array_equal(first, augment_batch(faces, DEGRADE_ALWAYS, np.random.default_rng(4)))
    assert first.shape == faces.shape and first.dtype == np.uint8
    assert _sharpness(first) < 0.8 * _sharpness(faces)
    assert np.array_equal(augment_batch(faces, NO_AUGMENTATION, np.random.default_rng(4)), faces)


@pytest.mark.parametrize(
    ("kind", "config"),
    [
        ("far", replace(DEGRADE_ALWAYS, max_blur_sigma=0, max_noise=0, min_jpeg_quality=95)),
        ("blur", replace(DEGRADE_ALWAYS, min_face_pixels=48, max_noise=0, min_jpeg_quality=95)),
        ("jpeg", replace(DEGRADE_ALWAYS, min_face_pixels=48, max_blur_sigma=0, max_noise=0)),
    ],
)
def test_each_degradation_alone_removes_detail_and_keeps_the_face(kind, config, small_fer_dir):
    face = cv2.imread(str(sorted(small_fer_dir.rglob("*.jpg"))[0]), cv2.IMREAD_GRAYSCALE)
    changed = np.stack([degrade(face, config, np.random.default_rng(s)) for s in range(8)])
    assert changed.shape == (8, *face.shape) and changed.dtype == np.uint8
    assert _sharpness(changed[..., None]) < _sharpness(face[None, ..., None]), kind
    # Still the same face: its coarse layout (8x8 means) barely moves.
    coarse = cv2.resize(face, (8, 8), interpolation=cv2.INTER_AREA).astype(float)
    for image in changed:
        small = cv2.resize(image, (8, 8), interpolation=cv2.INTER_AREA).astype(float)
        assert np.abs(small - coarse).mean() < 12, kind


def test_sensor_noise_alone_adds_grain_around_the_same_face():
    flat = np.full((48, 48), 128, np.uint8)
    only = replace(DEGRADE_ALWAYS, min_face_pixels=48, max_blur_sigma=0, min_jpeg_quality=95)
    grains = [degrade(flat, only, np.random.default_rng(s)).astype(float) for s in range(16)]
    spreads = [g.std() for g in grains]
    assert 0 < max(spreads) <= 6.5
    assert abs(np.mean(grains) - 128) < 0.5


def test_device_augmentation_refuses_camera_degradations():
    with pytest.raises(ValueError, match="--augment-on host"):
        device_augmenter(replace(AugmentConfig(), degrade_probability=0.2), 1 / 255, 0.0)
    with pytest.raises(ValueError, match="--augment-on host"):
        device_augmenter(replace(AugmentConfig(), darken_probability=0.2), 1 / 255, 0.0)


def test_a_darkened_face_is_the_same_face_in_less_light_with_more_noise(small_fer_dir):
    face = cv2.imread(str(sorted(small_fer_dir.rglob("*.jpg"))[0]), cv2.IMREAD_GRAYSCALE)
    config = AugmentConfig()
    assert config.darken_probability == 0.0  # the shipped recipe keeps its light
    darker = [darken(face, config, np.random.default_rng(s)) for s in range(32)]
    lights = [image.mean() / face.mean() for image in darker]
    assert config.min_light - 0.03 < min(lights) and max(lights) < config.max_light + 0.03
    assert np.median(lights) < 0.25  # log-uniform: as many below 0.19 as above
    for image in darker:  # the same face: its layout, scaled, is still there
        coarse = cv2.resize(image, (8, 8), interpolation=cv2.INTER_AREA).astype(float).ravel()
        layout = cv2.resize(face, (8, 8), interpolation=cv2.INTER_AREA).astype(float).ravel()
        assert np.corrcoef(coarse, layout)[0, 1] > 0.8
    flat = np.full((48, 48), 100, np.uint8)
    grain = darken(flat, replace(config, min_light=0.5, max_light=0.5), np.random.default_rng(1))
    assert abs(grain.mean() - 50) < 1 and 0 < grain.std() <= config.max_gain_noise + 0.5


def test_darkening_strikes_about_the_share_of_a_batch_asked_and_touches_no_other_face():
    faces = np.full((400, 48, 48, 1), 120, np.uint8)
    plain = replace(NO_AUGMENTATION, darken_probability=0.25)
    darkened = augment_batch(faces, plain, np.random.default_rng(0))
    struck = darkened.reshape(400, -1).mean(axis=1) < 100
    assert 0.18 < struck.mean() < 0.32
    assert np.array_equal(darkened[~struck], faces[~struck])


def test_target_report_and_emotion_rate_take_a_seven_class_models_other_outputs():
    labels = ["angry", "fear", "happy", "neutral"]  # a model with more classes than the targets
    others = ["fear", "neutral"]
    y = np.array([0, 2, 1, 3, 0])
    probs = np.array(
        [
            [0.3, 0.6, 0.1, 0.0],  # fear wins, but among angry/happy angry does: correct
            [0.1, 0.0, 0.2, 0.7],  # neutral wins; among the targets happy: correct
            [0.9, 0.1, 0.0, 0.0],  # a fear face: not counted
            [0.0, 0.0, 0.6, 0.4],  # a neutral face: not counted
            [0.2, 0.0, 0.3, 0.5],  # wrong among the targets
        ]
    )
    report = target_report(y, probs, labels, others)
    assert report["samples"] == 3 and list(report["per_class"]) == ["angry", "happy"]
    assert report["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert report["confusion"] == [[1, 1], [0, 1]]
    # Only a target emotion on top counts as "named an emotion"; fear and neutral do not.
    rate = emotion_rate(probs, labels, others, min_confidence=0.65)
    assert rate["argmax"] == pytest.approx(2 / 5) and rate["daemon"] == pytest.approx(1 / 5)
