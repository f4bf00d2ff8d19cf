"""A device's own data kept on the workstation, and put on a device again: ``yuzug-deploy
backup`` and ``yuzug-deploy restore``.

What a Pi holds that nothing else does: its config (``etc/yuzug/edge.toml``), its state folder
(``var/lib/yuzug-edge``: the person's fit, dismissed suggestions, the mood diary, the privacy
switch, events not delivered yet) and the model it runs, which the fit belongs to. A dead SD card
or a new Pi loses them. A backup is one ``.tar.gz`` of the three plus ``backup.json`` saying what
it holds, readable by the user only. Secrets stay out: they are systemd credentials, set again
with ``yuzug-deploy config --set-secret``.

A restore, onto the same device after re-imaging or onto a new one:

1. reads the backup here: its config passes the daemon's own check, its model its manifest;
2. stages the state files in ``<state>/restore/`` on the device, which the daemon moves into place
   at its next start before it reads any (``edge.restore``): a running daemon saves its diary as
   it stops and would overwrite a file written under it. What the device had is kept in
   ``<state>/before-restore/``;
3. swaps the config in, the old one kept as ``edge.toml.previous``;
4. pushes the model as ``push`` does, which restarts the daemon, and waits for the device to
   report it under the backup's device id (or rolls the model back, as a push does).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from deploy.configure import AS_ROOT, CONFIG_SUBPATH, read_config, replace_file, timed_outcome
from deploy.push import MODELS_SUBDIR, Confirmer, Outcome, Target, push
from deploy.remote import RemoteError, q
from edge.bundle import ModelBundle, load_bundle
from edge.config import validate_schema
from edge.errors import ConfigError

FORMAT_VERSION = 1
STATE_SUBPATH = "var/lib/yuzug-edge"
# The daemon's own staging folders (edge.restore): never part of a backup.
NOT_STATE = ("restore", "before-restore")
SECRETS_NOTE = "not included: set them again with yuzug-deploy config --set-secret"


@dataclass
class Backup:
    """A backup as read back: what ``backup.json`` says, and the files."""

    meta: dict[str, Any]
    config: str | None
    state: dict[str, bytes] = field(default_factory=dict)
    model: dict[str, bytes] = field(default_factory=dict)

    @property
    def device_id(self) -> str:
        return str(self.meta["device_id"])

    def describe(self) -> str:
        """``config, 3 state files (diary.json, ...), model yuzug-default-…``."""
        parts = ["config"] if self.config is not None else []
        if self.state:
            parts.append(f"{len(self.state)} state file(s) ({', '.join(sorted(self.state))})")
        parts.append(f"model {self.meta['model']}" if self.model else "no pushed model")
        return ", ".join(parts)


def backup(target: Target, out_dir: Path) -> Outcome:
    """Reads one device's config, state folder and current model into ``out_dir``."""
    return timed_outcome(target.remote.host, lambda: _backup(target, out_dir), "failed")


def _backup(target: Target, out_dir: Path) -> Outcome:
    host = target.remote.host
    root = q(target.root)
    excluded = " ".join(f"--exclude={q(f'{STATE_SUBPATH}/{name}')}" for name in NOT_STATE)
    # As root: the state folder is the service user's, mode 0700. Whatever of the three is there.
    script = (
        f"set -e; {AS_ROOT}; cd {root}; "
        f'version=$(readlink {MODELS_SUBDIR}/current || true); version="${{version##*/}}"; '
        f"set --; [ -f {CONFIG_SUBPATH} ] && set -- {CONFIG_SUBPATH}; "
        f'[ -d {STATE_SUBPATH} ] && set -- "$@" {STATE_SUBPATH}; '
        f'[ -n "$version" ] && [ -d "{MODELS_SUBDIR}/$version" ] && '
        f'set -- "$@" "{MODELS_SUBDIR}/$version"; '
        '[ "$#" -gt 0 ] || { echo "no yuzug config, state or model here" >&2; exit 3; }; '
        f'as_root tar -c {excluded} "$@"'
    )
    raw = target.remote.run(script, timeout=300).stdout
    taken = datetime.now(UTC)
    found = _from_device_tar(raw, host, taken)
    try:
        found.meta["device_id"] = _device_id(found.config, f"{host}:{CONFIG_SUBPATH}")
    except ConfigError:  # kept all the same (a restore refuses it, naming the key)
        found.meta["device_id"] = target.device_id
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{found.device_id}-{taken:%Y%m%dT%H%M%SZ}.tar.gz"
    _write(path, found)
    return Outcome(host, "saved", found.meta["model"], f"{path}: {found.describe()}")


def _from_device_tar(raw: bytes, host: str, taken: datetime) -> Backup:
    """The device's tar (paths under its root), read at ``taken``, as a :class:`Backup`."""
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "host": host,
        "taken": taken.isoformat(timespec="seconds"),
        "model": None,
        "secrets": SECRETS_NOTE,
    }
    found = Backup(meta, None)
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        for member in archive.getmembers():
            if not member.isfile():
                continue
            data = archive.extractfile(member)
            assert data is not None
            content, path = data.read(), PurePosixPath(member.name)
            if member.name == CONFIG_SUBPATH:
                found.config = content.decode("utf-8", errors="replace")
            elif path.parent == PurePosixPath(STATE_SUBPATH) and _plain_name(path.name):
                found.state[path.name] = content  # not a half-written ".x.tmp" of a save
            elif path.parent.parent == PurePosixPath(MODELS_SUBDIR):
                found.model[path.name] = content
                meta["model"] = path.parent.name
    meta["state"] = sorted(found.state)
    return found


def _device_id(config: str | None, source: str) -> str:
    """The ``device_id`` a config names (the daemon's default without one)."""
    if config is None:
        return "yuzug"
    try:
        return validate_schema(tomllib.loads(config), source).device_id
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not TOML ({exc})") from None


def _write(path: Path, found: Backup) -> None:
    """The backup as one .tar.gz, the user's alone (a person's fit and diary are in it),
    written beside and renamed into place."""
    entries = {"backup.json": json.dumps(found.meta, indent=2).encode() + b"\n"}
    if found.config is not None:
        entries["edge.toml"] = found.config.encode()
    entries.update({f"state/{name}": data for name, data in found.state.items()})
    entries.update({f"model/{name}": data for name, data in found.model.items()})
    partial = path.with_name(f".{path.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        with tarfile.open(fileobj=handle, mode="w:gz") as archive:
            for name, data in entries.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
                archive.addfile(info, io.BytesIO(data))
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)


def read_backup(path: Path) -> Backup:
    """A backup file, checked before any device is touched.

    Raises:
        ConfigError: it is not a YUZUG backup, or its config or model is not one the daemon
            would take.
    """
    try:
        with tarfile.open(path) as archive:
            files = {
                m.name: archive.extractfile(m).read()  # type: ignore[union-attr]
                for m in archive.getmembers()
                if m.isfile()
            }
    except (OSError, tarfile.TarError) as exc:
        raise ConfigError(f"{path}: not a readable backup ({exc})") from None
    try:
        meta = json.loads(files.pop("backup.json"))
        if meta["format_version"] != FORMAT_VERSION:
            raise ValueError(f"format_version {meta['format_version']!r}")
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not a yuzug-deploy backup ({exc})") from None
    config = files.pop("edge.toml", None)
    found = Backup(meta, None if config is None else config.decode("utf-8"))
    for name, data in files.items():
        folder, _, base = name.partition("/")
        if folder in ("state", "model") and _plain_name(base):
            getattr(found, folder)[base] = data
        else:
            # A name that climbs out of its folder ("state/../../x") is never written anywhere.
            raise ConfigError(f"{path}: unexpected entry {name!r}; not a yuzug-deploy backup")
    found.meta["device_id"] = _device_id(found.config, f"{path}:edge.toml")
    if found.model:
        with _bundle_dir(found):  # loading it checks its manifest's checksums, before any upload
            pass
    return found


def _plain_name(name: str) -> bool:
    """A file name of one path part, nothing hidden or relative: what a state folder or bundle
    holds, and safe to write under any folder."""
    return bool(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name))


@contextmanager
def _bundle_dir(found: Backup) -> Iterator[ModelBundle]:
    """The backup's model as a bundle folder (verified by :func:`load_bundle`)."""
    with tempfile.TemporaryDirectory(prefix="yuzug-restore-") as folder:
        directory = Path(folder) / str(found.meta["model"])
        directory.mkdir()
        for name, data in found.model.items():
            (directory / name).write_bytes(data)
        yield load_bundle(directory)


def restore(
    target: Target, found: Backup, confirmer: Confirmer | None, confirm_timeout: float = 60.0
) -> Outcome:
    """Puts ``found`` on one device (see the module's steps)."""
    return timed_outcome(
        target.remote.host,
        lambda: _restore(target, found, confirmer, confirm_timeout),
        "refused",
    )


def _restore(
    target: Target, found: Backup, confirmer: Confirmer | None, confirm_timeout: float
) -> Outcome:
    host = target.remote.host
    _stage_state(target, found.state)
    if found.config is not None:
        path, raw, old = read_config(target)
        if old != found.config:
            replace_file(target, path, found.config, hashlib.sha256(raw).hexdigest())
    restored = replace(target, device_id=found.device_id)  # what it reports as from now on
    done = f"restored {found.describe()} as {found.device_id}"
    if not found.model:
        restored.restart()
        return Outcome(
            host, "updated", None, f"{done}; not confirmed (no pushed model to wait for)"
        )
    with _bundle_dir(found) as bundle:
        version = bundle.manifest.full_name
        pushed = push(restored, bundle, confirmer, confirm_timeout)
    if pushed.status == "unchanged":  # the model was there already: the rest needs a restart
        restored.restart()
        if confirmer is not None:
            why = confirmer.unconfirmed(found.device_id, version, confirm_timeout)
            if why is not None:
                return Outcome(host, "unconfirmed", version, f"{done}; not confirmed ({why})")
        pushed = Outcome(host, "updated", version, "")
    if not pushed.ok:
        return replace(pushed, detail=f"{pushed.detail}; config and state were restored")
    return replace(pushed, detail=f"{done}; {pushed.detail}".rstrip("; "))


def _stage_state(target: Target, state: dict[str, bytes]) -> None:
    """The state files into ``<state>/restore/`` on the device, owned as the state folder is
    (the service user's under systemd), flushed to storage."""
    if not state:
        return
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in state.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            archive.addfile(info, io.BytesIO(data))
    folder = q(str(Path(target.root) / STATE_SUBPATH))
    staged = q(str(Path(target.root) / STATE_SUBPATH / "restore"))
    try:
        target.remote.run(
            f"set -e; {AS_ROOT}; as_root mkdir -p {folder}; as_root rm -rf {staged}; "
            f"as_root mkdir -m 0700 {staged}; as_root tar -x --no-same-owner -C {staged}; "
            f"as_root chown -R --reference={folder} {staged}; "
            f"as_root find {staged} -exec sync -- {{}} +",
            input_bytes=buffer.getvalue(),
            timeout=120,
        )
    except RemoteError as exc:
        raise RemoteError(f"{exc} (staging the state files; nothing else changed)") from None
