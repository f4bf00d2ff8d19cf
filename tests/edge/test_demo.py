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
    # The relaxed face in the middle is reported as "none", not forced into an emotion.
    assert "neutral 4s" in out and any(event.endswith("-> none") for event in events)
    assert "suggestion:" in out


def test_demo_names_a_bad_data_file_and_skips_a_bad_found_one(
    fer_zip: Path, tmp_path: Path, monkeypatch, caplog
):
    import re
    import zipfile

    import pytest

    from edge.demo import find_faces
    from edge.errors import YuzugError

    not_zip = tmp_path / "faces.zip"
    not_zip.write_text("not a zip")
    no_faces = tmp_path / "other.zip"
    with zipfile.ZipFile(no_faces, "w") as archive:
        archive.writestr("readme.txt", "no faces here")
    # Both were tracebacks (BadZipFile, ValueError) out of `yuzug-edge demo --data`.
    for path, why in (
        (not_zip, "not a FER2013-layout zip (File is not a zip file)"),
        (no_faces, "not a FER2013-layout zip"),
        (tmp_path / "missing.zip", "no such file"),
    ):
        with pytest.raises(YuzugError, match=re.escape(f"--data {path}: {why}")):
            find_faces(path)
    # A data set found on its own (here via $YUZUG_DEMO_DATA) that is broken is skipped.
    monkeypatch.setenv("YUZUG_DEMO_DATA", str(not_zip))
    monkeypatch.setattr("edge.demo.FER_CANDIDATES", [str(fer_zip)])
    faces, source = find_faces(None)
    assert source == str(fer_zip) and set(faces) == {"happy", "sad", "angry", "neutral"}
    assert f"skipping {not_zip}: not a FER2013-layout zip" in caplog.text
    # A data set of the three emotions alone is enough: the relaxed-face scene is left out.
    three = tmp_path / "three.zip"
    with zipfile.ZipFile(fer_zip) as source_zip, zipfile.ZipFile(three, "w") as archive:
        for label in ("happy", "sad", "angry"):
            members = [n for n in source_zip.namelist() if n.startswith(f"test/{label}/")]
            for name in members[:4]:
                archive.writestr(name, source_zip.read(name))
    faces, source = find_faces(three)
    assert source == str(three) and set(faces) == {"happy", "sad", "angry"}
