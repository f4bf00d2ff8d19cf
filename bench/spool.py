"""What the MQTT event spool costs: ``publish_event`` with and without it, on a real Mosquitto.

    python bench/spool.py [--events 500] [--dir /var/lib/yuzug-edge] [--json out.json]

Each spooled event is appended and fsynced before it is sent, and its line settled when the
broker acknowledges it, so the figure is mostly the disk's fsync time: run it with ``--dir`` on
the device's own storage (an SD card is slower than a workstation's SSD).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.config import MQTTConfig  # noqa: E402
from edge.publish.mqtt import MQTTPublisher  # noqa: E402
from tests.support import Mosquitto, wait_for  # noqa: E402


def measure(port: int, spool: Path | None, events: int) -> dict[str, Any]:
    config = MQTTConfig(host="127.0.0.1", port=port, discovery=False, spool_file=spool)
    publisher = MQTTPublisher(config, "bench")
    publisher.start()
    try:
        if not publisher.wait_connected(10):
            raise SystemExit(f"no connection to the broker on port {port}")
        seconds = []
        for sequence in range(events):
            payload = {"emotion": "happy", "sequence": sequence, "suggestion": {"text": "x" * 120}}
            started = time.perf_counter()
            publisher.publish_event(payload)
            seconds.append(time.perf_counter() - started)
            time.sleep(0.002)  # events come one at a time, as emotion changes do
        if spool is not None:
            wait_for(lambda: not spool.exists(), 30, what="every event acknowledged")
    finally:
        publisher.close()
    ms = sorted(s * 1000 for s in seconds)
    return {
        "spool": str(spool) if spool else None,
        "events": events,
        "median_ms": round(statistics.median(ms), 3),
        "p90_ms": round(ms[int(len(ms) * 0.9)], 3),
        "p99_ms": round(ms[int(len(ms) * 0.99)], 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--dir", type=Path, help="where the spool file goes (default: a temp dir)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.dir or Path(scratch)
        broker = Mosquitto(Path(scratch) / "broker").start()
        try:
            rows = [
                measure(broker.port, None, args.events),
                measure(broker.port, folder / "bench-pending-events.jsonl", args.events),
            ]
        finally:
            broker.stop()
    for row in rows:
        print(
            f"spool {'on ' if row['spool'] else 'off'}: publish_event median {row['median_ms']} ms,"
            f" p90 {row['p90_ms']} ms, p99 {row['p99_ms']} ms ({row['events']} events)"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
