"""Model architectures. Each builder takes ``(input_size, num_classes)`` and returns a Keras model.

Models take float input made by :func:`edge.preprocess.to_float` (pixels scaled to [0, 1]) and
end in a softmax, so the exported int8 model's uint8 output is a probability directly.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import keras
from keras import layers


def load_trained(path: Path) -> keras.Model:
    """A saved ``.keras`` model without its optimizer state; a missing or damaged file is said
    plainly (Keras reports a truncated archive as "File not found")."""
    if not path.is_file():
        unfinished = path.parent / "best.keras"
        hint = (
            f" ({unfinished} holds the best epoch of a fit that was killed before it finished:"
            f" copy it to {path.name} to use it)"
            if path.name == "model.keras" and unfinished.is_file()
            else ""
        )
        raise FileNotFoundError(f"{path}: no such model; has `yuzug-train fit` run for it?{hint}")
    if not zipfile.is_zipfile(path):  # a copy or a save cut short
        raise ValueError(f"{path}: damaged, not a complete .keras archive; retrain or restore it")
    return keras.saving.load_model(path, compile=False)


def build_seed(input_size: int, num_classes: int) -> keras.Model:
    """The original system's CNN, layer for layer (22.2M parameters at 224x224)."""
    inputs = keras.Input((input_size, input_size, 1), name="pixels")
    x = inputs
    for filters in (32, 64, 128):
        x = layers.Conv2D(filters, 3, activation="relu")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256, activation="relu")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="seed")


def _conv_bn(x: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    # No conv bias: BatchNorm's beta does that job, and the converter folds BN into the conv.
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def build_compact(
    input_size: int,
    num_classes: int,
    widths: tuple[int, ...] = (32, 64, 128, 256),
    dropout: float = 0.3,
) -> keras.Model:
    """YUZUG's Pi model: VGG-style conv-BN-ReLU pairs, global pooling, ~0.6M parameters.

    Global average pooling instead of the seed's Flatten+Dense keeps the parameter count (and
    the int8 file) small and removes most of the seed's overfitting capacity.
    """
    inputs = keras.Input((input_size, input_size, 1), name="pixels")
    x = inputs
    for stage, filters in enumerate(widths):
        x = _conv_bn(x, filters, f"s{stage}a")
        if stage < len(widths) - 1:
            x = _conv_bn(x, filters, f"s{stage}b")
            x = layers.MaxPooling2D(name=f"s{stage}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="compact")


def build_wide(input_size: int, num_classes: int) -> keras.Model:
    """The compact model at 1.25x width: ~0.91M parameters, still under 1 MB in int8."""
    return build_compact(input_size, num_classes, widths=(40, 80, 160, 320))


def build_teacher(input_size: int, num_classes: int) -> keras.Model:
    """A 2x-wide compact model (~2.3M parameters) to distil from; not meant for the Pi."""
    return build_compact(input_size, num_classes, widths=(64, 128, 256, 512), dropout=0.4)


def _basic_block(x: keras.KerasTensor, filters: int, stride: int, name: str) -> keras.KerasTensor:
    shortcut = x
    y = layers.Conv2D(filters, 3, stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, stride, use_bias=False, name=f"{name}_proj")(x)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


def build_resnet(
    input_size: int,
    num_classes: int,
    widths: tuple[int, ...] = (64, 128, 256, 512),
    dropout: float = 0.4,
) -> keras.Model:
    """ResNet-18 for 48x48 faces (~11M parameters): a 3x3 stem and no early downsampling,
    so the four stages see 48, 24, 12 and 6 pixels. A teacher for distillation, far too big
    and slow for the Pi."""
    inputs = keras.Input((input_size, input_size, 1), name="pixels")
    x = _conv_bn(inputs, widths[0], "stem")
    for stage, filters in enumerate(widths):
        x = _basic_block(x, filters, 1 if stage == 0 else 2, f"r{stage}a")
        x = _basic_block(x, filters, 1, f"r{stage}b")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="resnet")


def build_vgg(
    input_size: int,
    num_classes: int,
    widths: tuple[int, ...] = (64, 128, 256, 512),
    dense: int = 4096,
    dropout: float = 0.2,
) -> keras.Model:
    """Khaireddin & Chen's VGG for FER2013 (2021; 73.28% on seven classes, the best published
    single network): four stages of two conv-BN-ReLU pairs, each pooled, then two dense layers
    of 4096 with dropout (~40M parameters at 48x48). A reference on a GPU, not for the Pi."""
    inputs = keras.Input((input_size, input_size, 1), name="pixels")
    x = inputs
    for stage, filters in enumerate(widths):
        x = _conv_bn(x, filters, f"s{stage}a")
        x = _conv_bn(x, filters, f"s{stage}b")
        x = layers.MaxPooling2D(name=f"s{stage}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    for index in (1, 2):
        x = layers.Dense(dense, activation="relu", name=f"fc{index}")(x)
        x = layers.Dropout(dropout, name=f"fc{index}_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="vgg")


def build_tiny(input_size: int, num_classes: int) -> keras.Model:
    """A few-thousand-parameter CNN for smoke tests of the whole chain on a CPU."""
    return build_compact(input_size, num_classes, widths=(8, 16), dropout=0.0)
