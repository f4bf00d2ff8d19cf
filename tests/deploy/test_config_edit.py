"""`yuzug-deploy config`'s line editor: keys changed in a device's own edge.toml, everything
else (comments, other keys, order) left as it was, and nothing written that the daemon would
refuse."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from deploy.__main__ import main
from deploy.configure import (
    describe_changes,
    edit_config,
    parse_set,
    parse_unset,
    read_settings,
)
from edge.config import validate_schema
from edge.errors import ConfigError

EXAMPLE = (Path(__file__).resolve().parents[2] / "edge.example.toml").read_text()


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    old, new = before.splitlines(), after.splitlines()
    return [line for line in old if line not in new], [line for line in new if line not in old]


def test_a_key_is_replaced_in_place_with_its_comment_and_nothing_else_moves():
    after = edit_config(
        EXAMPLE,
        [parse_set("classifier.max_fps=5"), parse_set("emotion.min_confidence=0.65")],
        "example",
    )
    removed, added = changed_lines(EXAMPLE, after)
    assert removed == [
        "max_fps = 0.0         # cap on analysed frames per second (0: as fast as frames come)",
        'min_confidence = 0.5      # below this the state is "none"',
    ]
    assert added == [
        "max_fps = 5           # cap on analysed frames per second (0: as fast as frames come)",
        'min_confidence = 0.65     # below this the state is "none"',
    ]
    config = validate_schema(tomllib.loads(after))
    assert (config.classifier.max_fps, config.emotion.min_confidence) == (5.0, 0.65)


def test_a_commented_out_default_is_followed_by_the_new_line_and_a_new_section_is_added():
    text = (
        'device_id = "kitchen"\n\n[classifier]\n'
        '# model = "/x"   # default: the shipped one\nmax_faces = 3\n'
    )
    after = edit_config(
        text,
        [
            parse_set("classifier.model=/var/lib/yuzug/models/current"),
            parse_set("diary.keep_days=30"),
        ],
        "t",
    )
    lines = after.splitlines()
    at = lines.index('# model = "/x"   # default: the shipped one')
    assert lines[at + 1] == 'model = "/var/lib/yuzug/models/current"'  # a bare word: a string
    assert lines[-2:] == ["[diary]", "keep_days = 30"]
    assert tomllib.loads(after)["device_id"] == "kitchen"


def test_unset_removes_the_key_so_its_default_applies():
    after = edit_config(EXAMPLE, [parse_unset("diary.keep_days")], "example")
    assert "keep_days" not in tomllib.loads(after)["diary"]
    assert describe_changes(EXAMPLE, [parse_unset("diary.keep_days")]) == (
        "diary.keep_days 60 -> (default)"
    )
    assert edit_config(EXAMPLE, [parse_unset("http.public_url")], "example") == EXAMPLE


def test_a_hash_inside_a_string_is_not_taken_for_a_comment():
    text = '[camera]\ntype = "opencv"\nsource = "rtsp://cam/#main"  # the hall camera\n'
    after = edit_config(text, [parse_set("camera.source=rtsp://cam/#sub")], "t")
    assert after.splitlines()[-1] == 'source = "rtsp://cam/#sub"   # the hall camera'
    assert tomllib.loads(after)["camera"]["source"] == "rtsp://cam/#sub"


@pytest.mark.parametrize(
    ("text", "edit", "named"),
    [
        (EXAMPLE, "camera.fps=-3", "camera.fps: Input should be greater than 0"),
        (EXAMPLE, "classifer.max_fps=5", "classifer: Extra inputs are not permitted"),
        (EXAMPLE, "camera.lores_width=320", "camera.lores_width: Extra inputs"),  # opencv's
        (EXAMPLE, "emotion.min_confidence=high", "emotion.min_confidence: Input should be"),
        # A value over several lines cannot be swapped line by line: refused, not mangled.
        ('[suggestions]\nlanguage = """\nen"""\n', "suggestions.language=tr", "line by line"),
        ("device_id = [\n", "log_level=INFO", "not valid TOML"),
    ],
)
def test_an_edit_the_daemon_would_refuse_is_refused_naming_the_key(text, edit, named):
    with pytest.raises(ConfigError) as refused:
        edit_config(text, [parse_set(edit)], "kitchen:/etc/yuzug/edge.toml")
    assert named in str(refused.value)
    assert "kitchen:/etc/yuzug/edge.toml" in str(refused.value)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--set", "device_id=hall"], "device_id cannot be changed"),
        (["--set", "mqtt.password=hunter2"], "secrets never go in edge.toml"),
        (["--set", "camera.fps"], "give KEY=VALUE"),
        (["--set", "a.b.c=1"], "give SECTION.KEY"),
        (["--set", "camera={fps = 2}"], "set the table's keys one by one"),
    ],
)
def test_the_cli_refuses_a_bad_edit_before_any_device_is_reached(argv, said, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["config", *argv, "unreachable-host"])
    assert exited.value.code == 2
    assert said in capsys.readouterr().err


def test_the_cli_wants_an_edit_and_each_key_once(capsys):
    assert main(["config", "unreachable-host"]) == 2
    assert "nothing to change" in capsys.readouterr().err
    twice = ["--set", "camera.fps=5", "--unset", "camera.fps", "unreachable-host"]
    assert main(["config", *twice]) == 2
    assert "camera.fps given more than once" in capsys.readouterr().err


def test_get_shows_what_the_daemon_uses_and_marks_defaults():
    text = '[camera]\ntype = "folder"\npath = "/frames"\n[emotion]\nmin_confidence = 0.65\n'
    keys = ["emotion.min_confidence", "classifier.max_fps", "camera.path", "device_id"]
    assert list(read_settings(text, keys, "hall").values()) == [
        "emotion.min_confidence = 0.65",
        "classifier.max_fps = 0.0 (default)",
        'camera.path = "/frames"',
        'device_id = "yuzug" (default)',
    ]
    with pytest.raises(ConfigError, match="hall: camera.lores_width is no setting here"):
        read_settings(text, ["camera.lores_width"], "hall")  # a picamera2 key, a folder camera


def test_get_does_not_mix_with_edits(capsys):
    assert main(["config", "--get", "device_id", "--set", "log_level=DEBUG", "h"]) == 2
    assert "--get only reads" in capsys.readouterr().err
