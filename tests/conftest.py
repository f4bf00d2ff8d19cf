"""Shared fixtures: real FER2013 images from ../shared, small enough for a 2-core CI."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

# Keras picks its backend once, at first import, and any test module may be the first to import
# it (through trainer or bench): pin the project's backend here, before any of them is collected.
# Export tests run ``yuzug-train export``, which sets tensorflow in its own process.
os.environ.setdefault("KERAS_BACKEND", "jax")

ROOT = Path(__file__).resolve().parents[1]
FER_ZIP = ROOT.parent / "shared" / "datasets" / "fer2013.zip"


@pytest.fixture(scope="session")
def fer_zip() -> Path:
    if not FER_ZIP.exists():
        pytest.skip(f"FER2013 not found at {FER_ZIP} (tests read it from ../shared/datasets)")
    return FER_ZIP


def extract_subset(
    zip_path: Path, out: Path, per_class: dict[str, int], classes: tuple[str, ...]
) -> dict[str, list[Path]]:
    """Copies the first N images per class and split from the FER zip into ``out``."""
    written: dict[str, list[Path]] = {}
    with zipfile.ZipFile(zip_path) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".jpg"))
        for split, count in per_class.items():
            for class_name in classes:
                members = [n for n in names if n.startswith(f"{split}/{class_name}/")][:count]
                for member in members:
                    target = out / member
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.read(member))
                    written.setdefault(f"{split}/{class_name}", []).append(target)
    return written


@pytest.fixture(scope="session")
def small_fer_dir(fer_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FER-layout folder: 80 train and 20 test images for each of angry, happy, sad, neutral."""
    out = tmp_path_factory.mktemp("fer-small")
    extract_subset(fer_zip, out, {"train": 80, "test": 20}, ("angry", "happy", "sad", "neutral"))
    return out


@pytest.fixture()
def mosquitto(tmp_path: Path):
    from tests.support import MOSQUITTO, Mosquitto

    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed (make system-deps installs it)")
    broker = Mosquitto(tmp_path / "broker").start()
    yield broker
    broker.stop()
