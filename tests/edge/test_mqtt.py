"""The daemon against a real Mosquitto: availability, retained state, Last Will, discovery, pause,
queued events across a broker restart, and an unreachable broker."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import jinja2
import jsonschema
import pytest

from edge.app import EdgeApp
from edge.config import MQTTConfig, parse_config
from edge.publish.mqtt import MQTTPublisher
from edge.publish.payloads import utc_now
from edge.samples import Segment, fer_faces, scripted_frames, write_folder
from edge.watch import Watcher
from tests.support import (
    Subscriber,
    broker_with_login,
    free_port,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = {
    name: json.loads((ROOT / "docs" / "schemas" / f"{name}.schema.json").read_text())
    for name in ("state", "event", "stats", "discovery", "diary")
}

pytestmark = pytest.mark.mqtt


@pytest.fixture(scope="module")
def face_frames(fer_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    faces = fer_faces(fer_zip, ["happy"], 2)
    folder = tmp_path_factory.mktemp("frames")
    write_folder(scripted_frames(faces, [Segment("happy", 2), Segment("none", 1)], 10), folder)
    return folder


def make_config(port: int, frames: Path, **overrides) -> dict:
    config = {
        "device_id": "test-cam",
        "camera": {"type": "folder", "path": str(frames), "fps": 20, "loop": True},
        "emotion": {"stable_seconds": 0.2, "no_face_seconds": 0.5},
        "mqtt": {
            "host": "127.0.0.1",
            "port": port,
            "stats_interval_seconds": 0.5,
            "reconnect_min_seconds": 1,
            "reconnect_max_seconds": 2,
        },
    }
    for section, values in overrides.items():
        config.setdefault(section, {}).update(values)
    return config


class RunningApp:
    def __init__(self, config: dict) -> None:
        self.app = EdgeApp(parse_config(config))
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.code = self.app.run()

    def __enter__(self) -> EdgeApp:
        self.thread.start()
        return self.app

    def __exit__(self, *exc: object) -> None:
        self.app.stop_event.set()
        self.thread.join(15)
        assert not self.thread.is_alive()


def test_availability_state_stats_and_discovery(mosquitto, face_frames):
    live_view = {"enabled": True, "port": 0, "public_url": "http://kitchen.local:8080/"}
    with RunningApp(make_config(mosquitto.port, face_frames, http=live_view)) as app:
        wait_for(lambda: app.frames_analysed > 20, 30, what="frames analysed")
        # A subscriber arriving later gets the retained messages at once.
        sub = Subscriber(mosquitto.port, ["yuzug/test-cam/#", "homeassistant/#"])
        try:
            sub.wait_payload("/availability", lambda p: p == "online", 5)
            assert any(t.endswith("/availability") and r for t, _, r in sub.messages)
            state = json.loads(sub.wait_payload("/state", lambda p: True, 5))
            jsonschema.validate(state, SCHEMAS["state"])
            assert state["device"] == "test-cam" and state["camera"] == "ok"
            assert state["model_version"] == app.model_version
            stats = json.loads(sub.wait_payload("/stats", lambda p: True, 5))
            jsonschema.validate(stats, SCHEMAS["stats"])
            assert stats["frames_analysed"] > 0 and "detect" in stats["latency"]
            assert stats["mqtt"]["events_restored"] == 0  # no spool here: nothing carried over
            from edge.http import prometheus_metrics

            metrics = prometheus_metrics(app)
            assert "yuzug_mqtt_connected 1\n" in metrics
            assert "yuzug_mqtt_events_restored_total 0\n" in metrics

            configs = [(t, json.loads(p)) for t, p, r in sub.messages if t.endswith("/config")]
            components = sorted(t.split("/")[1] for t, _ in configs)
            assert components == [*["button"] * 3, "event", *["sensor"] * 12, "switch"]
            for _, payload in configs:
                jsonschema.validate(payload, SCHEMAS["discovery"])
            # Home Assistant's device page links to the live view ("Visit").
            assert {p["device"]["configuration_url"] for _, p in configs} == {
                live_view["public_url"]
            }
            emotion = next(p for t, p in configs if t.endswith("/emotion/config"))
            assert {"happy", "sad", "angry", "none", "no_face"} <= set(emotion["options"])
            assert emotion["device_class"] == "enum"
            # The suggestion sensor's template, rendered as Home Assistant would (Jinja).
            template = next(p for t, p in configs if t.endswith("/current_suggestion/config"))
            render = jinja2.Environment().from_string(template["value_template"]).render
            happy = json.loads(
                sub.wait_payload("/state", lambda p: json.loads(p)["emotion"] == "happy", 10)
            )
            jsonschema.validate(happy, SCHEMAS["state"])
            ideas = {s.text for s in app.picker.catalogue["happy"]}
            assert happy["suggestion"]["text"] in ideas
            assert render(value_json=happy) == happy["suggestion"]["text"]
            assert render(value_json={**happy, "suggestion": None}) == ""
            # Diagnostics: the camera from the state, rate and backlog from the stats, each
            # rendered from the payloads the daemon really sent.
            diagnostics = {
                t.split("/")[-2]: p for t, p in configs if p.get("entity_category") == "diagnostic"
            }
            assert sorted(diagnostics) == [
                "camera",
                "closed_by",
                "events_waiting",
                "fps",
                "rotation",
            ]
            env = jinja2.Environment()

            def shown(key: str, payload: dict) -> str:
                return env.from_string(diagnostics[key]["value_template"]).render(
                    value_json=payload
                )

            assert shown("camera", happy) == "ok" and "ok" in diagnostics["camera"]["options"]
            assert set(diagnostics["camera"]["options"]) == set(
                SCHEMAS["state"]["properties"]["camera"]["enum"]
            )
            assert shown("closed_by", happy) == "open"
            reasons = SCHEMAS["state"]["properties"]["paused_by"]["items"]["enum"]
            for held in (["switch"], ["privacy_hours"], reasons, list(reversed(reasons))):
                assert (
                    shown("closed_by", {**happy, "paused_by": held})
                    in (diagnostics["closed_by"]["options"])
                )
            assert len(diagnostics["closed_by"]["options"]) == 2 ** len(reasons)
            # A camera mounted turned: the rotation to set, "none" while faces look upright
            # (and from a daemon too old to say).
            rotations = diagnostics["rotation"]["options"]
            assert shown("rotation", happy) == "none" and happy["suggested_rotation"] is None
            for turn in SCHEMAS["state"]["properties"]["suggested_rotation"]["enum"][1:]:
                turned = {**happy, "suggested_rotation": turn}
                jsonschema.validate(turned, SCHEMAS["state"])
                assert shown("rotation", turned) == str(turn) and str(turn) in rotations
            older = {k: v for k, v in happy.items() if k != "suggested_rotation"}
            assert shown("rotation", older) == "none" and len(rotations) == 5
            assert float(shown("fps", stats)) == stats["fps"]
            assert shown("events_waiting", stats) == str(stats["mqtt"]["events_pending"])
            assert diagnostics["fps"]["expire_after"] == 2  # three stats intervals of 0.5 s
            # Home Assistant restarting asks for discovery again.
            before = len(configs)
            sub.client.publish("homeassistant/status", "online", qos=1)
            wait_for(
                lambda: len([t for t, _, _ in sub.messages if t.endswith("/config")]) >= 2 * before,
                10,
                what="discovery republished",
            )
        finally:
            sub.close()


def test_pause_command_releases_the_camera_and_resumes(mosquitto, face_frames):
    sub = Subscriber(mosquitto.port, ["yuzug/test-cam/#"])
    try:
        with RunningApp(make_config(mosquitto.port, face_frames)) as app:
            wait_for(lambda: app.frames_analysed > 5, 30, what="frames analysed")
            sub.client.publish("yuzug/test-cam/pause/set", "ON", qos=1)
            sub.wait_payload("/pause", lambda p: p == "ON")
            sub.wait_payload("/state", lambda p: json.loads(p)["emotion"] == "paused")
            wait_for(lambda: app.capture.status == "paused", 5, what="camera released")
            frozen = app.frames_analysed
            threading.Event().wait(0.6)
            assert app.frames_analysed <= frozen + 1  # nothing analysed while paused
            sub.client.publish("yuzug/test-cam/pause/set", "OFF", qos=1)
            sub.wait_payload("/pause", lambda p: p == "OFF")
            wait_for(lambda: app.frames_analysed > frozen + 5, 15, what="analysis resumed")
    finally:
        sub.close()


def at_hour(hour: int) -> float:
    """A wall-clock time at ``hour`` local time (half past, on a day after the clock floor)."""
    return time.mktime((2026, 11, 28, hour, 30, 0, 0, 0, -1))


def test_privacy_hours_keep_the_camera_closed_whatever_the_switch_says(mosquitto, face_frames):
    """Inside privacy.off_hours the camera is never opened, from the start; the switch adds
    its own reason; the camera opens only when neither holds; the state, and Home Assistant's
    "Camera closed by" sensor rendered from it, say why."""
    sub = Subscriber(mosquitto.port, ["yuzug/test-cam/#", "homeassistant/sensor/+/closed_by/#"])
    running = RunningApp(make_config(mosquitto.port, face_frames, privacy={"off_hours": ["22-7"]}))
    now = [at_hour(23)]
    running.app.clock = lambda: now[0]  # the wall clock: the boundary a test must turn

    def then(action, paused_by: list[str]) -> dict:
        """Does ``action`` and returns the first state published after it with ``paused_by``."""
        since = utc_now()
        action()

        def said(payload: str) -> bool:
            state = json.loads(payload)
            return state["paused_by"] == paused_by and state["timestamp"] >= since

        state = json.loads(sub.wait_payload("/state", said))
        jsonschema.validate(state, SCHEMAS["state"])
        config = json.loads(sub.wait_payload("/closed_by/config", lambda p: True))
        shown = jinja2.Environment().from_string(config["value_template"]).render(value_json=state)
        assert shown == ("+".join(paused_by) or "open") and shown in config["options"]
        return state

    def switch(position: str):
        return lambda: sub.client.publish("yuzug/test-cam/pause/set", position, qos=1)

    def clock(seconds: float):
        return lambda: now.__setitem__(0, seconds)

    try:
        with running as app:
            closed = sub.wait_payload("/state", lambda p: json.loads(p)["camera"] == "paused")
            state = json.loads(closed)
            assert (state["emotion"], state["paused_by"]) == ("paused", ["privacy_hours"])
            threading.Event().wait(1.0)
            assert app.capture.frames == 0 and app.frames_analysed == 0  # never opened
            # The switch too, then the hours end: still closed, by the switch alone.
            then(switch("ON"), ["privacy_hours", "switch"])
            then(clock(at_hour(7)), ["switch"])
            assert app.frames_analysed == 0
            assert not then(switch("OFF"), [])["paused"]
            wait_for(lambda: app.frames_analysed > 5, 30, what="analysis after the hours")
            # The hours begin again: closed within a pass of the loop, whatever the switch says.
            assert then(clock(at_hour(22)), ["privacy_hours"])["emotion"] == "paused"
            wait_for(lambda: app.capture.status == "paused", 5, what="camera released")
            frozen = app.frames_analysed
            threading.Event().wait(0.6)
            assert app.frames_analysed <= frozen + 1
            # A clock that was never set (a Pi without a battery, before NTP): closed too.
            then(clock(at_hour(12)), [])
            then(clock(time.mktime((1970, 1, 2, 12, 0, 0, 0, 0, -1))), ["privacy_hours"])
            assert app.pause_note == "privacy hours 22-7 (the clock is not set yet)"
    finally:
        sub.close()


def test_home_assistant_names_the_entities_in_the_devices_language(mosquitto, face_frames):
    """``suggestions.language = "tr"``: Turkish entity names beside the Turkish suggestions,
    and the entity ids Home Assistant would make of the English ones."""
    config = make_config(mosquitto.port, face_frames, suggestions={"language": "tr"})
    sub = Subscriber(mosquitto.port, ["homeassistant/#"])
    try:
        with RunningApp(config):
            emotion = json.loads(sub.wait_payload("/emotion/config", lambda p: True, 15))
            jsonschema.validate(emotion, SCHEMAS["discovery"])
            assert emotion["name"] == "Duygu"
            assert emotion["default_entity_id"] == "sensor.yuzug_test_cam_emotion"
            pause = json.loads(sub.wait_payload("/pause/config", lambda p: True, 5))
            assert pause["name"] == "Analizi duraklat"
            assert pause["default_entity_id"] == "switch.yuzug_test_cam_pause_analysis"
    finally:
        sub.close()


def available(config: dict, state: dict) -> bool:
    """Whether Home Assistant shows the entity of discovery ``config`` as available while the
    daemon is online and its retained state is ``state`` (availability_mode all)."""
    if "availability" not in config:
        assert config["availability_topic"] == "yuzug/test-cam/availability"
        return True
    online, condition = config["availability"]
    assert config["availability_mode"] == "all"
    assert (online["topic"], condition["topic"]) == ("yuzug/test-cam/availability", STATE_TOPIC)
    rendered = jinja2.Environment().from_string(condition["value_template"])
    return rendered.render(value_json=state) == "online"


STATE_TOPIC = "yuzug/test-cam/state"


def test_home_assistant_buttons_fit_the_model_to_the_person_in_view(
    mosquitto, face_frames, tmp_path, caplog
):
    """With a personalization file configured, discovery adds a button per face and one to
    forget; pressing one (its own payload) records, refits and shows in the state."""
    personal = tmp_path / "personal.json"
    config = make_config(mosquitto.port, face_frames, classifier={"personal_file": str(personal)})
    sub = Subscriber(mosquitto.port, ["yuzug/test-cam/#", "homeassistant/#"])
    running = RunningApp(config)
    try:
        with running as app:
            wait_for(lambda: app.frames_analysed > 5, 30, what="frames analysed")
            state = json.loads(sub.wait_payload("/state", lambda p: True, 5))
            jsonschema.validate(state, SCHEMAS["state"])
            assert state["personal"] == "off"
            wait_for(
                lambda: (
                    len([t for t, _, _ in sub.messages if "/button/yuzug_test_cam/fit_" in t]) == 5
                ),
                10,
                what="the fit buttons discovered",
            )
            configs = {t: json.loads(p) for t, p, _ in sub.messages if t.endswith("/config")}
            for payload in configs.values():
                jsonschema.validate(payload, SCHEMAS["discovery"])
            buttons = {
                key: p
                for t, p in configs.items()
                if t.split("/")[1] == "button" and (key := t.split("/")[-2]).startswith("fit_")
            }
            assert [b["name"] for b in buttons.values()] == [
                "Fit to me: relaxed face",
                "Fit to me: angry face",
                "Fit to me: happy face",
                "Fit to me: sad face",
                "Forget the fit",
            ]
            assert {b["command_topic"] for b in buttons.values()} == {"yuzug/test-cam/personal/set"}
            fit = configs["homeassistant/sensor/yuzug_test_cam/fit/config"]
            shown = jinja2.Environment().from_string(fit["value_template"]).render

            caplog.set_level(logging.WARNING)
            sub.client.publish("yuzug/test-cam/personal/set", "record happy", qos=1)
            wait_for(lambda: "personalization command" in caplog.text, 5, what="refusal logged")
            # Pressing "happy" (5 s to get ready, then 8 s of the happy faces the camera shows)
            # fits and applies.
            assert json.loads(buttons["fit_happy"]["payload_press"]) == {
                "record": "happy",
                "seconds": 8,
                "delay": 5,
            }
            sub.client.publish(
                "yuzug/test-cam/personal/set", buttons["fit_happy"]["payload_press"], qos=1
            )
            recording = sub.wait_payload(
                "/state", lambda p: json.loads(p)["personal"] == "recording", 5
            )
            assert shown(value_json=json.loads(recording)) == "recording"
            # Home Assistant greys the recording buttons out while one runs (the daemon would
            # refuse a second) and while the camera is closed; "forget" stays.
            before = state  # personal "off", a face in view
            assert available(buttons["fit_sad"], before)
            assert not available(buttons["fit_sad"], json.loads(recording))
            assert not available(buttons["fit_none"], {**before, "emotion": "paused"})
            assert available(buttons["fit_forget"], json.loads(recording))
            done = sub.wait_payload("/state", lambda p: json.loads(p)["personal"] == "on", 30)
            jsonschema.validate(json.loads(done), SCHEMAS["state"])
            assert personal.exists() and app.classifier.offsets is not None
            assert (
                app.recorder.last["label"] == "happy" and app.recorder.last["faces"]["happy"] > 20
            )

            seen = len(sub.payloads("/state"))
            sub.client.publish(
                "yuzug/test-cam/personal/set", buttons["fit_forget"]["payload_press"], qos=1
            )
            wait_for(
                lambda: any(
                    json.loads(p)["personal"] == "off" for p in sub.payloads("/state")[seen:]
                ),
                5,
                what="the fit forgotten",
            )
            assert not personal.exists() and app.classifier.offsets is None
        assert running.code == 0
    finally:
        sub.close()


def test_home_assistant_buttons_give_another_suggestion_and_drop_one_for_good(
    mosquitto, fer_zip, tmp_path, caplog
):
    """Another suggestion comes at once despite the cooldown; "not for me" drops the shown one,
    gives another and keeps the drop across a restart; "bring back" undoes it."""
    happy_frames = tmp_path / "frames"  # a happy face all along: the buttons act on "happy"
    faces = fer_faces(fer_zip, ["happy"], 2)
    write_folder(scripted_frames(faces, [Segment("happy", 2)] * 2, 10), happy_frames)
    catalogue = tmp_path / "ideas.toml"
    catalogue.write_text(
        "".join(f'[[happy]]\nid = "{i}"\ntext = "Idea {i}."\n' for i in ("a", "b", "c"))
    )
    dismissed = tmp_path / "state" / "dismissed-suggestions.json"
    config = make_config(
        mosquitto.port,
        happy_frames,
        suggestions={"catalogue": str(catalogue), "dismissed_file": str(dismissed)},
    )
    sub = Subscriber(mosquitto.port, ["yuzug/test-cam/#", "homeassistant/button/#"])

    def press(button: dict) -> dict:
        """Presses ``button``; the first happy state with a suggestion published after it."""
        seen = len(sub.payloads("/state"))
        sub.client.publish(button["command_topic"], button["payload_press"], qos=1)

        def answered() -> dict | None:
            after = [json.loads(p) for p in sub.payloads("/state")[seen:]]
            return next((s for s in after if s["emotion"] == "happy" and s["suggestion"]), None)

        return wait_for(answered, 10, what=f"the state after {button['name']}")

    try:
        with RunningApp(config) as app:
            wait_for(
                lambda: len([t for t, _, _ in sub.messages if "/suggestion_" in t]) == 3,
                10,
                what="the suggestion buttons discovered",
            )
            buttons = {
                t.split("/")[-2]: json.loads(p) for t, p, _ in sub.messages if "/suggestion_" in t
            }
            for payload in buttons.values():
                jsonschema.validate(payload, SCHEMAS["discovery"])
            assert [b["name"] for b in buttons.values()] == [
                "Another suggestion",
                "Not for me",
                "Bring back dismissed suggestions",
            ]
            assert {b["command_topic"] for b in buttons.values()} == {
                "yuzug/test-cam/suggestion/set"
            }
            # Happy came with a suggestion; the default cooldown (300 s) holds back the next
            # unasked one, but "Another suggestion" gives one at once.
            first = json.loads(
                sub.wait_payload("/state", lambda p: json.loads(p)["emotion"] == "happy", 20)
            )["suggestion"]["id"]
            state = press(buttons["suggestion_next"])
            jsonschema.validate(state, SCHEMAS["state"])
            # Greyed out in Home Assistant where the daemon would refuse them: another one
            # with no emotion that has suggestions, "not for me" with none shown.
            nobody = {**state, "emotion": "no_face", "suggestion": None}
            assert available(buttons["suggestion_next"], state)
            assert not available(buttons["suggestion_next"], nobody)
            assert not available(buttons["suggestion_next"], {**state, "emotion": "sad"})
            assert available(buttons["suggestion_dismiss"], state)
            assert not available(buttons["suggestion_dismiss"], nobody)
            assert available(buttons["suggestion_restore"], nobody)
            second = state["suggestion"]["id"]
            assert second != first
            assert press(buttons["suggestion_dismiss"])["suggestion"]["id"] != second
            assert json.loads(dismissed.read_text())["dismissed"] == [second]
            assert app.suggestions_view()["dismissed"] == 1
            caplog.set_level(logging.WARNING)
            sub.client.publish("yuzug/test-cam/suggestion/set", '{"dismiss": "zzz"}', qos=1)
            wait_for(lambda: "no suggestion has the id 'zzz'" in caplog.text, 5, what="refusal")
        # After a restart the dismissed one is still never given, asked for as often as may be.
        with RunningApp(config) as app:
            wait_for(lambda: app.frames_analysed > 0, 20, what="frames analysed")
            assert app.picker.dismissed == {second}
            given = {app.picker.pick("happy", float(i), asked=True).id for i in range(12)}
            assert given == {"a", "b", "c"} - {second}
            press(buttons["suggestion_restore"])
            assert not dismissed.exists() and app.picker.dismissed == set()
    finally:
        sub.close()


def test_the_mood_diary_counts_todays_minutes_for_home_assistant_across_a_restart(
    mosquitto, face_frames, tmp_path
):
    """Happy for two seconds, nobody for one, over and over: the diary topic and the sensors
    Home Assistant builds from it count the happy time, not the empty room's; a restart goes on
    from the file the stop wrote."""
    path = tmp_path / "state" / "mood-diary.json"
    config = make_config(mosquitto.port, face_frames, diary={"file": str(path)})
    sub = Subscriber(mosquitto.port, ["yuzug/test-cam/diary", "homeassistant/sensor/#"])
    try:
        with RunningApp(config):
            wait_for(
                lambda: any(
                    json.loads(p)["seconds"].get("happy", 0) > 2 for p in sub.payloads("/diary")
                ),
                30,
                what="two happy seconds in the diary",
            )
            sensors = {
                t.split("/")[-2]: json.loads(p)
                for t, p, _ in sub.messages
                if t.endswith("_today/config")
            }
            assert sorted(sensors) == ["angry_today", "happy_today", "sad_today", "seen_today"]
        diary = json.loads(sub.payloads("/diary")[-1])
        jsonschema.validate(diary, SCHEMAS["diary"])
        assert diary["date"] == date.today().isoformat()
        assert "no_face" not in diary["seconds"] and diary["seen_seconds"] > 2
        assert sum(diary["shares"].values()) == pytest.approx(1, abs=1e-3)
        for payload in sensors.values():
            jsonschema.validate(payload, SCHEMAS["discovery"])
            assert payload["state_topic"] == "yuzug/test-cam/diary"
        render = jinja2.Environment().from_string
        happy = float(render(sensors["happy_today"]["value_template"]).render(value_json=diary))
        assert happy == round(diary["seconds"]["happy"] / 60, 1)
        assert render(sensors["angry_today"]["value_template"]).render(value_json=diary) in (
            "0.0",
            str(round(diary["seconds"].get("angry", 0) / 60, 1)),
        )
        # The stop wrote the day so far (not only the last once-a-minute save).
        saved = json.loads(path.read_text())["days"][date.today().isoformat()]
        assert saved["happy"] >= diary["seconds"]["happy"]
        seen = len(sub.payloads("/diary"))
        with RunningApp(config):
            wait_for(lambda: len(sub.payloads("/diary")) > seen + 1, 10, what="diary again")
        after = json.loads(sub.payloads("/diary")[-1])
        assert after["seconds"]["happy"] >= saved["happy"]
    finally:
        sub.close()


def test_the_privacy_switch_survives_a_restart(mosquitto, face_frames, tmp_path):
    """Paused, then restarted (a reboot, a power cut, a watchdog restart): the camera must stay
    off from the first moment, not wait for the broker, and the switch must still read ON."""
    pause_file = tmp_path / "state" / "privacy-pause"
    config = make_config(mosquitto.port, face_frames, mqtt={"pause_file": str(pause_file)})
    with RunningApp(config) as app:
        wait_for(lambda: app.frames_analysed > 0, 30, what="frames analysed")
        app.publisher.set_paused(True)  # as the pause/set command does
    assert pause_file.read_text() == "ON\n"

    sub = Subscriber(mosquitto.port, ["yuzug/test-cam/#"])
    try:
        with RunningApp(config) as app:
            wait_for(lambda: app.capture is not None, 10, what="capture started")
            assert app.paused.is_set()
            wait_for(lambda: app.capture.status == "paused", 5, what="camera reported paused")
            sub.wait_payload("/state", lambda p: json.loads(p)["emotion"] == "paused")
            # The retained ON from before, then the new start's own: not reset to OFF.
            wait_for(lambda: len(sub.payloads("/pause")) >= 2, 10, what="the switch announced")
            assert set(sub.payloads("/pause")) == {"ON"}
            threading.Event().wait(0.5)
            assert app.frames_analysed == 0  # the camera was never read
            sub.client.publish("yuzug/test-cam/pause/set", "OFF", qos=1)
            wait_for(lambda: app.frames_analysed > 0, 15, what="analysis resumed")
    finally:
        sub.close()
    assert pause_file.read_text() == "OFF\n"
    with RunningApp(config) as app:
        wait_for(lambda: app.frames_analysed > 0, 30, what="frames analysed after resuming")


def test_last_will_reports_a_killed_daemon_offline(mosquitto, face_frames, tmp_path):
    config = tmp_path / "edge.toml"
    config.write_text(
        'device_id = "killed"\n'
        f'[camera]\ntype = "folder"\npath = "{face_frames}"\nloop = true\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\nkeepalive = 5\n'
    )
    sub = Subscriber(mosquitto.port, ["yuzug/killed/availability"])
    daemon = subprocess.Popen(
        [sys.executable, "-m", "edge", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        sub.wait_payload("/availability", lambda p: p == "online", 30)
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(10)
        sub.wait_payload("/availability", lambda p: p == "offline", 15)
    finally:
        if daemon.poll() is None:
            daemon.kill()
        sub.close()


def test_events_queued_while_broker_is_down_arrive_after_restart(mosquitto):
    from edge.config import MQTTConfig

    config = MQTTConfig(
        host="127.0.0.1",
        port=mosquitto.port,
        queue_limit=10,
        reconnect_min_seconds=1,
        reconnect_max_seconds=2,
        discovery=False,
    )
    # A persistent subscriber keeps its subscription in the broker across the restart.
    sub = Subscriber(
        mosquitto.port, ["yuzug/queue/event"], client_id="persistent-sub", persistent=True
    )
    publisher = MQTTPublisher(config, "queue")
    publisher.start()
    try:
        assert publisher.wait_connected(10)
        publisher.publish_event({"sequence": 0})
        sub.wait_payload("/event", lambda p: json.loads(p)["sequence"] == 0)
        mosquitto.stop()  # graceful: Mosquitto saves the subscriber's session
        wait_for(lambda: not publisher.connected.is_set(), 10, what="publisher to notice")
        for sequence in range(1, 16):  # 15 events into a queue of 10: 5 oldest dropped
            publisher.publish_event({"sequence": sequence})
        assert publisher.counters["events_dropped"] == 5
        assert publisher.counters["events_pending"] == 10
        mosquitto.start()
        wait_for(lambda: len(sub.payloads("/event")) >= 11, 30, what="queued events delivered")
        received = [json.loads(p)["sequence"] for p in sub.payloads("/event")]
        assert received[0] == 0 and sorted(set(received[1:])) == list(range(6, 16))
        assert publisher.counters["events_pending"] == 0
    finally:
        publisher.close()
        sub.close()


def test_events_still_queued_at_shutdown_are_reported_not_silently_lost(caplog):
    from edge.config import MQTTConfig

    config = MQTTConfig(host="127.0.0.1", port=free_port(), discovery=False)
    publisher = MQTTPublisher(config, "lost")
    publisher.start()
    for sequence in range(3):
        publisher.publish_event({"sequence": sequence})
    caplog.set_level(logging.WARNING)
    publisher.close()
    lost = [r.getMessage() for r in caplog.records if "not delivered" in r.getMessage()]
    assert len(lost) == 1 and lost[0].startswith("MQTT: 3 queued events"), lost


def test_a_refused_login_backs_off_and_is_not_a_line_per_retry(tmp_path: Path, caplog):
    # After a refused CONNACK paho disconnects, and the backoff was started afresh on every
    # disconnect: a wrong password meant a login attempt, and an ERROR line, every second.
    from edge.config import MQTTConfig

    broker, port = broker_with_login(tmp_path / "login", "cam", "right-pass")
    config = MQTTConfig(
        host="127.0.0.1",
        port=port,
        username="cam",
        password="wrong-pass",
        discovery=False,
        reconnect_min_seconds=1,
        reconnect_max_seconds=60,
    )
    caplog.set_level(logging.WARNING)
    publisher = MQTTPublisher(config, "refused")
    try:
        publisher.start()
        wait_for(lambda: publisher.counters["connect_failures"] >= 1, 10, what="a refusal")
        time.sleep(9)
        attempts = publisher.counters["connect_failures"]
    finally:
        publisher.close()
        broker.stop()
    # Delays of 1-2, 2-4, 4-8 s: at most four attempts in about nine seconds (nine or ten
    # without the backoff).
    assert 2 <= attempts <= 4, attempts
    refusals = [
        r.getMessage() for r in caplog.records if "refused the connection" in r.getMessage()
    ]
    assert len(refusals) == 1 and "Not authorized" in refusals[0], refusals
    assert "wrong-pass" not in caplog.text


def test_unreachable_broker_at_start_keeps_analysing(face_frames, caplog):
    port = free_port()  # nothing listens here
    caplog.set_level(logging.WARNING)
    with RunningApp(make_config(port, face_frames)) as app:
        wait_for(lambda: app.frames_analysed > 20, 30, what="analysis without a broker")
        wait_for(
            lambda: app.publisher.counters["connect_failures"] >= 3,
            30,
            what="three connection failures counted",
        )
        assert not app.publisher.connected.is_set()
        assert app.publisher.last_error
    # One warning with the cause for the first failure, not a line per retry (paho's own
    # "Client is not connected" ERROR on each one is filtered out).
    lines = [r.getMessage() for r in caplog.records if "MQTT" in r.getMessage() or r.name == "paho"]
    # (and at shutdown, one line for the events that never reached a broker).
    assert len(lines) == 2 and "cannot connect" in lines[0] and "1 attempts" in lines[0], lines
    assert "events were not delivered" in lines[1], lines


def test_password_is_never_logged(mosquitto, face_frames, tmp_path):
    config = tmp_path / "edge.toml"
    config.write_text(
        f'[camera]\ntype = "folder"\npath = "{face_frames}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\nusername = "cam"\n'
    )
    secret = "hunter2-very-secret"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge",
            "--log-level",
            "DEBUG",
            "run",
            "--config",
            str(config),
            "--max-frames",
            "15",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "YUZUG_MQTT_PASSWORD": secret},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert secret not in result.stderr + result.stdout
    validated = subprocess.run(
        [sys.executable, "-m", "edge", "validate-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "YUZUG_MQTT_PASSWORD": secret},
    )
    assert validated.returncode == 0
    assert secret not in validated.stdout + validated.stderr
    assert json.loads(validated.stdout)["mqtt"]["password"] == "********"


def test_watch_says_when_the_broker_is_away_and_when_it_is_back(mosquitto):
    mosquitto.stop()
    status, out = io.StringIO(), io.StringIO()
    watcher = Watcher(MQTTConfig(host="127.0.0.1", port=mosquitto.port), out=out, status=status)
    watcher.start()
    try:
        wait_for(lambda: "cannot connect" in status.getvalue(), 15, what="failure reported")
        assert "broker unreachable" in status.getvalue()
        mosquitto.start()
        wait_for(watcher.subscribed.is_set, 30, what="subscribed once the broker is back")
        wait_for(lambda: status.getvalue().endswith("connected\n"), 5, what="recovery said")
        mosquitto.stop()
        wait_for(lambda: "lost the broker" in status.getvalue(), 15, what="loss reported")
    finally:
        watcher.stop()
    # Retries in between are not a line each.
    assert status.getvalue().count("cannot connect") == 1, status.getvalue()


def test_an_exception_in_a_callback_is_logged_and_the_client_goes_on(mosquitto, caplog):
    # Every YUZUG client (daemon, watch, doctor, deploy) comes from make_client.
    from edge.publish.mqtt import make_client

    received: list[bytes] = []

    def on_message(client, userdata, message) -> None:
        received.append(message.payload)
        if message.payload == b"first":
            raise RuntimeError("a bug in a callback")

    client = make_client(MQTTConfig(host="127.0.0.1", port=mosquitto.port), client_id="")
    client.on_message = on_message
    subscribed = threading.Event()
    client.on_connect = lambda c, *a: c.subscribe("yuzug/test/#", qos=1)
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    try:
        wait_for(subscribed.is_set, 10, what="subscribed")
        for payload in ("first", "second"):
            client.publish("yuzug/test/x", payload, qos=1)
        wait_for(lambda: received == [b"first", b"second"], 10, what="both messages")
    finally:
        client.disconnect()
        client.loop_stop()
    assert "a bug in a callback" in caplog.text


def test_watch_says_when_the_model_is_fitted_to_a_person_or_the_camera_closed():
    from edge.watch import describe

    state = {"emotion": "sad", "confidence": 0.8, "faces": 1, "camera": "ok"}
    plain = describe("yuzug/cam/state", json.dumps(state), "yuzug")
    assert plain is not None and plain.endswith("state sad 80%, 1 face, camera ok")
    for fit in ("recording", "on", "not_applied"):
        line = describe("yuzug/cam/state", json.dumps({**state, "personal": fit}), "yuzug")
        assert line is not None and line.endswith(f"camera ok, fit to a person: {fit}")
    closed = {**state, "emotion": "paused", "camera": "paused", "paused_by": ["privacy_hours"]}
    line = describe("yuzug/cam/state", json.dumps(closed), "yuzug")
    assert line is not None and line.endswith("camera paused, closed by the privacy hours")
    both = describe(
        "yuzug/cam/state", json.dumps({**closed, "paused_by": ["privacy_hours", "switch"]}), "yuzug"
    )
    assert both is not None and both.endswith("closed by the privacy hours and the privacy switch")


def watched(port: int, messages: list[tuple[str, str]], last: str) -> list[str]:
    """The lines ``yuzug-edge watch`` prints for ``messages`` sent through a real broker, once
    it has printed ``last``."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    out = io.StringIO()
    watcher = Watcher(MQTTConfig(host="127.0.0.1", port=port), out=out)
    watcher.start()
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2)
    try:
        wait_for(watcher.subscribed.is_set, 15, what="subscribed")
        publisher.connect("127.0.0.1", port)
        publisher.loop_start()
        for topic, payload in messages:
            publisher.publish(topic, payload, qos=1).wait_for_publish(5)
        wait_for(lambda: last in out.getvalue(), 10, what=last)
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        watcher.stop()
    return out.getvalue().splitlines()


def test_watch_shows_a_foreign_payload_as_it_came_and_keeps_watching(mosquitto):
    # A payload of another publisher or version (a confidence that is no number, a suggestion
    # that is a string) raised inside paho's callback, which ended its network thread: the
    # watch went on running and printed nothing more.
    lines = watched(
        mosquitto.port,
        [
            ("yuzug/cam/event", '{"emotion": "happy", "confidence": "high"}'),
            ("yuzug/cam/event", '{"emotion": "sad", "confidence": 0.7, "suggestion": "walk"}'),
            ("yuzug/cam/state", '{"emotion": "sad", "confidence": null}'),
            ("yuzug/cam/event", '{"previous": "sad", "emotion": "angry", "confidence": 0.9}'),
        ],
        last="EVENT sad -> angry (90%)",
    )
    assert any(
        line.endswith('cam          event: {"emotion": "happy", "confidence": "high"}')
        for line in lines
    ), lines
    assert any(line.endswith('state: {"emotion": "sad", "confidence": null}') for line in lines)


def test_watch_shows_a_suggestion_asked_for_which_only_the_state_carries(mosquitto):
    def state(text: str | None) -> str:
        suggestion = {"id": text, "text": text} if text else None
        return json.dumps(
            {
                "emotion": "sad",
                "confidence": 0.8,
                "faces": 1,
                "camera": "ok",
                "suggestion": suggestion,
            }
        )

    event = {"previous": "happy", "emotion": "sad", "confidence": 0.8}
    lines = watched(
        mosquitto.port,
        [
            ("yuzug/cam/event", json.dumps({**event, "suggestion": {"id": "a", "text": "Walk."}})),
            ("yuzug/cam/state", state("Walk.")),  # the event's: said already
            ("yuzug/cam/state", state("Call a friend.")),  # "another": the state alone has it
            ("yuzug/cam/state", state("Call a friend.")),
            ("yuzug/cam/state", state(None)),
            ("yuzug/cam/event", json.dumps({**event, "previous": "sad", "emotion": "angry"})),
        ],
        last="EVENT sad -> angry",
    )
    shown = [line.strip() for line in lines if "suggestion:" in line]
    assert shown == ["suggestion: Walk.", "suggestion: Call a friend."], lines


def test_watch_logs_in_with_a_daemons_config_and_fails_when_it_never_gets_in(tmp_path: Path):
    # Home Assistant's Mosquitto add-on needs a login; watch used to connect anonymously only.
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    broker, port = broker_with_login(tmp_path / "login", "cam", "right-pass")
    config = tmp_path / "edge.toml"
    config.write_text(
        f'device_id = "kitchen"\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\nusername = "cam"\n'
        'topic_prefix = "home"\n'
    )

    def watch(password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edge", "watch", "--config", str(config), "--seconds", "4"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "YUZUG_MQTT_PASSWORD": password},
        )

    try:
        publisher = mqtt.Client(CallbackAPIVersion.VERSION2)
        publisher.username_pw_set("cam", "right-pass")
        publisher.connect("127.0.0.1", port)
        publisher.loop_start()
        for device in ("kitchen", "hall"):
            publisher.publish(f"home/{device}/availability", "online", qos=1, retain=True)
            publisher.publish(f"yuzug/{device}/availability", "offline", qos=1, retain=True)
        publisher.disconnect()
        publisher.loop_stop()

        allowed = watch("right-pass")
        assert allowed.returncode == 0, allowed.stderr
        lines = allowed.stdout.splitlines()
        # The config's prefix and device: the other device and the other prefix stay out.
        assert len(lines) == 1 and lines[0].split()[1:] == ["kitchen", "is", "online"], lines
        assert "right-pass" not in allowed.stdout + allowed.stderr

        refused = watch("wrong-pass")
        assert refused.returncode == 1 and refused.stdout == ""
        assert "the broker refused cam: Not authorized" in refused.stderr, refused.stderr
        assert refused.stderr.rstrip().endswith(f"never subscribed on 127.0.0.1:{port}")
        assert "wrong-pass" not in refused.stderr
    finally:
        broker.stop()


def test_a_wall_clock_jump_does_not_make_a_fresh_frame_look_stale(face_frames, monkeypatch):
    # A Pi without a real-time clock boots with an old time and NTP moves it months ahead.
    import time

    config = make_config(free_port(), face_frames, mqtt={"enabled": False})
    with RunningApp(config) as app:
        wait_for(lambda: app.frames_analysed > 5, 30, what="frames analysed")
        real_time = time.time
        monkeypatch.setattr(time, "time", lambda: real_time() + 180 * 86400)
        health = app.health()
        assert health["last_frame_age_s"] is not None and health["last_frame_age_s"] < 5
        assert "no recent frame" not in health["problems"] and health["status"] == "ok"
