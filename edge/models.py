"""Where the default model bundle lives, for an editable checkout and for a wheel install."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from edge.errors import BundleError

MODEL_ENV = "YUZUG_MODEL"


def default_bundle_path() -> Path:
    """``$YUZUG_MODEL``, else ``models/default`` of the checkout, else the installed copy."""
    if os.environ.get(MODEL_ENV):
        return Path(os.environ[MODEL_ENV])
    candidates = [
        Path(__file__).resolve().parent.parent / "models" / "default",
        Path(sys.prefix) / "share" / "yuzug" / "models" / "default",
    ]
    for candidate in candidates:
        if (candidate / "manifest.json").exists():
            return candidate
    raise BundleError(
        "no default model bundle found (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); pass --model BUNDLE_DIR or set $YUZUG_MODEL"
    )
