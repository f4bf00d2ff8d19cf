"""yuzug-deploy over a real OpenSSH server: push, re-push, fleets, killed transfers, corrupted
uploads, devices that never confirm, unreachable hosts, rollback and status; the Ansible playbook;
the systemd unit."""

from __future__ import annotations

import grp
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import pytest

from deploy import push as push_module
from deploy.configure import SECRET_KEYS
from deploy.push import Confirmer, Target, push
from deploy.remote import Remote
from edge.bundle import load_bundle
from edge.config import MQTTConfig
from edge.models import default_bundle_path
from edge.publish.payloads import utc_now
from tests.deploy.conftest import (
    MODELS,
    current,
    deploy_cli,
    make_version,
    restart_script,
    stop_daemons,
)
from tests.support import (
    Subscriber,
    broker_with_login,
    wait_for,
)

pytestmark = pytest.mark.ssh
ROOT = Path(__file__).resolve().parents[2]


def test_push_confirms_repush_is_a_no_op_and_rollback_works(
    sshd, mosquitto, frames, roots, tmp_path
):
    script = restart_script(tmp_path, mosquitto.port, frames)
    root = roots[0]
    common = [
        "--ssh-config",
        str(sshd.config),
        "--root",
        str(root),
        "--device-id",
        "dev1",
        "--restart-command",
        f"{script} {root} dev1",
        "--broker",
        f"127.0.0.1:{mosquitto.port}",
        "--timeout",
        "60",
    ]
    first, second = make_version(tmp_path, "1"), make_version(tmp_path, "2")
    try:
        result = deploy_cli("push", "--model", str(first), "dev1", *common)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "updated" in result.stdout and "first model" in result.stdout
        name1 = load_bundle(first).manifest.full_name
        assert current(root) == name1
        assert not list((root / MODELS).glob(".incoming-*"))
        # The Ansible playbook's confirmation step (it crashed with a KeyError until 2026-11-27).
        broker = ("--broker", f"127.0.0.1:{mosquitto.port}", "--device-id", "dev1")
        confirmed = deploy_cli("confirm", *broker, "--version", name1, "--timeout", "30")
        assert confirmed.returncode == 0, confirmed.stderr
        assert confirmed.stdout.strip() == f"dev1 runs {name1}"
        other = deploy_cli("confirm", *broker, "--version", "yuzug-other", "--timeout", "2")
        assert other.returncode == 1 and "did not report yuzug-other within 2 s" in other.stderr
        assert f"the daemon reports {name1}" in other.stderr

        again = deploy_cli("push", "--model", str(first), "dev1", *common)
        assert again.returncode == 0 and "unchanged" in again.stdout
        pid = (root / "daemon.pid").read_text()  # not restarted by a no-op push
        assert (root / "daemon.pid").read_text() == pid

        result = deploy_cli("push", "--model", str(second), "dev1", *common)
        assert result.returncode == 0, result.stdout + result.stderr
        name2 = load_bundle(second).manifest.full_name
        assert current(root) == name2 and os.readlink(root / MODELS / "previous") == name1

        status = deploy_cli("status", "dev1", *common)
        assert status.returncode == 0, status.stdout + status.stderr
        assert name2 in status.stdout and "online" in status.stdout
        header, row = status.stdout.splitlines()[-2:]
        shown = dict(zip(header.lower().split(), row.split(), strict=True))
        assert (shown["online"], shown["running"], shown["camera"]) == ("online", name2, "ok")
        # Closed by the privacy switch: status says so, and why.
        switch = Subscriber(mosquitto.port, ["yuzug/dev1/state"])
        try:
            switch.client.publish("yuzug/dev1/pause/set", "ON", qos=1).wait_for_publish(5)
            switch.wait_payload("/state", lambda p: json.loads(p)["paused_by"] == ["switch"])
            paused = deploy_cli("status", "dev1", *common)
            assert "paused (switch)" in paused.stdout.splitlines()[-1], paused.stdout
            since = utc_now()
            switch.client.publish("yuzug/dev1/pause/set", "OFF", qos=1).wait_for_publish(5)
            switch.wait_payload("/state", lambda p: json.loads(p)["timestamp"] >= since)
        finally:
            switch.close()

        back = deploy_cli("rollback", "dev1", *common)
        assert back.returncode == 0, back.stdout + back.stderr
        assert current(root) == name1
    finally:
        stop_daemons(roots)


def test_status_says_when_a_devices_faces_look_turned(sshd, mosquitto, roots):
    """What the device's retained state says, as its daemon would publish it (edge.orientation):
    the camera column names the rotation to set."""
    from edge.publish.payloads import state_payload

    turned = state_payload(
        device_id="hall",
        emotion="sad",
        confidence=0.8,
        faces=1,
        paused=False,
        model_version="yuzug-default-1",
        camera="ok",
        since=utc_now(),
        suggested_rotation=180,
    )
    publisher = Subscriber(mosquitto.port, ["yuzug/hall/#"])
    try:
        for topic, payload in (("state", json.dumps(turned)), ("availability", "online")):
            sent = publisher.client.publish(f"yuzug/hall/{topic}", payload, qos=1, retain=True)
            sent.wait_for_publish(5)
        shown = deploy_cli(
            *("status", "dev2", "--ssh-config", str(sshd.config), "--root", str(roots[1])),
            *("--device-id", "hall", "--broker", f"127.0.0.1:{mosquitto.port}"),
        )
    finally:
        publisher.close()
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "ok (turned: set rotation 180)" in shown.stdout.splitlines()[-1], shown.stdout


def test_parallel_push_to_three_devices_and_an_unreachable_one(sshd, roots, tmp_path):
    bundle = make_version(tmp_path, "3")
    inventory = tmp_path / "devices.toml"
    inventory.write_text(
        '[defaults]\nrestart_command = "true"\n'
        + "".join(f'[[devices]]\nhost = "dev{i}"\nroot = "{roots[i - 1]}"\n' for i in (1, 2, 3))
        + f'[[devices]]\nhost = "unreachable"\nroot = "{roots[3]}"\n'
    )
    result = deploy_cli(
        "push",
        "--model",
        str(bundle),
        "--inventory",
        str(inventory),
        "--ssh-config",
        str(sshd.config),
        "--no-confirm",
        "--concurrency",
        "4",
    )
    assert result.returncode == 1  # one host failed
    lines = result.stdout.splitlines()
    for host in ("dev1", "dev2", "dev3"):
        assert any(line.startswith(host) and "updated" in line for line in lines), result.stdout
    assert any(
        line.startswith("unreachable") and "failed" in line and "ssh" in line for line in lines
    ), result.stdout
    name = load_bundle(bundle).manifest.full_name
    assert [current(r) for r in roots[:3]] == [name] * 3
    # The table keeps the inventory's order; stderr had a line per device as each finished.
    assert [line.split()[0] for line in lines[-4:]] == ["dev1", "dev2", "dev3", "unreachable"]
    progress = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert [line.split()[0] for line in progress] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    by_host = {line.split()[1].rstrip(":"): line for line in progress}
    assert set(by_host) == {"dev1", "dev2", "dev3", "unreachable"}
    assert all(f"updated {name} (" in by_host[f"dev{i}"] for i in (1, 2, 3)), progress
    assert "failed" in by_host["unreachable"] and "ssh" in by_host["unreachable"], progress


def test_killed_transfer_leaves_the_old_version_running(sshd, roots, tmp_path):
    root = roots[0]
    old, big = make_version(tmp_path, "4"), make_version(tmp_path, "5")
    (big / "padding.bin").write_bytes(os.urandom(150 * 1024 * 1024))
    args = [
        "--ssh-config",
        str(sshd.config),
        "--root",
        str(root),
        "--no-confirm",
        "--restart-command",
        "true",
    ]
    assert deploy_cli("push", "--model", str(old), "dev1", *args).returncode == 0
    old_name = current(root)
    process = subprocess.Popen(
        [sys.executable, "-m", "deploy", "push", "--model", str(big), "dev1", *args],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: list((root / MODELS).glob(".incoming-*")),
            60,
            interval=0.01,
            what="the upload to start",
        )
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    assert current(root) == old_name
    assert (root / MODELS / old_name / "model.tflite").exists()
    assert not (root / MODELS / load_bundle(big).manifest.full_name).exists()
    # The next push clears the half-written upload.
    assert deploy_cli("push", "--model", str(old), "dev1", *args).returncode == 0
    assert not list((root / MODELS).glob(".incoming-*"))


def test_corrupted_upload_is_refused(sshd, roots, tmp_path, monkeypatch):
    root = roots[1]
    bundle = load_bundle(make_version(tmp_path, "6"))
    original_tar = push_module._tar

    def corrupting_tar(bundle, files):  # flips one byte of the model in transit
        data = bytearray(original_tar(bundle, files))
        with tarfile.open(fileobj=io.BytesIO(bytes(data))) as archive:
            member = archive.getmember("model.tflite")
        data[member.offset_data + member.size // 2] ^= 0xFF
        return bytes(data)

    monkeypatch.setattr(push_module, "_tar", corrupting_tar)
    target = Target(Remote("dev2", ssh_config=sshd.config), "dev2", str(root), "true")
    outcome = push(target, bundle, confirmer=None)
    assert outcome.status == "failed" and "checksum mismatch" in outcome.detail
    assert not (root / MODELS / "current").exists()
    assert not list((root / MODELS).glob(".incoming-*"))


def test_device_that_never_confirms_is_rolled_back(sshd, mosquitto, roots, tmp_path):
    root = roots[2]
    first, second = make_version(tmp_path, "7"), make_version(tmp_path, "8")
    target = Target(Remote("dev3", ssh_config=sshd.config), "dev3", str(root), "true")
    assert push(target, load_bundle(first), confirmer=None).status == "updated"
    confirmer = Confirmer(MQTTConfig(host="127.0.0.1", port=mosquitto.port))
    outcome = push(target, load_bundle(second), confirmer, confirm_timeout=2)
    assert outcome.status == "rolled back", outcome
    assert "did not report" in outcome.detail
    assert "nothing from the device on the broker" in outcome.detail  # what it saw, said
    assert current(root) == load_bundle(first).manifest.full_name
    # A daemon that went down says so (its Last Will), and the push says that instead.
    _publish(mosquitto.port, [("yuzug/dev3/availability", "offline", True)])
    outcome = push(target, load_bundle(second), confirmer, confirm_timeout=2)
    assert outcome.status == "rolled back" and "the daemon is offline" in outcome.detail


def test_a_broker_that_needs_a_login(sshd, frames, roots, tmp_path):
    # Home Assistant's Mosquitto add-on refuses anonymous clients: the confirmation used to
    # connect anonymously, see nothing, and roll every healthy device back after its timeout.
    broker, port = broker_with_login(tmp_path / "login", "cam", "right-pass")
    login = 'username = "cam"\npassword = "right-pass"'  # the daemon's own login
    script = restart_script(tmp_path, port, frames, mqtt_extra=login)
    root = roots[6]
    common = [
        *("dev7", "--ssh-config", str(sshd.config), "--root", str(root)),
        *("--restart-command", f"{script} {root} dev7", "--broker", f"127.0.0.1:{port}"),
        *("--timeout", "60"),
    ]
    first, second = make_version(tmp_path, "l1"), make_version(tmp_path, "l2")
    password = {"YUZUG_MQTT_PASSWORD": "right-pass"}
    try:
        anonymous = deploy_cli("push", "--model", str(first), *common)
        assert anonymous.returncode == 2, anonymous.stdout + anonymous.stderr
        refusal = f"MQTT broker 127.0.0.1:{port}: the broker refused anonymous: Not authorized"
        assert refusal in anonymous.stderr
        assert not (root / MODELS).exists()  # refused before any device was touched

        logged_in = deploy_cli(
            "push", "--model", str(first), *common, "--mqtt-username", "cam", env=password
        )
        assert logged_in.returncode == 0, logged_in.stdout + logged_in.stderr
        name1 = load_bundle(first).manifest.full_name
        assert current(root) == name1 and "updated" in logged_in.stdout
        assert "right-pass" not in logged_in.stdout + logged_in.stderr

        # The broker goes away mid-push: the device is not blamed (rolled back) for it.
        confirmer = Confirmer(
            MQTTConfig(host="127.0.0.1", port=port, username="cam", password="right-pass")
        )
        confirmer.check()
        broker.stop()
        target = Target(Remote("dev7", ssh_config=sshd.config), "dev7", str(root), "true")
        outcome = push(target, load_bundle(second), confirmer, confirm_timeout=5)
        assert outcome.status == "unconfirmed", outcome
        assert "cannot reach MQTT broker" in outcome.detail and "not rolled back" in outcome.detail
        assert current(root) == load_bundle(second).manifest.full_name
        down = deploy_cli("rollback", *common, "--mqtt-username", "cam", env=password)
        assert down.returncode == 2 and "broker unreachable" in down.stderr, down.stderr
        assert current(root) == load_bundle(second).manifest.full_name  # untouched
    finally:
        stop_daemons(roots)
        broker.stop()


def _publish(port: int, messages: list[tuple[str, str, bool]]) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port, 30)
    client.loop_start()
    try:
        for topic, payload, retain in messages:
            client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def test_confirmation_waits_for_the_restarted_daemon_not_a_stale_state(mosquitto):
    """The old daemon hot-reloads the new bundle as `current` switches, publishes its state,
    and is then stopped: the broker keeps a state naming the new version beside "offline"."""
    state, availability = "yuzug/dev9/state", "yuzug/dev9/availability"
    confirmer = Confirmer(MQTTConfig(host="127.0.0.1", port=mosquitto.port))

    def restart(stale: str, restarted: str, waiting_for: str, timeout: float) -> list[bool]:
        _publish(
            mosquitto.port,
            [(state, json.dumps({"model_version": stale}), True), (availability, "offline", True)],
        )
        result: list[bool] = []
        waiter = threading.Thread(
            target=lambda: result.append(confirmer.wait_version("dev9", waiting_for, timeout))
        )
        waiter.start()
        time.sleep(1.0)
        assert not result, "decided on the stopped daemon's leftovers"
        # The restarted daemon: online first, then its own state.
        _publish(
            mosquitto.port,
            [
                (availability, "online", True),
                (state, json.dumps({"model_version": restarted}), True),
            ],
        )
        waiter.join(timeout + 5)
        return result

    assert restart("v2", restarted="v2", waiting_for="v2", timeout=20) == [True]
    # A daemon that comes back on another version is not confirmed by the leftover state.
    assert restart("v3", restarted="v2", waiting_for="v3", timeout=3) == [False]


def test_a_state_that_is_no_json_object_does_not_stop_the_confirmation(mosquitto):
    state, availability = "yuzug/dev8/state", "yuzug/dev8/availability"
    confirmer = Confirmer(MQTTConfig(host="127.0.0.1", port=mosquitto.port))
    _publish(mosquitto.port, [(availability, "online", True), (state, "1", True)])
    result: list[bool] = []
    waiter = threading.Thread(
        target=lambda: result.append(confirmer.wait_version("dev8", "v5", 15))
    )
    waiter.start()
    time.sleep(1.0)
    _publish(mosquitto.port, [(state, json.dumps({"model_version": "v5"}), True)])
    waiter.join(20)
    assert result == [True]


def test_keeps_only_the_newest_versions(sshd, roots, tmp_path):
    root = roots[4]
    target = Target(Remote("dev5", ssh_config=sshd.config), "dev5", str(root), "true", keep=2)
    for tag in ("a", "b", "c", "d"):
        assert push(target, load_bundle(make_version(tmp_path, tag)), None).status == "updated"
        time.sleep(1.1)  # distinct mtimes for ls -t
    versions = sorted(p.name for p in (root / MODELS).iterdir() if not p.is_symlink())
    assert len(versions) == 2 and versions[-1].endswith("testd")


ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def run_playbook(
    sshd, tmp_path: Path, playbook: Path, inventory: Path, *extra_vars: str
) -> subprocess.CompletedProcess[str]:
    """``ansible-playbook`` (the venv's ansible-core) over the loopback sshd."""
    if not ANSIBLE_PLAYBOOK.exists():
        pytest.skip("ansible-core not installed")
    env = {
        **os.environ,
        "ANSIBLE_SSH_ARGS": f"-F {sshd.config}",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
        "ANSIBLE_NOCOLOR": "1",
    }
    command = [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(playbook)]
    for variable in extra_vars:
        command += ["-e", variable]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def test_ansible_playbook_pushes_switches_and_confirms(sshd, mosquitto, frames, roots, tmp_path):
    root = roots[5]
    bundle = make_version(tmp_path, "9")
    script = restart_script(tmp_path, mosquitto.port, frames)
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f'[yuzug]\ndev6 device_root={root} yuzug_restart_command="{script} {root} dev6" '
        f"yuzug_broker=127.0.0.1:{mosquitto.port}\n"
    )
    result = run_playbook(
        sshd, tmp_path, ROOT / "deploy" / "ansible" / "push.yml", inventory, f"bundle_dir={bundle}"
    )
    stop_daemons(roots)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "Wait until the device reports the new version" in result.stdout
    assert "rescued=0" in result.stdout and "failed=0" in result.stdout
    assert (root / MODELS / "current").exists(), result.stdout[-3000:]
    assert current(root) == load_bundle(bundle).manifest.full_name
    manifest = json.loads((root / MODELS / "current" / "manifest.json").read_text())
    assert manifest["version"] == "test9"


def test_ansible_install_stages_in_a_folder_of_its_own_and_cleans_up(sshd, tmp_path):
    # The real playbook over the loopback sshd, in a copy of the repository whose install.sh
    # only records where it ran (the real one would install packages on this machine).
    copy = tmp_path / "repo"
    (copy / "deploy" / "ansible").mkdir(parents=True)
    (copy / "systemd").mkdir()
    shutil.copy(ROOT / "deploy" / "ansible" / "install.yml", copy / "deploy" / "ansible")
    shutil.copy(ROOT / "edge.example.toml", copy)
    shutil.copy(ROOT / "systemd" / "yuzug-edge.service", copy / "systemd")
    record = tmp_path / "ran.txt"
    (copy / "deploy" / "install.sh").write_text(
        f'#!/bin/sh\nd=$(dirname "$0")\n'
        f'{{ echo "$d"; stat -c %a "$d"; ls "$d"; echo "$@"; '
        f'[ -e "$d/mqtt_password" ] && stat -c %a "$d/mqtt_password" && cat "$d/mqtt_password"; '
        f"}} > {record}\nexit 0\n"
    )
    wheel = tmp_path / "yuzug-0.0.0-py3-none-any.whl"
    wheel.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[yuzug]\ndev7\n")
    files = ["edge.example.toml", "install.sh", "yuzug-edge.service", wheel.name]
    before = set(Path("/tmp").glob("yuzug-install*"))
    # Without a password, then with one from the inventory (ansible-vault's place).
    for password in (None, "vault-pass"):
        extra = [f"yuzug_device_mqtt_password={password}"] if password else []
        result = run_playbook(
            sshd,
            tmp_path,
            copy / "deploy" / "ansible" / "install.yml",
            inventory,
            f"wheel={wheel}",
            "ansible_become=false",  # already root here, and no sudo on this "device"
            *extra,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        assert "vault-pass" not in result.stdout + result.stderr  # no_log
        staged, mode, *listed = record.read_text().splitlines()
        assert staged.startswith("/tmp/yuzug-install.") and staged != "/tmp/yuzug-install.", staged
        assert mode == "700"
        arguments = f"--wheel {staged}/{wheel.name}"
        if password:
            # The installer gets it as a file only root reads, as --password-file.
            *listed, given, file_mode, content = listed
            assert sorted(listed) == sorted([*files, "mqtt_password"])
            assert given == f"{arguments} --password-file {staged}/mqtt_password"
            assert (file_mode, content) == ("600", password)
        else:
            *listed, given = listed
            assert sorted(listed) == sorted(files) and given == arguments
        assert not Path(staged).exists()  # removed afterwards
    assert set(Path("/tmp").glob("yuzug-install*")) == before


def test_systemd_unit_verifies(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not available here")
    # verify insists that ExecStart exists; point it at a stand-in, change nothing else.
    stand_in = tmp_path / "yuzug-edge"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    unit = (ROOT / "systemd" / "yuzug-edge.service").read_text()
    assert (
        "Type=notify" in unit and "WatchdogSec=" in unit and "RestartPreventExitStatus=78" in unit
    )
    assert "StateDirectory=yuzug-edge" in unit  # the MQTT event spool's only writable place
    copy = tmp_path / "yuzug-edge.service"
    copy.write_text(unit.replace("/opt/yuzug/venv/bin/yuzug-edge", str(stand_in)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    score = float(security.stdout.rsplit("exposure level for", 1)[1].split(":")[1].split()[0])
    assert score <= 2.5, security.stdout[-500:]


def test_install_stages_in_a_folder_of_its_own_and_leaves_nothing_behind(sshd, tmp_path):
    # It staged in a fixed /tmp/yuzug-install, which another local user could make first and
    # fill with an install.sh of their own for sudo to run, and left the copy there.
    import zipfile

    from deploy.install import install

    if shutil.which("sudo"):
        pytest.skip("sudo is installed here: the real installer would run")
    planted = Path("/tmp/yuzug-install")
    planted.mkdir(exist_ok=True)
    (planted / "install.sh").write_text("touch /tmp/yuzug-planted-ran\n")
    wheel = tmp_path / "yuzug-0.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("yuzug/__init__.py", "")
    try:
        before = set(Path("/tmp").glob("yuzug-install*"))
        outcome = install(Target(Remote("dev1", ssh_config=sshd.config), "dev1"), wheel)
        # No sudo on this "device": the install fails there, after the copy was staged.
        assert outcome.status == "failed" and "sudo" in outcome.detail, outcome
        assert set(Path("/tmp").glob("yuzug-install*")) == before
        assert (planted / "install.sh").read_text() == "touch /tmp/yuzug-planted-ran\n"
        assert not Path("/tmp/yuzug-planted-ran").exists()
    finally:
        shutil.rmtree(planted)


def test_a_pi_user_pushes_into_the_store_install_lays_out_and_the_daemon_reads_it(
    sshd, pi_user, tmp_path
):
    # install.sh made the store root:yuzug 0750: every push by pi@... failed with "Permission
    # denied". Now the deploy user owns it and the daemon's group reads what is pushed.
    device = Path(tempfile.mkdtemp(prefix="yuzug-device-", dir="/tmp"))  # reachable by pi
    device.chmod(0o755)
    store = device / MODELS
    venv_bin = tmp_path / "opt" / "venv" / "bin"  # install.sh's venv: this interpreter
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (venv_bin / "python").chmod(0o755)
    as_daemon = ["setpriv", "--reuid=65534", f"--regid={grp.getgrnam('yuzug').gr_gid}"]
    as_stranger = ["setpriv", "--reuid=65534", "--regid=65534"]
    try:
        laid_out = subprocess.run(
            ["bash", str(ROOT / "deploy" / "install.sh"), "--model-store-only"],
            capture_output=True,
            text=True,
            timeout=120,
            env={
                **os.environ,
                "SUDO_USER": pi_user,  # who ran `sudo ./install.sh`: yuzug-deploy install's user
                "YUZUG_PREFIX": str(venv_bin.parents[1]),
                "YUZUG_MODEL_STORE": str(store),
            },
        )
        assert laid_out.returncode == 0, laid_out.stdout + laid_out.stderr
        shipped = load_bundle(default_bundle_path()).manifest.full_name
        assert current(device) == shipped
        common = [
            "--ssh-config",
            str(sshd.config),
            "--root",
            str(device),
            "--device-id",
            "dev1",
            "--restart-command",
            "true",
            "--no-confirm",
            "--keep",
            "1",
        ]
        first, second = make_version(tmp_path, "pi1"), make_version(tmp_path, "pi2")
        for file in second.iterdir():  # written under a private umask here
            file.chmod(0o600)
        for bundle in (first, second):
            pushed = deploy_cli("push", "--model", str(bundle), f"{pi_user}@dev1", *common)
            assert pushed.returncode == 0, pushed.stdout + pushed.stderr
            assert "updated" in pushed.stdout
        names = [load_bundle(b).manifest.full_name for b in (first, second)]
        assert current(device) == names[1] and os.readlink(store / "previous") == names[0]
        assert not (store / shipped).exists()  # install's own copy pruned by pi (keep 1)
        # The daemon (group yuzug) reads every file of what was pushed; nobody else lists it.
        for name in ("model.tflite", "labels.txt", "manifest.json"):
            read = subprocess.run(
                [*as_daemon, "--clear-groups", "sha256sum", str(store / "current" / name)],
                capture_output=True,
                text=True,
            )
            assert read.returncode == 0, read.stderr
            assert (
                read.stdout.split()[0] == hashlib.sha256((second / name).read_bytes()).hexdigest()
            )
        listing = subprocess.run([*as_stranger, "--clear-groups", "ls", str(store)])
        assert listing.returncode != 0
    finally:
        shutil.rmtree(device, ignore_errors=True)


def test_install_script_parses_and_installs_what_it_promises():
    script = (ROOT / "deploy" / "install.sh").read_text()
    assert subprocess.run(["bash", "-n", str(ROOT / "deploy" / "install.sh")]).returncode == 0
    for promise in (
        "--system-site-packages",
        "python3-picamera2",
        "[edge]",
        # apt's picamera2 is built for the system's numpy: 1.x there keeps the venv on 1.x
        'numpy.__version__.split(".")[0] != "1"',
        '${numpy_pin:+"$numpy_pin"}',
        # the same version again is kept by pip: a reinstall must replace the code
        '--force-reinstall --no-deps "$WHEEL"',
        "usermod -a -G",
        "/etc/yuzug/mqtt_password",
        "systemctl enable yuzug-edge",
        "systemctl restart yuzug-edge",  # a re-install runs the new code at once
        'CREDENTIALS_DIRECTORY=/etc/yuzug "$PREFIX/venv/bin/yuzug-edge" validate-config',
    ):
        assert promise in script, promise


@pytest.mark.parametrize("hostname", ["raspberrypi", "Kitchen_PI", "living room"])
def test_the_config_install_writes_is_valid_and_reads_the_model_store(hostname, tmp_path):
    # The daemon must load the bundle `yuzug-deploy push` switches, not the one in the package:
    # install.sh fills that line in by editing the example config.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "hostname").write_text(f"#!/bin/sh\necho '{hostname}'\n")
    (fake_bin / "hostname").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"}
    printed = subprocess.run(
        ["bash", str(ROOT / "deploy" / "install.sh"), "--print-config"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert printed.returncode == 0, printed.stderr
    config_file = tmp_path / "edge.toml"
    config_file.write_text(printed.stdout)
    # As the service sees it: install.sh leaves an empty mqtt_password for an anonymous broker,
    # which the unit loads as a credential (it was refused as a password without a username),
    # and empty live-view secrets, which mean none.
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    unit = (ROOT / "systemd" / "yuzug-edge.service").read_text()
    loaded = re.findall(r"^LoadCredential=(\w+):/etc/yuzug/(\w+)$", unit, re.MULTILINE)
    assert sorted(loaded) == sorted((c, c) for c in SECRET_KEYS.values())
    script = (ROOT / "deploy" / "install.sh").read_text()
    assert "for credential in " + " ".join(SECRET_KEYS.values()) + "; do" in script
    for credential in SECRET_KEYS.values():
        (credentials / credential).write_bytes(b"")
    validated = subprocess.run(
        [sys.executable, "-m", "edge", "validate-config", "--config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CREDENTIALS_DIRECTORY": str(credentials)},
    )
    assert validated.returncode == 0, validated.stderr
    config = json.loads(validated.stdout)
    assert config["classifier"]["model"] == "/var/lib/yuzug/models/current"
    assert config["device_id"] == hostname.lower().replace(" ", "-")
