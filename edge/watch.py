"""``yuzug-edge watch``: subscribe to YUZUG devices and print what they say, readably."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from datetime import datetime
from typing import Any, TextIO

import paho.mqtt.client as mqtt

from edge.config import MQTTConfig, format_broker
from edge.publish.mqtt import diagnose, make_client, refusal, worth_reporting

logger = logging.getLogger(__name__)


def describe(topic: str, payload: str, prefix: str) -> str | None:
    """One human line for a YUZUG message, or ``None`` for messages not worth a line."""
    parts = topic.split("/")
    if len(parts) < 3 or parts[0] != prefix:
        return None
    device, kind = parts[1], "/".join(parts[2:])
    stamp = datetime.now().strftime("%H:%M:%S")
    try:
        data: Any = json.loads(payload) if payload.startswith("{") else payload
    except json.JSONDecodeError:
        data = payload
    try:
        return _line(stamp, device, kind, data)
    except (TypeError, ValueError, AttributeError):
        # Another publisher, or another version's payload: shown as it came, and the watcher
        # goes on (an exception here would end paho's network thread, and the watch with it).
        return f"{stamp} {device:<12} {kind}: {payload[:200]}"


PAUSED_BY = {"switch": "the privacy switch", "privacy_hours": "the privacy hours"}


def _line(stamp: str, device: str, kind: str, data: Any) -> str | None:
    if kind == "availability":
        return f"{stamp} {device:<12} {'is ' + str(data)}"
    if kind == "event" and isinstance(data, dict):
        line = (
            f"{stamp} {device:<12} EVENT {data.get('previous')} -> {data.get('emotion')} "
            f"({float(data.get('confidence', 0)):.0%})"
        )
        suggestion = data.get("suggestion")
        if suggestion:
            line += f"\n{'':22}suggestion: {suggestion.get('text')}"
        return line
    if kind == "state" and isinstance(data, dict):
        faces = data.get("faces", 0)
        fit = data.get("personal", "off")  # absent from devices before the fit to a person
        why = [PAUSED_BY.get(reason, str(reason)) for reason in data.get("paused_by") or []]
        return (
            f"{stamp} {device:<12} state {data.get('emotion')} "
            f"{float(data.get('confidence', 0)):.0%}, {faces} face{'s' * (faces != 1)}, "
            f"camera {data.get('camera')}"
            + ("" if fit == "off" else f", fit to a person: {fit}")
            + (f", closed by {' and '.join(why)}" if why else "")
        )
    if kind == "pause":
        return f"{stamp} {device:<12} paused: {data}"
    if kind == "stats" and isinstance(data, dict):
        return (
            f"{stamp} {device:<12} stats {data.get('fps')} fps, "
            f"{data.get('frames_dropped')} frames dropped, camera {data.get('camera')}"
        )
    return None


class Watcher:
    """A background subscriber that prints (or collects) a device's messages."""

    def __init__(
        self,
        broker: MQTTConfig,
        prefix: str = "yuzug",
        device: str = "+",
        out: TextIO | None = None,
        raw: bool = False,
        show_state: bool = True,
        status: TextIO | None = None,
    ) -> None:
        self.prefix = prefix
        # Where connection trouble is reported (stderr for `yuzug-edge watch`): a subscriber
        # that waits in silence on a broker that is down looks like a quiet device.
        self.status = status
        self.connect_failures = 0
        self._troubled = False
        self.topic = f"{prefix}/{device}/#"
        self.out = out or sys.stdout
        self.raw = raw
        self.show_state = show_state
        self.messages: list[tuple[str, str]] = []
        self._suggestions: dict[str, str | None] = {}  # the last one shown, by device
        self.subscribed = threading.Event()
        self._lock = threading.Lock()
        # The daemon's own client set-up: its user, password and TLS, so a broker that needs
        # a login (Home Assistant's Mosquitto add-on does) can be watched too.
        self.client = make_client(broker, client_id="")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.reconnect_delay_set(1, 10)  # a person is watching: retry often
        self.broker = broker

    def start(self) -> None:
        self.client.connect_async(self.broker.host, self.broker.port, 30)
        self.client.loop_start()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            self._report(f"{refusal(self.broker, reason_code)}; retrying")
            return
        client.subscribe(self.topic, qos=1)
        if self._troubled:
            self._report("connected", trouble=False)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self.connect_failures += 1
        if worth_reporting(self.connect_failures):
            why = diagnose(self.broker)
            self._report(f"cannot connect: {why} ({self.connect_failures} attempts); retrying")

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:  # not our own disconnect() at the end
            self._report(f"lost the broker ({reason_code}); reconnecting")

    @property
    def where(self) -> str:
        return format_broker(self.broker.host, self.broker.port)

    def _report(self, message: str, trouble: bool = True) -> None:
        self._troubled = trouble
        if self.status is not None:
            print(f"watch: {self.where}: {message}", file=self.status, flush=True)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        payload = message.payload.decode("utf-8", "replace")
        with self._lock:
            self.messages.append((message.topic, payload))
        if self.raw:
            print(
                json.dumps({"topic": message.topic, "payload": payload}, ensure_ascii=False),
                file=self.out,
                flush=True,
            )
            return
        if message.topic.endswith("/state") and not self.show_state:
            return
        line = describe(message.topic, payload, self.prefix)
        if line:
            print(line + self._new_suggestion(message.topic, payload), file=self.out, flush=True)

    def _new_suggestion(self, topic: str, payload: str) -> str:
        """A state's suggestion when it is not the one last shown for that device (one asked
        for with "another" comes in the state alone, with no event), as an extra line."""
        kind = topic.rsplit("/", 1)[-1]
        if kind not in ("state", "event"):
            return ""
        try:
            suggestion = json.loads(payload).get("suggestion") or {}
            text = suggestion.get("text")
        except (ValueError, AttributeError):  # another publisher's payload: shown as it came
            return ""
        device = topic.rsplit("/", 2)[-2]
        shown, self._suggestions[device] = self._suggestions.get(device), text
        if kind == "event" or not text or text == shown:
            return ""  # an event's line has its suggestion already
        return f"\n{'':22}suggestion: {text}"

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(p) for t, p in self.messages if t.endswith("/event")]

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run_watch(broker: MQTTConfig, prefix: str, device: str, raw: bool, seconds: float) -> int:
    """Prints until Ctrl-C or ``seconds``; 1 if the broker was never reached, for scripts."""
    watcher = Watcher(broker, prefix, device, raw=raw, status=sys.stderr)
    print(f"watching {watcher.topic} on {watcher.where} (Ctrl-C to stop)", file=sys.stderr)
    watcher.start()
    deadline = time.monotonic() + seconds if seconds else None
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()
    if not watcher.subscribed.is_set():
        print(f"watch: never subscribed on {watcher.where}", file=sys.stderr)
        return 1
    return 0
