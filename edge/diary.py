"""The mood diary: for each local day, how long a face was in view and how long each emotion was
reported — "how was my week" as a bar per day on the live page and as minutes per emotion in
Home Assistant.

Only durations per label and day are kept (never a picture, a score or a time of day), in
``diary.file`` (under systemd ``$STATE_DIRECTORY/mood-diary.json``), written whole and synced
at most once a ``SAVE_SECONDS`` and at shutdown, so a power cut costs at most that much of the
day; ``diary.keep_days`` bounds it. Time without a face (``no_face``) or paused by the privacy
switch is not counted: the shares are of the time somebody was there.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from edge.publish.spool import replace_synced

logger = logging.getLogger(__name__)

SCHEMA = 1
SAVE_SECONDS = 60.0
MAX_STEP_SECONDS = 5.0  # a longer gap between two notes (a stalled loop) is not counted
NOT_COUNTED = ("no_face", "paused")


class MoodDiary:
    """Seconds per reported emotion per local day. Written by the analysis loop, read by the
    HTTP threads and MQTT publishing, hence the lock."""

    def __init__(self, path: Path | None, keep_days: int) -> None:
        self.path = path
        self.keep_days = keep_days
        self._days: dict[str, dict[str, float]] = self._load()
        self._lock = threading.Lock()
        self._last_note: tuple[float, str] | None = None
        self._last_save = 0.0
        self._dirty = False

    def _load(self) -> dict[str, dict[str, float]]:
        if self.path is None:
            return {}
        try:
            return read_days(self.path)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            # A damaged diary costs its past days, never the daemon's start; it is rewritten
            # at the next save (the damaged one kept beside it for a look).
            logger.warning("mood diary: cannot read %s (%s): starting a new one", self.path, exc)
            try:
                self.path.replace(self.path.with_name(self.path.name + ".damaged"))
            except OSError:
                pass
            return {}

    def note(self, now: float, today: date, emotion: str) -> None:
        """Notes that ``emotion`` is reported at monotonic ``now`` on ``today`` (the local
        date); the time since the previous note goes to the emotion reported then."""
        with self._lock:
            last, self._last_note = self._last_note, (now, emotion)
            if last is None or last[1] in NOT_COUNTED:
                return
            step = now - last[0]
            if not 0 < step <= MAX_STEP_SECONDS:
                return
            seconds = self._days.setdefault(today.isoformat(), {})
            seconds[last[1]] = seconds.get(last[1], 0.0) + step
            self._dirty = True

    def day(self, today: date) -> dict[str, Any]:
        """``today``'s seconds per emotion, their sum and each one's share of it."""
        with self._lock:
            seconds = dict(self._days.get(today.isoformat(), {}))
        return summary(today.isoformat(), seconds)

    def days(self, today: date, count: int) -> list[dict[str, Any]]:
        """The last ``count`` days up to ``today``, oldest first, empty days included."""
        with self._lock:
            kept = {day: dict(seconds) for day, seconds in self._days.items()}
        return recent_days(kept, today, count)

    def maybe_save(self, now: float, today: date, force: bool = False) -> None:
        """Writes the diary when it changed and ``SAVE_SECONDS`` have passed (or ``force``);
        days older than ``keep_days`` are dropped. A disk that cannot be written is logged
        once per failure and tried again at the next save."""
        if self.path is None or not self._dirty:
            return
        if not force and now - self._last_save < SAVE_SECONDS:
            return
        oldest = (today - timedelta(days=self.keep_days - 1)).isoformat()
        with self._lock:
            self._days = {day: s for day, s in self._days.items() if day >= oldest}
            text = json.dumps({"schema": SCHEMA, "days": self._days}, indent=1, sort_keys=True)
            self._dirty = False
        self._last_save = now
        try:
            replace_synced(self.path, text + "\n")
        except OSError as exc:
            self._dirty = True
            logger.warning("mood diary: cannot write %s: %s", self.path, exc)


def read_days(path: Path) -> dict[str, dict[str, float]]:
    """The days of a diary file, as seconds per emotion by ISO date.

    Raises:
        OSError: it cannot be read (``FileNotFoundError`` when there is none).
        ValueError: it is not a diary.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        days = data["days"]
        if not isinstance(days, dict):
            raise ValueError("days is not a table")
        return {
            str(date.fromisoformat(day)): {str(k): float(v) for k, v in seconds.items()}
            for day, seconds in days.items()
        }
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text: {exc}") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f'not {{"days": {{date: {{emotion: seconds}}}}}}: {exc!r}') from None


def recent_days(days: dict[str, dict[str, float]], today: date, count: int) -> list[dict[str, Any]]:
    """The ``count`` days up to ``today`` as ``summary`` gives them, oldest first."""
    dates = [(today - timedelta(days=back)).isoformat() for back in range(count - 1, -1, -1)]
    return [summary(day, days.get(day, {})) for day in dates]


def summary(day: str, seconds: dict[str, float]) -> dict[str, Any]:
    seen = sum(seconds.values())
    return {
        "date": day,
        "seen_seconds": round(seen, 1),
        "seconds": {label: round(s, 1) for label, s in sorted(seconds.items())},
        "shares": {label: round(s / seen, 4) for label, s in sorted(seconds.items())}
        if seen
        else {},
    }


BAR_WIDTH = 30


def format_day(day: dict[str, Any]) -> str:
    """One line of ``yuzug-edge diary``: the day, the time seen, a bar of each emotion's share
    drawn with its initial (happy: hhhh), and the shares in words."""
    when = date.fromisoformat(day["date"])
    seen = day["seen_seconds"]
    head = f"{when:%a %Y-%m-%d} {_duration(seen):>7}"
    if not seen:
        return f"{head}  {'.' * BAR_WIDTH}"
    shares = sorted(day["shares"].items(), key=lambda item: -item[1])
    bar = "".join(label[:1] * round(share * BAR_WIDTH) for label, share in shares)
    words = " · ".join(f"{label} {share:.0%}" for label, share in shares)
    return f"{head}  {bar[:BAR_WIDTH].ljust(BAR_WIDTH, ' ')}  {words}"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.0f} min"
