"""Every preset builds a model that takes its input size and answers a distribution over the
classes it was built for."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.presets import PRESETS


@pytest.mark.parametrize("name", sorted(set(PRESETS) - {"seed"}))  # seed: 22M params at 224
def test_each_preset_builds_a_model_of_its_input_size(name: str):
    preset = PRESETS[name]
    model = preset.build()(preset.input_size, 4)
    assert model.input_shape == (None, preset.input_size, preset.input_size, 1)
    pixels = np.random.default_rng(0).random((2, preset.input_size, preset.input_size, 1))
    probabilities = np.asarray(model.predict(pixels.astype("float32"), verbose=0))
    assert probabilities.shape == (2, 4)
    assert probabilities.sum(axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)


def test_resnet_is_resnet18_without_early_downsampling():
    preset = PRESETS["resnet"]
    model = preset.build()(48, 4)
    assert 11_000_000 < model.count_params() < 11_500_000
    adds = [layer for layer in model.layers if layer.name.endswith("_add")]
    assert len(adds) == 8  # two basic blocks in each of four stages
    # The last stage still sees 6x6 pixels of a 48x48 face.
    assert model.get_layer("r3b_out").output.shape[1:3] == (6, 6)


def test_vgg_is_khaireddin_and_chens_network():
    preset = PRESETS["vgg"]
    model = preset.build()(48, 7)
    convs = [layer for layer in model.layers if layer.name.endswith("_conv")]
    assert [conv.filters for conv in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert model.get_layer("flatten").output.shape[1:] == (3 * 3 * 512,)  # four poolings of 48
    assert [model.get_layer(f"fc{i}").units for i in (1, 2)] == [4096, 4096]
    assert 40_000_000 < model.count_params() < 41_000_000
    assert (preset.optimizer, preset.class_weighting, preset.label_smoothing) == ("sgd", False, 0)
