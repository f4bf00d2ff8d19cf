"""Training presets: an architecture plus the recipe that trains it.

``seed`` is the original system, kept as the baseline every report compares against.
``default`` is YUZUG's own model for a Raspberry Pi CPU. ``vgg`` is the best published single
network on FER2013's seven classes, a reference. ``tiny`` exists for smoke tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from trainer.augment import AugmentConfig


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    builder: str  # attribute of trainer.model, resolved lazily so keras loads after the backend
    input_size: int
    epochs: int
    batch_size: int
    learning_rate: float
    # "sgd" is SGD with Nesterov momentum 0.9 (Khaireddin & Chen's best on FER2013); its
    # weight decay is Keras's decoupled kind, applied as lr * weight_decay per step.
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    weight_decay: float = 0.0
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    augment: AugmentConfig | None = None
    # "device": the same transforms compiled with JAX on the accelerator (a GPU run's input
    # pipeline is otherwise host-bound); "host": numpy/OpenCV, the shipped model's recipe.
    augment_on: Literal["host", "device"] = "host"
    class_weighting: bool = False
    early_stopping_patience: int | None = None
    checkpoint_best: bool = True
    # Polyak averaging: validation, the kept epoch and the saved model use an exponential
    # moving average of the weights (None: the raw weights).
    ema_momentum: float | None = None
    # Batch mixing (0: off): mixup and CutMix draw their share from Beta(alpha, alpha); with
    # both set each batch uses one of them, chosen at random.
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    # Sharpness-aware minimization (trainer.sharpness): the radius of the probe step, 0 off.
    sam_rho: float = 0.0
    # Context around a detected face box when cropping (edge.preprocess.square_crop_box).
    margin: float = 0.1

    def build(self) -> Callable[[int, int], Any]:
        from trainer import model

        return getattr(model, self.builder)

    def with_overrides(self, **overrides: Any) -> Preset:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


PRESETS: dict[str, Preset] = {
    "seed": Preset(
        name="seed",
        description="the original system: Conv 32/64/128 + Dense 256 at 224x224, Adam, "
        "batch 32, 70 epochs, no augmentation",
        builder="build_seed",
        input_size=224,
        epochs=70,
        batch_size=32,
        learning_rate=1e-3,
        # The original kept the last epoch; we keep its recipe but still save the best
        # validation checkpoint, so its overfitting shows in the curves, not in the bundle.
        checkpoint_best=True,
    ),
    "default": Preset(
        name="default",
        description="YUZUG compact CNN (~0.6M params, 48x48): BN, augmentation, label "
        "smoothing, class weights, AdamW with a cosine schedule",
        builder="build_compact",
        input_size=48,
        epochs=60,
        batch_size=64,
        learning_rate=2e-3,
        optimizer="adamw",
        weight_decay=1e-4,
        schedule="cosine",
        warmup_epochs=2,
        label_smoothing=0.1,
        augment=AugmentConfig(),
        class_weighting=True,
        early_stopping_patience=15,
    ),
    "vgg": Preset(
        name="vgg",
        description="Khaireddin & Chen's VGG and recipe (2021, 73.28% on seven classes): ~40M "
        "params at 48x48, SGD with Nesterov momentum, shifts and zoom of 20%, random erasing "
        "of half the faces, no class weights, 300 epochs; a reference for a GPU",
        builder="build_vgg",
        input_size=48,
        epochs=300,
        batch_size=64,
        learning_rate=0.01,
        optimizer="sgd",
        # Their coupled 1e-4 in PyTorch, which momentum 0.9 makes about 1e-3 of decoupled
        # decay (Keras applies lr * wd a step).
        weight_decay=1e-3,
        schedule="cosine",
        # Not theirs: a short warm-up, so that a GPU's larger batches can take a rate scaled
        # up with the batch (Goyal et al., 2017).
        warmup_epochs=3,
        # Their transforms: a random resized crop of scale 0.8-1.2, shifts of 20%, flips,
        # rotations of 10 degrees and random erasing (scale 0.02-0.33), nothing photometric.
        augment=AugmentConfig(
            max_shift=0.2,
            max_zoom=0.2,
            max_brightness=0.0,
            max_contrast=0.0,
            erase_probability=0.5,
            erase_max_area=0.33,
        ),
    ),
    "tiny": Preset(
        name="tiny",
        description="smoke-test CNN (a few thousand params, 32x32) for CI",
        builder="build_tiny",
        input_size=32,
        epochs=2,
        batch_size=32,
        learning_rate=3e-3,
        augment=AugmentConfig(),
        class_weighting=True,
    ),
}


# Same recipe, other widths: a bigger student for the 1 MB budget and a teacher to distil from.
for _name, _builder, _description in (
    (
        "wide",
        "build_wide",
        "the default recipe at 1.25x the channels (~0.91M params, 48x48): the largest student "
        "under 1 MB in int8",
    ),
    (
        "teacher",
        "build_teacher",
        "a distillation teacher: the default recipe at 2x the channels (~2.3M params, 48x48), "
        "too big for the Pi",
    ),
    (
        "resnet",
        "build_resnet",
        "a larger teacher: ResNet-18 for 48x48 faces with the default recipe (~11M params), "
        "for a GPU",
    ),
):
    PRESETS[_name] = replace(
        PRESETS["default"], name=_name, builder=_builder, description=_description
    )


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
