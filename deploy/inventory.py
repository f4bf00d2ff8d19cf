"""The device list: hosts on the command line, or an inventory TOML (devices.example.toml)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from edge.config import (
    DEVICE_ID_PATTERN,
    Strict,
    check_topic_prefix,
    describe_validation_error,
    parse_broker,
    unreadable,
)
from edge.errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "root": "/",
    "restart_command": "sudo systemctl restart yuzug-edge",
    "keep": 3,
}


@dataclass(frozen=True)
class Device:
    host: str
    device_id: str
    root: str
    restart_command: str
    keep: int


def device_id_for(host: str) -> str:
    """The daemon's default ``device_id`` for an ssh host: ``pi@kitchen.local`` -> ``kitchen``."""
    name = host.split("@")[-1].split(".")[0].lower()
    return re.sub(r"[^a-z0-9_-]", "-", name) or "yuzug"


def from_hosts(hosts: list[str], overrides: dict[str, Any]) -> list[Device]:
    settings = {**DEFAULTS, **{k: v for k, v in overrides.items() if v is not None}}
    return [
        Device(
            host=h,
            device_id=settings.get("device_id") or device_id_for(h),
            root=settings["root"],
            restart_command=settings["restart_command"],
            keep=int(settings["keep"]),
        )
        for h in hosts
    ]


class InventoryDefaults(Strict):
    """``[defaults]``: what every device gets unless its own entry says otherwise."""

    root: str = Field(DEFAULTS["root"], min_length=1)
    restart_command: str = DEFAULTS["restart_command"]
    keep: int = Field(DEFAULTS["keep"], ge=1)
    broker: str | None = None
    # The broker's login, as the devices' own mqtt.username / tls / ca_file; the password from
    # $YUZUG_MQTT_PASSWORD on the machine that deploys.
    mqtt_username: str | None = None
    mqtt_tls: bool = False
    mqtt_ca_file: Path | None = None
    topic_prefix: str = "yuzug"
    confirm_timeout: float = Field(60.0, gt=0)

    @field_validator("broker")
    @classmethod
    def _check_broker(cls, value: str | None) -> str | None:
        if value is not None:
            parse_broker(value)
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _check_topic_prefix(cls, value: str) -> str:
        return check_topic_prefix(value)


class InventoryDevice(Strict):
    """One ``[[devices]]`` entry."""

    host: str = Field(min_length=1)
    # As the device's edge.toml must spell it: another spelling is never confirmed.
    device_id: str | None = Field(None, pattern=DEVICE_ID_PATTERN)
    root: str | None = Field(None, min_length=1)
    restart_command: str | None = None
    keep: int | None = Field(None, ge=1)

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        if value.startswith("-"):
            raise ValueError("an ssh destination cannot start with '-' (ssh would read an option)")
        return value


class Inventory(Strict):
    defaults: InventoryDefaults = InventoryDefaults()
    devices: list[InventoryDevice] = Field(min_length=1)


def _beside(inventory: Path, ca_file: Path) -> Path:
    """``mqtt_ca_file`` as the inventory means it: a relative path is beside the inventory (the
    example's ``ca.crt``), not in whatever folder the command runs from; it must be readable."""
    resolved = ca_file if ca_file.is_absolute() else inventory.parent / ca_file
    why = unreadable(resolved)
    if why:
        raise ConfigError(f"{inventory}: defaults.mqtt_ca_file: cannot read {resolved} ({why})")
    return resolved


def load_inventory(path: Path, overrides: dict[str, Any]) -> tuple[list[Device], dict[str, Any]]:
    """Reads ``[defaults]`` and ``[[devices]]``; returns the devices and the defaults table.

    Raises:
        ConfigError: naming every wrong key (``devices.2.keep``), an unknown one (a typo in a
            key would otherwise be ignored), a missing ``[[devices]]`` or an unreadable
            ``mqtt_ca_file`` (a relative one is read beside the inventory).
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read inventory: {exc}") from exc
    try:
        inventory = Inventory.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, str(path), "inventory")) from None
    defaults = {
        **inventory.defaults.model_dump(),
        **{k: v for k, v in overrides.items() if v is not None},
    }
    if overrides.get("mqtt_ca_file") is None and inventory.defaults.mqtt_ca_file is not None:
        defaults["mqtt_ca_file"] = _beside(path, inventory.defaults.mqtt_ca_file)
    devices = []
    for entry in inventory.devices:
        own = entry.model_dump(exclude_none=True)
        merged = {**defaults, **own}
        devices.append(
            Device(
                host=entry.host,
                device_id=entry.device_id or device_id_for(entry.host),
                root=merged["root"],
                restart_command=merged["restart_command"],
                keep=int(merged["keep"]),
            )
        )
    return devices, defaults
