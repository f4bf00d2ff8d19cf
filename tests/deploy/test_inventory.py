"""The fleet inventory (devices.toml) is validated once, every wrong key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.inventory import load_inventory
from edge.errors import ConfigError

EXAMPLE = Path(__file__).parents[2] / "deploy" / "devices.example.toml"


def test_the_example_inventory_loads_with_defaults_and_overrides():
    devices, defaults = load_inventory(EXAMPLE, {"keep": 5, "root": None})
    assert [d.host for d in devices] == ["pi@kitchen.local", "livingroom-pi"]
    assert [d.device_id for d in devices] == ["kitchen", "livingroom-pi"]
    assert {d.keep for d in devices} == {5}  # the command line wins over [defaults]
    assert defaults["broker"] == "homeassistant.local:1883" and defaults["confirm_timeout"] == 60


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("devices = 3", ["devices: Input should be a valid list"]),
        ("[defaults]\nkeep = 2", ["devices: Field required"]),
        ('[[devices]]\ndevice_id = "k"', ["devices.0.host: Field required"]),
        (
            '[defaults]\nrestart_comand = "true"\n[[devices]]\nhost = "a"\n'
            '[[devices]]\nhost = "b"\nkeep = 0',
            ["defaults.restart_comand: Extra inputs", "devices.1.keep: Input should be greater"],
        ),
        ('[[devices]]\nhost = "a"\nkeep = "many"', ["devices.0.keep: Input should be a valid int"]),
        (
            '[defaults]\nbroker = "ha.local:188300"\n[[devices]]\nhost = "a"',
            ["defaults.broker: Value error, port '188300' of 'ha.local:188300' is not a number"],
        ),
    ],
)
def test_a_wrong_inventory_names_every_bad_key(tmp_path: Path, text: str, named: list[str]):
    inventory = tmp_path / "devices.toml"
    inventory.write_text(text + "\n")
    with pytest.raises(ConfigError) as refused:
        load_inventory(inventory, {})
    message = str(refused.value)
    assert message.startswith(f"{inventory}: invalid inventory")
    for line in named:
        assert f"\n  {line}" in message, message


@pytest.mark.parametrize("command", ["push", "rollback", "status", "confirm"])
def test_deploy_refuses_a_bad_broker_address_before_anything_is_sent(command: str, capsys):
    from deploy.__main__ import main

    with pytest.raises(SystemExit) as stopped:
        main([command, "pi@kitchen.local", "--broker", "ha.local:mqtt"])
    assert stopped.value.code == 2
    assert "argument --broker: port 'mqtt'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--concurrency", "0"], "--concurrency must be at least 1"),
        (["--timeout", "-5"], "--timeout must be above 0"),
        (["--keep", "0"], "--keep must be at least 1"),
    ],
)
def test_deploy_numeric_options_are_range_checked(options: list[str], named: str, capsys):
    from deploy.__main__ import main

    with pytest.raises(SystemExit) as stopped:
        main(["push", "--model", "models/default", "pi@kitchen.local", *options])
    assert stopped.value.code == 2
    assert named in capsys.readouterr().err


def test_a_host_that_fails_gets_a_clean_table_row_and_exit_1(capsys):
    from deploy.__main__ import main

    assert main(["push", "--model", "models/default", "pi@yuzug-test.invalid"]) == 1
    header, row = capsys.readouterr().out.splitlines()[-2:]
    assert header.split() == ["HOST", "STATUS", "VERSION", "SECONDS", "DETAIL"]
    assert row.split()[:3] == ["pi@yuzug-test.invalid", "failed", "-"], row  # not "None"
    assert "ssh" in row and not row.endswith(" ")
