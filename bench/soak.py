"""Soak benchmark: the daemon at full speed on a looping video, the broker restarted regularly.

    python bench/soak.py [--minutes 30] [--restart-every 5] [--json out.json]

Samples the daemon's RSS every 10 s and reports its growth after a warm-up, whether the daemon
ever exited (a crash), and events delivered against events produced (the daemon numbers its
events; a persistent subscriber on a Mosquitto with persistence collects them across restarts).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import face_video  # noqa: E402
from bench.daemon import _analysed, healthz, rss_mb  # noqa: E402
from edge.samples import Segment  # noqa: E402
from tests.support import Mosquitto, Subscriber, free_port, wait_for  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/fer2013.zip")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--restart-every", type=float, default=5, help="minutes")
    parser.add_argument("--warmup", type=float, default=2, help="minutes before RSS baseline")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    samples: list[tuple[float, float]] = []
    restarts = 0
    with tempfile.TemporaryDirectory() as workdir_name:
        workdir = Path(workdir_name)
        # At full speed the daemon plays ~10x faster than real time: 8 s segments still last
        # long enough in wall-clock time for the hysteresis to turn each one into an event.
        script = [Segment(k, 8.0) for k in ("happy", "sad", "angry", "none")]
        video = face_video(args.data, workdir / "loop.avi", script, per_label=3)
        broker = Mosquitto(workdir / "broker").start()
        port = free_port()
        config = workdir / "edge.toml"
        config.write_text(
            f'device_id = "soak"\n[camera]\ntype = "opencv"\nsource = "{video}"\n'
            "loop = true\nrealtime = false\n"
            "[emotion]\nstable_seconds = 0.2\nno_face_seconds = 0.2\n"
            "[suggestions]\ncooldown_seconds = 0\n"
            f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nstats_interval_seconds = 10\n'
            "reconnect_min_seconds = 1\nreconnect_max_seconds = 4\n"
            f"[http]\nenabled = true\nport = {port}\n"
        )
        subscriber = Subscriber(
            broker.port, ["yuzug/soak/event"], client_id="soak-subscriber", persistent=True
        )
        daemon = subprocess.Popen(
            [args.python, "-m", "edge", "run", "--config", str(config)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=open(workdir / "daemon.log", "w"),
        )
        started = time.monotonic()
        next_restart = started + args.restart_every * 60
        crashed = None
        try:
            wait_for(lambda: _analysed(port) > 0, 60, what="daemon up")
            while time.monotonic() - started < args.minutes * 60:
                if daemon.poll() is not None:
                    crashed = daemon.returncode
                    break
                samples.append((time.monotonic() - started, rss_mb(daemon.pid, "VmRSS")))
                if time.monotonic() >= next_restart:
                    broker.stop(kill=True)
                    time.sleep(3)
                    broker.start()
                    restarts += 1
                    next_restart += args.restart_every * 60
                time.sleep(10)
            health = healthz(port) if crashed is None else {}
            time.sleep(8)  # let the queue flush after the last restart
            health = healthz(port) if crashed is None else health
        finally:
            if daemon.poll() is None:
                daemon.terminate()
                daemon.wait(30)
            time.sleep(1)
            subscriber.close()
            broker.stop()
        log_tail = (workdir / "daemon.log").read_text()[-2000:]
    received = sorted({json.loads(p)["sequence"] for p in subscriber.payloads("/event")})
    produced = health.get("events", 0)
    baseline = [rss for t, rss in samples if t >= args.warmup * 60]
    results: dict[str, Any] = {
        "minutes": args.minutes,
        "broker_restarts": restarts,
        "crashed": crashed,
        "frames_analysed": health.get("frames_analysed"),
        "rss_mb": {
            "after_warmup": baseline[0] if baseline else None,
            "end": baseline[-1] if baseline else None,
            "max": max(baseline) if baseline else None,
            "growth_after_warmup": round(baseline[-1] - baseline[0], 1) if baseline else None,
        },
        "events_produced": max(received[-1] if received else 0, produced),
        "events_delivered": len(received),
        "events_dropped_counted": health.get("broker", {}).get("events_dropped"),
        "mqtt": health.get("broker"),
        "rss_samples": samples,
    }
    if crashed is not None:
        results["log_tail"] = log_tail
    summary = {k: v for k, v in results.items() if k != "rss_samples"}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if crashed is None else 1


if __name__ == "__main__":
    sys.exit(main())
