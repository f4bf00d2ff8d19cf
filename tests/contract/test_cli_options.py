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
