"""Spans of local hours, as config and catalogues write them: ``"7-21"``, ``"22-6"``."""

from __future__ import annotations

import re

HOURS = re.compile(r"^\s*(\d{1,2})\s*-\s*(\d{1,2})\s*$")


def parse_hours(text: object) -> tuple[int, int]:
    """``"7-21"`` -> ``(7, 21)``; ``"22-6"`` wraps past midnight.

    Raises:
        ValueError: not two hours from 0 to 24 that differ.
    """
    match = HOURS.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f'hours {text!r} must look like "7-21" (from-to, local time)')
    start, end = int(match[1]), int(match[2])
    if not (0 <= start <= 23 and 0 <= end <= 24 and start != end % 24):
        raise ValueError(f"hours {text!r} must be two different hours from 0 to 24")
    return start, end


def within(hour: int, span: tuple[int, int]) -> bool:
    """Whether ``hour`` (0-23) is in ``span``: start inclusive, end exclusive, wrapping."""
    start, end = span
    return start <= hour < end if start < end else hour >= start or hour < end
