"""Training-time augmentation on uint8 batches, outside the model: numpy/OpenCV on the host or
JAX on the accelerator (:func:`device_augmenter`), with the same ranges.

Keras's RandomTranslation/RandomRotation/RandomZoom mark themselves un-jittable, which turns
JIT off for the whole model under JAX (an epoch on 2 CPU cores went from ~65 s to ~170 s, and
a GPU run stalled). Doing the geometry here with one ``cv2.warpAffine`` per image costs about
2.4 ms per batch of 64 at 48x48 and keeps the model's step fully compiled. Augmentation never
enters the exported model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edge.preprocess import resize


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random transforms; zero turns one off."""

    flip: bool = True
    max_rotation_deg: float = 10.0
    max_shift: float = 0.1  # fraction of the side
    max_zoom: float = 0.1  # scale in [1 - z, 1 + z]
    max_brightness: float = 0.15  # additive, fraction of 255
    max_contrast: float = 0.2  # multiplicative around the mean
    erase_probability: float = 0.25  # random erasing (Zhong et al., 2017)
    erase_max_area: float = 0.2
    # What a room camera does to a face that FER2013's studio-like crops rarely show: each of
    # the four below strikes a face independently with this probability (0: off, the shipped
    # recipe). bench/robustness.py measures the same four conditions.
    degrade_probability: float = 0.0
    min_face_pixels: int = 16  # far away: shrunk to [this, side] pixels and scaled back up
    max_blur_sigma: float = 1.5  # out of focus: Gaussian sigma in pixels of a 48-pixel face
    max_noise: float = 6.0  # sensor noise: Gaussian, grey levels (1 sigma), drawn in [0, this]
    min_jpeg_quality: int = 20  # stream compression: JPEG quality drawn in [this, 95]
    # A dark room at the camera's exposure limit, with this probability (0: off, the shipped
    # recipe): the face at a share of its light drawn log-uniformly in [min_light, max_light],
    # with sensor noise raised by the gain, drawn in [0.5, max_gain_noise] grey levels. In a
    # dark room the detector still finds faces and the model no longer reads them (49-57%
    # right at 12% light, bench/reach.py --light 0.12), and brightening a dark crop before
    # the model reads fewer still (docs/results.md): darkness has to be learnt.
    darken_probability: float = 0.0
    min_light: float = 0.07
    max_light: float = 0.5
    max_gain_noise: float = 4.0


def augment_batch(
    images: np.ndarray, config: AugmentConfig, rng: np.random.Generator
) -> np.ndarray:
    """Returns an augmented copy of ``(n, h, w, 1)`` uint8 images."""
    n, height, width = images.shape[:3]
    out = np.empty_like(images)
    centre = (width / 2.0, height / 2.0)
    angles = np.asarray(rng.uniform(-config.max_rotation_deg, config.max_rotation_deg, n))
    zooms = np.asarray(rng.uniform(1.0 - config.max_zoom, 1.0 + config.max_zoom, n))
    shifts: np.ndarray = rng.uniform(-config.max_shift, config.max_shift, (n, 2)) * (width, height)
    flips = np.zeros(n, bool)
    if config.flip:
        flips = np.asarray(rng.random(n) < 0.5)
    geometric = config.max_rotation_deg or config.max_shift or config.max_zoom
    for i in range(n):
        image = images[i, :, :, 0]
        if flips[i]:
            image = image[:, ::-1]
        if geometric:
            matrix: np.ndarray = cv2.getRotationMatrix2D(centre, float(angles[i]), float(zooms[i]))
            matrix[:, 2] += shifts[i]
            image = cv2.warpAffine(
                np.ascontiguousarray(image),
                matrix,
                (width, height),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REFLECT_101,
            )
        out[i, :, :, 0] = image
    if config.max_brightness or config.max_contrast:
        values = out.astype(np.float32)
        contrast = rng.uniform(1 - config.max_contrast, 1 + config.max_contrast, (n, 1, 1, 1))
        brightness = rng.uniform(-config.max_brightness, config.max_brightness, (n, 1, 1, 1)) * 255
        means = values.mean(axis=(1, 2, 3), keepdims=True)
        values = (values - means) * contrast + means + brightness
        out = np.clip(values + 0.5, 0, 255).astype(np.uint8)
    if config.erase_probability:
        for erased in np.flatnonzero(rng.random(n) < config.erase_probability):
            area = rng.uniform(0.02, config.erase_max_area) * height * width
            aspect = math.exp(rng.uniform(math.log(0.3), math.log(3.3)))
            eh = min(height, max(1, int(round(math.sqrt(area * aspect)))))
            ew = min(width, max(1, int(round(math.sqrt(area / aspect)))))
            y0 = int(rng.integers(0, height - eh + 1))
            x0 = int(rng.integers(0, width - ew + 1))
            noise = rng.integers(0, 256, (eh, ew), dtype=np.uint8)
            out[erased, y0 : y0 + eh, x0 : x0 + ew, 0] = noise
    if config.darken_probability:
        # Light first: the room is dark before the camera degrades what it gets.
        for dark in np.flatnonzero(rng.random(n) < config.darken_probability):
            out[dark, :, :, 0] = darken(out[dark, :, :, 0], config, rng)
    if config.degrade_probability:
        # After the photometric jitter (a camera degrades whatever light it gets) and the
        # erasing (an occluder sits in front of the lens).
        for i in range(n):
            out[i, :, :, 0] = degrade(out[i, :, :, 0], config, rng)
    return out


def darken(image: np.ndarray, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """A 2-D uint8 face as a camera at its exposure limit delivers it in a dark room: at a share
    of its light drawn log-uniformly in ``[min_light, max_light]``, with the sensor's noise
    raised by the gain (``[0.5, max_gain_noise]`` grey levels, 1 sigma)."""
    light = math.exp(rng.uniform(math.log(config.min_light), math.log(config.max_light)))
    noise = rng.normal(0.0, rng.uniform(0.5, config.max_gain_noise), image.shape)
    return np.clip(np.round(image * light + noise), 0, 255).astype(np.uint8)


def degrade(image: np.ndarray, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """A 2-D uint8 face as a room camera may deliver it: each of distance, defocus, sensor noise
    and compression, in that order (the order light meets them), with probability
    ``config.degrade_probability``. Distance resamples with :func:`edge.preprocess.resize`, the
    daemon's own, so a shrunk face looks as a small detected one does once the daemon scales it.
    """
    side = image.shape[0]
    strikes = rng.random(4) < config.degrade_probability
    if strikes[0] and config.min_face_pixels < side:
        pixels = int(rng.integers(config.min_face_pixels, side))
        image = resize(resize(image, pixels), side)
    if strikes[1] and config.max_blur_sigma > 0:
        sigma = float(rng.uniform(0.3, config.max_blur_sigma)) * side / 48
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    if strikes[2] and config.max_noise > 0:
        noisy = image + rng.normal(0.0, rng.uniform(0.0, config.max_noise), image.shape)
        image = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    if strikes[3] and config.min_jpeg_quality < 95:
        quality = int(rng.integers(config.min_jpeg_quality, 96))
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE) if ok else None
        image = image if decoded is None else decoded
    return image


def device_augmenter(
    config: AugmentConfig, scale: float, offset: float
) -> Callable[[np.ndarray, int, int, int], Any]:
    """The transforms of :func:`augment_batch`, compiled with JAX to run on the accelerator.

    Returns ``augment(pixels, seed, epoch, index)``: ``(n, h, w, 1)`` uint8 crops in, the
    model's float input (``pixel * scale + offset``) out, as a device array. On a GPU the host
    then only gathers uint8 crops, and one process trains several times faster than with
    ``augment_batch`` (which tops out near 10,000 images/s per process, host-bound). The random
    draws are JAX's, so a run augmented here is reproducible on its own, not batch-for-batch
    equal to a host-augmented run. Pixels are rounded back to the uint8 grid the camera gives.
    """
    if config.degrade_probability or config.darken_probability:
        # JPEG has no JAX form; the other three alone would be a different recipe. Darkness
        # stays with them, host-side, so that the two can be paired.
        raise ValueError(
            "camera degradations (--degrade, --darken) run on the host only: use --augment-on host"
        )
    import jax
    import jax.numpy as jnp
    from jax.scipy.ndimage import map_coordinates

    def sample_one(image: Any, rows: Any, cols: Any) -> Any:
        # "mirror" is OpenCV's BORDER_REFLECT_101, the host path's border.
        return map_coordinates(image, [rows, cols], order=1, mode="mirror")

    def augment(pixels: Any, seed: Any, epoch: Any, index: Any) -> Any:
        n, height, width = pixels.shape[:3]
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), epoch), index)
        keys = jax.random.split(key, 9)
        images = pixels[..., 0].astype(jnp.float32)

        def uniform(k: Any, low: float, high: float, shape: tuple[int, ...] = (n,)) -> Any:
            return jax.random.uniform(k, shape, jnp.float32, low, high)

        # Inverse mapping: each output pixel samples the source at R(-angle)/zoom (p - c - t) + c,
        # mirrored in x for a flipped image.
        angles = jnp.deg2rad(uniform(keys[0], -config.max_rotation_deg, config.max_rotation_deg))
        zooms = uniform(keys[1], 1.0 - config.max_zoom, 1.0 + config.max_zoom)
        shift_y = uniform(keys[2], -config.max_shift, config.max_shift) * height
        shift_x = uniform(keys[3], -config.max_shift, config.max_shift) * width
        flips = jax.random.bernoulli(keys[4], 0.5 if config.flip else 0.0, (n,))
        centre_y, centre_x = (height - 1) / 2.0, (width - 1) / 2.0
        grid_y, grid_x = jnp.meshgrid(
            jnp.arange(height, dtype=jnp.float32),
            jnp.arange(width, dtype=jnp.float32),
            indexing="ij",
        )
        dy = grid_y[None] - centre_y - shift_y[:, None, None]
        dx = grid_x[None] - centre_x - shift_x[:, None, None]
        cos = (jnp.cos(angles) / zooms)[:, None, None]
        sin = (jnp.sin(angles) / zooms)[:, None, None]
        rows = cos * dy - sin * dx + centre_y
        cols = sin * dy + cos * dx + centre_x
        cols = jnp.where(flips[:, None, None], (width - 1) - cols, cols)
        images = jax.vmap(sample_one)(images, rows, cols)

        contrast = uniform(keys[5], 1 - config.max_contrast, 1 + config.max_contrast)
        brightness = uniform(keys[6], -config.max_brightness, config.max_brightness) * 255
        means = images.mean(axis=(1, 2), keepdims=True)
        images = (images - means) * contrast[:, None, None] + means + brightness[:, None, None]
        images = jnp.clip(jnp.round(images), 0, 255)

        if config.erase_probability:
            # Random erasing (Zhong et al., 2017): one noise rectangle per chosen image.
            draws = jax.random.uniform(keys[7], (5, n))
            erase = draws[0] < config.erase_probability
            area = (0.02 + draws[1] * (config.erase_max_area - 0.02)) * height * width
            aspect = jnp.exp(math.log(0.3) + draws[2] * (math.log(3.3) - math.log(0.3)))
            erase_h = jnp.clip(jnp.round(jnp.sqrt(area * aspect)), 1, height)
            erase_w = jnp.clip(jnp.round(jnp.sqrt(area / aspect)), 1, width)
            top = jnp.floor(draws[3] * (height - erase_h + 1))
            left = jnp.floor(draws[4] * (width - erase_w + 1))
            inside = (
                erase[:, None, None]
                & (grid_y[None] >= top[:, None, None])
                & (grid_y[None] < (top + erase_h)[:, None, None])
                & (grid_x[None] >= left[:, None, None])
                & (grid_x[None] < (left + erase_w)[:, None, None])
            )
            noise = jax.random.randint(keys[8], images.shape, 0, 256).astype(jnp.float32)
            images = jnp.where(inside, noise, images)
        return (images * scale + offset)[..., None]

    return jax.jit(augment)


def mix_batch(
    inputs: Any,
    targets: np.ndarray,
    weights: np.ndarray | None,
    mixup_alpha: float,
    cutmix_alpha: float,
    rng: np.random.Generator,
) -> tuple[Any, np.ndarray, np.ndarray | None]:
    """Mixes a batch with a shuffled copy of itself: mixup (Zhang et al., 2018) or CutMix (Yun
    et al., 2019), one of the two chosen per batch when both alphas are set.

    ``inputs`` are the model's float input, a numpy or a JAX device array (only broadcasting
    arithmetic and row indexing are used, so device-augmented batches stay on the device).
    Targets and per-face loss weights are mixed in the same proportion as the pixels: a face
    whose label is wrong then costs less, which is why mixup helps on noisy labels.
    """
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or rng.random() < 0.5)
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    if alpha <= 0:
        return inputs, targets, weights
    share = float(rng.beta(alpha, alpha))  # of the original face in each mixed one
    partner = rng.permutation(len(targets))
    if use_cutmix:
        # A box of about (1 - share) of the area, centred anywhere and clipped at the edges;
        # the label share is the area actually kept.
        height, width = inputs.shape[1:3]
        box_h = int(round(height * math.sqrt(1.0 - share)))
        box_w = int(round(width * math.sqrt(1.0 - share)))
        centre_y, centre_x = int(rng.integers(height)), int(rng.integers(width))
        top, bottom = max(0, centre_y - box_h // 2), min(height, centre_y + (box_h + 1) // 2)
        left, right = max(0, centre_x - box_w // 2), min(width, centre_x + (box_w + 1) // 2)
        keep = np.ones((1, height, width, 1), np.float32)
        keep[:, top:bottom, left:right] = 0.0
        share = float(keep.mean())
        inputs = inputs * keep + inputs[partner] * (1.0 - keep)
    else:
        inputs = inputs * share + inputs[partner] * (1.0 - share)
    targets = share * targets + (1.0 - share) * targets[partner]
    if weights is not None:
        weights = share * weights + (1.0 - share) * weights[partner]
    return inputs, targets.astype(np.float32), weights
