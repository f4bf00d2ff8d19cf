"""Draws the README's picture of the live page: the real daemon on a scripted scene of two
public-domain photos from scikit-image (Eileen Collins smiling, NASA; the CC0 "camera" portrait
squinting into the light), photographed by headless Chromium.

    .venv/bin/python scripts/live_view_figure.py --out docs/figures/live-view.png
    .venv/bin/python scripts/live_view_figure.py --ignored docs/figures/ignore-regions.png

``--ignored`` draws one live-view frame instead (the same drawing code, no browser): the
astronaut in the room and again, mirrored, on a "TV" inside ``camera.ignore_regions``.
No FER2013 image is used, so the pictures may be committed. About a minute on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np

from edge.app import EdgeApp
from edge.config import parse_config
from edge.demo import find_port
from edge.samples import Segment, scripted_frames, write_folder

SCENE = [
    Segment("nobody", 2),
    Segment("happy", 8),
    Segment("angry", 8),
    Segment("nobody", 3),
    Segment("happy", 30),
]


def photos() -> dict[str, list[np.ndarray]]:
    from skimage import data

    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[30:270, 130:330]
    portrait = cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)[80:260, 130:300]
    return {"happy": [astronaut], "angry": [portrait]}


TV_REGION = (0.56, 0.12, 0.4, 0.62)  # left, top, width, height: shares of the frame


def ignored_figure(out: Path) -> None:
    """One analysed frame as the live view draws it: a person, and a face on a TV that the
    daemon leaves out because it lies in ``camera.ignore_regions``."""
    from edge.camera.base import Frame
    from edge.http import draw_overlay
    from edge.samples import background, paste_face

    faces = photos()
    frame = background(np.random.default_rng(3))
    x, y, w, h = (round(v * s) for v, s in zip(TV_REGION, (640, 480, 640, 480), strict=True))
    frame[y + 20 : y + h - 20, x + 14 : x + w - 14] = (40, 36, 32)  # the TV's screen
    paste_face(frame, faces["happy"][0], (180, 250), 170)
    on_tv = cv2.flip(faces["happy"][0], 1)  # the only sharp face at hand, mirrored
    paste_face(frame, on_tv, (x + w // 2, y + h // 2), 150)
    with tempfile.TemporaryDirectory(prefix="yuzug-figure-") as work:
        config = parse_config(
            {
                "camera": {"type": "folder", "path": work, "ignore_regions": [list(TV_REGION)]},
                "emotion": {"stable_seconds": 0.0},
                "mqtt": {"enabled": False},
            },
            "figure",
        )
        app = EdgeApp(config)
        app.init_analysis()
        for _ in range(10):  # long enough for the emotion to settle
            result = app.analyse(Frame(frame))
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), draw_overlay(result))
    print(f"wrote {out}: {len(result.boxes)} face read, {app.faces_ignored} left out")


def state(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=5) as response:
        return json.loads(response.read())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/figures/live-view.png"))
    parser.add_argument("--ignored", type=Path, help="draw the ignored-region frame here instead")
    args = parser.parse_args()
    if args.ignored:
        ignored_figure(args.ignored)
        return 0
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        parser.error("chromium is not installed (make system-deps installs it)")
    with tempfile.TemporaryDirectory(prefix="yuzug-figure-") as work:
        folder = Path(work) / "frames"
        write_folder(scripted_frames(photos(), SCENE, 10, seed=5), folder)
        port = find_port()
        config = parse_config(
            {
                "device_id": "livingroom",
                "camera": {"type": "folder", "path": str(folder), "fps": 10},
                "emotion": {"stable_seconds": 1.0},
                "mqtt": {"enabled": False},
                "http": {"enabled": True, "port": port, "history_minutes": 1},
                "diary": {"file": str(Path(work) / "diary.json")},
            },
            "figure",
        )
        app = EdgeApp(config)
        runner = threading.Thread(target=app.run, daemon=True)
        runner.start()
        try:
            # Into the last, long happy scene, after both emotions have had their turn.
            started = time.monotonic()
            while time.monotonic() - started < 120:
                time.sleep(0.5)
                seen = state(port) if app.frames_analysed else {}
                if seen.get("emotion") == "happy" and time.monotonic() - started > 28:
                    break
            else:
                raise SystemExit("the scene never reached its last happy part")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [
                    browser,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--hide-scrollbars",
                    f"--user-data-dir={Path(work) / 'chromium'}",
                    "--window-size=1100,820",
                    "--virtual-time-budget=4000",
                    f"--screenshot={args.out.resolve()}",
                    f"http://127.0.0.1:{port}/",
                ],
                capture_output=True,
                timeout=60,
                check=True,
            )
        finally:
            app.stop_event.set()
            runner.join(15)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
