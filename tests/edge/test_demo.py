"""The README's main job, `yuzug-edge demo`: sample footage, embedded broker, daemon, subscriber."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_runs_the_whole_loop_and_ends_by_itself(fer_zip: Path):
    result = subprocess.run(
        [sys.executable, "-m", "edge", "demo", "--data", str(fer_zip), "--fps", "30"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "embedded MQTT broker" in out or "localhost:1883" in out
    assert "demo         is online" in out and "demo         is offline" in out
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("demo: analysed") and "emotion events received over MQTT" in summary
    events = summary.split("MQTT: ")[1].split(", ")
    assert len(events) >= 3 and events[-1].endswith("-> no_face")
    assert "suggestion:" in out
