"""Options every YUZUG command line shares behave alike in all three: a bad value is refused
by name with exit 2 before any work, never a traceback."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest


def parsers() -> dict[str, Callable[[], argparse.ArgumentParser]]:
    from deploy.__main__ import build_parser as deploy
    from edge.__main__ import build_parser as edge
    from trainer.__main__ import build_parser as trainer

    return {"edge": edge, "deploy": deploy, "trainer": trainer}


COMMANDS = {
    "edge": [["--log-level", "{level}", "validate-config"]],
    "deploy": [["--log-level", "{level}", "status", "pi@kitchen.local"]],
    "trainer": [
        ["prepare", "faces.zip", "--run", "r", "--log-level", "{level}"],
        ["audit", "faces.zip", "--model", "m", "--out", "o", "--log-level", "{level}"],
    ],
}


@pytest.mark.parametrize("tool", sorted(COMMANDS))
def test_log_level_is_checked_and_case_free_in_every_cli(tool: str, capsys):
    parser = parsers()[tool]()
    for command in COMMANDS[tool]:
        # Before, logging.setLevel raised "ValueError: Unknown level: 'LOUD'" at set-up.
        with pytest.raises(SystemExit) as refused:
            parser.parse_args([part.format(level="LOUD") for part in command])
        assert refused.value.code == 2
        err = capsys.readouterr().err
        assert "argument --log-level: 'LOUD' is not one of DEBUG, INFO, WARNING, ERROR" in err
        parsed = parser.parse_args([part.format(level="debug") for part in command])
        assert parsed.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        (["prepare", "faces.zip", "--run", "{bad}"], "--run"),
        (["run", "faces.zip", "--out", "{bad}"], "--run"),
        (["audit", "faces.zip", "--model", "m", "--out", "{bad}"], "--out"),
        (["shard", "--run", "r", "--shards", "{bad}"], "--shards"),
    ],
)
def test_an_output_folder_that_cannot_be_made_is_said_before_any_work(
    tmp_path, command: list[str], flag: str, capsys
):
    from trainer.__main__ import main

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    bad = blocker / "out"
    # Were NotADirectoryError tracebacks, after the audit's minutes of scoring.
    assert main([part.format(bad=bad) for part in command]) == 2
    assert f"{flag} {bad}: cannot be made (Not a directory)" in capsys.readouterr().err


@pytest.mark.parametrize("tool", ["edge", "deploy", "trainer"])
def test_every_subcommand_a_parser_offers_has_a_handler(tool: str):
    # `yuzug-deploy confirm` was offered, documented and used by the Ansible playbook, and
    # ended in a KeyError traceback: it had no entry in the dispatch table.
    import importlib

    module = importlib.import_module(f"{tool}.__main__")
    parser = parsers()[tool]()
    (subparsers,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    offered = set(subparsers.choices)
    assert len(offered) >= 5
    assert offered == set(module.COMMANDS), tool


@pytest.mark.parametrize(
    ("tool", "command"),
    [
        ("deploy", ["push", "--model", "models/default", "pi@kitchen.local"]),
        ("deploy", ["rollback", "pi@kitchen.local"]),
        ("edge", ["watch"]),
    ],
)
def test_an_unreadable_ca_file_is_named_by_its_flag(
    tmp_path, tool: str, command: list[str], capsys
):
    # It surfaced later as "mqtt.ca_file: cannot read ...", a key the user never typed.
    missing = tmp_path / "ca.crt"
    parser = parsers()[tool]()
    with pytest.raises(SystemExit) as refused:
        parser.parse_args([*command, "--broker", "ha.local", "--mqtt-ca-file", str(missing)])
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --mqtt-ca-file: cannot read {missing} (No such file or directory)" in err
    missing.write_text("-----BEGIN CERTIFICATE-----\n")
    parsed = parser.parse_args([*command, "--broker", "ha.local", "--mqtt-ca-file", str(missing)])
    assert parsed.mqtt_ca_file == missing
