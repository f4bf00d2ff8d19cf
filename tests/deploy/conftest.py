"""A real OpenSSH server on loopback, with temporary directories standing in for device roots."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_port, wait_for

SSHD = "/usr/sbin/sshd"
ROOT = Path(__file__).resolve().parents[2]


class SSHServer:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.config = workdir / "ssh_config"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, hosts: list[str]) -> None:
        w = self.workdir
        for name in ("host_key", "client_key"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(w / name)], check=True
            )
        shutil.copy(w / "client_key.pub", w / "authorized_keys")
        (w / "sshd_config").write_text(
            textwrap.dedent(f"""
            Port {self.port}
            ListenAddress 127.0.0.1
            HostKey {w}/host_key
            AuthorizedKeysFile {w}/authorized_keys .ssh/authorized_keys
            PubkeyAuthentication yes
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            PermitRootLogin prohibit-password
            StrictModes no
            UsePAM no
            PidFile {w}/sshd.pid
            MaxStartups 50
            MaxSessions 50
            Subsystem sftp internal-sftp
        """)
        )
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation dir
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(w / "sshd_config")], stderr=open(w / "sshd.log", "wb")
        )
        closed_port = free_port()
        entries = [
            textwrap.dedent(f"""
            Host {host}
                HostName 127.0.0.1
                Port {self.port}
            """)
            for host in hosts
        ]
        entries.append(f"Host unreachable\n    HostName 127.0.0.1\n    Port {closed_port}\n")
        entries.append(
            textwrap.dedent(f"""
            Host *
                User {getpass.getuser()}
                IdentityFile {w}/client_key
                IdentitiesOnly yes
                StrictHostKeyChecking no
                UserKnownHostsFile /dev/null
                LogLevel ERROR
                ConnectTimeout 5
            """)
        )
        self.config.write_text("".join(entries))
        wait_for(self._ready, 15, interval=0.2, what="sshd")

    def _ready(self) -> bool:
        result = subprocess.run(
            ["ssh", "-F", str(self.config), "dev1", "true"], capture_output=True, timeout=10
        )
        return result.returncode == 0

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    if not Path(SSHD).exists() or shutil.which("ssh") is None:
        pytest.skip("openssh-server/client not installed (make system-deps installs them)")
    if os.geteuid() != 0:
        pytest.skip("the loopback sshd fixture needs root for privilege separation")
    server = SSHServer(tmp_path_factory.mktemp("sshd"))
    server.start([f"dev{i}" for i in range(1, 11)])
    yield server
    server.stop()


@pytest.fixture()
def pi_user(sshd: SSHServer) -> Iterator[str]:
    """A real non-root login that the loopback sshd lets in with the tests' key (a Pi's `pi`),
    and the daemon's group `yuzug`; both made for the test and removed after it."""
    if shutil.which("useradd") is None or shutil.which("setpriv") is None:
        pytest.skip("useradd/setpriv not installed")
    name = f"yzpi{os.getpid() % 100000}"
    made_group = subprocess.run(["getent", "group", "yuzug"], capture_output=True).returncode != 0
    if made_group:
        subprocess.run(["groupadd", "--system", "yuzug"], check=True)
    Path("/home").mkdir(exist_ok=True)  # a bare container may lack it; useradd needs it
    # Password "*": no password login, yet not "locked" ("!"), which sshd refuses outright.
    subprocess.run(
        ["useradd", "--create-home", "--shell", "/bin/sh", "--password", "*", name], check=True
    )
    try:
        keys = Path(f"/home/{name}/.ssh")
        keys.mkdir()
        shutil.copy(sshd.workdir / "client_key.pub", keys / "authorized_keys")
        shutil.chown(keys, name)
        shutil.chown(keys / "authorized_keys", name)
        yield name
    finally:
        subprocess.run(["userdel", "--remove", name], capture_output=True)
        if made_group:
            subprocess.run(["groupdel", "yuzug"], capture_output=True)


def restart_script(workdir: Path, broker_port: int, frames: Path, mqtt_extra: str = "") -> Path:
    """What `systemctl restart yuzug-edge` does on a Pi: stop the daemon, start it again on the
    bundle `current` points to. Here the daemon is the real `yuzug-edge run` process.
    ``mqtt_extra``: more ``[mqtt]`` lines (a login, say)."""
    indented_extra = mqtt_extra.replace("\n", "\n" + " " * 8)  # the template is dedented
    script = workdir / "restart.sh"
    script.write_text(
        textwrap.dedent(f"""\
        #!/bin/sh
        # usage: restart.sh ROOT DEVICE_ID
        root="$1"; device="$2"
        if [ -f "$root/daemon.pid" ]; then
            kill "$(cat "$root/daemon.pid")" 2>/dev/null
            while kill -0 "$(cat "$root/daemon.pid")" 2>/dev/null; do sleep 0.1; done
        fi
        cat > "$root/edge.toml" <<CONF
        device_id = "$device"
        [camera]
        type = "folder"
        path = "{frames}"
        loop = true
        fps = 5
        [classifier]
        model = "$root/var/lib/yuzug/models/current"
        [mqtt]
        host = "127.0.0.1"
        port = {broker_port}
        discovery = false
        {indented_extra}
        CONF
        cd {ROOT}
        nohup setsid {sys.executable} -m edge run --config "$root/edge.toml" \\
            > "$root/daemon.log" 2>&1 < /dev/null &
        echo $! > "$root/daemon.pid"
    """)
    )
    script.chmod(0o755)
    return script
