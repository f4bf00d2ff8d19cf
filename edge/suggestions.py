"""Activity suggestions: a user-editable catalogue per emotion, no repeats, with a cooldown."""

from __future__ import annotations

import json
import random
import tomllib
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ConfigError

DATA = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Suggestion:
    id: str
    text: str

    def as_payload(self) -> dict[str, str]:
        """The ``suggestion`` object of the event and state payloads."""
        return {"id": self.id, "text": self.text}


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
            items.append(
                Suggestion(str(entry.get("id", f"{emotion}-{position + 1}")), str(entry["text"]))
            )
        catalogue[emotion] = items
    return catalogue


class SuggestionPicker:
    """Picks a suggestion per emotion change.

    Every suggestion of an emotion is used once before any repeats (a shuffled bag refilled
    when empty, never starting with the one just shown). The cooldown is per emotion: a mood
    that changes from happy to sad gets a suggestion for sad at once (the moment it is most
    useful), while flickering between moods yields at most one suggestion per emotion per
    ``cooldown_seconds``, so a person is not flooded.
    """

    def __init__(
        self,
        catalogue: dict[str, list[Suggestion]],
        cooldown_seconds: float,
        rng: random.Random | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.cooldown_seconds = cooldown_seconds
        self.rng = rng or random.Random()
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

    def pick(self, emotion: str, now: float) -> Suggestion | None:
        """A suggestion for ``emotion``, or ``None`` when it is cooling down or has none."""
        options = self.catalogue.get(emotion)
        if not options or self.cooldown_left(emotion, now) > 0:
            return None
        bag = self._bags.get(emotion)
        if not bag:
            bag = list(options)
            self.rng.shuffle(bag)
            last = self._last.get(emotion)
            if len(bag) > 1 and bag[-1] == last:
                bag[0], bag[-1] = bag[-1], bag[0]
            self._bags[emotion] = bag
        choice = bag.pop()
        self._last[emotion] = choice
        self._last_time[emotion] = now
        return choice
