"""End-to-end daemon benchmark at 640x480, one face per frame, one thread per model.

    python bench/pipeline.py [--model models/default] [--data fer2013.zip] [--lean-every N]
                             [--json out.json]

1. Quality: every angry/happy/sad test face, pasted at --face-side px into a 640x480 scene:
   face detection rate and the label of the detected face (no temporal smoothing), against
   the truth; plus the detection rate of the Haar cascade for comparison.
2. Speed: the daemon's analysis step (detect -> preprocess -> classify -> track -> state ->
   MQTT publish to a real Mosquitto when installed) on in-memory frames: sustained fps, p99
   frame latency and per-stage milliseconds.
3. Speed with capture: the whole threaded pipeline reading an MJPG video at full speed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import add_faces_arguments, pasted_faces  # noqa: E402
from edge.app import EdgeApp  # noqa: E402
from edge.bundle import load_bundle  # noqa: E402
from edge.camera.base import Frame  # noqa: E402
from edge.classify.emotion import EmotionClassifier  # noqa: E402
from edge.config import parse_config  # noqa: E402
from edge.detect import face_crops  # noqa: E402
from edge.detect.blazeface import LEAN_EVERY_FRAMES, BlazeFaceDetector  # noqa: E402
from edge.detect.haar import HaarDetector  # noqa: E402
from edge.samples import (  # noqa: E402
    Segment,
    centre_inside,
    fer_faces,
    scripted_frames,
    write_video,
)
from tests.support import MOSQUITTO, Mosquitto  # noqa: E402

LABELS = ["angry", "happy", "sad"]


def quality(model: Path, data: Path, face_side: int, limit: int) -> dict[str, Any]:
    classifier = EmotionClassifier.from_bundle(load_bundle(model))
    detectors = {"blazeface": BlazeFaceDetector(), "haar": HaarDetector()}
    found = dict.fromkeys(detectors, 0)
    per_label = {label: {"faces": 0, "found": 0, "correct": 0} for label in LABELS}
    total = correct = top_label_correct = 0
    # Accuracy is the argmax among the emotions, comparable across models with and without an
    # abstain output; ``top_label`` also counts an abstain answer as a miss.
    emotion_index = [classifier.labels.index(label) for label in LABELS]
    for label, _, frame, truth in pasted_faces(data, LABELS, limit, face_side):
        total += 1
        per_label[label]["faces"] += 1
        for name, detector in detectors.items():
            faces_in = [f for f in detector.detect(frame) if centre_inside(f.box, truth)]
            if not faces_in:
                continue
            found[name] += 1
            if name == "blazeface":
                per_label[label]["found"] += 1
                (probs,) = classifier.probabilities(
                    face_crops(frame, classifier.spec, faces_in[:1])
                )
                hit = LABELS[int(np.argmax(probs[emotion_index]))] == label
                correct += hit
                top_label_correct += classifier.labels[int(np.argmax(probs))] == label
                per_label[label]["correct"] += hit
    return {
        "face_side_px": face_side,
        "faces": total,
        "detection_rate": {name: round(count / total, 4) for name, count in found.items()},
        "end_to_end_accuracy": round(correct / total, 4),
        "accuracy_on_detected": round(correct / max(1, found["blazeface"]), 4),
        "end_to_end_top_label_accuracy": round(top_label_correct / total, 4),
        "per_label": per_label,
    }


def speed(
    model: Path, data: Path, frames_count: int, workdir: Path, lean_every: int | None
) -> dict[str, Any]:
    faces = fer_faces(data, LABELS, 4)
    script = [Segment(label, 2.0) for label in LABELS * 2]
    frames = [f for f, _ in scripted_frames(faces, script, 25, seed=1)]
    # A real broker when one is installed, so the publish stage costs what it does on a Pi.
    broker = Mosquitto(workdir / "broker").start() if Path(MOSQUITTO).exists() else None
    mqtt = {"host": "127.0.0.1", "port": broker.port} if broker else {"enabled": False}
    try:
        app = EdgeApp(
            parse_config(
                {
                    "camera": {"type": "folder", "path": str(workdir)},
                    "classifier": {"model": str(model), "num_threads": 1},
                    "detector": {"type": "blazeface", "num_threads": 1},
                    "mqtt": {**mqtt, "discovery": False},
                }
            )
        )
        app.init_analysis()
        if lean_every is not None and isinstance(app.detector, BlazeFaceDetector):
            app.detector.lean_every = lean_every
        app.init_publisher()
        if app.publisher:
            app.publisher.wait_connected(5)
        for frame in frames[:50]:  # warm-up
            app.analyse(Frame(image=frame))
        app.timer = type(app.timer)()
        started = time.perf_counter()
        for i in range(frames_count):
            app.analyse(Frame(image=frames[i % len(frames)]))
        elapsed = time.perf_counter() - started
        latency = app.timer.summary()
        app.stop()
        in_memory = {
            "frames": frames_count,
            "fps": round(frames_count / elapsed, 1),
            "stages_ms": latency,
            "mqtt": bool(broker),
        }

        video = workdir / "bench.avi"
        write_video(scripted_frames(faces, script * 3, 25, seed=2), video, 25)
        app = EdgeApp(
            parse_config(
                {
                    "camera": {"type": "opencv", "source": str(video), "realtime": False},
                    # Full rate throughout: this measures the pipeline, not the idle rate.
                    "classifier": {"model": str(model), "num_threads": 1, "idle_fps": 0},
                    "mqtt": {**mqtt, "discovery": False},
                }
            )
        )
        started = time.perf_counter()
        app.run()
        elapsed = time.perf_counter() - started
        assert app.capture is not None  # run() made it
        with_capture = {
            "video_frames": app.capture.frames,
            "analysed": app.frames_analysed,
            "analysed_fps": round(app.frames_analysed / elapsed, 1),
            "capture_fps": round(app.capture.frames / elapsed, 1),
            "dropped": app.slot.dropped,
            "stages_ms": app.timer.summary(),
        }
    finally:
        if broker:
            broker.stop()
    return {"in_memory": in_memory, "with_capture": with_capture}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_faces_arguments(parser)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument(
        "--lean-every",
        type=int,
        help="the in-memory run's BlazeFace second look on every Nth frame of a face "
        f"(the daemon's: {LEAN_EVERY_FRAMES}; 1: every frame)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        results = {
            "quality": quality(args.model, args.data, args.face_side, args.limit),
            "speed": speed(args.model, args.data, args.frames, Path(workdir), args.lean_every),
        }
    q, s = results["quality"], results["speed"]
    print(
        f"faces {q['faces']} at {q['face_side_px']} px: detection BlazeFace "
        f"{q['detection_rate']['blazeface']:.1%}, Haar {q['detection_rate']['haar']:.1%}; "
        f"end-to-end 3-class accuracy {q['end_to_end_accuracy']:.1%} "
        f"({q['accuracy_on_detected']:.1%} of detected faces; "
        f"{q['end_to_end_top_label_accuracy']:.1%} with an abstain answer counted as a miss)"
    )
    stages = s["in_memory"]["stages_ms"]
    print(
        f"analysis: {s['in_memory']['fps']} fps sustained, frame p99 "
        f"{stages['frame']['p99_ms']} ms; per stage (mean ms): "
        + ", ".join(
            f"{k} {v['mean_ms']}" for k, v in stages.items() if k not in ("frame", "capture")
        )
    )
    w = s["with_capture"]
    print(
        f"with capture (MJPG decode thread): {w['analysed_fps']} fps analysed, "
        f"{w['capture_fps']} fps captured, {w['dropped']} dropped by newest-frame-wins"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
