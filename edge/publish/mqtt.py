"""paho-mqtt 2.x behind a small publisher: availability with Last Will, retained state, queued
events, stats, Home Assistant discovery and the pause command.

The broker being away must never stall or crash the camera loop: every call here returns at
once. Events produced while disconnected wait in a bounded queue (oldest dropped first, and
counted) and are sent, in order, when the connection returns. Reconnection backs off from
``reconnect_min_seconds`` to ``reconnect_max_seconds`` with random jitter, so a fleet does not
reconnect in lock-step after a broker restart.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from edge.config import MQTTConfig, format_broker, unreadable
from edge.errors import ConfigError
from edge.publish.payloads import Topics, dumps
from edge.publish.spool import EventSpool, replace_synced

logger = logging.getLogger(__name__)


class _ReconnectNoise(logging.Filter):
    """Drops the ERROR paho's network loop logs on every failed reconnect ("Client is not
    connected"): the publisher reports failures itself, with their cause, at the 1st, 10th and
    every 100th attempt, so a broker that is down for a night does not flood the journal."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Client is not connected")


paho_logger = logging.getLogger("paho")
paho_logger.addFilter(_ReconnectNoise())


def worth_reporting(failures: int) -> bool:
    """Which consecutive connection failures get a line: the 1st, the 10th, every 100th."""
    return failures in (1, 10) or failures % 100 == 0


HA_STATUS_SUFFIX = "status"

# publish() results after which paho holds the message and will send it: NO_CONN (the link
# dropped before on_disconnect ran) keeps a QoS 1 message for the next connection, so queueing
# it here too would deliver it twice.
TAKEN = (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN)


# What to check when a broker refuses a login, for the daemon, doctor, watch and deploy alike.
LOGIN_HINT = (
    "check mqtt.username (--mqtt-username) and the password in $YUZUG_MQTT_PASSWORD or the "
    "mqtt_password credential"
)


def refusal(config: MQTTConfig, reason: object) -> str:
    """What a refused CONNACK means, and what to check."""
    return f"the broker refused {config.username or 'anonymous'}: {reason} ({LOGIN_HINT})"


def make_client(config: MQTTConfig, client_id: str) -> mqtt.Client:
    """A paho client with the config's credentials and TLS settings, not yet connected."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    client.enable_logger(paho_logger)
    # An exception in a callback (a bug, a payload nobody foresaw) would otherwise end paho's
    # network thread: no more messages, no reconnects, and nothing said. Logged instead.
    client.suppress_exceptions = True
    if config.username:
        password = config.password.get_secret_value() if config.password is not None else None
        client.username_pw_set(config.username, password)
    if config.tls:
        files = {
            "ca_file": config.ca_file,
            "cert_file": config.cert_file,
            "key_file": config.key_file,
        }
        for key, path in files.items():
            why = unreadable(path) if path is not None else None
            if why:
                raise ConfigError(f"mqtt.{key}: cannot read {path} ({why})")
        try:
            client.tls_set(
                ca_certs=str(config.ca_file) if config.ca_file else None,
                certfile=str(config.cert_file) if config.cert_file else None,
                keyfile=str(config.key_file) if config.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        except ssl.SSLError as exc:
            # Readable but not PEM, or a key that does not match its certificate.
            named = ", ".join(f"mqtt.{key} {path}" for key, path in files.items() if path)
            raise ConfigError(f"{named or 'mqtt.tls'}: not usable for TLS ({exc})") from None
        if config.tls_insecure:
            client.tls_insecure_set(True)
    return client


def try_login(config: MQTTConfig, client_id: str = "", timeout: float = 5.0) -> str | None:
    """Connects once: ``None`` when the broker accepts the login, else why not (unreachable,
    the login refused, TLS). Use a client id of its own: a running daemon's would be kicked off.

    Raises:
        ConfigError: an unreadable or invalid TLS file.
    """
    answer: dict[str, Any] = {}
    answered = threading.Event()

    def on_connect(client: Any, userdata: Any, flags: Any, reason_code: Any, props: Any) -> None:
        answer["reason"] = reason_code
        answered.set()

    client = make_client(config, client_id)
    client.on_connect = on_connect
    try:
        client.connect(config.host, config.port, config.keepalive)
        client.loop_start()
        answered.wait(timeout)
    except (OSError, ValueError):  # unreachable, a bad host name, a failed TLS handshake
        pass
    finally:
        client.disconnect()
        client.loop_stop()
    reason = answer.get("reason")
    if reason is None:
        return diagnose(config, timeout=min(3.0, timeout))
    if reason.is_failure:
        return refusal(config, reason)
    return None


def diagnose(config: MQTTConfig, timeout: float = 3.0) -> str:
    """Why a connection fails: unreachable, refused, or the TLS handshake and its reason."""
    import socket

    try:
        raw = socket.create_connection((config.host, config.port), timeout=timeout)
    except OSError as exc:
        return f"broker unreachable ({exc.strerror or exc})"
    with raw:
        if not config.tls:
            return "TCP connects but the MQTT session failed"
        context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
        if config.cert_file and config.key_file:
            context.load_cert_chain(str(config.cert_file), str(config.key_file))
        if config.tls_insecure:
            context.check_hostname = False
        try:
            with context.wrap_socket(raw, server_hostname=config.host):
                return "TLS works but the MQTT session failed"
        except ssl.SSLCertVerificationError as exc:
            return (
                f"TLS certificate rejected: {exc.verify_message}; check mqtt.ca_file "
                "and the broker's host name"
            )
        except (ssl.SSLError, OSError) as exc:
            return f"TLS handshake failed: {exc}"


def read_pause_file(path: Path) -> bool:
    """Whether the privacy switch kept in ``path`` is ON (no file: OFF)."""
    try:
        return path.read_text(encoding="utf-8").strip() != "OFF"
    except FileNotFoundError:
        return False
    except OSError as exc:
        # Privacy first: a switch that cannot be read may have been ON.
        logger.warning(
            "cannot read the privacy switch from %s (%s): taking it as ON", path, exc.strerror
        )
        return True


class MQTTPublisher:
    """Publishes a device's topics; see docs/mqtt.md for the contract.

    Args:
        config: the validated ``[mqtt]`` section (password already read from the environment).
        device_id: the device's id in topics.
        on_pause: called with True/False when the pause command arrives.
        commands: a handler per command topic (``personal/set``, ``suggestion/set``, under the
            device's base topic), called with each message's text.
        discovery: returns the Home Assistant discovery messages to (re)publish.
    """

    def __init__(
        self,
        config: MQTTConfig,
        device_id: str,
        on_pause: Callable[[bool], None] | None = None,
        discovery: Callable[[], list[tuple[str, dict[str, Any]]]] | None = None,
        commands: dict[str, Callable[[str], None]] | None = None,
    ) -> None:
        self.config = config
        self.topics = Topics(config.topic_prefix, device_id)
        self.on_pause = on_pause
        self.commands = {
            f"{self.topics.base}/{suffix}": c for suffix, c in (commands or {}).items()
        }
        self.discovery = discovery
        self.connected = threading.Event()
        self._lock = threading.Lock()
        # Events waiting for the broker: (id, JSON text); ids tie them to their spool lines.
        self._pending: deque[tuple[int, str]] = deque()
        self._next_id = 0
        # Events handed to paho whose acknowledgement (QoS 1) has not come, by message id, and
        # acknowledgements that came before publish() returned their id. Their own lock: paho
        # calls on_publish holding its message lock, which publish() (under self._lock) needs.
        self._ack_lock = threading.Lock()
        self._unacknowledged: dict[int, int] = {}
        self._early_acks: set[int] = set()
        self._state: str | None = None
        self._paused = self._load_pause()
        self._started = False
        self._counts = {
            "events_published": 0,
            "events_queued": 0,
            "events_dropped": 0,
            "connects": 0,
            "disconnects": 0,
            "connect_failures": 0,
        }
        self.last_error: str | None = None
        self.spool: EventSpool | None = None
        if config.spool_file is not None:
            self.spool = EventSpool(config.spool_file, config.queue_limit)
            restored = self.spool.load()
            if restored:
                self._pending.extend(restored)
                self._next_id = restored[-1][0] + 1
                logger.info(
                    "MQTT: %d events from before the restart wait in %s for the broker",
                    len(restored),
                    config.spool_file,
                )
        self._counts["events_restored"] = len(self._pending)
        self._client = self._build_client(device_id)

    def _build_client(self, device_id: str) -> mqtt.Client:
        client = make_client(self.config, self.config.client_id or f"yuzug-{device_id}")
        client.will_set(self.topics.availability, "offline", qos=1, retain=True)
        self._set_reconnect_delay(client)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    @property
    def counters(self) -> dict[str, int]:
        """Connection and event counters, with the queue's current length."""
        return {**self._counts, "events_pending": len(self._pending)}

    def _set_reconnect_delay(self, client: mqtt.Client) -> None:
        # paho takes whole seconds; +-50% jitter on the first delay spreads a fleet's reconnects,
        # so a new draw is made after every disconnect.
        first = self.config.reconnect_min_seconds * random.uniform(0.5, 1.5)
        client.reconnect_delay_set(
            max(1, round(first)), max(1, round(self.config.reconnect_max_seconds))
        )

    def _publish_pause(self, client: mqtt.Client) -> None:
        client.publish(self.topics.pause, "ON" if self._paused else "OFF", qos=1, retain=True)

    @property
    def endpoint(self) -> str:
        return format_broker(self.config.host, self.config.port)

    def start(self) -> None:
        """Connects in the background; returns at once even when the broker is down."""
        try:
            self._client.connect_async(self.config.host, self.config.port, self.config.keepalive)
        except (OSError, ValueError) as exc:
            # connect_async only records the target; a bad host name fails later, in the loop.
            self.last_error = str(exc)
        self._client.loop_start()
        self._started = True
        logger.info(
            "MQTT: connecting to %s%s as %s",
            self.endpoint,
            " (TLS)" if self.config.tls else "",
            self.config.username or "anonymous",
        )

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    # -- callbacks (paho's network thread) --------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            self._counts["connect_failures"] += 1
            failures = self._counts["connect_failures"]
            self.last_error = f"broker refused the connection: {reason_code}"
            if worth_reporting(failures):
                logger.error(
                    "MQTT: %s refused the connection: %s (%s; %d attempts so far); retrying "
                    "with backoff",
                    self.endpoint,
                    reason_code,
                    LOGIN_HINT,
                    failures,
                )
            return
        self._counts["connects"] += 1
        self.last_error = None
        logger.info("MQTT: connected to %s", self.endpoint)
        client.publish(self.topics.availability, "online", qos=1, retain=True)
        client.subscribe(
            [
                (self.topics.pause_set, 1),
                *((topic, 1) for topic in self.commands),
                (f"{self.config.discovery_prefix}/{HA_STATUS_SUFFIX}", 1),
            ]
        )
        self._publish_discovery()
        with self._lock:
            self._publish_pause(client)
            if self._state is not None:
                client.publish(self.topics.state, self._state, qos=1, retain=True)
            self.connected.set()
            flushed = 0
            while self._pending:
                info = client.publish(self.topics.event, self._pending[0][1], qos=1)
                if info.rc not in TAKEN:
                    break
                self._handed_over(info.mid, self._pending.popleft()[0])
                flushed += 1
                self._counts["events_published"] += 1
        if flushed:
            logger.info("MQTT: delivered %d events queued while disconnected", flushed)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        if was_connected:
            # A lost link starts the backoff afresh (with a new jitter draw). After a refused
            # login paho disconnects too, and starting afresh there meant a retry every second
            # for ever: the backoff must keep growing.
            self._set_reconnect_delay(client)
        if was_connected and self._started:
            self._counts["disconnects"] += 1
            logger.warning(
                "MQTT: disconnected from %s (%s); reconnecting with backoff",
                self.endpoint,
                reason_code,
            )

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._counts["connect_failures"] += 1
        failures = self._counts["connect_failures"]
        if worth_reporting(failures):
            # paho does not say why; ask the network once so the log names the real cause.
            self.last_error = diagnose(self.config)
            logger.warning(
                "MQTT: cannot connect to %s: %s (%d attempts so far); retrying with backoff",
                self.endpoint,
                self.last_error,
                failures,
            )

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        with self._ack_lock:
            event_id = self._unacknowledged.pop(mid, None)
            if event_id is None:
                self._early_acks.add(mid)  # publish() has not returned this mid yet
                return
        if self.spool is not None:
            self.spool.settle(event_id)

    def _handed_over(self, mid: int, event_id: int) -> None:
        """Records an event paho accepted, to settle its spool line when the broker acks it."""
        with self._ack_lock:
            acknowledged = mid in self._early_acks
            if acknowledged:
                self._early_acks.discard(mid)
            else:
                self._unacknowledged[mid] = event_id
        if acknowledged and self.spool is not None:
            self.spool.settle(event_id)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        payload = message.payload.decode("utf-8", "replace").strip()
        if message.topic == self.topics.pause_set:
            value = payload.upper()
            if value in ("ON", "TRUE", "1", "PAUSE"):
                self.set_paused(True)
            elif value in ("OFF", "FALSE", "0", "RESUME"):
                self.set_paused(False)
            else:
                logger.warning("MQTT: ignoring pause command %r (use ON or OFF)", payload[:20])
                return
            if self.on_pause is not None:
                self.on_pause(self._paused)
        elif message.topic in self.commands:
            self.commands[message.topic](payload)
        elif message.topic.endswith(f"/{HA_STATUS_SUFFIX}") and payload == "online":
            # Home Assistant restarted and lost non-retained state: announce ourselves again.
            self._publish_discovery()

    # -- publishing (any thread) ------------------------------------------------------------

    def _publish_discovery(self) -> None:
        if not self.config.discovery or self.discovery is None:
            return
        for topic, payload in self.discovery():
            self._client.publish(topic, dumps(payload), qos=1, retain=True)

    def republish_discovery(self) -> None:
        """After a model reload: the emotion options or the model version may have changed."""
        if self.connected.is_set():
            self._publish_discovery()

    @property
    def paused(self) -> bool:
        """The privacy switch, as the last run left it when a pause file is kept."""
        return self._paused

    def set_paused(self, paused: bool) -> None:
        with self._lock:
            self._paused = paused
            self._save_pause()
            if self.connected.is_set():
                self._publish_pause(self._client)

    def _load_pause(self) -> bool:
        return self.config.pause_file is not None and read_pause_file(self.config.pause_file)

    def _save_pause(self) -> None:
        path = self.config.pause_file
        if path is None:
            return
        try:
            replace_synced(path, "ON\n" if self._paused else "OFF\n")
        except OSError as exc:
            logger.warning(
                "cannot keep the privacy switch in %s (%s): a restart will find it as it was "
                "before this change",
                path,
                exc.strerror,
            )

    def publish_state(self, payload: dict[str, Any]) -> None:
        """Retained state; the newest one is re-sent on every reconnect."""
        text = dumps(payload)
        with self._lock:
            self._state = text
            if self.connected.is_set():
                self._client.publish(self.topics.state, text, qos=1, retain=True)

    def publish_event(self, payload: dict[str, Any]) -> None:
        """QoS 1 event; queued (bounded, oldest dropped and counted) while disconnected."""
        text = dumps(payload)
        with self._lock:
            event_id, self._next_id = self._next_id, self._next_id + 1
            if self.spool is not None:
                # On disk before anything else: a power cut from here on cannot lose it.
                self.spool.add(event_id, text)
            if self.connected.is_set() and not self._pending:
                info = self._client.publish(self.topics.event, text, qos=1)
                if info.rc in TAKEN:
                    self._handed_over(info.mid, event_id)
                    self._counts["events_published"] += 1
                    return
            if len(self._pending) >= self.config.queue_limit:
                dropped, _ = self._pending.popleft()
                self._counts["events_dropped"] += 1
                if self.spool is not None:
                    self.spool.settle(dropped)
            self._pending.append((event_id, text))
            self._counts["events_queued"] += 1

    def publish_diary(self, payload: dict[str, Any]) -> None:
        """Retained, best effort: sent again with the stats, a missed one is replaced."""
        if self.connected.is_set():
            self._client.publish(self.topics.diary, dumps(payload), qos=1, retain=True)

    def publish_stats(self, payload: dict[str, Any]) -> None:
        """Best effort: stats are periodic, a missed one is replaced by the next."""
        if self.connected.is_set():
            self._client.publish(self.topics.stats, dumps(payload), qos=0)

    def close(self, timeout: float = 2.0) -> None:
        """Announces ``offline`` (retained), disconnects and stops the network thread."""
        if not self._started:
            return
        self._started = False
        if self.connected.is_set():
            info = self._client.publish(self.topics.availability, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass  # the connection dropped while closing; the Last Will says offline
        self._client.disconnect()
        self._client.loop_stop()
        self.connected.clear()
        with self._lock:
            undelivered = len(self._pending)
        spool = self.spool if self.spool is not None and self.spool.enabled else None
        if spool is not None and spool.waiting:
            # The queued ones, and any the broker had not yet acknowledged.
            logger.info(
                "MQTT: %d events are kept in %s for the next start", spool.waiting, spool.path
            )
        elif undelivered:
            # Held in memory only (no spool file, or it could not be written): say what is lost.
            logger.warning(
                "MQTT: %d queued events were not delivered: the broker was unreachable at "
                "shutdown (last error: %s)",
                undelivered,
                self.last_error or "none",
            )
