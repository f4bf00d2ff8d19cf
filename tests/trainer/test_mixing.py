"""Batch mixing (``--mixup``, ``--cutmix``): each mixed face is two faces of the same
augmented batch, in one share for pixels, labels and loss weights alike."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edge.preprocess import PreprocessSpec
from trainer.__main__ import build_parser
from trainer.augment import AugmentConfig, device_augmenter, mix_batch
from trainer.presets import get_preset
from trainer.train import AugmentedBatches

# One class per face, so a mixed target names both of its faces and their shares.
FACES = 16
SPEC = PreprocessSpec(size=32)


def batches(mixup: float = 0.0, cutmix: float = 0.0) -> AugmentedBatches:
    preset = replace(get_preset("tiny"), mixup_alpha=mixup, cutmix_alpha=cutmix)
    weights = np.linspace(0.5, 2.0, FACES, dtype=np.float32)
    return AugmentedBatches(SPEC, FACES, preset, seed=11, class_weights=weights)


@pytest.fixture(scope="module")
def faces() -> tuple[np.ndarray, np.ndarray]:
    # Noise: two different faces practically never share a pixel value, so every mixed pixel
    # can be traced to its source.
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (FACES, 32, 32, 1), dtype=np.uint8), np.arange(FACES)


def sources(targets: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each mixed face's own share, and the face mixed into it (itself when unmixed)."""
    share = targets[np.arange(len(labels)), labels]
    others = targets.copy()
    others[np.arange(len(labels)), labels] = 0
    partner = np.where(others.max(axis=1) > 0, others.argmax(axis=1), np.arange(len(labels)))
    return share, partner


def test_mixing_off_leaves_the_augmented_batch_as_it_was(faces):
    pixels, labels = faces
    plain = batches().make_batch(pixels, labels, index=2, epoch=1)
    for mixed in (batches(mixup=0.4), batches(cutmix=1.0)):
        inputs, targets, weights = mixed.make_batch(pixels, labels, index=2, epoch=1)
        assert not np.array_equal(inputs, plain[0])
        # The same batch again is the same mix: runs stay reproducible.
        again = mixed.make_batch(pixels, labels, index=2, epoch=1)
        assert all(
            np.array_equal(a, b) for a, b in zip((inputs, targets, weights), again, strict=True)
        )
    off = batches(mixup=0.0, cutmix=0.0).make_batch(pixels, labels, index=2, epoch=1)
    assert all(np.array_equal(a, b) for a, b in zip(plain, off, strict=True))


def test_mixup_blends_pixels_labels_and_weights_in_one_share(faces):
    pixels, labels = faces
    blended = 0
    for index in range(5, 15):
        plain_inputs, _, plain_weights = batches().make_batch(pixels, labels, index, epoch=0)
        inputs, targets, weights = batches(mixup=0.4).make_batch(pixels, labels, index, epoch=0)
        np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
        share, partner = sources(targets, labels)
        assert sorted(partner) == list(range(FACES))  # a shuffle of the batch
        moved = partner != np.arange(FACES)  # a face the shuffle left in place is unmixed
        assert np.allclose(share[moved], share[moved][0]) and np.all(share[~moved] == 1)
        expected = (
            share[:, None, None, None] * plain_inputs
            + (1 - share[:, None, None, None]) * plain_inputs[partner]
        )
        np.testing.assert_allclose(inputs, expected, atol=1e-5)
        np.testing.assert_allclose(
            weights, share * plain_weights + (1 - share) * plain_weights[partner], rtol=1e-5
        )
        blended += bool(0.1 < share[0] < 0.9)
    assert blended >= 2  # Beta(0.4, 0.4) lands in the middle about 40% of the time


def test_cutmix_pastes_one_box_and_labels_it_by_area(faces):
    pixels, labels = faces
    for index in range(10):
        plain_inputs, _, plain_weights = batches().make_batch(pixels, labels, index, epoch=0)
        inputs, targets, weights = batches(cutmix=1.0).make_batch(pixels, labels, index, epoch=0)
        share, partner = sources(targets, labels)
        for face in range(FACES):
            if partner[face] == face:
                continue
            pasted = (inputs[face] == plain_inputs[partner[face]]) & (
                inputs[face] != plain_inputs[face]
            )
            rows, cols = np.nonzero(pasted[..., 0])
            top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
            box = np.zeros(pasted.shape[:2], bool)
            box[top:bottom, left:right] = True
            # Inside the box the partner's pixels, outside the face's own.
            np.testing.assert_array_equal(inputs[face][box], plain_inputs[partner[face]][box])
            np.testing.assert_array_equal(inputs[face][~box], plain_inputs[face][~box])
            assert share[face] == pytest.approx(1 - box.mean(), abs=1e-6)
            assert weights[face] == pytest.approx(
                share[face] * plain_weights[face] + (1 - share[face]) * plain_weights[partner[face]]
            )


def test_both_kinds_mix_device_augmented_batches_on_the_device(faces):
    # Under JAX the training step takes device-augmented batches (Keras here in the test
    # process is not on JAX, so the augmenter and the mixer are called as make_batch does).
    pixels, labels = faces
    augment = device_augmenter(AugmentConfig(), SPEC.scale, SPEC.offset)
    kinds = set()
    for index in range(12):
        targets = np.eye(FACES, dtype=np.float32)[labels]
        inputs, targets, _ = mix_batch(
            augment(pixels, 11, 0, index), targets, None, 0.4, 1.0, np.random.default_rng(index)
        )
        assert not isinstance(inputs, np.ndarray)  # stays a device array for the step
        share, partner = sources(targets, labels)
        moved = np.flatnonzero(partner != np.arange(FACES))
        if not len(moved) or share[moved[0]] > 0.999:
            continue
        # CutMix keeps the pixels on the uint8 grid; a blend moves most of them off it.
        pixels_255 = np.asarray(inputs[moved[0]]) * 255
        on_grid = np.isclose(pixels_255, np.round(pixels_255), atol=1e-3).mean()
        kinds.add("cutmix" if on_grid == 1.0 else "mixup")
    assert kinds == {"mixup", "cutmix"}


def test_a_negative_or_non_numeric_alpha_is_refused_naming_the_flag(capsys):
    parser = build_parser()
    for flag in ("--mixup", "--cutmix"):
        with pytest.raises(SystemExit) as refused:
            parser.parse_args(["fit", "--run", "r", flag, "-0.5"])
        assert refused.value.code == 2
        assert f"{flag} must be at least 0, got -0.5" in capsys.readouterr().err
        with pytest.raises(SystemExit):
            parser.parse_args(["fit", "--run", "r", flag, "lots"])
        assert f"{flag} takes a number, got lots" in capsys.readouterr().err
    parsed = parser.parse_args(["fit", "--run", "r", "--mixup", "0.2", "--cutmix", "1"])
    assert (parsed.mixup, parsed.cutmix) == (0.2, 1.0)
