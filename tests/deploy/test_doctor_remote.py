"""`yuzug-deploy doctor` over a real OpenSSH server: the device's own doctor, run beside its
daemon with the service's credentials, against a real Mosquitto; a broken broker setting is
that device's failing line, an unreachable host a line of its own."""

from __future__ import annotations

import sys

import pytest

from deploy.push import Target, push
from deploy.remote import Remote
from edge.bundle import load_bundle
from tests.deploy.conftest import ROOT, deploy_cli, device_toml, make_version
from tests.support import free_port

pytestmark = pytest.mark.ssh


def blocks(stdout: str) -> dict[str, tuple[str, list[str]]]:
    """``== host: status`` headings and the lines under each."""
    found: dict[str, tuple[str, list[str]]] = {}
    host = ""
    for line in stdout.splitlines():
        if line.startswith("== "):
            host, status = line[3:].split(": ", 1)
            found[host] = (status, [])
        elif host:
            found[host][1].append(line)
    return found


def test_doctor_asks_each_device_beside_its_daemon(sshd, mosquitto, frames, roots, tmp_path):
    root = roots[9]
    config = root / "etc/yuzug/edge.toml"
    config.parent.mkdir(parents=True)
    config.write_text(device_toml('"dev10"', frames, root, mosquitto.port))
    (config.parent / "mqtt_password").write_bytes(b"")  # as install.sh leaves it
    target = Target(Remote("dev10", ssh_config=sshd.config), "dev10", str(root), "true")
    assert push(target, load_bundle(make_version(tmp_path, "d1")), None).status == "updated"
    # The device's yuzug-edge: this checkout's, as install.sh's venv would hold the package.
    edge = tmp_path / "yuzug-edge"
    edge.write_text(f'#!/bin/sh\ncd {ROOT}\nexec {sys.executable} -m edge "$@"\n')
    edge.chmod(0o755)

    def doctor(*hosts: str):
        return deploy_cli(
            "doctor",
            *hosts,
            *("--ssh-config", str(sshd.config), "--root", str(root), "--edge-command", str(edge)),
        )

    asked = doctor("dev10", "unreachable")
    assert asked.returncode == 1, asked.stdout + asked.stderr  # the unreachable one
    found = blocks(asked.stdout)
    status, lines = found["dev10"]
    assert status == "ok", asked.stdout
    checks = {line.split()[1]: line.split()[0] for line in lines if len(line.split()) > 2}
    assert checks["config"] == checks["model"] == checks["mqtt"] == "ok", lines
    # The camera opens once and the port is the daemon's: both are left to it.
    assert checks["camera"] == checks["http"] == "skip"
    assert any("left to the running daemon" in line for line in lines)
    assert found["unreachable"][0] == "failed"
    assert "unreachable" in " ".join(found["unreachable"][1])

    # A broker setting that cannot work: that device's failing line, exit 1.
    config.write_text(device_toml('"dev10"', frames, root, free_port()))
    broken = doctor("dev10")
    status, lines = blocks(broken.stdout)["dev10"]
    assert broken.returncode == 1 and status == "problems", broken.stdout
    assert any(line.split()[:2] == ["FAIL", "mqtt"] for line in lines), lines
    assert "unreachable" in next(line for line in lines if " mqtt " in line)
