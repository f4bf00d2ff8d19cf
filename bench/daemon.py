"""Daemon benchmarks with real processes: start-up time, peak memory, live-view cost.

    python bench/daemon.py [--python .venv-edge/bin/python] [--json out.json]

- Start-up: from process spawn to the first retained state on a real Mosquitto.
- Peak RSS (VmHWM) of ``yuzug-edge run`` after 20 s at full speed on a 640x480 video. Run it
  with the edge-only venv (``make demo`` creates .venv-edge) to measure what a Pi installs.
- Live view: analysed fps at full speed with no viewer and with one MJPEG viewer.
- Empty room: CPU of the daemon (share of one core) on a 30 fps camera-like video of a room
  with nobody in it, at the default ``classifier.idle_fps`` and with it off (0: full rate).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from paho.mqtt import publish  # noqa: E402

from bench.common import emit, face_video  # noqa: E402
from edge.samples import Segment  # noqa: E402
from tests.support import Mosquitto, Subscriber, free_port, wait_for  # noqa: E402


def spawn(python: str, config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [python, "-m", "edge", "run", "--config", str(config)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def healthz(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        return json.loads(response.read())


def _analysed(port: int) -> int:
    try:
        return int(healthz(port)["frames_analysed"])
    except OSError:  # the HTTP server starts just after the first state is published
        return 0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def empty_room(python: str, data: Path, workdir: Path, seconds: float) -> dict[str, Any]:
    """CPU share of one core and analysed fps in an empty room, idle rate on and off."""
    video = face_video(data, workdir / "room.avi", [Segment("none", 10)], fps=30)
    results: dict[str, Any] = {}
    for name, idle_fps in (("idle_fps_default", None), ("idle_fps_0", 0.0)):
        port = free_port()
        config = workdir / f"room-{name}.toml"
        config.write_text(
            f'[camera]\ntype = "opencv"\nsource = "{video}"\nloop = true\nrealtime = true\n'
            f"[mqtt]\nenabled = false\n[http]\nenabled = true\nport = {port}\n"
            + ("" if idle_fps is None else f"[classifier]\nidle_fps = {idle_fps}\n")
        )
        daemon = spawn(python, config)
        try:
            wait_for(lambda: _analysed(port) > 0, 30, what="frames")  # noqa: B023 - waited here
            time.sleep(3)  # past start-up and emotion.no_face_seconds
            cpu, analysed, start = cpu_seconds(daemon.pid), _analysed(port), time.monotonic()
            time.sleep(seconds)
            elapsed = time.monotonic() - start
            results[name] = {
                "cpu_percent_of_one_core": round(100 * (cpu_seconds(daemon.pid) - cpu) / elapsed),
                "fps": round((_analysed(port) - analysed) / elapsed, 1),
            }
        finally:
            daemon.terminate()
            daemon.wait(20)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter of the daemon")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/fer2013.zip")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--empty-room-only", action="store_true", help="only the empty room")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, Any] = {"python": args.python}
    with tempfile.TemporaryDirectory() as workdir_name:
        workdir = Path(workdir_name)
        results["empty_room"] = empty_room(args.python, args.data, workdir, args.seconds / 2)
        if args.empty_room_only:
            emit(results, args.json)
            return 0
        video = face_video(
            args.data, workdir / "loop.avi", [Segment(k, 2) for k in ("happy", "sad", "angry")]
        )
        broker = Mosquitto(workdir / "broker").start()
        http_port = free_port()
        config = workdir / "edge.toml"
        config.write_text(
            f'device_id = "bench"\n[camera]\ntype = "opencv"\nsource = "{video}"\n'
            "loop = true\nrealtime = false\n"
            f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
            f"[http]\nenabled = true\nport = {http_port}\n"
        )
        try:
            startups = []
            for _ in range(3):
                subscriber = Subscriber(broker.port, ["yuzug/bench/state"])
                started = time.monotonic()
                daemon = spawn(args.python, config)
                wait_for(
                    partial(subscriber.payloads, "/state"), 30, interval=0.01, what="first state"
                )
                startups.append(time.monotonic() - started)
                subscriber.close()
                if _ < 2:
                    daemon.terminate()
                    daemon.wait(20)
                # The retained state of the previous run must not count: clear it.
                publish.single(
                    "yuzug/bench/state",
                    None,
                    qos=1,
                    retain=True,
                    hostname="127.0.0.1",
                    port=broker.port,
                )
            results["startup_to_first_state_s"] = {
                "runs": [round(s, 2) for s in startups],
                "median": round(sorted(startups)[1], 2),
            }
            wait_for(lambda: _analysed(http_port) > 50, 30, what="frames")
            time.sleep(args.seconds / 2)
            first = healthz(http_port)["frames_analysed"]
            time.sleep(args.seconds / 2)
            no_viewer_fps = (healthz(http_port)["frames_analysed"] - first) / (args.seconds / 2)
            stop = threading.Event()
            received = [0]

            def watch() -> None:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{http_port}/stream.mjpg", timeout=10
                ) as stream:
                    while not stop.is_set():
                        received[0] += len(stream.read(65536))

            viewer = threading.Thread(target=watch, daemon=True)
            viewer.start()
            time.sleep(2)
            first = healthz(http_port)["frames_analysed"]
            time.sleep(args.seconds / 2)
            viewer_fps = (healthz(http_port)["frames_analysed"] - first) / (args.seconds / 2)
            stop.set()
            results["live_view"] = {
                "fps_no_viewer": round(no_viewer_fps, 1),
                "fps_one_viewer": round(viewer_fps, 1),
                "stream_kib": round(received[0] / 1024),
            }
            results["peak_rss_mb"] = round(rss_mb(daemon.pid), 1)
            results["rss_now_mb"] = round(rss_mb(daemon.pid, "VmRSS"), 1)
            daemon.terminate()
            daemon.wait(20)
        finally:
            broker.stop()
    emit(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
