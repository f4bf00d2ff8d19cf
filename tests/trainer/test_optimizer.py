"""``--optimizer`` / ``--weight-decay``: the preset's optimizer can be swapped for the one the
published FER2013 state of the art used (SGD with Nesterov momentum), and a decay the chosen
optimizer would ignore is refused rather than dropped."""

from __future__ import annotations

from pathlib import Path

import keras
import pytest

from tests.support import yuzug_train
from trainer.presets import get_preset
from trainer.train import make_optimizer


def test_sgd_is_nesterov_with_the_decoupled_decay_and_the_preset_schedule():
    preset = get_preset("default").with_overrides(
        optimizer="sgd", learning_rate=0.01, weight_decay=0.001
    )
    optimizer = make_optimizer(preset, steps_per_epoch=10, epochs=5)
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert optimizer.nesterov and optimizer.momentum == pytest.approx(0.9)
    assert optimizer.weight_decay == pytest.approx(0.001)
    # The cosine schedule with warm-up is the preset's, whatever the optimizer.
    schedule = optimizer._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert float(schedule(preset.warmup_epochs * 10)) == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("name", "kind"),
    [("adam", keras.optimizers.Adam), ("adamw", keras.optimizers.AdamW)],
)
def test_the_other_optimizers_are_the_named_ones(name: str, kind: type):
    preset = get_preset("default").with_overrides(optimizer=name, weight_decay=0.0)
    optimizer = make_optimizer(preset, steps_per_epoch=10, epochs=5, per_epoch_schedule=True)
    assert type(optimizer) is kind
    assert float(optimizer.learning_rate) == pytest.approx(preset.learning_rate)


def test_weight_decay_with_plain_adam_is_refused_before_any_work(tmp_path: Path):
    run = tmp_path / "never-prepared"
    result = yuzug_train(
        "fit", "--run", str(run), "--preset", "tiny", "--weight-decay", "0.01"
    )  # tiny trains with plain Adam
    assert result.returncode == 2, result.stderr[-2000:]
    assert "--weight-decay needs a decoupled-decay optimizer" in result.stderr
    bad = yuzug_train("fit", "--run", str(run), "--optimizer", "rmsprop")
    assert bad.returncode == 2 and "invalid choice: 'rmsprop'" in bad.stderr
