"""A real OpenSSH server on loopback, with temporary directories standing in for device roots."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.models import default_bundle_path
from edge.samples import Segment, scripted_frames, write_folder
from tests.support import bundle_as_version, free_port, wait_for

SSHD = "/usr/sbin/sshd"
MODELS = "var/lib/yuzug/models"
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
    bundle `current` points to. Here the daemon is the real `yuzug-edge run` process, with a
    config written afresh each time. ``mqtt_extra``: more ``[mqtt]`` lines (a login, say)."""
    device = device_toml('"$device"', frames, "$root", broker_port) + mqtt_extra
    write_config = f'cat > "$root/edge.toml" <<CONF\n{device}\nCONF\n'
    return _daemon_script(workdir / "restart.sh", write_config, "$root/edge.toml")


def device_toml(device_id: str, frames: Path, root: Path | str, broker_port: int) -> str:
    """A test device's edge.toml: the folder of ``frames`` as its camera, the bundle that
    ``ROOT/var/lib/yuzug/models/current`` points to, the test broker; ends in ``[mqtt]``."""
    return textwrap.dedent(f"""\
        device_id = {device_id}

        [camera]
        type = "folder"
        path = "{frames}"
        loop = true
        fps = 5

        [classifier]
        model = "{root}/{MODELS}/current"

        [mqtt]
        host = "127.0.0.1"
        port = {broker_port}
        discovery = false
    """)


def config_restart_script(workdir: Path) -> Path:
    """`systemctl restart yuzug-edge` for a device whose config is its own file,
    ``ROOT/etc/yuzug/edge.toml`` (what `yuzug-deploy config` changes), with the secrets in
    ``ROOT/etc/yuzug`` as the unit's ``LoadCredential=`` hands them over."""
    credentials = 'export CREDENTIALS_DIRECTORY="$root/etc/yuzug"\n'
    return _daemon_script(
        workdir / "restart-own-config.sh", credentials, "$root/etc/yuzug/edge.toml"
    )


def state_restart_script(workdir: Path) -> Path:
    """:func:`config_restart_script` with systemd's ``StateDirectory=`` too: the daemon keeps
    its state (the fit, dismissed suggestions, the diary) in ``ROOT/var/lib/yuzug-edge``."""
    environment = (
        'export CREDENTIALS_DIRECTORY="$root/etc/yuzug"\n'
        'export STATE_DIRECTORY="$root/var/lib/yuzug-edge"\n'
    )
    return _daemon_script(
        workdir / "restart-with-state.sh", environment, "$root/etc/yuzug/edge.toml"
    )


def _daemon_script(script: Path, write_config: str, config: str) -> Path:
    """usage: SCRIPT ROOT DEVICE_ID: stops ROOT's daemon, runs ``write_config`` (shell), starts
    ``yuzug-edge run --config CONFIG`` in a session of its own (ROOT/daemon.pid, daemon.log)."""
    script.write_text(
        "#!/bin/sh\n"
        'root="$1"; device="$2"\n'
        'if [ -f "$root/daemon.pid" ]; then\n'
        '    kill "$(cat "$root/daemon.pid")" 2>/dev/null\n'
        '    while kill -0 "$(cat "$root/daemon.pid")" 2>/dev/null; do sleep 0.1; done\n'
        "fi\n"
        f"{write_config}"
        f"cd {ROOT}\n"
        f'nohup setsid {sys.executable} -m edge run --config "{config}" \\\n'
        '    > "$root/daemon.log" 2>&1 < /dev/null &\n'
        'echo $! > "$root/daemon.pid"\n'
    )
    script.chmod(0o755)
    return script


def deploy_cli(
    *args: str, timeout: float = 180, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        input=stdin,
    )


def make_version(tmp_path: Path, tag: str) -> Path:
    """A copy of the shipped bundle under a new version name (same model, new identity)."""
    return bundle_as_version(default_bundle_path(), tmp_path / f"bundle-{tag}", f"test{tag}")


def current(root: Path) -> str:
    return os.readlink(root / MODELS / "current")


@pytest.fixture()
def frames(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    write_folder(scripted_frames({}, [Segment("none", 1)], 5), folder)
    return folder


@pytest.fixture()
def roots(tmp_path: Path) -> list[Path]:
    paths = [tmp_path / f"device{i}" for i in range(1, 11)]
    for path in paths:
        path.mkdir()
    return paths


def stop_daemons(roots: list[Path]) -> None:
    for root in roots:
        pid_file = root / "daemon.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass
