"""``yuzug-train export``: the trained ``.keras`` model -> every format, and the int8 bundle.

Runs in its own process under ``KERAS_BACKEND=tensorflow``: Keras's LiteRT exporter refuses the
JAX backend, and a model saved under JAX reloads under TensorFlow with outputs matching to 1e-6.
Writes the formats the original system saved (``.keras``, ``.weights.h5``, ``.json``, float
``.tflite``) plus a full-integer ``.tflite``: uint8 input and output, builtin int8 ops only (no
Flex ops, which a Pi's runtime lacks), calibrated on training images that went through
:mod:`edge.preprocess`. The int8 model becomes ``bundle/`` via :func:`edge.bundle.write_bundle`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np

from edge.bundle import ModelBundle, write_bundle
from edge.classify.interpreter import TFLiteModel
from edge.preprocess import to_float
from trainer.data import PreparedData, read_run_json
from trainer.model import load_trained

logger = logging.getLogger(__name__)

REPRESENTATIVE_IMAGES = 500
# Every format the original system saved, plus the full-integer model the bundle carries.
EXPORT_FILES = (
    "model.keras",
    "model.weights.h5",
    "model.json",
    "model_float.tflite",
    "model_int8.tflite",
)


def export_file_sizes(run_dir: Path) -> dict[str, int]:
    return {
        name: os.path.getsize(run_dir / name) for name in EXPORT_FILES if (run_dir / name).exists()
    }


def representative_images(data: PreparedData, count: int, seed: int) -> np.ndarray:
    """A class-balanced, deterministic sample of training crops for int8 calibration."""
    rng = np.random.default_rng(seed)
    labels = data.y["train"]
    per_class = max(1, count // len(data.classes))
    chosen = []
    for label in range(len(data.classes)):
        indices = np.flatnonzero(labels == label)
        chosen.append(rng.choice(indices, min(per_class, len(indices)), replace=False))
    return data.x["train"][np.sort(np.concatenate(chosen))]


def _package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in (
        "yuzug",
        "keras",
        "jax",
        "tensorflow-cpu",
        "tensorflow",
        "numpy",
        "opencv-python-headless",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def export(run_dir: Path, data: PreparedData, seed: int = 1337) -> ModelBundle:
    """Exports ``run_dir/model.keras`` and writes ``run_dir/bundle``.

    Raises:
        RuntimeError: if Keras is not on the TensorFlow backend (the caller must set
            ``KERAS_BACKEND=tensorflow`` before Keras is first imported).
    """
    import keras
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError("export must run with KERAS_BACKEND=tensorflow (use yuzug-train export)")
    model = load_trained(run_dir / "model.keras")
    size = data.spec.size
    signature = [tf.TensorSpec((1, size, size, 1), tf.float32, name="pixels")]

    model.save_weights(run_dir / "model.weights.h5")
    (run_dir / "model.json").write_text(model.to_json(indent=2) + "\n")

    float_path = run_dir / "model_float.tflite"
    model.export(
        str(float_path),
        format="litert",
        input_signature=signature,
        verbose=False,
        # Builtins only: Keras's default also allows SELECT_TF_OPS (Flex), missing on a Pi.
        target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]},
    )

    calibration = to_float(representative_images(data, REPRESENTATIVE_IMAGES, seed), data.spec)

    def representative_dataset() -> Iterator[list[np.ndarray]]:
        for image in calibration:
            yield [image[np.newaxis]]

    int8_path = run_dir / "model_int8.tflite"
    model.export(
        str(int8_path),
        format="litert",
        input_signature=signature,
        verbose=False,
        optimizations=[tf.lite.Optimize.DEFAULT],
        representative_dataset=representative_dataset,
        target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]},
        inference_input_type=tf.uint8,
        inference_output_type=tf.uint8,
    )

    int8_model = TFLiteModel(int8_path)
    model_bytes = int8_path.read_bytes()
    fit_summary = read_run_json(run_dir / "fit.json")
    prepare_report = read_run_json(run_dir / "prepare_report.json")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    version = f"{stamp}-{hashlib.sha256(model_bytes).hexdigest()[:8]}"
    preset = fit_summary.get("preset", "custom")
    bundle_dir = run_dir / "bundle"
    if bundle_dir.exists():
        shutil.rmtree(bundle_dir)
    bundle = write_bundle(
        bundle_dir,
        model_bytes,
        name=f"yuzug-{preset}",
        version=version,
        labels=data.classes,
        abstain_label=fit_summary.get("abstain_label"),
        quantization="int8",
        input_contract=int8_model.inputs[0].contract,
        output_contract=int8_model.outputs[0].contract,
        preprocess=data.spec,
        training={
            "preset": preset,
            "data_fingerprint": data.fingerprint,
            "data_source": prepare_report.get("source"),
            "counts": prepare_report.get("counts"),
            # Which source classes the abstain label was learnt from (None: all the others).
            "other_classes": prepare_report.get("other_classes"),
            # A cross-fit model (trained without one fold of train, for label audits) and the
            # label-error list a cleaned model was trained without.
            "fold": prepare_report.get("fold"),
            "excluded": {
                key: prepare_report["excluded"].get(key)
                for key in ("dropped_from_train", "list_sha256")
            }
            if prepare_report.get("excluded")
            else None,
            # A learning-curve point: trained on this share of the train faces.
            "train_fraction": prepare_report.get("train_fraction"),
            "seed": seed,
            "params": fit_summary.get("params"),
            "epochs_run": fit_summary.get("epochs_run"),
            "fit_seconds": fit_summary.get("fit_seconds"),
            "devices": fit_summary.get("devices"),
            # Teachers of a distilled student: what they were, not where they lay.
            "distilled_from": [
                {key: teacher.get(key) for key in ("preset", "params", "best_val_accuracy")}
                for teacher in fit_summary["distilled_from"]
            ]
            if fit_summary.get("distilled_from")
            else None,
            "distill_weight": fit_summary.get("distill_weight"),
            "ema_momentum": fit_summary.get("ema_momentum"),
            "sam_rho": fit_summary.get("sam_rho"),
            "mixup_alpha": fit_summary.get("mixup_alpha"),
            "cutmix_alpha": fit_summary.get("cutmix_alpha"),
            # A fine-tuned (warm-started) model: what it started from, not where that lay.
            "initialised_from": {
                key: fit_summary["initialised_from"].get(key)
                for key in ("preset", "best_val_accuracy", "same_data", "same_holdout")
            }
            if fit_summary.get("initialised_from")
            else None,
            # Temperature scaling baked into the head by `yuzug-train calibrate` (1: none).
            "temperature": read_run_json(run_dir / "calibration.json").get("temperature"),
            "representative_images": int(len(calibration)),
        },
        versions=_package_versions(),
    )
    sizes = export_file_sizes(run_dir)
    (run_dir / "export.json").write_text(
        json.dumps({"file_sizes": sizes, "bundle": str(bundle_dir)}, indent=2) + "\n"
    )
    logger.info(
        "exported %s: %s",
        bundle.manifest.full_name,
        ", ".join(f"{k} {v / 1024:.0f} KiB" for k, v in sizes.items()),
    )
    return bundle
