"""Sharpness-aware minimization (``--sam``): a step follows the gradient taken at the probe
``w + rho * g / |g|``, keeps the batch-norm statistics of the unperturbed weights, composes
with distillation, and a SAM fit saves and records the plain model."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

from edge.bundle import load_bundle
from tests.support import copy_prepared
from tests.support import yuzug_train as trainer
from tests.trainer.conftest import SHIPPED_CLASSES
from trainer.distill import DistilledStudent
from trainer.sharpness import (
    SharpnessAwareModel,
    SharpnessAwareStudent,
    training_model,
)

RHO, LEARNING_RATE = 0.5, 0.1


def small_model(seed: int) -> keras.Model:
    """Dense -> BatchNorm -> softmax: a model with batch statistics to keep or lose."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    hidden = keras.layers.BatchNormalization(momentum=0.5)(keras.layers.Dense(5)(inputs))
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Activation("relu")(hidden))
    return keras.Model(inputs, outputs)


def batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    return rng.normal(size=(16, 4)).astype("float32"), np.eye(3, dtype="float32")[
        rng.integers(0, 3, 16)
    ]


def reference_step(model: keras.Model, x: np.ndarray, targets: np.ndarray) -> dict[str, list]:
    """SAM by hand (Foret et al., algorithm 1) with plain SGD, from the model's weights."""
    trainable = [v.value for v in model.trainable_variables]
    frozen = [v.value for v in model.non_trainable_variables]

    def loss(weights: list, frozen: list) -> tuple:
        probs, frozen = model.stateless_call(weights, frozen, x, training=True)
        return -jnp.mean(jnp.sum(targets * jnp.log(probs), axis=1)), frozen

    grads, clean_stats = jax.grad(loss, has_aux=True)(trainable, frozen)
    norm = jnp.sqrt(sum(jnp.sum(g**2) for g in grads))
    probe = [w + RHO * g / norm for w, g in zip(trainable, grads, strict=True)]
    sharp, probe_stats = jax.grad(loss, has_aux=True)(probe, frozen)
    return {
        "sam": [w - LEARNING_RATE * g for w, g in zip(trainable, sharp, strict=True)],
        "plain": [w - LEARNING_RATE * g for w, g in zip(trainable, grads, strict=True)],
        "clean_stats": clean_stats,
        "probe_stats": probe_stats,
    }


def take_one_step(trained: keras.Model, x: np.ndarray, y: np.ndarray) -> None:
    trained.compile(
        optimizer=keras.optimizers.SGD(LEARNING_RATE), loss=keras.losses.CategoricalCrossentropy()
    )
    trained.train_on_batch(x, y)


def assert_all_close(actual: list, expected: list) -> None:
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=1e-4, atol=1e-6)


def test_a_step_follows_the_gradient_at_the_probe_and_keeps_the_clean_statistics():
    x, y = batch()
    model = small_model(seed=2)
    expected = reference_step(model, x, y)
    take_one_step(SharpnessAwareModel(model, RHO), x, y)

    assert_all_close([v.value for v in model.trainable_variables], expected["sam"])
    # Not plain SGD's step: the probe moved the gradient.
    moved = [v.value for v in model.trainable_variables]
    assert max(float(np.abs(a - b).max()) for a, b in zip(moved, expected["plain"], strict=True))
    assert_all_close([v.value for v in model.non_trainable_variables], expected["clean_stats"])
    assert not np.allclose(  # the probe's batch statistics would differ
        np.asarray(expected["clean_stats"][0]), np.asarray(expected["probe_stats"][0])
    )


def test_sam_composes_with_distillation_and_trains_only_the_student():
    x, y = batch()
    teacher, student = small_model(seed=5), small_model(seed=6)
    teacher_before = [w.copy() for w in teacher.get_weights()]
    probabilities = keras.ops.convert_to_numpy(teacher(x, training=False))
    targets = 0.3 * y + 0.7 * probabilities
    expected = reference_step(student, x, targets)
    trained = training_model(student, [teacher], distill_weight=0.7, sam_rho=RHO)
    assert isinstance(trained, SharpnessAwareStudent) and isinstance(trained, DistilledStudent)
    take_one_step(trained, x, y)

    assert_all_close([v.value for v in student.trainable_variables], expected["sam"])
    for before, after in zip(teacher_before, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)


def test_without_rho_the_model_is_trained_as_it_is():
    model = small_model(seed=1)
    assert training_model(model, [], distill_weight=0.5, sam_rho=0.0) is model
    assert isinstance(training_model(model, [], 0.5, RHO), SharpnessAwareModel)


@pytest.mark.slow
def test_sam_fit_saves_the_plain_model_and_records_rho(small_fer_dir: Path, tmp_path: Path):
    plain, sam = tmp_path / "plain", tmp_path / "sam"
    prepared = trainer(
        "prepare", str(small_fer_dir), *SHIPPED_CLASSES, "--preset", "tiny", "--run", str(plain)
    )
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    copy_prepared(plain, sam)
    args = ("fit", "--preset", "tiny", "--epochs", "1", "--seed", "3")
    results = [
        trainer(*args, "--run", str(plain)),
        trainer(*args, "--sam", "0.05", "--run", str(sam)),
    ]
    assert all(r.returncode == 0 for r in results), results[1].stderr[-2000:]
    assert "sharpness-aware (rho 0.05)" in results[1].stderr

    assert json.loads((sam / "fit.json").read_text())["sam_rho"] == 0.05
    assert json.loads((plain / "fit.json").read_text())["sam_rho"] is None
    saved = [keras.saving.load_model(run / "model.keras", compile=False) for run in (plain, sam)]
    assert type(saved[1]) is type(saved[0])  # the model, not its training wrapper
    weights = [model.get_weights() for model in saved]
    assert [w.shape for w in weights[1]] == [w.shape for w in weights[0]]
    # Same seed, data and schedule: only the SAM steps make the weights differ.
    assert any(not np.allclose(a, b) for a, b in zip(*weights, strict=True))

    for step in ("export", "evaluate"):
        result = trainer(step, "--run", str(sam))
        assert result.returncode == 0, result.stderr[-2000:]
    assert load_bundle(sam / "bundle").manifest.training["sam_rho"] == 0.05
    card = (sam / "bundle" / "MODEL_CARD.md").read_text()
    assert "sharpness-aware (SAM, rho 0.05)" in card


def test_sam_is_refused_off_jax_and_with_backups(small_fer_dir: Path, tmp_path: Path):
    # SAM's step is written against the JAX trainer's stateless train_step.
    run = tmp_path / "run"
    prepared = trainer("prepare", str(small_fer_dir), "--preset", "tiny", "--run", str(run))
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    refused = trainer(
        *("fit", "--preset", "tiny", "--epochs", "1", "--sam", "0.05"),
        *("--backend", "tensorflow", "--run", str(run)),
    )
    assert refused.returncode == 2
    assert "--sam needs the jax backend, not tensorflow" in refused.stderr
    # A resumable backup of the SAM wrapper is not tested yet, so it is refused, not guessed.
    refused = trainer(
        *("fit", "--preset", "tiny", "--epochs", "1", "--sam", "0.05"),
        *("--checkpoint-every", "5", "--run", str(run)),
    )
    assert refused.returncode == 2
    assert "--sam does not support --checkpoint-every/--resume yet" in refused.stderr
