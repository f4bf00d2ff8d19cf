"""Events the broker has not acknowledged, kept on disk so that a restart or a power cut loses
none.

Every event is appended (and fsynced) as a JSON line before it is sent or queued, and leaves
the file once the broker has acknowledged it (QoS 1) or the bounded queue has dropped it. At
start-up the daemon reads the file back into its queue. Delivery is therefore at least once, as
MQTT QoS 1 is: an event acknowledged just before a power cut may come twice (its ``timestamp``
and ``sequence`` tell the copies apart).

The spool keeps its own list of what is in the file and its own lock, and never calls into
paho: acknowledgements arrive on paho's network thread while paho holds its message lock, so
the publisher's lock (held around ``publish``) must not be needed there.

Only events are spooled (states are retained and replaced; stats are periodic), so the file stays
small and is written rarely: a few hundred bytes per emotion change, and an empty file is removed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

# Lines of events already settled that the file may still hold before it is rewritten.
STALE_LINES = 64


def write_synced(path: Path, text: str, mode: str = "w") -> None:
    """Writes (or appends) ``text`` and waits until it is on the disk, so that it survives a
    power cut; makes the folder first. Raises ``OSError``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode, encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def replace_synced(path: Path, text: str) -> None:
    """Replaces ``path`` with ``text`` in one step (a synced temporary file renamed over it),
    so that a power cut leaves the old content or the new, never half. Raises ``OSError``."""
    temporary = path.with_name(path.name + ".tmp")
    write_synced(temporary, text)
    os.replace(temporary, path)


class EventSpool:
    """A JSON-lines file mirroring the events not yet acknowledged, by the publisher's ids.

    A failing disk never stops the daemon: the first error is logged, the spool turns itself
    off and events wait in memory only, as they would without a spool.
    """

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.enabled = True
        self._lock = threading.Lock()
        self._events: dict[int, str] = {}  # id -> JSON text, in the order written
        self._stale = 0  # settled events whose lines are still in the file

    def load(self, first_id: int = 0, repair: bool = True) -> list[tuple[int, str]]:
        """The events a previous run left, newest ``limit`` kept, numbered from ``first_id``; a
        torn or foreign line (a power cut mid-write) is skipped and counted in the log, and
        with ``repair`` the file is rewritten without it (``repair=False``: only look, as
        ``doctor`` does beside a running daemon that may be appending)."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        except OSError as exc:
            self._disable(f"cannot read {self.path} ({exc.strerror})")
            return []
        events, damaged = [], 0
        for line in text.splitlines():
            try:
                if isinstance(json.loads(line), dict):
                    events.append(line)
                    continue
            except ValueError:
                pass
            damaged += 1
        if damaged:
            logger.warning("spool %s: skipped %d damaged line(s)", self.path, damaged)
        kept = list(enumerate(events[-self.limit :], start=first_id))
        with self._lock:
            self._events = dict(kept)
            self._stale = len(events) + damaged - len(kept)
            # Rewritten at once when anything was dropped: a torn last line has no newline,
            # and the next event appended would be glued onto it and lost at the next start.
            if repair and self._stale and self._events:
                self._rewrite()
            elif repair and self._stale:
                self._remove()
        return kept

    def add(self, event_id: int, text: str) -> None:
        """Writes one event to disk before it is sent or queued."""
        with self._lock:
            if not self.enabled:
                return
            self._events[event_id] = text
            try:
                write_synced(self.path, text + "\n", "a")
            except OSError as exc:
                self._disable(f"cannot write {self.path} ({exc.strerror})")

    def settle(self, event_id: int) -> None:
        """The event was acknowledged by the broker or dropped from the queue: it leaves the
        file (at once when nothing else waits, else with the next rewrite)."""
        with self._lock:
            if not self.enabled or self._events.pop(event_id, None) is None:
                return
            self._stale += 1
            if not self._events:
                self._remove()
            elif self._stale >= STALE_LINES:
                self._rewrite()

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._events)

    def _remove(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            self._disable(f"cannot remove {self.path} ({exc.strerror})")
        self._stale = 0

    def _rewrite(self) -> None:
        try:
            replace_synced(self.path, "".join(f"{e}\n" for e in self._events.values()))
        except OSError as exc:
            self._disable(f"cannot write {exc.filename or self.path} ({exc.strerror})")
            return
        self._stale = 0

    def _disable(self, why: str) -> None:
        self.enabled = False
        logger.warning(
            "MQTT spool off: %s; queued events are kept in memory only (set mqtt.spool_file "
            "to a writable place)",
            why,
        )
