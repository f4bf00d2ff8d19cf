"""Command-line helpers shared by yuzug-edge, yuzug-deploy and yuzug-train: argparse types
that refuse a bad value with the option's name (exit 2) before any work starts."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from edge.config import parse_broker


def broker_argument(text: str) -> str:
    """argparse ``type=`` for ``--broker``: refuses a bad address with the option's name."""
    try:
        parse_broker(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


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
