"""`yuzug-deploy backup` and `restore` over a real OpenSSH server, with the real daemon (its
state folder as systemd's StateDirectory=) confirmed on a real Mosquitto: a device's config,
state and model are kept on the workstation without its secrets, and put back on the device
after it was wiped, the person's fit applying again under its old name."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import stat
import tarfile
from pathlib import Path

import pytest

from deploy.backup import read_backup
from deploy.push import Confirmer, Target, push
from deploy.remote import Remote
from edge.bundle import load_bundle
from edge.config import MQTTConfig
from edge.errors import BundleError, ConfigError
from edge.models import default_bundle_path
from edge.suggestions import save_dismissed
from tests.deploy.conftest import (
    MODELS,
    current,
    deploy_cli,
    device_toml,
    make_version,
    state_restart_script,
    stop_daemons,
)
from tests.support import wait_for, write_personal_file

pytestmark = pytest.mark.ssh

STATE = "var/lib/yuzug-edge"


def test_a_wiped_device_gets_its_config_state_and_model_back(
    sshd, mosquitto, frames, roots, tmp_path
):
    root = roots[5]
    config = root / "etc/yuzug/edge.toml"
    config.parent.mkdir(parents=True)
    original = "# The kitchen Pi.\n" + device_toml('"kitchen"', frames, root, mosquitto.port)
    config.write_text(original)
    (root / "etc/yuzug/http_token").write_text("s3cret-token\n")  # a credential
    state = root / STATE
    state.mkdir(parents=True, mode=0o700)
    fit = write_personal_file(state / "personal.json").read_bytes()  # for this model
    save_dismissed(state / "dismissed-suggestions.json", {"walk"})
    bundle = load_bundle(make_version(tmp_path, "kitchen"))
    version = bundle.manifest.full_name
    restart = f"{state_restart_script(tmp_path)} {root} dev6"
    target = Target(Remote("dev6", ssh_config=sshd.config), "kitchen", str(root), restart)
    confirmer = Confirmer(MQTTConfig(host="127.0.0.1", port=mosquitto.port))
    common = [
        *("dev6", "--ssh-config", str(sshd.config), "--root", str(root)),
        *("--restart-command", restart),
    ]
    backups = tmp_path / "backups"
    try:
        pushed = push(target, bundle, confirmer, confirm_timeout=60)
        assert pushed.status == "updated", pushed.detail
        log = root / "daemon.log"
        wait_for(lambda: "personal offsets applied" in log.read_text(), 30, what="the fit")

        saved = deploy_cli("backup", *common, "--out", str(backups))
        assert saved.returncode == 0, saved.stdout + saved.stderr
        (made,) = backups.glob("kitchen-*.tar.gz")
        assert stat.S_IMODE(made.stat().st_mode) == 0o600  # a person's fit and diary
        assert f"model {version}" in saved.stdout and "personal.json" in saved.stdout
        with tarfile.open(made) as archive:
            names = set(archive.getnames())
            meta = json.load(archive.extractfile("backup.json"))
            assert archive.extractfile("edge.toml").read().decode() == original
        assert {"state/personal.json", "state/dismissed-suggestions.json"} <= names
        assert "model/model.tflite" in names and "model/manifest.json" in names
        assert not [n for n in names if "token" in n]  # secrets stay on the device
        assert b"s3cret" not in gzip.decompress(made.read_bytes())
        assert (meta["device_id"], meta["model"], meta["host"]) == ("kitchen", version, "dev6")
        assert "config --set-secret" in meta["secrets"]

        # The SD card is re-imaged: a fresh install's config, an empty state folder, no model.
        stop_daemons([root])
        shutil.rmtree(root / MODELS)
        shutil.rmtree(state)
        state.mkdir(mode=0o700)
        (state / "dismissed-suggestions.json").write_text('{"dismissed": []}\n')
        config.write_text(device_toml('"yuzug"', frames, root, mosquitto.port))
        log.unlink()

        restored = deploy_cli(
            "restore", *common, "--from", str(made), "--broker", f"127.0.0.1:{mosquitto.port}"
        )
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert "updated" in restored.stdout and "as kitchen" in restored.stdout
        assert confirmer.wait_version("kitchen", version, 10)  # back under its own name
        assert current(root) == version
        assert config.read_text() == original
        assert (state / "personal.json").read_bytes() == fit
        assert json.loads((state / "dismissed-suggestions.json").read_text())["dismissed"] == [
            "walk"
        ]
        # What the wiped device had is kept, and the daemon moved the staged files itself.
        kept = state / "before-restore" / "dismissed-suggestions.json"
        assert json.loads(kept.read_text())["dismissed"] == []
        assert not (state / "restore").exists()
        text = log.read_text()
        assert "restored dismissed-suggestions.json, personal.json from a backup" in text
        assert "personal offsets applied" in text  # the fit applies to the model it came with
    finally:
        stop_daemons([root])


def archive_of(path: Path, files: dict[str, bytes]) -> Path:
    """A .tar.gz at ``path`` holding ``files`` (name: bytes) as they are given."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_a_backup_is_checked_before_any_device_is_touched(sshd, roots, tmp_path):
    broken = tmp_path / "cut.tar.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00 not a whole archive")
    with pytest.raises(ConfigError, match="not a readable backup"):
        read_backup(broken)
    other = tmp_path / "other.tar.gz"
    with tarfile.open(other, "w:gz") as archive:
        archive.add(__file__, arcname="notes.txt")
    refused = deploy_cli(
        *("restore", "dev7", "--ssh-config", str(sshd.config), "--root", str(roots[6])),
        *("--from", str(other)),
    )
    assert refused.returncode == 2 and "not a yuzug-deploy backup" in refused.stderr
    assert not list(roots[6].iterdir())  # nothing was written there
    meta = json.dumps({"format_version": 1}).encode()
    climbing = archive_of(tmp_path / "climbing.tar.gz", {"backup.json": meta, "model/..": b"x"})
    with pytest.raises(ConfigError, match=r"unexpected entry 'model/\.\.'"):
        read_backup(climbing)
    # A backup of a device with nothing on it yet.
    empty = archive_of(tmp_path / "empty.tar.gz", {"backup.json": meta})
    assert read_backup(empty).device_id == "yuzug"  # the daemon's default, without a config
    # A model whose bytes are not the ones its manifest names (a bit flipped on a backup disk).
    files = {f"model/{p.name}": p.read_bytes() for p in default_bundle_path().iterdir()}
    model = bytearray(files["model/model.tflite"])
    model[100] ^= 1
    files["model/model.tflite"] = bytes(model)
    described = json.dumps({"format_version": 1, "model": "flipped"}).encode()
    flipped = archive_of(tmp_path / "flipped.tar.gz", {"backup.json": described, **files})
    with pytest.raises(BundleError, match="sha256"):
        read_backup(flipped)
    two = deploy_cli("restore", "dev7", "dev8", "--from", str(empty))
    assert two.returncode == 2 and "a backup is one device's: name one HOST, not 2" in two.stderr

    # A config this version's daemon would refuse is kept all the same (it is what the device
    # has), named after the host; restoring it is refused, naming the key.
    root = roots[7]
    (root / "etc/yuzug").mkdir(parents=True)
    (root / "etc/yuzug/edge.toml").write_text('device_id = "hall"\nbogus = 1\n')
    saved = deploy_cli(
        *("backup", "dev8", "--ssh-config", str(sshd.config), "--root", str(root)),
        *("--out", str(tmp_path / "backups")),
    )
    assert saved.returncode == 0, saved.stdout + saved.stderr
    assert "config, no pushed model" in saved.stdout
    (made,) = (tmp_path / "backups").glob("dev8-*.tar.gz")
    with pytest.raises(ConfigError, match="bogus: Extra inputs are not permitted"):
        read_backup(made)
