"""Putting a backup's state files in place as the daemon starts (``yuzug-deploy restore``).

The state folder ($STATE_DIRECTORY, /var/lib/yuzug-edge) holds what only this device knows: the
person's fit, dismissed suggestions, the mood diary, the privacy switch, events not delivered
yet. A restore cannot write them under a running daemon, which saves its diary as it stops and
would overwrite the restored one; so it stages them in ``<state>/restore/`` and restarts the
daemon, which moves them into place here, before it reads any. What the folder held before is
kept in ``<state>/before-restore/``, so a restore onto the wrong device loses nothing.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

STAGED = "restore"
KEPT = "before-restore"


def apply_staged_restore(state_dir: Path) -> list[str]:
    """Moves the files staged in ``state_dir/restore`` into ``state_dir``; returns their names
    (none when nothing is staged). Each move is a rename within the folder: atomic, whole after a
    power cut, and a restore cut short is finished at the next start."""
    staged = state_dir / STAGED
    if not staged.is_dir():
        return []
    names = sorted(p.name for p in staged.iterdir() if p.is_file() and not p.is_symlink())
    kept = state_dir / KEPT
    if names:
        shutil.rmtree(kept, ignore_errors=True)  # the restore before this one's leftovers
        kept.mkdir(mode=0o700)
    for name in names:
        current = state_dir / name
        if current.is_file():
            os.replace(current, kept / name)
        os.replace(staged / name, current)
    shutil.rmtree(staged, ignore_errors=True)  # anything else staged (a folder) is not ours
    _sync(state_dir)
    if names:
        logger.info("restored %s from a backup (what was here is in %s)", ", ".join(names), kept)
    return names


def _sync(folder: Path) -> None:
    """Flushes the renames in ``folder`` to storage."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
