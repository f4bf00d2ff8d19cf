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
