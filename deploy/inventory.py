"""The device list: hosts on the command line, or an inventory TOML (devices.example.toml)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def load_inventory(path: Path, overrides: dict[str, Any]) -> tuple[list[Device], dict[str, Any]]:
    """Reads ``[defaults]`` and ``[[devices]]``; returns the devices and the defaults table."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read inventory: {exc}") from exc
    defaults = {
        **DEFAULTS,
        **data.get("defaults", {}),
        **{k: v for k, v in overrides.items() if v is not None},
    }
    devices = []
    for index, entry in enumerate(data.get("devices", [])):
        if "host" not in entry:
            raise ConfigError(f"{path}: devices[{index}].host is required")
        unknown = set(entry) - {"host", "device_id", "root", "restart_command", "keep"}
        if unknown:
            raise ConfigError(f"{path}: devices[{index}] has unknown keys {sorted(unknown)}")
        merged = {**defaults, **entry}
        devices.append(
            Device(
                host=entry["host"],
                device_id=entry.get("device_id") or device_id_for(entry["host"]),
                root=merged["root"],
                restart_command=merged["restart_command"],
                keep=int(merged["keep"]),
            )
        )
    if not devices:
        raise ConfigError(f"{path}: no [[devices]] listed")
    return devices, defaults
