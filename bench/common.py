"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge.samples import Segment, fer_faces, scripted_frames, write_video


def emit(results: dict[str, Any], json_path: Path | None) -> None:
    """Prints the results and, when asked, keeps them as JSON."""
    print(json.dumps(results, indent=2))
    if json_path:
        json_path.write_text(json.dumps(results, indent=2) + "\n")


def face_video(
    data: Path, path: Path, script: list[Segment], fps: float = 25, per_label: int = 2
) -> Path:
    """An MJPG video of FER test faces in 640x480 scenes, following ``script``."""
    labels = sorted({s.label for s in script if s.label != "none"})
    write_video(scripted_frames(fer_faces(data, labels, per_label), script, fps), path, fps)
    return path
