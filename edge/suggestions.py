"""Activity suggestions: a user-editable catalogue per emotion, no repeats, with a cooldown,
each optionally limited to the hours of the day it suits (no walk in daylight at midnight).
A person can ask for another one, or say one is not for them: it is then never suggested again
(kept on disk, ``suggestions.dismissed_file``) until they bring the dismissed ones back."""

from __future__ import annotations

import json
import logging
import random
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ConfigError
from edge.hours import parse_hours, within
from edge.publish.spool import replace_synced

logger = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Suggestion:
    id: str
    text: str
    # Local hours it suits, start inclusive, end exclusive ("22-6" wraps past midnight).
    hours: tuple[int, int] | None = None

    def as_payload(self) -> dict[str, str]:
        """The ``suggestion`` object of the event and state payloads."""
        return {"id": self.id, "text": self.text}

    def fits(self, hour: int | None) -> bool:
        """Whether it suits ``hour`` (0-23, local time); ``None`` means any time."""
        if self.hours is None or hour is None:
            return True
        return within(hour, self.hours)


def load_catalogue(language: str, path: Path | None = None) -> dict[str, list[Suggestion]]:
    """Reads ``suggestions.<language>.toml`` or a user file (TOML or JSON, same shape).

    Raises:
        ConfigError: naming ``suggestions.catalogue`` and what is wrong.
    """
    file = path or DATA / f"suggestions.{language}.toml"
    try:
        text = file.read_text(encoding="utf-8")
        raw = json.loads(text) if file.suffix.lower() == ".json" else tomllib.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"suggestions.catalogue: cannot read {file}: {exc}") from exc
    if not isinstance(raw, dict):  # a JSON list or string: there is no emotion to look up
        raise ConfigError(
            f"suggestions.catalogue: {file}: expected a table of emotion = [suggestions]"
        )
    catalogue: dict[str, list[Suggestion]] = {}
    for emotion, entries in raw.items():
        if not isinstance(entries, list) or not entries:
            raise ConfigError(f"suggestions.catalogue: {file}: '{emotion}' needs a list")
        items = []
        for position, entry in enumerate(entries):
            if isinstance(entry, str):
                entry = {"id": f"{emotion}-{position + 1}", "text": entry}
            if not isinstance(entry, dict) or not entry.get("text"):
                raise ConfigError(
                    f"suggestions.catalogue: {file}: {emotion}[{position}] needs a text"
                )
            try:
                hours = parse_hours(entry["hours"]) if "hours" in entry else None
            except ValueError as exc:
                raise ConfigError(
                    f"suggestions.catalogue: {file}: {emotion}[{position}]: {exc}"
                ) from None
            items.append(
                Suggestion(
                    str(entry.get("id", f"{emotion}-{position + 1}")), str(entry["text"]), hours
                )
            )
        catalogue[emotion] = items
    return catalogue


class SuggestionPicker:
    """Picks a suggestion per emotion change, or when a person asks for another.

    Every suggestion of an emotion is used once before any repeats (a shuffled bag refilled
    when empty, never starting with the one just shown). The cooldown is per emotion: a mood
    that changes from happy to sad gets a suggestion for sad at once (the moment it is most
    useful), while flickering between moods yields at most one suggestion per emotion per
    ``cooldown_seconds``, so a person is not flooded. Dismissed suggestions (by id, in every
    emotion that has it) are never picked. Safe to call from several threads: the analysis
    loop picks while MQTT and the live page ask for another or dismiss.
    """

    def __init__(
        self,
        catalogue: dict[str, list[Suggestion]],
        cooldown_seconds: float,
        rng: random.Random | None = None,
        dismissed: set[str] | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.cooldown_seconds = cooldown_seconds
        self.rng = rng or random.Random()
        known = {s.id for items in catalogue.values() for s in items}
        # Ids of a catalogue edited since are dropped (and gone from the file at its next save).
        self.dismissed = {i for i in dismissed or () if i in known}
        self._lock = threading.Lock()
        self._bags: dict[str, list[Suggestion]] = {}
        self._last: dict[str, Suggestion] = {}
        self._last_time: dict[str, float] = {}

    def cooldown_left(self, emotion: str, now: float) -> float:
        """Seconds until ``emotion`` may get another suggestion."""
        last = self._last_time.get(emotion)
        if last is None:
            return 0.0
        return max(0.0, self.cooldown_seconds - (now - last))

    def latest(self, emotion: str) -> Suggestion | None:
        """The suggestion last given for ``emotion`` (what a screen shows while it lasts)."""
        return self._last.get(emotion)

    def pick(
        self, emotion: str, now: float, hour: int | None = None, *, asked: bool = False
    ) -> Suggestion | None:
        """A suggestion for ``emotion`` that suits ``hour`` (local, 0-23; ``None``: any), or
        ``None`` when it is cooling down or none suits. ``asked``: a person asked for another,
        which the cooldown (there so that nobody is flooded unasked) does not hold back."""
        with self._lock:
            if not asked and self.cooldown_left(emotion, now) > 0:
                return None
            return self._draw(emotion, now, hour)

    def _draw(self, emotion: str, now: float, hour: int | None) -> Suggestion | None:
        def usable(s: Suggestion) -> bool:
            return s.fits(hour) and s.id not in self.dismissed

        if not any(usable(s) for s in self.catalogue.get(emotion, [])):
            return None
        bag = self._bags.get(emotion, [])
        if not any(usable(s) for s in bag):
            bag = list(self.catalogue[emotion])
            self.rng.shuffle(bag)
            self._bags[emotion] = bag
        last = self._last.get(emotion)
        fitting = [s for s in bag if usable(s)]
        # The one just shown goes last when there is another (a refilled bag may start with it).
        choice = next((s for s in reversed(fitting) if s != last), fitting[-1])
        bag.remove(choice)
        self._last[emotion] = choice
        self._last_time[emotion] = now
        return choice

    def dismiss(self, suggestion_id: str) -> list[str]:
        """Never picks ``suggestion_id`` again, nor shows it as the latest; returns the
        emotions that had it.

        Raises:
            KeyError: no suggestion of the catalogue has that id.
        """
        with self._lock:
            emotions = [
                emotion
                for emotion, items in self.catalogue.items()
                if any(s.id == suggestion_id for s in items)
            ]
            if not emotions:
                raise KeyError(suggestion_id)
            self.dismissed.add(suggestion_id)
            for emotion in emotions:
                last = self._last.get(emotion)
                if last is not None and last.id == suggestion_id:
                    del self._last[emotion]
            return emotions

    def restore(self) -> int:
        """Brings every dismissed suggestion back; returns how many there were."""
        with self._lock:
            count = len(self.dismissed)
            self.dismissed.clear()
            return count


DISMISSED_SCHEMA = 1


def load_dismissed(path: Path | None) -> set[str]:
    """The ids a person dismissed, from ``path``; none when there is no such file. A damaged
    file is logged and read as none (it is replaced at the next dismissal), so a flipped bit
    on an SD card costs a person their list, never the daemon's start."""
    if path is None:
        return set()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return set()
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        logger.warning("suggestions: cannot read %s (%s): no suggestion is dismissed", path, exc)
        return set()
    ids = data.get("dismissed") if isinstance(data, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        logger.warning(
            'suggestions: %s is not {"dismissed": [ids]}: no suggestion is dismissed', path
        )
        return set()
    return set(ids)


def save_dismissed(path: Path, dismissed: set[str]) -> None:
    """Writes the dismissed ids in one step (old list or new after a power cut, never half);
    no file when there are none. Raises ``OSError``."""
    if dismissed:
        text = json.dumps({"schema": DISMISSED_SCHEMA, "dismissed": sorted(dismissed)}, indent=1)
        replace_synced(path, text + "\n")
    else:
        path.unlink(missing_ok=True)
