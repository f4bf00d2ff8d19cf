"""`yuzug-deploy config` over a real OpenSSH server, with the real daemon restarted on the
changed file and confirmed on a real Mosquitto: a change lands with the file's comments kept,
a repeat changes nothing, a config the daemon cannot start with is put back, a dry run and a
key this device's camera does not have touch nothing."""

from __future__ import annotations

import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from deploy import configure as configure_module
from deploy.configure import Secret, configure, parse_set
from deploy.push import Confirmer, Target, push
from deploy.remote import Remote
from edge.bundle import ModelBundle, load_bundle
from edge.config import MQTTConfig
from tests.deploy.conftest import (
    ROOT,
    config_restart_script,
    deploy_cli,
    device_toml,
    make_version,
    stop_daemons,
)
from tests.support import broker_with_login

pytestmark = pytest.mark.ssh


def device_config(root: Path, frames: Path, broker_port: int) -> str:
    """A test device's file as a person keeps it: with comments, a commented-out default."""
    text = "# The hall Pi. Edited by hand, and by yuzug-deploy config.\n"
    text += device_toml('"dev4"', frames, root, broker_port)
    text = text.replace(
        '/current"\n', '/current"\n# max_fps = 0.0   # cap on analysed frames per second\n'
    )
    return text.replace(
        "[mqtt]", '[emotion]\nmin_confidence = 0.5      # below this the state is "none"\n\n[mqtt]'
    )


def own_config_device(
    sshd, root: Path, device: str, broker_port: int, tmp_path: Path
) -> tuple[ModelBundle, Target, Confirmer, list[str]]:
    """A device whose config is its own file under ``root``, restarted as the real daemon: a
    bundle to push to it, its target, a confirmer on the broker's anonymous port, and the
    command-line arguments that reach it."""
    bundle = load_bundle(make_version(tmp_path, device))
    restart = f"{config_restart_script(tmp_path)} {root} {device}"
    target = Target(Remote(device, ssh_config=sshd.config), device, str(root), restart)
    confirmer = Confirmer(MQTTConfig(host="127.0.0.1", port=broker_port))
    common = [
        *(device, "--ssh-config", str(sshd.config), "--root", str(root)),
        *("--restart-command", restart, "--broker", f"127.0.0.1:{broker_port}"),
    ]
    return bundle, target, confirmer, common


def test_config_changes_keys_restarts_confirms_and_puts_back_what_cannot_start(
    sshd, mosquitto, frames, roots, tmp_path
):
    root = roots[3]
    config = root / "etc/yuzug/edge.toml"
    config.parent.mkdir(parents=True)
    original = device_config(root, frames, mosquitto.port)
    config.write_text(original)
    bundle, target, confirmer, common = own_config_device(
        sshd, root, "dev4", mosquitto.port, tmp_path
    )
    version = bundle.manifest.full_name
    try:
        assert push(target, bundle, confirmer, confirm_timeout=60).status == "updated"
        pid = (root / "daemon.pid").read_text()

        changed = deploy_cli(
            "config",
            *("--set", "emotion.min_confidence=0.65", "--set", "classifier.max_fps=4"),
            *common,
        )
        assert changed.returncode == 0, changed.stdout + changed.stderr
        assert "updated" in changed.stdout
        assert "emotion.min_confidence 0.5 -> 0.65" in changed.stdout
        assert "classifier.max_fps (default) -> 4" in changed.stdout
        text = config.read_text()
        lines = text.splitlines()
        assert 'min_confidence = 0.65     # below this the state is "none"' in lines
        assert lines[lines.index("# max_fps = 0.0   # cap on analysed frames per second") + 1] == (
            "max_fps = 4"
        )
        assert lines[0] == "# The hall Pi. Edited by hand, and by yuzug-deploy config."
        assert (root / "etc/yuzug/edge.toml.previous").read_text() == original
        assert (root / "daemon.pid").read_text() != pid  # restarted on the new file...
        assert confirmer.wait_version("dev4", version, 10)  # ...and back on the broker
        assert not list(config.parent.glob(".edge.toml.*"))  # no temporary file left

        pid = (root / "daemon.pid").read_text()
        again = deploy_cli("config", "--set", "emotion.min_confidence=0.65", *common)
        assert again.returncode == 0 and "unchanged" in again.stdout, again.stdout
        assert (root / "daemon.pid").read_text() == pid  # not restarted for nothing

        # Valid TOML and a valid key, but no bundle there: the daemon cannot start with it.
        broken = deploy_cli(
            "config",
            *("--set", f"classifier.model={tmp_path / 'no-such-bundle'}"),
            *common,
            *("--timeout", "15"),
        )
        assert broken.returncode == 1, broken.stdout + broken.stderr
        assert "rolled back" in broken.stdout and "did not come back" in broken.stdout
        assert config.read_text() == text  # the working file is back...
        assert confirmer.wait_version("dev4", version, 30)  # ...and so is the daemon

        pid = (root / "daemon.pid").read_text()
        dry = deploy_cli(
            *("config", "--set", "emotion.min_confidence=0.7", "--dry-run"),
            *("dev4", "unreachable", *common[1:]),
        )
        assert dry.returncode == 1, dry.stdout + dry.stderr  # the unreachable host failed
        rows = {line.split()[0]: line for line in dry.stdout.splitlines()[1:]}
        assert "would change" in rows["dev4"] and "0.65 -> 0.7" in rows["dev4"]
        assert "failed" in rows["unreachable"]
        # A key the device's folder camera does not have: refused on that device, untouched.
        refused = deploy_cli("config", "--set", "camera.lores_width=320", *common)
        assert refused.returncode == 1 and "refused" in refused.stdout, refused.stdout
        assert "camera.lores_width: Extra inputs are not permitted" in refused.stdout
        assert config.read_text() == text
        assert (root / "daemon.pid").read_text() == pid
    finally:
        stop_daemons(roots)


def test_set_secret_logs_a_device_in_to_its_broker_and_puts_back_a_wrong_password(
    sshd, frames, roots, tmp_path
):
    """--set-secret writes the credential the unit loads (0600, never echoed, over stdin); a
    password the broker refuses keeps the daemon off it, so it is put back with the rest."""
    broker, login_port = broker_with_login(tmp_path / "login", "hall", "right-pass")
    root = roots[7]
    config = root / "etc/yuzug/edge.toml"
    config.parent.mkdir(parents=True)
    config.write_text(device_toml('"dev8"', frames, root, broker.port))  # anonymous, for now
    password_file = root / "etc/yuzug/mqtt_password"
    password_file.write_bytes(b"")  # as install.sh leaves it for an anonymous broker
    password_file.chmod(0o600)
    unit = root / "etc/systemd/system/yuzug-edge.service"
    unit.parent.mkdir(parents=True)
    unit.write_text((ROOT / "systemd" / "yuzug-edge.service").read_text())
    bundle, target, confirmer, common = own_config_device(sshd, root, "dev8", broker.port, tmp_path)
    version = bundle.manifest.full_name

    def config_cli(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
        result = deploy_cli("config", *args, *common, stdin=stdin)
        for secret in ("right-pass", "wrong-pass", "s3cret-token"):
            assert secret not in result.stdout + result.stderr  # never printed
        return result

    try:
        pushed = push(target, bundle, confirmer, 60)
        assert pushed.status == "updated", pushed
        login = config_cli(
            *("--set", f"mqtt.port={login_port}", "--set", "mqtt.username=hall"),
            *("--set-secret", "mqtt.password"),
            stdin="right-pass\n",
        )
        assert login.returncode == 0, login.stdout + login.stderr
        assert "mqtt.password replaced (credential mqtt_password)" in login.stdout
        assert password_file.read_text() == "right-pass"
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        assert (root / "etc/yuzug/mqtt_password.previous").read_bytes() == b""
        # Confirmed on the broker: the restarted daemon logged in with the new password.
        assert confirmer.wait_version("dev8", version, 10)
        assert not list(config.parent.glob(".mqtt_password.*"))  # no temporary file left

        pid = (root / "daemon.pid").read_text()
        same = config_cli("--set-secret", "mqtt.password", stdin="right-pass\n")
        assert same.returncode == 0 and "unchanged" in same.stdout, same.stdout + same.stderr
        assert (root / "daemon.pid").read_text() == pid  # not restarted for nothing

        # A password the broker refuses, and a token for a credential not there before: the
        # daemon never comes back on the broker, so both are undone and it is restarted.
        wrong = config_cli(
            *("--set-secret", "mqtt.password", "--set-secret", "http.token", "--timeout", "10"),
            stdin="wrong-pass\ns3cret-token\n",
        )
        assert wrong.returncode == 1, wrong.stdout + wrong.stderr
        assert "rolled back" in wrong.stdout and "did not come back" in wrong.stdout
        assert password_file.read_text() == "right-pass"
        assert not (root / "etc/yuzug/http_token").exists()
        assert confirmer.wait_version("dev8", version, 30)  # back on the broker

        # A device installed before its unit loaded the live view's secrets: a token written
        # there would protect nothing, so it is refused.
        unit.write_text(
            "".join(line for line in unit.read_text().splitlines(True) if "http_" not in line)
        )
        pid = (root / "daemon.pid").read_text()
        old_unit = config_cli("--set-secret", "http.token", stdin="s3cret-token\n")
        assert old_unit.returncode == 1 and "refused" in old_unit.stdout, old_unit.stdout
        assert "does not load the http_token credential" in old_unit.stdout
        assert "run yuzug-deploy install on it first" in old_unit.stdout
        assert not (root / "etc/yuzug/http_token").exists()
        assert (root / "daemon.pid").read_text() == pid

        missing = config_cli("--set-secret", "mqtt.password", stdin="")
        assert missing.returncode == 2 and "expected 1 line(s)" in missing.stderr
        as_file = config_cli("--set", "mqtt.password=right-pass", stdin="")
        assert as_file.returncode == 2 and "--set-secret mqtt.password" in as_file.stderr
    finally:
        stop_daemons(roots)
        broker.stop()


def test_a_login_that_cannot_become_root_is_told_so_and_no_secret_moves(sshd, pi_user, frames):
    """pi@ without sudo rights: root's credential can be neither compared nor replaced."""
    device = Path(tempfile.mkdtemp(prefix="yuzug-device-", dir="/tmp"))  # reachable by pi
    try:
        device.chmod(0o755)
        etc = device / "etc/yuzug"
        etc.mkdir(parents=True)
        (etc / "edge.toml").write_text(device_toml('"dev9"', frames, device, 1883))
        credential = etc / "mqtt_password"
        credential.write_text("old-pass")
        credential.chmod(0o600)
        unit = device / "etc/systemd/system/yuzug-edge.service"
        unit.parent.mkdir(parents=True)
        unit.write_text((ROOT / "systemd" / "yuzug-edge.service").read_text())
        target = Target(Remote(f"{pi_user}@dev9", ssh_config=sshd.config), "dev9", str(device))
        outcome = configure(target, [], None, secrets=[Secret("mqtt.password", "new-pass")])
        assert outcome.status == "failed" and "sudo" in outcome.detail, outcome
        assert credential.read_text() == "old-pass"
        assert sorted(p.name for p in etc.iterdir()) == ["edge.toml", "mqtt_password"]
    finally:
        shutil.rmtree(device)


def test_a_file_changed_on_the_device_meanwhile_is_not_overwritten(sshd, roots, monkeypatch):
    """Someone edits edge.toml by hand between the read and the write: their edit stays."""
    root = roots[4]
    config = root / "etc/yuzug/edge.toml"
    config.parent.mkdir(parents=True)
    config.write_text('device_id = "dev5"\n')
    real_edit = configure_module.edit_config

    def edit_then_someone_else_edits(text, edits, source):
        result = real_edit(text, edits, source)
        config.write_text('device_id = "dev5"\nlog_level = "DEBUG"\n')
        return result

    monkeypatch.setattr(configure_module, "edit_config", edit_then_someone_else_edits)
    target = Target(Remote("dev5", ssh_config=sshd.config), "dev5", str(root), "true")
    outcome = configure(target, [parse_set("log_level=WARNING")], confirmer=None)
    assert outcome.status == "failed" and "changed on the device while this ran" in outcome.detail
    assert config.read_text() == 'device_id = "dev5"\nlog_level = "DEBUG"\n'
    assert not (root / "etc/yuzug/edge.toml.previous").exists()


def test_a_device_without_a_config_says_so(sshd, roots):
    target = Target(Remote("dev6", ssh_config=sshd.config), "dev6", str(roots[5]), "true")
    outcome = configure(target, [parse_set("log_level=DEBUG")], confirmer=None)
    assert outcome.status == "failed"
    assert "cannot read" in outcome.detail and "is yuzug installed there?" in outcome.detail
    assert subprocess.run(["ls", str(roots[5])], capture_output=True, text=True).stdout == ""


def test_get_reads_a_devices_settings_over_ssh(sshd, roots, frames):
    config = roots[6] / "etc/yuzug/edge.toml"
    config.parent.mkdir(parents=True)
    config.write_text(device_toml('"dev7"', frames, roots[6], 1883))
    # The secrets: one set, one empty (install.sh's "none"), one never made.
    (config.parent / "mqtt_password").write_text("hunter2")
    (config.parent / "http_token").write_bytes(b"")
    keys = ["--get", "mqtt.port", "--get", "mqtt.password", "--get", "emotion.min_confidence"]
    keys += ["--get", "http.token", "--get", "http.password"]

    def get(root: Path) -> subprocess.CompletedProcess[str]:
        return deploy_cli(
            "config", *keys, "dev7", "--ssh-config", str(sshd.config), "--root", str(root)
        )

    found = get(roots[6])
    assert found.returncode == 0, found.stdout + found.stderr
    assert (
        "mqtt.port = 1883; mqtt.password = (set); emotion.min_confidence = 0.5 (default); "
        "http.token = (none); http.password = (no credential file)"
    ) in found.stdout
    assert "hunter2" not in found.stdout + found.stderr
    assert config.read_text() == device_toml('"dev7"', frames, roots[6], 1883)  # only read
    missing = get(roots[0])
    assert missing.returncode == 1 and "is yuzug installed there?" in missing.stdout
