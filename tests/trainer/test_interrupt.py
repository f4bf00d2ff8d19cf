"""A training stopped by Ctrl-C or SIGTERM keeps what it learnt: the best epoch so far is saved
as a complete run (model.keras, fit.json, curves) and the chain stops there, exit 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import wait_for

pytestmark = pytest.mark.slow


def epochs_logged(run: Path) -> int:
    try:
        return max(0, len((run / "history.csv").read_text().splitlines()) - 1)
    except OSError:
        return 0


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_a_stopped_run_saves_its_best_epoch_and_runs_no_further_step(
    how: str, small_fer_dir: Path, tmp_path: Path
):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "trainer", "run", str(small_fer_dir)]
    command += ["--preset", "tiny", "--epochs", "5000", "--out", str(run)]
    trainer = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "KERAS_BACKEND": "jax"},
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        wait_for(lambda: epochs_logged(run) >= 3, 240, interval=0.2, what="three epochs")
        if how == "ctrl-c":
            # A terminal sends SIGINT to the whole group: `run` and its fit step both get it.
            os.killpg(trainer.pid, signal.SIGINT)
        else:
            trainer.send_signal(signal.SIGTERM)  # `kill PID`: to `run` alone
        out, err = trainer.communicate(timeout=180)
    finally:
        if trainer.poll() is None:
            os.killpg(trainer.pid, signal.SIGKILL)
    name = "SIGINT" if how == "ctrl-c" else "SIGTERM"
    assert trainer.returncode == 130, err[-3000:]
    assert (run / "fit.json").exists(), err[-3000:]
    fit = json.loads((run / "fit.json").read_text())
    assert fit["interrupted_by"] == name
    assert 3 <= fit["epochs_run"] < 5000 and fit["best_epoch"] <= fit["epochs_run"]
    assert (run / "model.keras").stat().st_size > 0 and (run / "curves.png").exists()
    assert f"fit was stopped by {name} after {fit['epochs_run']} of 5000 epochs" in err
    assert "run stopped in step fit" in err and "Traceback" not in err
    assert not (run / "bundle").exists() and not (run / "calibration.json").exists()
    # What it saved carries on as the message says.
    calibrated = subprocess.run(
        [sys.executable, "-m", "trainer", "calibrate", "--run", str(run)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_BACKEND": "jax"},
    )
    assert calibrated.returncode == 0, calibrated.stderr[-2000:]


def test_a_stopped_fit_with_checkpoints_trains_on_with_resume(small_fer_dir: Path, tmp_path: Path):
    run = tmp_path / "run"
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    trainer = [sys.executable, "-m", "trainer"]
    prepared = subprocess.run(
        [*trainer, "prepare", str(small_fer_dir), "--preset", "tiny", "--run", str(run)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    fit = [*trainer, "fit", "--run", str(run), "--preset", "tiny", "--checkpoint-every", "5"]
    first = subprocess.Popen([*fit, "--epochs", "5000"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for(lambda: epochs_logged(run) >= 3, 240, interval=0.2, what="three epochs")
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=180)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, err[-3000:]
    assert "the same fit command with --resume" in err
    stopped_at = json.loads((run / "fit.json").read_text())["epochs_run"]
    resumed = subprocess.run(
        [*fit, "--epochs", str(stopped_at + 2), "--resume"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from the checkpoint of epoch" in resumed.stderr
    assert json.loads((run / "fit.json").read_text())["interrupted_by"] is None
    assert epochs_logged(run) == stopped_at + 2  # the history goes on, not over
