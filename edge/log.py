"""Logging set-up shared by every YUZUG command: stderr (journald adds timestamps on a Pi)."""

from __future__ import annotations

import logging
import os
import sys

NOISY_LOGGERS = ("absl", "tensorflow", "jax", "jax._src", "keras", "h5py", "matplotlib", "PIL")


def setup_logging(level: str | int = "INFO") -> None:
    """Logs to stderr with the level, logger name and message; quietens framework chatter."""
    handler = logging.StreamHandler(sys.stderr)
    # Under systemd the journal stamps every line itself; elsewhere a time helps.
    timestamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
    handler.setFormatter(
        logging.Formatter(f"{timestamp}%(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if isinstance(level, int) else level.upper())
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
