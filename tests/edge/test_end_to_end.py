"""End to end: a video made now from real FER2013 faces -> the daemon process -> Mosquitto ->
a subscriber that must see happy, sad, angry and then no face, in order.

The faces are picked by the shipped model itself (confidently right on the pasted frame), so the
test checks the daemon's detection, cropping, tracking, hysteresis and MQTT path, not model
accuracy, which bench/accuracy.py measures on the whole test split.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from edge.bundle import load_bundle
from edge.classify.emotion import EmotionClassifier
from edge.detect import face_crops
from edge.detect.blazeface import BlazeFaceDetector
from edge.models import default_bundle_path
from edge.samples import Segment, fer_faces, scripted_frames, write_video
from tests.support import Subscriber

pytestmark = pytest.mark.mqtt
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = [
    Segment("none", 1.5),
    Segment("happy", 3),
    Segment("sad", 3),
    Segment("angry", 3),
    Segment("none", 2.5),
]
FPS = 10


def confident_faces(zip_path: Path) -> dict[str, list[np.ndarray]]:
    classifier = EmotionClassifier.from_bundle(load_bundle(default_bundle_path()))
    detector = BlazeFaceDetector()
    pool = fer_faces(zip_path, ["happy", "sad", "angry"], 60, seed=11)
    chosen = {}
    for label, faces in pool.items():
        for face in faces:
            frame, _ = next(scripted_frames({label: [face]}, [Segment(label, 0.1)], FPS, seed=5))
            found = detector.detect(frame)
            if len(found) != 1:
                continue
            prediction = classifier.predict(face_crops(frame, classifier.spec, found))[0]
            if prediction.label == label and prediction.confidence >= 0.75:
                chosen[label] = [face]
                break
        if label not in chosen:
            pytest.skip(f"the shipped model is confident on no {label} face among 60")
    return chosen


def test_subscriber_receives_the_emotions_of_the_video(mosquitto, fer_zip, tmp_path):
    video = tmp_path / "scene.avi"
    write_video(scripted_frames(confident_faces(fer_zip), SCRIPT, FPS, seed=5), video, FPS)
    config = tmp_path / "edge.toml"
    config.write_text(
        'device_id = "e2e"\n'
        f'[camera]\ntype = "opencv"\nsource = "{video}"\nrealtime = true\n'
        "[emotion]\nstable_seconds = 1.0\nno_face_seconds = 1.0\n"
        # The default cooldown: it is per emotion, so each new emotion still gets an idea.
        "[suggestions]\ncooldown_seconds = 300\n"
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n'
    )
    sub = Subscriber(mosquitto.port, ["yuzug/e2e/#"])
    started = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "edge", "run", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        time.sleep(0.5)
        events = sub.json("/event")
    finally:
        sub.close()
    schema = json.loads((ROOT / "docs/schemas/event.schema.json").read_text())
    for event in events:
        jsonschema.validate(event, schema)
    emotions = [e["emotion"] for e in events if e["emotion"] != "none"]
    assert emotions == ["happy", "sad", "angry", "no_face"], events
    assert all(e["suggestion"] for e in events if e["emotion"] in ("happy", "sad", "angry"))
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert time.monotonic() - started < 60
    assert sub.payloads("/availability")[-1] == "offline"  # clean shutdown announced
