"""Sharpness-aware minimization (SAM; Foret et al., ICLR 2021) for the JAX training step.

Each step takes the gradient twice: once at the weights ``w``, to find the direction in which
the loss rises fastest, and once at ``w + rho * g / |g|``, the worst point of a ball of radius
``rho`` around them; the optimizer then moves ``w`` by the second gradient. It seeks weights
whose whole neighbourhood has a low loss. Foret et al. report its largest gains under label
noise, which FER2013 has plenty of (about one face in ten is mislabelled, by FER+'s relabelling).

A step costs two forward and backward passes. Batch-norm statistics and the metrics come from
the first pass only (the perturbed weights are a probe, not a state to learn from), and both
passes draw the same dropout masks and augmentation, as in the paper.
"""

from __future__ import annotations

from typing import Any

import keras

from trainer.distill import DistilledStudent


class SharpnessAware(keras.Model):
    """Mixin for a training wrapper: its ``train_step`` is SAM's two-pass step (JAX only)."""

    sam_rho: float

    def train_step(self, state: Any, data: Any) -> Any:
        # Keras's JAXTrainer.train_step with a second gradient; it uses that trainer's own
        # helpers, so tests/trainer/test_sharpness.py checks a step against SAM by hand.
        import jax
        import jax.numpy as jnp
        from keras.src.trainers.data_adapters import data_adapter_utils

        trainable, non_trainable, optimizer_state, metrics_state = state
        x, y, sample_weight = data_adapter_utils.unpack_x_y_sample_weight(data)
        gradient = jax.value_and_grad(self.compute_loss_and_updates, has_aux=True)

        def loss_gradient(weights: list[Any]) -> Any:
            return gradient(
                weights,
                non_trainable,
                metrics_state,
                x,
                y,
                sample_weight,
                training=True,
                optimizer_variables=optimizer_state,
            )

        (_, aux), grads = loss_gradient(trainable)
        unscaled_loss, y_pred, new_non_trainable, metrics_state = aux
        norm = jnp.sqrt(sum(jnp.sum(jnp.square(g.astype("float32"))) for g in grads))
        scale = self.sam_rho / (norm + 1e-12)
        probe = [w + (g * scale).astype(w.dtype) for w, g in zip(trainable, grads, strict=True)]
        _, sharp_grads = loss_gradient(probe)
        trainable, optimizer_state = self.optimizer.stateless_apply(
            optimizer_state, sharp_grads, trainable
        )
        logs, metrics_state = self._update_metrics_variables(
            metrics_state, unscaled_loss, x, y, y_pred, sample_weight
        )
        return logs, (trainable, new_non_trainable, optimizer_state, metrics_state)


class SharpnessAwareModel(SharpnessAware):
    """Trains ``student`` with SAM; predicts with it. Only the student is saved."""

    def __init__(self, student: keras.Model, rho: float, **kwargs: Any) -> None:
        super().__init__(name="sam_" + student.name, **kwargs)
        self.student = student
        self.sam_rho = rho

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return self.student(inputs, training=training)


class SharpnessAwareStudent(SharpnessAware, DistilledStudent):
    """A :class:`DistilledStudent` trained with SAM."""

    def __init__(
        self, student: keras.Model, teachers: Any, weight: float, rho: float, **kwargs: Any
    ) -> None:
        super().__init__(student, teachers, weight, **kwargs)
        self.sam_rho = rho


def training_model(
    model: keras.Model, teachers: list[keras.Model], distill_weight: float, sam_rho: float
) -> keras.Model:
    """What ``fit`` compiles and trains: ``model`` itself, or a wrapper that distils, or
    takes SAM steps, or both; the wrapper's ``student`` is ``model``."""
    if sam_rho and keras.backend.backend() != "jax":
        raise ValueError(f"--sam needs the jax backend, not {keras.backend.backend()}")
    if teachers:
        if sam_rho:
            return SharpnessAwareStudent(model, teachers, distill_weight, sam_rho)
        return DistilledStudent(model, teachers, distill_weight)
    return SharpnessAwareModel(model, sam_rho) if sam_rho else model
