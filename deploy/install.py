"""``yuzug-deploy install HOST``: copy the installer, a wheel, the example config and the unit
to a Pi and run ``deploy/install.sh`` there with sudo."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deploy.push import Outcome, Target
from deploy.remote import RemoteError, q
from edge.errors import YuzugError

ROOT = Path(__file__).resolve().parent.parent


def build_wheel(out: Path) -> Path:
    try:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--quiet",
                "-w",
                str(out),
                str(ROOT),
            ],
            check=True,
        )
    except subprocess.CalledProcessError as exc:
        raise YuzugError(f"building the yuzug wheel failed (pip exit {exc.returncode})") from None
    return next(out.glob("yuzug-*.whl"))


def check_wheel(path: Path) -> Path:
    """Refuses, before any device is touched, a --wheel that is missing or not a yuzug wheel
    (install.sh's pip would fail on every device, after the copy)."""
    if not path.is_file():
        raise YuzugError(f"--wheel {path}: no such file")
    if not (path.name.startswith("yuzug-") and path.suffix == ".whl"):
        raise YuzugError(f"--wheel {path}: not a yuzug wheel (yuzug-<version>-...whl)")
    if not zipfile.is_zipfile(path):
        raise YuzugError(f"--wheel {path}: not a wheel (a wheel is a zip archive)")
    return path


@contextmanager
def wheel_for_install(wheel: Path | None) -> Iterator[Path]:
    """The given wheel, checked, or one built from this checkout, once for every device."""
    if wheel is not None:
        yield check_wheel(wheel)
        return
    with tempfile.TemporaryDirectory() as workdir:
        yield build_wheel(Path(workdir))


# mktemp's template: a directory of its own (mode 0700) for each install. A fixed name in the
# shared /tmp could be made first by another local user, who could then swap install.sh between
# the copy and the sudo that runs it.
STAGING_TEMPLATE = "/tmp/yuzug-install.XXXXXXXXXX"


def install(target: Target, wheel: Path) -> Outcome:
    started = time.monotonic()
    host = target.remote.host
    try:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            archive.add(ROOT / "deploy" / "install.sh", arcname="install.sh")
            archive.add(ROOT / "edge.example.toml", arcname="edge.example.toml")
            archive.add(ROOT / "systemd" / "yuzug-edge.service", arcname="yuzug-edge.service")
            archive.add(wheel, arcname=wheel.name)
        staging = target.remote.text(f"mktemp -d {STAGING_TEMPLATE}").strip()
        keep_staging = False
        try:
            target.remote.run(f"tar -x -C {q(staging)}", input_bytes=buffer.getvalue(), timeout=300)
            installer = f"bash {q(staging + '/install.sh')} --wheel {q(staging + '/' + wheel.name)}"
            try:
                # -n: a sudo that wants a password fails at once instead of waiting on no terminal.
                target.remote.run(f"sudo -n {installer}", timeout=1800)
            except RemoteError as exc:
                if "password is required" not in str(exc):
                    raise
                keep_staging = True  # for the command the message gives
                raise RemoteError(
                    f"{host}: sudo asks for a password there; allow it without one for this "
                    f"user, or log in and run: sudo {installer}"
                ) from exc
        finally:
            if not keep_staging:
                target.remote.run(f"rm -rf {q(staging)}", check=False)
        outcome = Outcome(host, "ok", None, "installed and started yuzug-edge")
    except RemoteError as exc:
        outcome = Outcome(host, "failed", None, str(exc))
    outcome.seconds = round(time.monotonic() - started, 1)
    return outcome
