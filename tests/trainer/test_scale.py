"""Training at scale, on the CPU: data parallelism over 4 emulated devices matches 1 device, a
killed run resumes, tar shards round-trip through the streaming reader, and two processes
train together as a multi-host job on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edge.preprocess import PreprocessSpec
from tests.support import copy_prepared, free_port, wait_for
from tests.support import yuzug_train as train
from trainer.data import prepare
from trainer.presets import get_preset
from trainer.shards import ShardBatches, load_split, read_index, write_shards

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prepared_run(small_fer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("prepared")
    result = train("prepare", str(small_fer_dir), "--preset", "tiny", "--run", str(run))
    assert result.returncode == 0, result.stderr[-2000:]
    return run


def val_probabilities(run: Path) -> np.ndarray:
    code = (
        "import keras, numpy as np, sys\n"
        "from trainer.data import PreparedData\nfrom edge.preprocess import to_float\n"
        f"d = PreparedData.load('{run}/data.npz')\n"
        f"m = keras.saving.load_model('{run}/model.keras', compile=False)\n"
        "np.save(sys.argv[1], m.predict(to_float(d.x['val'], d.spec), verbose=0))\n"
    )
    out = run / "val_probs.npy"
    subprocess.run(
        [sys.executable, "-c", code, str(out)],
        check=True,
        capture_output=True,
        env={**os.environ, "KERAS_BACKEND": "jax"},
    )
    return np.load(out)


def test_four_devices_match_one_device(prepared_run: Path, tmp_path: Path):
    one = copy_prepared(prepared_run, tmp_path / "one")
    four = copy_prepared(prepared_run, tmp_path / "four")
    first = train("fit", "--preset", "tiny", "--epochs", "2", "--run", str(one))
    assert first.returncode == 0, first.stderr[-2000:]
    second = train("fit", "--preset", "tiny", "--epochs", "2", "--run", str(four), devices=4)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "on 4 device(s)" in second.stdout and "on 1 device(s)" in first.stdout
    summary = json.loads((four / "fit.json").read_text())
    assert summary["device_count"] == 4 and summary["batch_size"] == 32
    p1, p4 = val_probabilities(one), val_probabilities(four)
    np.testing.assert_allclose(p1, p4, atol=2e-3)  # floating-point noise only
    accuracy = [json.loads((r / "fit.json").read_text())["best_val_accuracy"] for r in (one, four)]
    assert abs(accuracy[0] - accuracy[1]) <= 0.005


def test_augmentation_threads_train_on_the_same_batches(prepared_run: Path, tmp_path: Path):
    one = copy_prepared(prepared_run, tmp_path / "one")
    three = copy_prepared(prepared_run, tmp_path / "three")
    args = ("fit", "--preset", "tiny", "--epochs", "2", "--run")
    assert (first := train(*args, str(one))).returncode == 0, first.stderr[-2000:]
    second = train(*args, str(three), "--input-threads", "3")
    assert second.returncode == 0, second.stderr[-2000:]
    summary = json.loads((three / "fit.json").read_text())
    assert summary["input_threads"] == 3
    # Every batch of every epoch was made ahead (the peek before training may not be).
    assert summary["input_batches_made_on_the_spot"] <= 1
    np.testing.assert_allclose(val_probabilities(one), val_probabilities(three), atol=1e-6)
    refused = train(*args, str(three), "--input-threads", "2", "--shards", str(tmp_path))
    assert refused.returncode == 2 and "--input-threads applies to in-memory" in refused.stderr


def test_mixing_and_geometry_on_the_device_are_recorded(prepared_run: Path, tmp_path: Path):
    run = copy_prepared(prepared_run, tmp_path / "mixed")
    args = ("fit", "--preset", "tiny", "--epochs", "2", "--augment-on", "device", "--run")
    sgd = ("--optimizer", "sgd", "--weight-decay", "0.001", "--learning-rate", "0.01")
    wider = ("--max-shift", "0.2", "--max-zoom", "0.3")
    result = train(*args, str(run), "--mixup", "0.4", "--cutmix", "1.0", *sgd, *wider)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((run / "fit.json").read_text())
    assert (summary["mixup_alpha"], summary["cutmix_alpha"]) == (0.4, 1.0)
    assert (summary["augment"]["max_shift"], summary["augment"]["max_zoom"]) == (0.2, 0.3)
    assert (summary["optimizer"], summary["weight_decay"]) == ("sgd", 0.001)
    assert summary["epochs_run"] == 2 and summary["augment_on"] == "device"
    losses = [float(v) for v in _column(run, "loss")]
    assert len(losses) == 2 and all(np.isfinite(losses))


def _column(run: Path, name: str) -> list[str]:
    lines = (run / "history.csv").read_text().splitlines()
    column = lines[0].split(",").index(name)
    return [line.split(",")[column] for line in lines[1:]]


def learning_rates(run: Path) -> list[float]:
    return [float(value) for value in _column(run, "learning_rate")]


def test_time_budget_ends_the_schedule_in_time_and_epochs_alone_give_the_plain_cosine(
    prepared_run: Path, tmp_path: Path
):
    budgeted = copy_prepared(prepared_run, tmp_path / "budgeted")
    args = ("fit", "--preset", "tiny", "--augment-on", "device", "--run")
    first = train(*args, str(budgeted), "--epochs", "400", "--time-budget", "12")
    assert first.returncode == 0, first.stderr[-2000:]
    summary = json.loads((budgeted / "fit.json").read_text())
    assert summary["augment_on"] == "device" and summary["time_budget_s"] == 12
    assert 3 <= summary["epochs_run"] < 400
    rates = learning_rates(budgeted)
    assert len(rates) == summary["epochs_run"]
    # The peak (tiny has no warm-up) while two epochs are timed, then a decay that has almost
    # ended when the budget is spent, whatever the pace.
    peak = get_preset("tiny").learning_rate
    assert rates[:3] == pytest.approx([peak] * 3) and rates[-1] < peak / 5
    assert np.all(np.diff(rates[2:]) <= 0)  # never back up, even when the pace picks up
    # A budget that never binds: --epochs alone sets the plain per-epoch cosine.
    plain = copy_prepared(prepared_run, tmp_path / "plain")
    second = train(*args, str(plain), "--epochs", "5", "--time-budget", "100000")
    assert second.returncode == 0, second.stderr[-2000:]
    progress = np.array([0, 0, 0, 1 / 3, 2 / 3])
    expected = peak * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * progress)))
    np.testing.assert_allclose(learning_rates(plain), expected, rtol=1e-6)
    refused = train(*args, str(plain), "--input-threads", "2")
    assert refused.returncode == 2 and "leave them at 1" in refused.stderr


def test_killed_run_resumes_to_the_same_result(prepared_run: Path, tmp_path: Path):
    reference = copy_prepared(prepared_run, tmp_path / "reference")
    result = train("fit", "--preset", "tiny", "--epochs", "6", "--run", str(reference))
    assert result.returncode == 0, result.stderr[-2000:]

    killed = copy_prepared(prepared_run, tmp_path / "killed")
    fit_args = [
        "fit",
        "--preset",
        "tiny",
        "--epochs",
        "6",
        "--run",
        str(killed),
        "--checkpoint-every",
        "2",
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "trainer", *fit_args],
        env={**os.environ, "KERAS_BACKEND": "jax"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    metadata = killed / "backup" / "training_metadata.json"
    try:
        wait_for(
            lambda: metadata.exists() and json.loads(metadata.read_text())["epoch"] >= 2,
            300,
            interval=0.05,
            what="a checkpoint after two epochs",
        )
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    assert not (killed / "model.keras").exists()
    resumed = train(*fit_args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads((killed / "fit.json").read_text())
    assert summary["resumed_from_epoch"] >= 3 and summary["epochs_run"] == 6
    rows = (killed / "history.csv").read_text().strip().splitlines()
    assert len(rows) == 7  # header + 6 epochs, none repeated or lost
    expected = json.loads((reference / "fit.json").read_text())["best_val_accuracy"]
    assert abs(summary["best_val_accuracy"] - expected) <= 0.05


def test_shards_round_trip_and_split_over_hosts(small_fer_dir: Path, tmp_path: Path):
    data, _ = prepare(small_fer_dir, PreprocessSpec(size=32), seed=1)
    index = write_shards(data, tmp_path / "shards", shard_size=50)
    assert len(index["splits"]["train"]) == -(-len(data.x["train"]) // 50)
    x_val, y_val = load_split(tmp_path / "shards", "val")
    np.testing.assert_array_equal(x_val, data.x["val"])  # PNG is lossless
    np.testing.assert_array_equal(y_val, data.y["val"])

    preset = replace(get_preset("tiny"), augment=None, batch_size=8)  # no augmentation
    single = ShardBatches(tmp_path / "shards", preset, seed=3, class_weights=None)
    seen = np.concatenate([single[i][0] for i in range(len(single))])
    assert len(seen) == len(single) * 8 >= len(data.x["train"]) - 8
    # Every training image comes out once per epoch (order shuffled).
    pixels = np.round(seen * 255).astype(np.uint8)
    stored = {image.tobytes() for image in data.x["train"]}
    assert len({image.tobytes() for image in pixels}) == len(pixels)
    assert {image.tobytes() for image in pixels} <= stored

    hosts = [ShardBatches(tmp_path / "shards", preset, 3, None, p, 2) for p in range(2)]
    assert len(hosts[0]) == len(hosts[1]) and hosts[0].local_batch == 4
    files = [{s["file"] for s in h.shards} for h in hosts]
    assert not files[0] & files[1]
    assert files[0] | files[1] == {
        s["file"] for s in read_index(tmp_path / "shards")["splits"]["train"]
    }


def test_fit_streams_from_shards(prepared_run: Path, tmp_path: Path):
    run = copy_prepared(prepared_run, tmp_path / "sharded")
    assert (
        train(
            "shard", "--run", str(run), "--shards", str(tmp_path / "s"), "--shard-size", "64"
        ).returncode
        == 0
    )
    result = train(
        "fit",
        "--preset",
        "tiny",
        "--epochs",
        "1",
        "--run",
        str(run),
        "--shards",
        str(tmp_path / "s"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (run / "model.keras").exists()


def test_two_processes_train_as_one_multi_host_job(prepared_run: Path, tmp_path: Path):
    port = free_port()
    runs = [copy_prepared(prepared_run, tmp_path / f"host{i}") for i in range(2)]
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
    }
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trainer",
                "fit",
                "--preset",
                "tiny",
                "--epochs",
                "1",
                "--run",
                str(runs[i]),
                "--coordinator",
                f"127.0.0.1:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = []
    deadline = time.monotonic() + 600
    for process in processes:
        try:
            outputs.append(process.communicate(timeout=max(1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            for p in processes:
                p.kill()
            pytest.fail("the two-process job hung")
    errors = "\n".join(err[-1500:] for _, err in outputs)
    if any(p.returncode for p in processes) and "collectives" in errors.lower():
        pytest.skip(f"this jaxlib has no CPU cross-process collectives: {errors[-300:]}")
    assert all(p.returncode == 0 for p in processes), errors
    assert all("on 4 device(s)" in out for out, _ in outputs)


def test_shard_index_counts_labels_without_reading_the_data(small_fer_dir: Path, tmp_path: Path):
    from trainer.shards import label_counts

    data, _ = prepare(small_fer_dir, PreprocessSpec(size=32), seed=1)
    write_shards(data, tmp_path / "shards", shard_size=50)
    expected = np.bincount(data.y["train"], minlength=len(data.classes))
    np.testing.assert_array_equal(label_counts(tmp_path / "shards"), expected)
