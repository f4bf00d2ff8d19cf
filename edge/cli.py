"""Command-line helpers shared by yuzug-edge, yuzug-deploy and yuzug-train: argparse types
that refuse a bad value with the option's name (exit 2) before any work starts."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from edge.config import (
    MQTTConfig,
    check_device_id,
    check_topic_prefix,
    parse_broker,
    read_secret_password,
    unreadable,
)


def checked_argument(check: Callable[[str], object]) -> Callable[[str], str]:
    """An argparse ``type=`` that keeps the text but refuses it, with the option's name (exit
    2), when ``check`` raises ValueError: the same check the config files get."""

    def parse(text: str) -> str:
        try:
            check(text)
        except ValueError as exc:
            message = str(exc)
            if text not in message:
                message += f" (got {text!r})"
            raise argparse.ArgumentTypeError(message) from None
        return text

    return parse


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def log_level_argument(text: str) -> str:
    """argparse ``type=`` for ``--log-level``: any case, refused by name (logging raised a
    ValueError traceback at set-up)."""
    level = text.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


broker_argument = checked_argument(parse_broker)
topic_prefix_argument = checked_argument(check_topic_prefix)
device_id_argument = checked_argument(check_device_id)


def number_argument(
    flag: str,
    cast: Callable[[str], float] = float,
    *,
    at_least: float | None = None,
    above: float | None = None,
    below: float | None = None,
    at_most: float | None = None,
) -> Callable[[str], float]:
    """An argparse type that refuses a value out of range, naming the flag (an --epochs 0 or a
    --val-fraction 1.5 would otherwise run, and overwrite a run directory with nothing)."""

    def parse(text: str) -> float:
        try:
            value = cast(text)
        except ValueError:
            kind = "a whole number" if cast is int else "a number"
            raise argparse.ArgumentTypeError(f"{flag} takes {kind}, got {text}") from None
        low_ok = (at_least is None or value >= at_least) and (above is None or value > above)
        high_ok = (below is None or value < below) and (at_most is None or value <= at_most)
        if not (low_ok and high_ok):
            bounds = [
                f"{word} {bound:g}"
                for word, bound in (
                    ("at least", at_least),
                    ("above", above),
                    ("below", below),
                    ("at most", at_most),
                )
                if bound is not None
            ]
            raise argparse.ArgumentTypeError(f"{flag} must be {' and '.join(bounds)}, got {text}")
        return value

    return parse


def readable_file(text: str) -> Path:
    """An argparse ``type=`` for a file the tool reads: refused with the option's name (exit 2)
    when it cannot be opened, instead of a later error under a config key the user never
    typed."""
    why = unreadable(text)
    if why:
        raise argparse.ArgumentTypeError(f"cannot read {text} ({why})")
    return Path(text)


def add_mqtt_login_arguments(parser: argparse.ArgumentParser) -> None:
    """``--mqtt-username``/``--mqtt-tls``/``--mqtt-ca-file``, named as the config keys they
    set: a broker that asks for a login (Home Assistant's Mosquitto add-on does) refuses an
    anonymous client, so every tool that subscribes must be able to log in as the daemon does.
    The password is never a flag (it would sit in shell history and ``ps``)."""
    parser.add_argument(
        "--mqtt-username", help="broker user; the password is read from $YUZUG_MQTT_PASSWORD"
    )
    parser.add_argument("--mqtt-tls", action="store_true", help="connect to the broker with TLS")
    parser.add_argument(
        "--mqtt-ca-file", type=readable_file, help="CA bundle for the broker's certificate"
    )


def mqtt_login(
    host: str,
    port: int,
    username: str | None = None,
    tls: bool = False,
    ca_file: Path | None = None,
    base: MQTTConfig | None = None,
) -> MQTTConfig:
    """The broker settings a subscribing tool connects with: ``base`` (a daemon's config, if
    any) with the given host, port and login on top; the password from the environment."""
    settings = base.model_dump() if base is not None else {}
    settings.update(host=host, port=port)
    if username:
        settings.update(username=username, password=read_secret_password())
    if tls or ca_file:
        settings["tls"] = True
    if ca_file:
        settings["ca_file"] = ca_file
    return MQTTConfig.model_validate(settings)


class TerminalProgress:
    """A running count redrawn on one line of ``stream`` at most every ``interval`` seconds,
    and only when it is a terminal: a pipe or a log file gets none of it."""

    def __init__(self, label: str, stream: TextIO, interval: float = 0.5) -> None:
        self.label, self.stream, self.interval = label, stream, interval
        self.enabled = stream.isatty()
        self._shown_at: float | None = None

    def update(self, done: int, what: str) -> None:
        now = time.monotonic()
        if self.enabled and (self._shown_at is None or now - self._shown_at >= self.interval):
            self._shown_at = now
            print(f"\r{self.label}: {done:,} {what}…", end="", file=self.stream, flush=True)

    def close(self) -> None:
        if self._shown_at is not None:
            print("\r\033[K", end="", file=self.stream, flush=True)  # the summary line follows
