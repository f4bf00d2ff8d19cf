"""Test helpers that drive real processes: a Mosquitto broker, an MQTT subscriber, the trainer."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.demo import find_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


free_port = find_port  # a free loopback port, as the demo picks one for its broker


def yuzug_train(
    *args: str, devices: int = 1, timeout: float = 600, **popen: Any
) -> subprocess.CompletedProcess[str]:
    """``python -m trainer ARGS`` on JAX (``devices`` simulated CPU devices), output captured."""
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
    }
    return subprocess.run(
        [sys.executable, "-m", "trainer", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **popen,
    )


def bench_script(name: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``python bench/NAME.py ARGS`` from the repository root, output captured."""
    root = Path(__file__).resolve().parents[1]
    return subprocess.run(
        [sys.executable, str(root / "bench" / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=root,
    )


def wait_for(
    condition: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def terminate(process: subprocess.Popen[Any], timeout: float = 20) -> int:
    """SIGTERM, as systemd stops a service; SIGKILL if it has not exited within ``timeout``.
    Returns the exit status."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return process.returncode


def mosquitto_password_file(path: Path, user: str, password: str) -> Path:
    """A Mosquitto password file holding one user, made with Mosquitto's own tool."""
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(path), user, password],
        check=True,
        capture_output=True,
    )
    return path


class Mosquitto:
    """A real Mosquitto on a free loopback port, with persistence so sessions survive restarts."""

    def __init__(
        self,
        workdir: Path,
        extra_config: str = "",
        port: int | None = None,
        per_listener: bool = False,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.extra_config = extra_config
        self.per_listener = per_listener
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / "mosquitto.log"

    def start(self) -> Mosquitto:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "mosquitto.conf"
        config.write_text(
            ("per_listener_settings true\n" if self.per_listener else "")
            # As root, Mosquitto would switch to the `mosquitto` user, which cannot read the
            # test's private temporary directory.
            + ("user root\n" if os.geteuid() == 0 else "")
            + f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            "autosave_interval 1\n"
            f"log_dest file {self.log}\n"
            "log_type all\n" + self.extra_config
        )
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        wait_for(self._listening, 10, what=f"mosquitto on port {self.port}")
        return self

    def _listening(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            stderr = self.process.stderr.read().decode() if self.process.stderr else ""
            raise AssertionError(f"mosquitto exited: {stderr}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(timeout=10)
        self.process = None


def broker_with_login(workdir: Path, user: str, password: str) -> tuple[Mosquitto, int]:
    """A real Mosquitto with a second listener that refuses anonymous clients and knows one
    user, as Home Assistant's add-on does; returns the broker and that listener's port (its
    ``port`` stays anonymous, for a test's own subscriber)."""
    import pytest

    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed (make system-deps installs it)")
    workdir.mkdir(parents=True, exist_ok=True)
    passwords = mosquitto_password_file(workdir / "passwd", user, password)
    port = free_port()
    extra = f"listener {port} 127.0.0.1\npassword_file {passwords}\nallow_anonymous false\n"
    return Mosquitto(workdir / "broker", extra_config=extra, per_listener=True).start(), port


class Subscriber:
    """A paho subscriber that records every message it gets, with helpers to wait for some."""

    def __init__(
        self, port: int, topics: list[str], client_id: str = "", persistent: bool = False
    ) -> None:
        self.messages: list[tuple[str, str, bool]] = []
        self._lock = threading.Lock()
        self.topics = topics
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent
        )
        self.subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.reconnect_delay_set(1, 2)
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        assert self.subscribed.wait(10), "subscription not acknowledged"

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        client.subscribe([(topic, 1) for topic in self.topics])

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload.decode(), message.retain))

    def payloads(self, suffix: str) -> list[str]:
        with self._lock:
            return [p for t, p, _ in self.messages if t.endswith(suffix)]

    def json(self, suffix: str) -> list[dict[str, Any]]:
        return [json.loads(p) for p in self.payloads(suffix) if p.startswith("{")]

    def wait_payload(
        self, suffix: str, predicate: Callable[[str], bool], timeout: float = 15
    ) -> str:
        return wait_for(
            lambda: next((p for p in self.payloads(suffix) if predicate(p)), None),
            timeout,
            what=f"a message on *{suffix}",
        )

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def bundle_as_version(source: Path, target: Path, version: str) -> Path:
    """A copy of a bundle under a new version name: the same model, a new identity to deploy."""
    from edge.bundle import load_bundle, write_manifest

    shutil.copytree(source, target)
    write_manifest(target, load_bundle(target).manifest.model_copy(update={"version": version}))
    return target


def copy_prepared(prepared: Path, target: Path) -> Path:
    """A new run directory holding another run's prepared data, ready for its own fit."""
    target.mkdir()
    for name in ("data.npz", "prepare_report.json"):
        (target / name).write_bytes((prepared / name).read_bytes())
    return target


def bundle_with_labels(target: Path, labels: list[str], version: str) -> Path:
    """A float32 bundle with its own label set, for a model swap that changes the labels (a
    plain three-way model replaced by one with "none", say). Its scores come from the mean of
    the face's pixels, so they vary with the face; the preprocessing is the shipped model's."""
    import tensorflow as tf

    from edge.bundle import TensorContract, load_bundle, write_bundle
    from edge.models import default_bundle_path

    shipped = load_bundle(default_bundle_path())
    shape = [1, *shipped.manifest.input.shape[1:]]
    weights = tf.constant([np.linspace(-4.0, 4.0, len(labels))], tf.float32)

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
    def scores(pixels: tf.Tensor) -> tf.Tensor:
        return tf.nn.softmax(tf.reduce_mean(pixels, axis=[1, 2]) * weights)

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [scores.get_concrete_function()], scores
    )
    return write_bundle(
        target,
        converter.convert(),
        name="yuzug-test",
        version=version,
        labels=labels,
        quantization="float32",
        input_contract=TensorContract(shape=shape, dtype="float32"),
        output_contract=TensorContract(shape=[1, len(labels)], dtype="float32"),
        preprocess=shipped.preprocess,
    ).path


def person(rng: np.random.Generator, mean: list[float], n: int = 60) -> np.ndarray:
    """``n`` score rows scattered around ``mean`` (one face held for a few seconds)."""
    rows = np.clip(np.asarray(mean) + rng.normal(0, 0.06, (n, len(mean))), 0.001, None)
    return (rows / rows.sum(axis=1, keepdims=True)).astype(np.float32)


def write_personal_file(path: Path, **changes: object) -> Path:
    """A personalization file for the shipped model (a relaxed face read as sad), with
    ``changes`` to its top-level keys."""
    from edge.bundle import load_bundle
    from edge.models import default_bundle_path
    from edge.personalize import personalize

    bundle = load_bundle(default_bundle_path())
    rng = np.random.default_rng(1)
    personal = personalize(bundle, {"none": person(rng, [0.05, 0.05, 0.5, 0.4], 20)})
    data = json.loads(personal.to_json())
    data.update(changes)
    path.write_text(json.dumps(data))
    return path


def analysing_app(
    folder: Path, classifier: dict[str, Any] | None = None, camera: dict[str, Any] | None = None
) -> Any:
    """An :class:`edge.app.EdgeApp` built as the daemon starts, short of its camera (a folder
    source on ``folder``) and publisher (MQTT off): ready for ``analyse(frame)``, with these
    ``[classifier]`` settings and more ``[camera]`` ones."""
    from edge.app import EdgeApp
    from edge.config import parse_config

    config = parse_config(
        {
            "camera": {"type": "folder", "path": str(folder), **(camera or {})},
            "classifier": classifier or {},
            "mqtt": {"enabled": False},
        }
    )
    app = EdgeApp(config)
    app.init_analysis()
    return app
