"""Pure logic of the daemon: tracking, hysteresis, suggestions, config validation, frame slot."""

from __future__ import annotations

import random
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edge.camera.base import Frame
from edge.config import load_config, parse_config, redacted
from edge.errors import ConfigError
from edge.history import MAX_EVENTS, MoodEvent, MoodHistory
from edge.pipeline import LatestFrameSlot
from edge.suggestions import (
    Suggestion,
    SuggestionPicker,
    load_catalogue,
    load_dismissed,
    save_dismissed,
)
from edge.tracking import NO_FACE, NONE, EmotionState, FaceTracker

LABELS = ["angry", "happy", "sad"]
HAPPY = np.array([[0.1, 0.8, 0.1]], np.float32)
SAD = np.array([[0.1, 0.1, 0.8]], np.float32)


def test_tracker_keeps_identity_and_smooths():
    tracker = FaceTracker(smoothing=0.5, iou_threshold=0.3, timeout_seconds=1.0)
    (first,) = tracker.update([(100, 100, 50, 50)], HAPPY, now=0.0)
    (second,) = tracker.update([(104, 102, 50, 50)], SAD, now=0.1)
    assert second.id == first.id and second.hits == 2
    np.testing.assert_allclose(second.scores, [0.1, 0.45, 0.45])
    far = tracker.update([(400, 300, 50, 50)], HAPPY, now=0.2)
    assert far[0].id != first.id
    tracker.update([], np.zeros((0, 3)), now=5.0)
    assert tracker.tracks == []


def test_tracker_orders_largest_face_first():
    tracker = FaceTracker(0.5, 0.3, 1.0)
    tracks = tracker.update([(0, 0, 20, 20), (100, 100, 80, 80)], np.vstack([HAPPY, SAD]), 0.0)
    assert tracks[0].box == (100, 100, 80, 80)


def _state(**kw) -> EmotionState:
    defaults = {
        "labels": LABELS,
        "min_confidence": 0.5,
        "stable_seconds": 1.0,
        "no_face_seconds": 2.0,
    }
    return EmotionState(**{**defaults, **kw})


def _track(scores: np.ndarray):
    tracker = FaceTracker(1.0, 0.3, 10)
    return tracker.update([(0, 0, 10, 10)], scores, 0.0)[0]


def test_one_frame_flicker_is_never_an_event():
    state = _state()
    happy, sad = _track(HAPPY), _track(SAD)
    assert state.observe(happy, 0.0) is None
    change = state.observe(happy, 1.0)
    assert change is not None and change.emotion == "happy" and change.previous == NO_FACE
    assert state.observe(sad, 1.1) is None  # one sad frame
    assert state.observe(happy, 1.2) is None
    assert state.observe(happy, 3.0) is None
    assert state.current == "happy"
    assert state.observe(sad, 3.1) is None
    change = state.observe(sad, 4.2)
    assert change.emotion == "sad" and change.previous == "happy"


def test_low_confidence_and_abstain_are_none_and_no_face_waits():
    state = _state(abstain_label="sad")
    unsure = _track(np.array([[0.4, 0.35, 0.25]], np.float32))
    state.observe(unsure, 0.0)
    assert state.observe(unsure, 1.5).emotion == NONE
    abstain = _track(SAD)
    state.observe(abstain, 2.0)
    assert state.current == NONE
    assert state.observe(None, 3.0) is None  # a face missed for a moment is not gone
    assert state.observe(None, 4.1).emotion == NO_FACE


def test_suggestions_do_not_repeat_until_all_used_and_respect_cooldown():
    items = [Suggestion(str(i), f"s{i}") for i in range(4)]
    picker = SuggestionPicker({"happy": items}, cooldown_seconds=10, rng=random.Random(1))
    first_round = [picker.pick("happy", now=i * 10.0).id for i in range(4)]
    assert sorted(first_round) == ["0", "1", "2", "3"]
    assert picker.pick("happy", now=35.0) is None  # 5 s after the last one: cooling down
    fifth = picker.pick("happy", now=50.0)
    assert fifth is not None and fifth.id != first_round[-1]
    assert picker.pick("unknown", now=100.0) is None


def test_the_suggestion_cooldown_is_per_emotion():
    catalogue = {
        e: [Suggestion(f"{e}{i}", f"{e} idea {i}") for i in range(3)] for e in ("happy", "sad")
    }
    picker = SuggestionPicker(catalogue, cooldown_seconds=300, rng=random.Random(2))
    happy = picker.pick("happy", now=0.0)
    sad = picker.pick("sad", now=20.0)  # a change of mood is when an idea helps: not held back
    assert happy is not None and sad is not None and sad.id.startswith("sad")
    assert picker.pick("happy", now=40.0) is None  # flickering back: happy is cooling down
    assert picker.cooldown_left("happy", 40.0) == 260.0
    assert picker.latest("happy") == happy and picker.latest("sad") == sad
    assert picker.latest("angry") is None
    assert picker.pick("happy", now=300.0) is not None


def test_the_live_view_shows_the_suggestion_of_the_current_emotion():
    from edge.app import EdgeApp

    app = EdgeApp(
        parse_config({"mqtt": {"enabled": False}, "suggestions": {"cooldown_seconds": 300}})
    )
    app.init_suggestions()
    app.state = EmotionState(["angry", "happy", "sad"], 0.5, 1.0, 1.0)
    for emotion in ("happy", "sad", "happy"):  # the second happy falls in happy's cooldown
        app.state.current = emotion
        app._emit_event(emotion, "none", 0.9)
        shown = app.view_state()["suggestion"]
        assert shown == app.current_suggestion() and shown is not None
        assert shown["text"] in {s.text for s in app.picker.catalogue[emotion]}, (emotion, shown)
    app.state.current = NO_FACE
    assert app.view_state()["suggestion"] is None


def test_the_mood_timeline_keeps_one_sample_a_second_within_its_window():
    history = MoodHistory(seconds=60)
    for tenth in range(50):  # 5 s at 10 frames a second: happy, then sad from 3.0 s
        history.record(100 + tenth / 10, "happy" if tenth < 30 else "sad", 0.5 + tenth / 100)
    samples = history.snapshot(now=105.0)["samples"]
    # One per second, the last value within each second; oldest first, as ages.
    assert samples == [
        [5.0, "happy", 0.59],
        [4.0, "happy", 0.69],
        [3.0, "happy", 0.79],
        [2.0, "sad", 0.89],
        [1.0, "sad", 0.99],
    ]
    # A minute later the first three seconds have left the 60-second window.
    assert [age for age, _, _ in history.snapshot(now=162.5)["samples"]] == [59.5, 58.5]


def test_the_mood_timeline_keeps_the_latest_changes_newest_first():
    history = MoodHistory(seconds=600)
    for n in range(MAX_EVENTS + 5):
        history.add_event(
            MoodEvent(float(n), "sad", "happy", 0.8, f"idea {n}" if n % 2 == 0 else None)
        )
    events = history.snapshot(now=float(MAX_EVENTS + 5))["events"]
    assert len(events) == MAX_EVENTS
    assert [e["age"] for e in events] == [float(a) for a in range(1, MAX_EVENTS + 1)]
    assert events[0] == {
        "age": 1.0,
        "emotion": "sad",
        "previous": "happy",
        "confidence": 0.8,
        "suggestion": f"idea {MAX_EVENTS + 4}",
    }
    assert events[1]["suggestion"] is None
    assert history.snapshot(now=10_000.0)["events"] == []  # all older than the window


def test_suggestions_keep_to_the_hours_they_suit(tmp_path: Path):
    walk = Suggestion("walk", "A walk in daylight.", (7, 20))
    music = Suggestion("music", "A comforting playlist.")
    night = Suggestion("stars", "Look at the stars.", (22, 4))  # past midnight
    picker = SuggestionPicker({"sad": [walk, music, night]}, 0, rng=random.Random(3))
    clock = iter(range(100))
    at = {
        hour: {picker.pick("sad", next(clock), hour).id for _ in range(12)} for hour in (23, 2, 12)
    }
    assert at == {23: {"music", "stars"}, 2: {"music", "stars"}, 12: {"walk", "music"}}
    picker = SuggestionPicker({"sad": [walk]}, 0)
    assert picker.pick("sad", 0.0, 21) is None  # nothing suits: no suggestion, not a bad one
    assert picker.pick("sad", 1.0, None) == walk  # no clock: any
    # In a file: "from-to"; a wrong one is named.
    path = tmp_path / "mine.toml"
    path.write_text('[[sad]]\nid = "walk"\ntext = "Walk."\nhours = "7-20"\n')
    assert load_catalogue("en", path)["sad"][0].hours == (7, 20)
    for wrong in ('"morning"', '"7-25"', '"6-6"', "7"):
        path.write_text(f'[[sad]]\nid = "walk"\ntext = "Walk."\nhours = {wrong}\n')
        with pytest.raises(ConfigError, match=r"sad\[0\]: hours"):
            load_catalogue("en", path)
    # The shipped catalogues keep walks to the day in both languages.
    for language in ("en", "tr"):
        catalogue = load_catalogue(language)
        walks = [s for s in catalogue["sad"] if s.id == "walk"]
        assert walks and not walks[0].fits(23) and walks[0].fits(12), language


def test_asked_for_another_the_picker_skips_the_cooldown_and_never_gives_a_dismissed_one():
    walk, music, call = (Suggestion(i, i.title()) for i in ("walk", "music", "call"))
    catalogue = {"sad": [walk, music, call], "angry": [walk, call]}
    picker = SuggestionPicker(catalogue, cooldown_seconds=300, rng=random.Random(5))
    first = picker.pick("sad", now=0.0)
    assert picker.pick("sad", now=1.0) is None  # unasked: the cooldown holds
    again = picker.pick("sad", now=2.0, asked=True)  # asked: another one at once
    assert again is not None and again != first and picker.latest("sad") == again
    assert picker.cooldown_left("sad", 2.0) == 300.0  # and the cooldown starts over
    # "Not for me": gone from every emotion that has it, and no longer shown as the latest.
    had_it = sorted(emotion for emotion, items in catalogue.items() if again in items)
    assert sorted(picker.dismiss(again.id)) == had_it
    assert picker.latest("sad") is None
    given = {picker.pick("sad", now=10.0 + i, asked=True).id for i in range(12)}
    assert again.id not in given and len(given) == 2
    with pytest.raises(KeyError):
        picker.dismiss("no-such-idea")
    for other in given:
        picker.dismiss(other)
    assert picker.pick("sad", now=50.0, asked=True) is None  # all dismissed: none, not a bad one
    assert picker.restore() == 3 and picker.pick("sad", now=60.0, asked=True) is not None
    # Ids from a file that the catalogue no longer has are dropped.
    assert SuggestionPicker(catalogue, 0, dismissed={"walk", "gone"}).dismissed == {"walk"}


def test_dismissed_suggestions_are_kept_on_disk_and_a_damaged_file_is_not_fatal(
    tmp_path: Path, caplog
):
    path = tmp_path / "state" / "dismissed-suggestions.json"
    assert load_dismissed(path) == set() and load_dismissed(None) == set()
    save_dismissed(path, {"walk", "call"})
    assert load_dismissed(path) == {"walk", "call"}
    assert not list(path.parent.glob("*.tmp"))  # written whole, then renamed
    save_dismissed(path, set())
    assert not path.exists()  # nothing dismissed: no file
    for damaged in ('{"dismissed": "walk"}', "[1, 2]", '{"dismissed": [1]', b"\xff\xfe"):
        if isinstance(damaged, bytes):
            path.write_bytes(damaged)
        else:
            path.write_text(damaged)
        caplog.clear()
        assert load_dismissed(path) == set()
        assert "no suggestion is dismissed" in caplog.text, damaged


def test_builtin_catalogues_cover_the_three_emotions_in_both_languages():
    english, turkish = load_catalogue("en"), load_catalogue("tr")
    for catalogue in (english, turkish):
        assert {"happy", "sad", "angry"} <= set(catalogue)
        assert all(len(v) >= 3 for v in catalogue.values())
    assert [s.id for s in english["sad"]] == [s.id for s in turkish["sad"]]
    assert english["sad"][0].text != turkish["sad"][0].text


def test_user_catalogue_errors_name_the_key(tmp_path: Path):
    bad = tmp_path / "mine.json"
    bad.write_text('{"happy": []}')
    with pytest.raises(ConfigError, match="suggestions.catalogue"):
        load_catalogue("en", bad)
    bad.write_text('["Sing", "Jump"]')  # was an AttributeError traceback at start-up
    with pytest.raises(ConfigError, match="expected a table of emotion"):
        load_catalogue("en", bad)
    good = tmp_path / "mine.toml"
    good.write_text('happy = ["Sing", "Jump"]\n')
    assert [s.text for s in load_catalogue("en", good)["happy"]] == ["Sing", "Jump"]


def test_config_errors_name_the_key(tmp_path: Path):
    path = tmp_path / "edge.toml"
    path.write_text(
        textwrap.dedent("""
        device_id = "Kitchen Cam"
        [camera]
        type = "opencv"
        fps = -5
        [mqtt]
        port = 70000
        colour = "blue"
    """)
    )
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    for key in ("device_id", "camera.fps", "mqtt.port", "mqtt.colour"):
        assert key in message
    path.write_text("[camera\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_secret_comes_from_environment_or_credentials(tmp_path: Path):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt_password").write_text("from-systemd\n")
    config = parse_config(
        {"mqtt": {"username": "cam"}}, environ={"CREDENTIALS_DIRECTORY": str(creds)}
    )
    assert config.mqtt.password.get_secret_value() == "from-systemd"
    assert "from-systemd" not in repr(config) and "from-systemd" not in str(redacted(config))
    env = parse_config({"mqtt": {"username": "cam"}}, environ={"YUZUG_MQTT_PASSWORD": "x"})
    assert env.mqtt.password.get_secret_value() == "x"
    with pytest.raises(ConfigError, match="username"):
        parse_config({}, environ={"YUZUG_MQTT_PASSWORD": "x"})


def test_an_empty_credential_is_no_secret(tmp_path: Path):
    # install.sh makes an empty mqtt_password for an anonymous broker (LoadCredential= needs
    # the file); the service then refused to start: "a password needs mqtt.username".
    for name in ("mqtt_password", "http_token", "http_password"):
        (tmp_path / name).write_text("\n" if name == "http_token" else "")
    config = parse_config({}, environ={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert config.mqtt.password is None and config.http.token is None
    with pytest.raises(ConfigError, match="http_password"):
        parse_config(
            {"http": {"username": "cam"}}, environ={"CREDENTIALS_DIRECTORY": str(tmp_path)}
        )


def test_a_credential_that_is_not_utf8_is_named_not_a_traceback(tmp_path: Path):
    (tmp_path / "mqtt_password").write_bytes(b"p\xe4ss\n")  # written from a Latin-1 terminal
    with pytest.raises(ConfigError, match="cannot read systemd credential .*mqtt_password"):
        parse_config(
            {"mqtt": {"username": "cam"}}, environ={"CREDENTIALS_DIRECTORY": str(tmp_path)}
        )


def test_world_readable_password_file_is_warned_about(tmp_path: Path, caplog):
    path = tmp_path / "edge.toml"
    path.write_text('[mqtt]\nusername = "cam"\npassword = "inline"\n')
    path.chmod(0o644)
    load_config(path, environ={})
    assert "readable by other users" in caplog.text
    assert "inline" not in caplog.text


def test_example_config_is_valid():
    root = Path(__file__).resolve().parents[2]
    config = load_config(root / "edge.example.toml", environ={})
    assert config.camera.type == "opencv"


def test_latest_frame_slot_drops_and_counts():
    slot = LatestFrameSlot()
    for index in range(5):
        slot.put(Frame(image=np.zeros((2, 2), np.uint8), index=index))
    frame = slot.get(timeout=0.1)
    assert frame.index == 4 and slot.dropped == 4
    assert slot.get(timeout=0.05) is None


def test_password_from_environment_draws_no_inline_password_warning(
    tmp_path: Path, caplog, monkeypatch
):
    from argparse import Namespace

    from edge.app import resolve_config

    path = tmp_path / "edge.toml"
    path.write_text('[mqtt]\nusername = "cam"\n')
    path.chmod(0o644)
    monkeypatch.setenv("YUZUG_MQTT_PASSWORD", "from-env")
    arguments = Namespace(config=path, source=None, model=None, broker="10.0.0.2:1884")
    config = resolve_config(arguments)
    assert config.mqtt.password.get_secret_value() == "from-env"
    assert (config.mqtt.host, config.mqtt.port) == ("10.0.0.2", 1884)
    assert "set in the file" not in caplog.text and "readable" not in caplog.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("broker.lan", ("broker.lan", 1883)),
        ("broker.lan:8883", ("broker.lan", 8883)),
        ("10.0.0.2:1", ("10.0.0.2", 1)),
        ("[fd00::2]:1884", ("fd00::2", 1884)),
        ("[::1]", ("::1", 1883)),
        ("fd00::2", ("fd00::2", 1883)),
    ],
)
def test_a_broker_address_is_host_and_port(text: str, expected: tuple[str, int]):
    from edge.config import format_broker, parse_broker

    assert parse_broker(text) == expected
    assert parse_broker(format_broker(*expected)) == expected  # what logs show reads back


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("broker.lan:mqtt", "port 'mqtt'"),
        ("broker.lan:0", "port '0'"),
        ("broker.lan:65536", "port '65536'"),
        (":1883", "names no host"),
        ("::::", "nor an IPv6 address"),
        ("[fd00::2]1884", "[IPv6]:port"),
    ],
)
def test_a_bad_broker_address_is_refused_with_why(text: str, why: str):
    from edge.config import parse_broker

    with pytest.raises(ValueError, match=re.escape(why)):
        parse_broker(text)


@pytest.mark.parametrize(
    "command",
    [
        ["watch", "--broker", "ha.local:18830x"],
        ["demo", "--broker", "ha.local:-1"],
        ["run", "--broker", ":1883"],
        ["validate-config", "--broker", "a:b:c"],
    ],
)
def test_every_broker_option_refuses_a_bad_address_naming_it(command: list[str], capsys):
    # Each used to split host:port itself; watch and demo crashed with a ValueError traceback.
    from edge.__main__ import main

    with pytest.raises(SystemExit) as stopped:
        main(command)
    assert stopped.value.code == 2
    assert "argument --broker:" in capsys.readouterr().err


def test_broker_override_keeps_the_config_port_when_none_is_given(tmp_path: Path):
    from argparse import Namespace

    from edge.app import resolve_config

    path = tmp_path / "edge.toml"
    path.write_text("[mqtt]\nport = 8883\n")
    arguments = Namespace(config=path, source=None, model=None, broker="[fd00::2]")
    config = resolve_config(arguments)
    assert (config.mqtt.host, config.mqtt.port) == ("fd00::2", 8883)


@pytest.mark.parametrize(
    ("command", "named"),
    [
        (["demo", "--fps", "0"], "--fps must be above 0"),  # was a ZeroDivisionError
        (["watch", "--seconds", "-1"], "--seconds must be at least 0"),
        (["classify", "--threads", "0", "x.jpg"], "--threads must be at least 1"),
        (["run", "--max-frames", "ten"], "--max-frames takes a whole number"),
        # Would subscribe to yuzug//... or to a device id no edge.toml can have: silence.
        (["watch", "--prefix", "yuzug/"], "argument --prefix: must be topic levels"),
        (["watch", "--device", "Kitchen"], "argument --device: device id 'Kitchen'"),
    ],
)
def test_edge_options_are_checked_naming_the_flag(command: list[str], named: str, capsys):
    from edge.__main__ import main

    with pytest.raises(SystemExit) as stopped:
        main(command)
    assert stopped.value.code == 2
    assert named in capsys.readouterr().err


def test_a_camera_or_detector_table_without_type_is_the_default_kind(tmp_path: Path):
    # It was "camera: Unable to extract tag using discriminator 'type'".
    path = tmp_path / "edge.toml"
    path.write_text('[camera]\nsource = "/dev/video1"\n[detector]\nmin_score = 0.6\n')
    config = load_config(path)
    assert (config.camera.type, config.camera.source) == ("opencv", "/dev/video1")
    assert (config.detector.type, config.detector.min_score) == ("blazeface", 0.6)
    path.write_text("[camera]\nfps = -1\n")
    with pytest.raises(ConfigError, match=r"camera\.fps: Input should be greater than 0"):
        load_config(path)
    path.write_text('[camera]\ntype = "usb"\n')
    with pytest.raises(ConfigError, match="'opencv', 'picamera2', 'folder'"):
        load_config(path)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "without a leading, trailing or doubled '/'"),
        ("homeassistant/", "without a leading, trailing or doubled '/'"),  # -> "ha//sensor/..."
        ("/yuzug", "without a leading, trailing or doubled '/'"),
        ("home//yuzug", "without a leading, trailing or doubled '/'"),
        ("yuzug/+", "must not contain the MQTT wildcards"),
        ("a/#", "must not contain the MQTT wildcards"),
    ],
)
def test_topic_prefixes_that_would_publish_where_nobody_listens_are_refused(value: str, why: str):
    for key in ("topic_prefix", "discovery_prefix"):
        named = rf"mqtt\.{key}: Value error, .*{re.escape(why)}.* \(got '{re.escape(value)}'\)"
        with pytest.raises(ConfigError, match=named):
            parse_config({"mqtt": {key: value}})
    nested = parse_config({"mqtt": {"topic_prefix": "home/cams", "discovery_prefix": "ha"}})
    assert (nested.mqtt.topic_prefix, nested.mqtt.discovery_prefix) == ("home/cams", "ha")


def test_validate_config_warns_of_files_that_are_not_on_this_machine(tmp_path: Path, capsys):
    from edge.__main__ import main

    catalogue = tmp_path / "ideas.toml"
    catalogue.write_text("")
    path = tmp_path / "edge.toml"
    path.write_text(
        f'[camera]\nsource = "{tmp_path / "clip.mp4"}"\n'
        f'[classifier]\nmodel = "{tmp_path / "models" / "current"}"\n'
        f'[suggestions]\ncatalogue = "{catalogue}"\n'
        f'[mqtt]\ntls = true\nca_file = "{tmp_path / "ca.crt"}"\n'
    )
    assert main(["validate-config", "--config", str(path)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"warning: camera.source: {tmp_path / 'clip.mp4'} does not exist on this machine",
        f"warning: classifier.model: {tmp_path / 'models' / 'current'} does not exist on this "
        "machine",
        f"warning: mqtt.ca_file: {tmp_path / 'ca.crt'} does not exist on this machine",
        "configuration is valid (3 files not here)",
    ]
    # A camera index, a /dev node or a URL is not a file to look for.
    for source in ("2", "/dev/video9", "rtsp://cam.local/stream"):
        path.write_text(f'[camera]\nsource = "{source}"\n')
        assert main(["validate-config", "--config", str(path)]) == 0
        assert capsys.readouterr().err.splitlines() == ["configuration is valid"]


def test_a_negative_camera_index_or_an_empty_source_is_refused():
    with pytest.raises(
        ConfigError, match=r"camera\.source: Value error, a camera index is 0 or more"
    ):
        parse_config({"camera": {"source": -3}})
    with pytest.raises(ConfigError, match=r"camera\.source: Value error, is empty"):
        parse_config({"camera": {"source": " "}})
    assert parse_config({"camera": {"source": 2}}).camera.source == 2


@pytest.mark.parametrize(
    ("http", "url"),
    [
        ({"enabled": False, "host": "0.0.0.0"}, None),
        ({"enabled": True}, None),  # loopback only: nothing to link to from elsewhere
        ({"enabled": True, "host": "0.0.0.0", "username": "me"}, "http://kitchen-pi.local:8080/"),
        ({"enabled": True, "host": "192.168.1.20", "username": "me"}, "http://192.168.1.20:8080/"),
        ({"enabled": True, "host": "fd00::20", "username": "me"}, "http://[fd00::20]:8080/"),
        ({"enabled": True, "public_url": "https://cam.example/"}, "https://cam.example/"),
    ],
)
def test_the_live_view_url_home_assistant_links_to(http: dict, url: str | None):
    from edge.config import HTTPConfig, live_view_url

    assert live_view_url(HTTPConfig(**http), 8080, hostname="kitchen-pi.lan") == url


def test_a_public_url_that_is_not_http_is_refused_by_name():
    with pytest.raises(ConfigError, match="http.public_url"):
        parse_config({"http": {"public_url": "kitchen.local:8080"}}, "test")


def test_asking_for_another_suggestion_says_why_when_there_is_none(tmp_path: Path):
    from edge.app import EdgeApp
    from edge.errors import CommandRefused

    catalogue = tmp_path / "ideas.toml"
    catalogue.write_text('[[happy]]\nid = "only"\ntext = "The only idea."\n')
    app = EdgeApp(
        parse_config({"mqtt": {"enabled": False}, "suggestions": {"catalogue": str(catalogue)}})
    )
    app.init_suggestions()
    app.state = EmotionState(["angry", "happy", "sad"], 0.5, 1.0, 1.0)
    app.state.current = NO_FACE
    # The live page greys "another" out while nothing can be suggested, and says a refusal
    # by its code in its own language.
    assert app.suggestions_view()["askable"] is False
    with pytest.raises(CommandRefused, match="nothing to suggest for 'no_face'") as refused:
        app.suggestion_command({"next": True})
    assert refused.value.code == "nothing_to_suggest"
    with pytest.raises(CommandRefused, match="no suggestion is shown for 'no_face'") as refused:
        app.suggestion_command({"dismiss": True})
    assert refused.value.code == "nothing_shown"
    with pytest.raises(CommandRefused, match="no suggestion has the id 'zzz'") as refused:
        app.suggestion_command({"dismiss": "zzz"})
    assert refused.value.code == "unknown_suggestion"
    app.state.current = "happy"
    assert app.suggestions_view()["askable"] is True
    app._emit_event("happy", "none", 0.9)
    with pytest.raises(CommandRefused, match="no other suggestion for 'happy'") as refused:
        app.suggestion_command({"next": True})  # the same one again is no other
    assert refused.value.code == "no_other_suggestion"
    assert app.suggestion_command({"dismiss": True}) == {
        "current": None,
        "askable": True,
        "dismissed": 1,
    }
    with pytest.raises(CommandRefused, match="no other suggestion for 'happy'"):
        app.suggestion_command({"next": True})
    app.paused.set()
    assert app.reported_emotion == "paused" and app.suggestions_view()["askable"] is False
    app.paused.clear()
    assert app.suggestion_command({"restore": True})["dismissed"] == 0
    assert app.suggestion_command({"next": True})["current"]["id"] == "only"  # back again
    for malformed in ({"next": False}, {"dismiss": 1}, {"skip": True}, {}, "next"):
        with pytest.raises(ValueError):
            app.suggestion_command(malformed)


def discovery_of(
    labels: list[str], device: str = "kitchen", language: str = "en"
) -> list[tuple[str, dict]]:
    """Every discovery config of a device whose model has ``labels`` (``none`` the abstain
    label), with the fit buttons and the diary."""
    from edge.publish.payloads import Topics, discovery_messages

    return discovery_messages(
        topics=Topics("yuzug", device),
        discovery_prefix="homeassistant",
        emotions=[label for label in labels if label != "none"],
        model_version="m",
        software_version="s",
        fit_labels=labels,
        diary=True,
        language=language,
    )


def test_discovery_keys_stay_valid_topics_for_labels_of_any_folder_name():
    import jinja2

    messages = discovery_of(["Very happy", "sad/tired", "none"], device="cam")
    topics = [topic for topic, _ in messages]
    assert all(re.fullmatch(r"[a-z0-9_/]+", t) for t in topics), topics
    assert len(set(topics)) == len(topics)
    assert "homeassistant/sensor/yuzug_cam/very_happy_today/config" in topics
    assert "homeassistant/button/yuzug_cam/fit_sad_tired/config" in topics
    sensor = dict(messages)["homeassistant/sensor/yuzug_cam/very_happy_today/config"]
    shown = jinja2.Environment().from_string(sensor["value_template"])
    assert shown.render(value_json={"seconds": {"Very happy": 150.0}}) == "2.5"
    assert shown.render(value_json={"seconds": {}}) == "0.0"
    # Home Assistant would make these ids of the names itself; the discovery says them.
    ids = {config["default_entity_id"] for _, config in messages}
    assert "sensor.yuzug_cam_very_happy_today" in ids
    assert "button.yuzug_cam_fit_to_me_sad_tired_face" in ids
    accented = {
        c["default_entity_id"] for _, c in discovery_of(["Çok mutlu", "Kızgın", "none"], "cam")
    }
    assert {"sensor.yuzug_cam_cok_mutlu_today", "sensor.yuzug_cam_kizgin_today"} <= accented


def test_home_assistant_names_follow_the_device_language_and_the_entity_ids_stay_english():
    labels = ["angry", "happy", "sad", "none"]
    english, turkish = dict(discovery_of(labels)), dict(discovery_of(labels, language="tr"))
    assert english.keys() == turkish.keys()
    for topic, config in english.items():
        other = turkish[topic]
        assert other["unique_id"] == config["unique_id"]
        assert other["default_entity_id"] == config["default_entity_id"], topic
        assert other["name"] != config["name"], f"{config['name']!r} has no Turkish name"
    names = {topic.split("/")[-2]: config["name"] for topic, config in turkish.items()}
    assert names["emotion"] == "Duygu" and names["suggestion_dismiss"] == "Bana göre değil"
    assert names["fit_none"] == "Bana uyarla: rahat yüz"
    assert names["fit_sad"] == "Bana uyarla: üzgün yüz"
    assert names["happy_today"] == "Bugün mutlu"
    # The English ids are those Home Assistant makes of "YUZUG kitchen" and the entity's name
    # (lower case, every run of other characters one "_"), and the ones the docs' dashboard
    # and automation use.
    by_key = {topic.split("/")[-2]: config for topic, config in english.items()}
    assert by_key["emotion"]["default_entity_id"] == "sensor.yuzug_kitchen_emotion"
    assert by_key["fit_none"]["default_entity_id"] == "button.yuzug_kitchen_fit_to_me_relaxed_face"
    docs = (Path(__file__).resolve().parents[2] / "docs/mqtt.md").read_text()
    used = set(re.findall(r"\b(?:sensor|event|button|switch)\.yuzug_kitchen_\w+", docs))
    assert used and used <= {config["default_entity_id"] for config in english.values()}, used
