"""The whole trainer chain on a small real subset: formats, export contract, parity, bundle checks.

One tiny-preset run (about a minute on 2 cores; ``tiny_run`` in conftest.py) is shared by every
test here. It is trained the way the shipped model is, with an abstain class ("none", from the
neutral faces).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.bundle import load_bundle
from edge.classify.emotion import EmotionClassifier
from edge.errors import BundleError
from edge.preprocess import to_float
from tests.support import yuzug_train
from trainer.data import PreparedData

pytestmark = pytest.mark.slow


def test_every_format_of_the_original_and_the_bundle_is_written(tiny_run: Path):
    for name in (
        "model.keras",
        "model.weights.h5",
        "model.json",
        "model_float.tflite",
        "model_int8.tflite",
        "history.csv",
        "metrics.json",
        "fit.json",
        "bundle/model.tflite",
        "bundle/labels.txt",
        "bundle/manifest.json",
        "bundle/MODEL_CARD.md",
    ):
        assert (tiny_run / name).stat().st_size > 0, name
    for picture in ("curves.png", "confusion_val.png", "bundle/confusion.png"):
        assert (tiny_run / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = (tiny_run / "history.csv").read_text().splitlines()
    assert history[0].split(",")[:1] == ["epoch"] and len(history) == 4
    for column in ("accuracy", "loss", "val_accuracy", "val_loss"):
        assert column in history[0]
    json.loads((tiny_run / "model.json").read_text())


def test_int8_export_contract(tiny_run: Path):
    bundle = load_bundle(tiny_run / "bundle")
    manifest = bundle.manifest
    assert manifest.quantization == "int8"
    assert manifest.input.dtype == "uint8" and manifest.input.shape == [1, 32, 32, 1]
    assert manifest.output.dtype == "uint8" and manifest.output.shape == [1, 4]
    assert manifest.labels == ["angry", "happy", "sad", "none"]
    assert manifest.abstain_label == "none"
    assert manifest.training["data_fingerprint"]
    # The chain calibrates: the manifest carries the temperature calibrate chose.
    calibration = json.loads((tiny_run / "calibration.json").read_text())
    assert manifest.training["temperature"] == calibration["temperature"] > 0
    assert manifest.metrics["accuracy"] > 0 and manifest.versions["keras"]
    model_bytes = bundle.model_path.read_bytes()
    assert b"Flex" not in model_bytes  # no SELECT_TF_OPS: a Pi's LiteRT has no Flex delegate
    classifier = EmotionClassifier.from_bundle(bundle)
    assert classifier.runtime == "ai_edge_litert"


def test_float_tflite_matches_keras_and_int8_agrees(tiny_run: Path):
    import keras

    data = PreparedData.load(tiny_run / "data.npz")
    batch = data.x["test"]
    keras_model = keras.saving.load_model(tiny_run / "model.keras", compile=False)
    keras_probs = np.asarray(keras_model.predict(to_float(batch, data.spec), verbose=0))
    float_probs = EmotionClassifier.from_model_file(
        tiny_run / "model_float.tflite", data.classes, data.spec
    ).probabilities(batch)
    np.testing.assert_allclose(float_probs, keras_probs, atol=1e-4)
    int8_probs = EmotionClassifier.from_bundle(load_bundle(tiny_run / "bundle")).probabilities(
        batch
    )
    assert np.abs(int8_probs - keras_probs).mean() < 0.03
    agreement = (int8_probs.argmax(1) == keras_probs.argmax(1)).mean()
    assert agreement >= 0.9
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    expected = (int8_probs.argmax(1) == data.y["test"]).mean()
    assert metrics["tflite_int8"]["accuracy"] == pytest.approx(expected, abs=1e-4)


def test_abstain_model_reports_emotions_alone_and_the_abstain_rate(tiny_run: Path):
    data = PreparedData.load(tiny_run / "data.npz")
    bundle = load_bundle(tiny_run / "bundle")
    probs = EmotionClassifier.from_bundle(bundle).probabilities(data.x["test"])
    y = data.y["test"]
    emotions = y < 3
    expected = (probs[emotions, :3].argmax(1) == y[emotions]).mean()
    none_rows = probs[y == 3]
    expected_rate = ((none_rows.argmax(1) < 3) & (none_rows.max(1) >= 0.5)).mean()
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["targets"]["tflite_int8"]["accuracy"] == pytest.approx(expected, abs=1e-4)
    assert metrics["targets"]["tflite_int8"]["samples"] == int(emotions.sum())
    assert metrics["abstain"]["images"] == int((y == 3).sum())
    rate = metrics["abstain"]["labelled_emotion"]["daemon"]
    assert rate == pytest.approx(expected_rate, abs=1e-4)
    # The manifest's headline figures are the emotions-only ones.
    assert bundle.manifest.metrics["accuracy"] == pytest.approx(expected, abs=1e-4)
    assert bundle.manifest.metrics["abstain_labelled_emotion"] == rate
    card = (tiny_run / "bundle" / "MODEL_CARD.md").read_text()
    assert "split: angry, happy, sad" in card and "Faces of `none`" in card
    assert "(learnt from: neutral)" in card
    assert bundle.manifest.training["other_classes"] == ["neutral"]


def _copy_bundle(tiny_run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(tiny_run / "bundle", target)
    return target


def test_tampered_model_is_refused(tiny_run: Path, tmp_path: Path):
    bundle = _copy_bundle(tiny_run, tmp_path)
    model = bytearray((bundle / "model.tflite").read_bytes())
    model[len(model) // 2] ^= 0xFF
    (bundle / "model.tflite").write_bytes(bytes(model))
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(bundle)


def test_wrong_label_count_is_refused(tiny_run: Path, tmp_path: Path):
    bundle = _copy_bundle(tiny_run, tmp_path)
    (bundle / "labels.txt").write_text("angry\nhappy\nsad\nnone\nsurprise\n")
    with pytest.raises(BundleError, match="labels"):
        load_bundle(bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["labels"].append("surprise")
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="4 outputs but 5 labels"):
        load_bundle(bundle)


def test_manifest_contract_mismatch_is_refused(tiny_run: Path, tmp_path: Path):
    bundle = _copy_bundle(tiny_run, tmp_path)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["input"]["dtype"] = "float32"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="input is uint8"):
        EmotionClassifier.from_bundle(load_bundle(bundle))


def test_missing_or_broken_bundle_errors_are_clear(tmp_path: Path):
    with pytest.raises(BundleError, match="not a directory"):
        load_bundle(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="no manifest.json"):
        load_bundle(tmp_path / "empty")
    (tmp_path / "empty" / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="unreadable manifest"):
        load_bundle(tmp_path / "empty")
    (tmp_path / "empty" / "manifest.json").write_text('{"name": "x"}')
    with pytest.raises(BundleError, match="invalid manifest key"):
        load_bundle(tmp_path / "empty")


def test_a_damaged_trained_model_is_said_plainly(tiny_run: Path, tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("data.npz", "prepare_report.json", "fit.json"):
        shutil.copy(tiny_run / name, run / name)
    # A save or a copy cut short (Keras itself calls such a file "not found").
    (run / "model.keras").write_bytes((tiny_run / "model.keras").read_bytes()[:1000])
    for step in ("evaluate", "export"):
        result = yuzug_train(step, "--run", str(run))
        assert result.returncode != 0 and "Traceback" not in result.stderr, step
        assert f"{run / 'model.keras'}: damaged, not a complete .keras archive" in result.stderr
    (run / "model.keras").unlink()
    missing = yuzug_train("evaluate", "--run", str(run))
    assert missing.returncode != 0 and "model.keras: no such model" in missing.stderr


def test_data_prepared_again_after_fit_is_refused_before_export(
    tiny_run: Path, small_fer_dir: Path, tmp_path: Path
):
    # Re-preparing a run without "none" left a 4-output model with 3 labels, found only by
    # the bundle check after every format had been written (or scored on other faces).
    run = tmp_path / "run"
    run.mkdir()
    for name in ("fit.json", "model.keras"):
        shutil.copy(tiny_run / name, run / name)
    prepared = yuzug_train("prepare", str(small_fer_dir), "--size", "32", "--out", str(run))
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    for step in ("calibrate", "export", "evaluate"):
        result = yuzug_train(step, "--run", str(run))
        assert result.returncode != 0 and "Traceback" not in result.stderr, step
        assert "data.npz was prepared again after fit" in result.stderr, result.stderr[-500:]
    assert not (run / "bundle").exists()


def test_fitting_again_keeps_the_earlier_model_and_its_outputs(tiny_run: Path, tmp_path: Path):
    # A second fit used to overwrite the trained model in silence and leave the earlier
    # bundle and metrics beside the new one as if they were its own.
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    earlier = {name: (run / name).read_bytes() for name in ("model.keras", "fit.json")}
    # Warm-started from itself: the earlier model must still be readable when training starts.
    again = yuzug_train(
        "fit", "--run", str(run), "--preset", "tiny", "--epochs", "1", "--init-from", str(run)
    )
    assert again.returncode == 0, again.stderr[-3000:]
    (kept,) = (run / "previous").iterdir()
    assert {name: (kept / name).read_bytes() for name in earlier} == earlier
    assert (kept / "bundle" / "model.tflite").exists() and (kept / "metrics.json").exists()
    assert "already held a trained model" in again.stderr and str(kept) in again.stderr
    # The run now holds the new model alone: no bundle or metrics of the earlier one.
    assert (run / "model.keras").read_bytes() != earlier["model.keras"]
    assert not (run / "bundle").exists() and not (run / "metrics.json").exists()
    assert (run / "data.npz").exists()


def test_a_run_prepared_at_another_size_trains_and_exports_at_that_size(
    small_fer_dir: Path, tmp_path: Path
):
    # `prepare --size` (and `run --size`) used to end in fit refusing the data as the wrong
    # size for the preset, with advice to pass a --size that fit did not have.
    run = tmp_path / "run"
    prepare = ("prepare", str(small_fer_dir), "--preset", "tiny", "--size", "24", "--out", str(run))
    assert yuzug_train(*prepare).returncode == 0
    fit = yuzug_train("fit", "--run", str(run), "--preset", "tiny", "--epochs", "1")
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert "at the prepared data's 24x24 (its own size is 32x32)" in fit.stderr
    exported = yuzug_train("export", "--run", str(run))
    assert exported.returncode == 0, exported.stderr[-3000:]
    bundle = load_bundle(run / "bundle")
    assert bundle.manifest.input.shape == [1, 24, 24, 1]
    (prediction,) = EmotionClassifier.from_bundle(bundle).predict(
        np.zeros((1, 24, 24, 1), np.uint8)
    )
    assert set(prediction.scores) == {"angry", "happy", "sad"}


def test_a_fit_killed_before_it_finished_is_pointed_at_its_best_epoch(tmp_path: Path):
    from trainer.model import load_trained

    with pytest.raises(FileNotFoundError) as plain:
        load_trained(tmp_path / "model.keras")
    assert "best.keras" not in str(plain.value)
    (tmp_path / "best.keras").write_bytes(b"PK")  # SIGKILL, OOM or power loss mid-fit
    with pytest.raises(FileNotFoundError, match="best.keras holds the best epoch of a fit"):
        load_trained(tmp_path / "model.keras")
