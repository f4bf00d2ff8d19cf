"""``yuzug-train evaluate``: scores Keras float, float TFLite and the int8 bundle on held-out data.

The TFLite models run through :class:`edge.classify.emotion.EmotionClassifier`, the code the
daemon runs, so the numbers are what a Pi would get. Results go to ``metrics.json``, into the
bundle's manifest, and into the bundle's ``MODEL_CARD.md`` with its curves and confusion matrix.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.bundle import load_bundle, update_metrics
from edge.classify.emotion import EmotionClassifier
from edge.config import EmotionConfig
from edge.preprocess import to_float
from trainer.data import PreparedData, read_run_json
from trainer.export import export_file_sizes
from trainer.metrics import classification_report, emotion_rate, target_report, top1_agreement
from trainer.model import load_trained
from trainer.plots import plot_confusion

# Abstain rates are reported as the daemon acts with its default ``min_confidence``.
ABSTAIN_MIN_CONFIDENCE: float = EmotionConfig().min_confidence


def measure_latency(classifier: EmotionClassifier, crop: np.ndarray, runs: int = 300) -> dict:
    """Per-face milliseconds (preprocessed crop in, probabilities out), median and p90."""
    for _ in range(20):
        classifier.probabilities(crop)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        classifier.probabilities(crop)
        times.append((time.perf_counter() - start) * 1000)
    return {
        "median_ms": round(float(np.median(times)), 3),
        "p90_ms": round(float(np.percentile(times, 90)), 3),
        "threads": 1,
        "runtime": classifier.model.runtime,
    }


def evaluate(run_dir: Path, data: PreparedData, split: str = "test") -> dict[str, Any]:
    """Evaluates the run's models on ``split``; returns and writes ``metrics.json``."""
    if split not in data.x:
        raise ValueError(f"the prepared data has no {split!r} split (it has {sorted(data.x)})")
    x, y, labels = data.x[split], data.y[split], data.classes
    model = load_trained(run_dir / "model.keras")
    keras_probs = np.asarray(model.predict(to_float(x, data.spec), batch_size=256, verbose=0))

    bundle = load_bundle(run_dir / "bundle")
    int8 = EmotionClassifier.from_bundle(bundle, num_threads=1)
    int8_probs = int8.probabilities(x)
    results: dict[str, Any] = {
        "split": split,
        "keras_float": classification_report(y, keras_probs, labels),
        "tflite_int8": classification_report(y, int8_probs, labels),
        "int8_vs_keras_agreement": top1_agreement(int8_probs, keras_probs),
    }
    float_path = run_dir / "model_float.tflite"
    if float_path.exists():
        float_model = EmotionClassifier.from_model_file(float_path, labels, data.spec)
        results["tflite_float"] = classification_report(y, float_model.probabilities(x), labels)
    results["int8_accuracy_gap_points"] = round(
        100 * (results["keras_float"]["accuracy"] - results["tflite_int8"]["accuracy"]), 2
    )
    abstain = bundle.manifest.abstain_label
    if abstain:
        # The headline figures stay comparable with a plain emotion classifier (argmax among
        # the emotions, on emotion images); the abstain class gets its own rate.
        results["targets"] = {
            "keras_float": target_report(y, keras_probs, labels, abstain),
            "tflite_int8": target_report(y, int8_probs, labels, abstain),
        }
        other_images = y == labels.index(abstain)
        results["abstain"] = {
            "label": abstain,
            "images": int(other_images.sum()),
            "labelled_emotion": emotion_rate(
                int8_probs[other_images], labels, abstain, ABSTAIN_MIN_CONFIDENCE
            ),
        }
    results["latency_int8"] = measure_latency(int8, x[:1])
    results["file_sizes"] = export_file_sizes(run_dir)
    (run_dir / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")

    plot_confusion(
        np.array(results["tflite_int8"]["confusion"]),
        labels,
        run_dir / "confusion.png",
        f"{bundle.manifest.name}: {split} split, int8 TFLite",
    )
    for picture in ("curves.png", "confusion.png"):
        if (run_dir / picture).exists():
            shutil.copy2(run_dir / picture, bundle.path / picture)
    headline = results["targets"] if abstain else results
    summary = {
        "split": split,
        "accuracy": headline["tflite_int8"]["accuracy"],
        "macro_f1": headline["tflite_int8"]["macro_f1"],
        "ece": headline["tflite_int8"]["ece"],
        "recall": {k: v["recall"] for k, v in headline["tflite_int8"]["per_class"].items()},
        "keras_float_accuracy": headline["keras_float"]["accuracy"],
        "int8_vs_keras_agreement": results["int8_vs_keras_agreement"],
        "latency_ms_median": results["latency_int8"]["median_ms"],
    }
    if abstain:
        summary["accuracy_with_abstain"] = results["tflite_int8"]["accuracy"]
        summary["abstain_labelled_emotion"] = results["abstain"]["labelled_emotion"]["daemon"]
    bundle = update_metrics(bundle, summary)
    write_model_card(
        bundle.path, bundle.manifest.model_dump(), results, read_run_json(run_dir / "fit.json")
    )
    return results


def write_model_card(
    bundle_dir: Path, manifest: dict[str, Any], results: dict[str, Any], fit: dict[str, Any]
) -> None:
    """Writes ``MODEL_CARD.md``: data, classes, metrics, confusion matrix, size and latency."""
    training = manifest.get("training", {})
    labels = manifest["labels"]
    lines = [
        f"# Model card: {manifest['name']} {manifest['version']}",
        "",
        f"- Preset: `{training.get('preset')}`, {training.get('params') or 0:,} parameters, "
        f"{manifest['quantization']} TFLite, {manifest['model']['size_bytes'] / 1024:.0f} KiB",
        f"- Input: {manifest['input']['dtype']} {manifest['input']['shape']}, grayscale, "
        f"face margin {manifest['preprocess']['margin']}",
        f"- Labels (output order): {', '.join(labels)}"
        + (
            f"; `{manifest['abstain_label']}` means none of the target emotions (learnt from: "
            f"{', '.join(training.get('other_classes') or ['every other class'])})"
            if manifest.get("abstain_label")
            else ""
        ),
        f"- Data: `{training.get('data_source')}`, fingerprint "
        f"`{str(training.get('data_fingerprint'))[:16]}`",
        f"- Trained: {training.get('epochs_run')} epochs in {training.get('fit_seconds')} s on "
        f"{training.get('devices')}, seed {training.get('seed')}",
        *(
            [
                f"- Distilled (weight {training.get('distill_weight')}) from: "
                + ", ".join(
                    f"`{t.get('preset')}` ({t.get('params') or 0:,} parameters, validation "
                    f"accuracy {t.get('best_val_accuracy')})"
                    for t in training["distilled_from"]
                )
            ]
            if training.get("distilled_from")
            else []
        ),
        *(
            [
                f"- Fine-tuned from a trained `{start.get('preset')}` model (validation "
                f"accuracy {start.get('best_val_accuracy')}"
                + (
                    ")"
                    if start.get("same_data")
                    else "; other train faces, the same validation and test faces)"
                    if start.get("same_holdout")
                    else "; trained on other prepared data)"
                )
            ]
            if (start := training.get("initialised_from"))
            else []
        ),
        *(
            [
                f"- Weights: an exponential moving average (momentum {training['ema_momentum']}) "
                "of the trained weights, validated and kept as such"
            ]
            if training.get("ema_momentum")
            else []
        ),
        *(
            [
                f"- Steps: sharpness-aware (SAM, rho {training['sam_rho']}), each following "
                "the gradient a step of that length uphill"
            ]
            if training.get("sam_rho")
            else []
        ),
        *(
            [
                f"- Batches mixed: {' or '.join(mixed)}"
                + (", one of the two per batch" if len(mixed) == 2 else "")
            ]
            if (
                mixed := [
                    f"{name} (alpha {training[key]})"
                    for name, key in (("mixup", "mixup_alpha"), ("CutMix", "cutmix_alpha"))
                    if training.get(key)
                ]
            )
            else []
        ),
        *(
            [
                f"- Temperature-scaled: T = {training['temperature']} (fitted on validation "
                "by `yuzug-train calibrate`), baked into the output layer"
            ]
            if training.get("temperature") not in (None, 1.0)
            else []
        ),
        *(
            [
                f"- Trained without {training['excluded'].get('dropped_from_train')} training "
                "faces whose labels a `yuzug-train audit` contradicted (list sha256 "
                f"`{str(training['excluded'].get('list_sha256'))[:16]}`)"
            ]
            if training.get("excluded")
            else []
        ),
        *(
            [
                f"- Trained on {training['train_fraction']['kept']:,} of "
                f"{training['train_fraction']['of']:,} train faces (`--train-fraction "
                f"{training['train_fraction']['fraction']:g}`, a learning-curve point)"
            ]
            if training.get("train_fraction")
            else []
        ),
        *(
            [
                f"- Cross-fit model: fold {training['fold']['index']} of "
                f"{training['fold']['count']} of train held out for a label audit"
            ]
            if training.get("fold")
            else []
        ),
        "",
        "## Data",
        "",
        "| split | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
    ]
    for split, counts in (training.get("counts") or {}).items():
        lines.append(f"| {split} | " + " | ".join(f"{counts.get(k, 0):,}" for k in labels) + " |")
    abstain = manifest.get("abstain_label")
    if "targets" in results:
        targets = [label for label in labels if label != abstain]
        lines += ["", f"## Results on the {results['split']} split: {', '.join(targets)}", ""]
        lines += [
            f"Images of these emotions only, argmax among them (`{abstain}` ignored): the figures "
            "compare with a plain classifier of the same emotions.",
            "",
            *_results_table(results["targets"], targets),
        ]
        rate = results["abstain"]["labelled_emotion"]
        lines += [
            "",
            f"Faces of `{abstain}` ({results['abstain']['images']:,} test images) that still get "
            f"an emotion: {rate['argmax']:.1%} by argmax, {rate['daemon']:.1%} as the daemon "
            f"reports them (min_confidence {rate['min_confidence']}).",
        ]
    lines += [
        "",
        f"## Results on the {results['split']} split: all {len(labels)} outputs",
        "",
        *_results_table(results, labels),
    ]
    latency = results.get("latency_int8", {})
    lines += [
        "",
        f"- int8 vs Keras top-1 agreement: {results['int8_vs_keras_agreement']:.1%}; "
        f"accuracy gap {results['int8_accuracy_gap_points']:+.2f} points",
        f"- Per-face inference (int8, 1 thread, {latency.get('runtime')}): median "
        f"{latency.get('median_ms')} ms, p90 {latency.get('p90_ms')} ms on the machine that "
        "evaluated it",
        f"- Best validation accuracy during training: {fit.get('best_val_accuracy')} "
        f"(epoch {fit.get('best_epoch')})",
        "",
        "![training curves](curves.png)",
        "",
        "![confusion matrix](confusion.png)",
        "",
    ]
    (bundle_dir / "MODEL_CARD.md").write_text("\n".join(lines))


def _results_table(results: dict[str, Any], labels: list[str]) -> list[str]:
    lines = [
        "| model | accuracy | macro-F1 | ECE | " + " | ".join(f"recall {k}" for k in labels) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(labels),
    ]
    for key, title in (
        ("keras_float", "Keras float"),
        ("tflite_float", "TFLite float"),
        ("tflite_int8", "TFLite int8 (this bundle)"),
    ):
        if key in results:
            report = results[key]
            recalls = " | ".join(f"{report['per_class'][k]['recall']:.1%}" for k in labels)
            lines.append(
                f"| {title} | {report['accuracy']:.2%} | {report['macro_f1']:.3f} | "
                f"{report['ece']:.3f} | {recalls} |"
            )
    return lines
