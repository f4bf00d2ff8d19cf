"""``yuzug-deploy install HOST``: copy the installer, a wheel, the example config and the unit
to a Pi and run ``deploy/install.sh`` there with sudo."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from deploy.push import Outcome, Target
from deploy.remote import RemoteError, q

ROOT = Path(__file__).resolve().parent.parent


def build_wheel(out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        check=True,
    )
    return next(out.glob("yuzug-*.whl"))


def install(target: Target, wheel: Path | None) -> Outcome:
    started = time.monotonic()
    host = target.remote.host
    try:
        with tempfile.TemporaryDirectory() as workdir:
            wheel = wheel or build_wheel(Path(workdir))
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as archive:
                archive.add(ROOT / "deploy" / "install.sh", arcname="install.sh")
                archive.add(ROOT / "edge.example.toml", arcname="edge.example.toml")
                archive.add(ROOT / "systemd" / "yuzug-edge.service", arcname="yuzug-edge.service")
                archive.add(wheel, arcname=wheel.name)
            staging = "/tmp/yuzug-install"
            target.remote.run(
                f"rm -rf {staging} && mkdir -p {staging} && tar -x -C {staging}",
                input_bytes=buffer.getvalue(),
                timeout=300,
            )
            target.remote.run(
                f"sudo bash {staging}/install.sh --wheel {q(staging + '/' + wheel.name)}",
                timeout=1800,
            )
        outcome = Outcome(host, "ok", None, "installed and started yuzug-edge")
    except (RemoteError, subprocess.CalledProcessError) as exc:
        outcome = Outcome(host, "failed", None, str(exc))
    outcome.seconds = round(time.monotonic() - started, 1)
    return outcome
