"""Putting a bundle on a device safely: upload, verify, switch atomically, confirm or roll back.

On the device, bundles live in ``<root>/var/lib/yuzug/models/<name>-<version>/`` and the daemon
reads ``models/current``, a symlink. A push:

1. reads the version ``current`` points to; the same version again changes nothing;
2. uploads into ``models/.incoming-*`` (a killed transfer leaves only that, never a half-written
   version under ``current``; the next push removes it);
3. checks every file's sha256 on the device against the local bundle, refusing a mismatch;
4. flushes the files to storage, renames the directory into place and swaps ``current`` with
   ``rename(2)``, which is atomic, and points ``previous`` at the old version (then flushes the
   directory, so the switch survives a power cut);
5. restarts (or reloads) the daemon;
6. waits until the device's retained MQTT state reports the new version, and otherwise switches
   ``current`` back, restarts again and reports why;
7. keeps the newest ``keep`` versions plus ``current`` and ``previous``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import secrets
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.remote import Remote, RemoteError, q
from edge.bundle import ModelBundle
from edge.config import MQTTConfig, format_broker
from edge.publish.mqtt import make_client, refusal, try_login

logger = logging.getLogger(__name__)

MODELS_SUBDIR = "var/lib/yuzug/models"


@dataclass
class Target:
    """One device: how to reach it and how it is laid out."""

    remote: Remote
    device_id: str
    root: str = "/"
    restart_command: str = "sudo systemctl restart yuzug-edge"
    keep: int = 3

    @property
    def models(self) -> str:
        return str(Path(self.root) / MODELS_SUBDIR)

    def restart(self) -> None:
        command = self.restart_command.format(
            root=self.root, models=self.models, device_id=self.device_id
        )
        self.remote.run(command, timeout=120)


@dataclass
class Outcome:
    host: str
    status: str  # "updated", "unchanged", "rolled back", "failed", "unconfirmed"; config:
    # also "would change" (a dry run) and "refused" (an edit that device's file cannot take);
    # backup: "saved"
    version: str | None
    detail: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in ("updated", "unchanged", "ok", "would change", "saved")


class BrokerError(RemoteError):
    """The MQTT broker, not a device, failed: unreachable, silent, or it refused the login."""


class Confirmer:
    """Waits for a device's retained MQTT state to report a model version."""

    def __init__(self, broker: MQTTConfig, prefix: str = "yuzug") -> None:
        self.broker, self.prefix = broker, prefix

    @property
    def where(self) -> str:
        return format_broker(self.broker.host, self.broker.port)

    def check(self, timeout: float = 10.0) -> None:
        """Logs in once before any device is touched. A broker that refuses the login (Home
        Assistant's needs one) would otherwise hide every device's report, and each push would
        wait out its timeout and roll a healthy device back.

        Raises:
            BrokerError: unreachable, no answer within ``timeout``, or the login refused.
        """
        why = try_login(self.broker, timeout=timeout)
        if why is not None:
            raise BrokerError(f"MQTT broker {self.where}: {why}")

    def _session(
        self,
        topics: list[str],
        on_message: Callable[..., None],
        done: threading.Event,
        timeout: float,
    ) -> None:
        """Connects, subscribes to ``topics`` and waits for ``done`` or ``timeout``."""
        refused: list[Any] = []

        def on_connect(client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
            if rc.is_failure:
                refused.append(rc)
                done.set()
            else:
                client.subscribe([(topic, 1) for topic in topics])

        client = make_client(self.broker, client_id="")
        client.on_connect, client.on_message = on_connect, on_message
        try:
            client.connect(self.broker.host, self.broker.port, 30)
        except OSError as exc:
            raise BrokerError(f"cannot reach MQTT broker {self.where}: {exc}") from exc
        client.loop_start()
        try:
            done.wait(timeout)
        finally:
            client.disconnect()
            client.loop_stop()
        if refused:
            raise BrokerError(f"MQTT broker {self.where}: {refusal(self.broker, refused[0])}")

    def _states(
        self, device_id: str, until: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        matched: dict[str, Any] = {}
        done = threading.Event()

        def on_message(client: Any, userdata: Any, message: Any) -> None:
            text = message.payload.decode(errors="replace")
            if message.topic.endswith("/availability"):
                seen["availability"] = text
                if not message.retain and text == "online":
                    # A daemon process has just connected: any state seen so far is an older
                    # process's (one that hot-reloaded the new bundle before it was stopped,
                    # say), not proof that this one runs the version.
                    seen.pop("state", None)
            else:
                try:
                    state = json.loads(text)
                except json.JSONDecodeError:
                    return
                if not isinstance(state, dict):
                    # Not a daemon's state (another publisher's "1"): reading it as one raised
                    # in paho's thread, and a healthy device was rolled back at the timeout.
                    return
                seen["state"] = state
            if not done.is_set() and until(seen):
                matched.update(seen)  # the verdict is taken here, not after later messages
                done.set()

        topics = [f"{self.prefix}/{device_id}/{kind}" for kind in ("state", "availability")]
        self._session(topics, on_message, done, timeout)
        return matched if matched else seen

    def wait_version(self, device_id: str, version: str, timeout: float) -> bool:
        return self.unconfirmed(device_id, version, timeout) is None

    def unconfirmed(self, device_id: str, version: str, timeout: float) -> str | None:
        """None once the device reports ``version``; else what it was last seen doing."""

        def confirmed(seen: dict[str, Any]) -> bool:
            state = seen.get("state") or {}
            # Both retained messages must be in: a state that names the version, from a device
            # that is online (a retained state may arrive before a retained "offline").
            return state.get("model_version") == version and seen.get("availability") == "online"

        seen = self._states(device_id, confirmed, timeout)
        if confirmed(seen):
            return None
        availability, state = seen.get("availability"), seen.get("state")
        if availability is None and state is None:
            return "nothing from the device on the broker (wrong device id or broker?)"
        if availability == "offline":
            return "the daemon is offline (crashed or not starting: see its journal)"
        if state is None:
            return "the daemon is online but has published no state"
        return f"the daemon reports {state.get('model_version')}, camera {state.get('camera')}"

    def snapshot(self, device_id: str, timeout: float = 2.0) -> dict[str, Any]:
        return self._states(
            device_id, lambda seen: "state" in seen and "availability" in seen, timeout
        )


def bundle_files(bundle: ModelBundle) -> dict[str, str]:
    """File name -> sha256 for every file of the bundle directory."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(bundle.path.iterdir())
        if path.is_file()
    }


def _readable(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """Mode 0644 and no owner, whatever the files have here: the daemon reads them as group
    yuzug, and a bundle written under a private umask (0600) would be unreadable there."""
    member.mode = 0o644
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    return member


def _tar(bundle: ModelBundle, files: list[str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name in files:
            archive.add(bundle.path / name, arcname=name, filter=_readable)
    return buffer.getvalue()


def current_version(target: Target) -> str | None:
    text = target.remote.text(f"readlink {q(target.models)}/current || true").strip()
    return text.rstrip("/").split("/")[-1] or None


def _switch(target: Target, version: str, previous: str | None) -> None:
    """Atomically points ``current`` at ``version`` and ``previous`` at the old one."""
    models = q(target.models)
    script = f"cd {models} && ln -sfn {q(version)} .current.new && mv -T .current.new current"
    if previous and previous != version:
        script += f" && ln -sfn {q(previous)} .previous.new && mv -T .previous.new previous"
    target.remote.run(script + " && sync -- .")


def push(
    target: Target,
    bundle: ModelBundle,
    confirmer: Confirmer | None,
    confirm_timeout: float = 60.0,
) -> Outcome:
    started = time.monotonic()
    host = target.remote.host
    version = bundle.manifest.full_name
    try:
        outcome = _push(target, bundle, confirmer, confirm_timeout, version)
    except RemoteError as exc:
        outcome = Outcome(host, "failed", None, str(exc))
    outcome.seconds = round(time.monotonic() - started, 2)
    return outcome


def _push(
    target: Target,
    bundle: ModelBundle,
    confirmer: Confirmer | None,
    confirm_timeout: float,
    version: str,
) -> Outcome:
    host, models = target.remote.host, q(target.models)
    hashes = bundle_files(bundle)
    checklist = "".join(f"{digest}  {name}\n" for name, digest in hashes.items())
    # Stale uploads from killed pushes go first; then where does current point?
    target.remote.run(f"mkdir -p {models} && rm -rf {models}/.incoming-*")
    old = current_version(target)
    if old == version:
        verify = target.remote.run(
            f"cd {models}/{q(version)} && sha256sum --quiet -c -",
            input_bytes=checklist.encode(),
            check=False,
        )
        if verify.returncode == 0:
            return Outcome(host, "unchanged", version, "already running this version")

    incoming = f"{target.models}/.incoming-{secrets.token_hex(4)}"
    target.remote.run(
        f"mkdir -p {q(incoming)} && tar -x --no-same-owner -C {q(incoming)}",
        input_bytes=_tar(bundle, list(hashes)),
        timeout=300,
    )
    verify = target.remote.run(
        f"cd {q(incoming)} && sha256sum --quiet -c -", input_bytes=checklist.encode(), check=False
    )
    if verify.returncode != 0:
        target.remote.run(f"rm -rf {q(incoming)}", check=False)
        reason = verify.stdout.decode(errors="replace").strip() or "sha256sum failed"
        return Outcome(host, "failed", old, f"checksum mismatch on the device, refused: {reason}")
    # The checksums above were read from the page cache: flush every uploaded file (and the
    # renames, below) to storage first, or a power cut soon after a push can leave ``current``
    # pointing at empty files, which the daemon refuses (exit 78) until someone pushes again.
    target.remote.run(
        f"find {q(incoming)} -exec sync -- {{}} + && rm -rf {models}/{q(version)}"
        f" && mv -T {q(incoming)} {models}/{q(version)} && sync -- {models}"
    )
    _switch(target, version, old)
    try:
        target.restart()
    except RemoteError as exc:
        return _roll_back(
            target, version, old, confirmer, confirm_timeout, f"restart failed ({exc})"
        )
    if confirmer is not None:
        try:
            why = confirmer.unconfirmed(target.device_id, version, confirm_timeout)
        except BrokerError as exc:
            # The device may well be fine: rolling it back would blame it for the broker.
            return Outcome(
                host,
                "unconfirmed",
                version,
                f"switched to {version} but could not confirm it ({exc}); not rolled back: "
                "see `yuzug-deploy status` once the broker answers",
            )
        if why is not None:
            return _roll_back(
                target,
                version,
                old,
                confirmer,
                confirm_timeout,
                f"the device did not report {version} within {confirm_timeout:.0f} s ({why})",
            )
    prune(target, keep=target.keep)
    detail = f"was {old}" if old else "first model"
    if confirmer is None:
        detail += "; not confirmed (no broker given)"
    return Outcome(host, "updated", version, detail)


def _roll_back(
    target: Target,
    version: str,
    old: str | None,
    confirmer: Confirmer | None,
    confirm_timeout: float,
    reason: str,
) -> Outcome:
    host = target.remote.host
    if old is None:
        return Outcome(host, "failed", version, f"{reason}; no earlier version to roll back to")
    _switch(target, old, version)
    undone = f"{reason}; rolled back to {old}"
    return restart_undone(target, old, confirmer, confirm_timeout, undone)


def restart_undone(
    target: Target,
    version: str | None,
    confirmer: Confirmer | None,
    confirm_timeout: float,
    undone: str,
) -> Outcome:
    """After a change was undone on the device (``undone`` says why and what): restarts the
    daemon and waits for it to report ``version`` again (when a broker and a version are
    known). "rolled back", or "failed" when the restart fails."""
    host = target.remote.host
    try:
        target.restart()
    except RemoteError as exc:
        return Outcome(host, "failed", version, f"{undone} but restart failed: {exc}")
    back = True
    if confirmer is not None and version is not None:
        back = confirmer.wait_version(target.device_id, version, confirm_timeout)
    note = "" if back else f"; {version} has not confirmed yet either"
    return Outcome(host, "rolled back", version, f"{undone}{note}")


def rollback(target: Target, confirmer: Confirmer | None, confirm_timeout: float = 60.0) -> Outcome:
    """Switches ``current`` back to ``previous`` (and ``previous`` to the version it replaces)."""
    started = time.monotonic()
    host, models = target.remote.host, q(target.models)
    try:
        old = current_version(target)
        previous = target.remote.text(f"readlink {models}/previous || true").strip()
        if not previous:
            return Outcome(host, "failed", old, "no previous version recorded on the device")
        _switch(target, previous, old)
        target.restart()
        if confirmer and not confirmer.wait_version(target.device_id, previous, confirm_timeout):
            outcome = Outcome(
                host,
                "failed",
                previous,
                f"switched to {previous} but the device did not confirm it",
            )
        else:
            outcome = Outcome(host, "updated", previous, f"rolled back from {old}")
    except RemoteError as exc:
        outcome = Outcome(host, "failed", None, str(exc))
    outcome.seconds = round(time.monotonic() - started, 2)
    return outcome


def prune(target: Target, keep: int) -> None:
    """Removes all but the newest ``keep`` versions, never ``current`` or ``previous``."""
    models = q(target.models)
    listing = target.remote.text(
        f"cd {models} && readlink current; readlink previous; echo ---; ls -1t"
    )
    protected_part, _, versions_part = listing.partition("---")
    protected = {line.strip() for line in protected_part.splitlines() if line.strip()}
    versions = [
        v
        for v in versions_part.split()
        if v not in ("current", "previous") and not v.startswith(".")
    ]
    doomed = [v for v in versions[keep:] if v not in protected]
    if doomed:
        target.remote.run(f"cd {models} && rm -rf " + " ".join(q(v) for v in doomed))


def status(target: Target, confirmer: Confirmer | None) -> dict[str, Any]:
    """Version on disk, online state and last emotion time of one device."""
    row: dict[str, Any] = {"host": target.remote.host, "device": target.device_id}
    try:
        row["version"] = current_version(target) or "-"
        versions = target.remote.text(f"ls -1 {q(target.models)} 2>/dev/null || true").split()
        row["versions"] = len([v for v in versions if v not in ("current", "previous")])
    except RemoteError as exc:
        row["version"] = "unreachable"
        row["error"] = str(exc)
    if confirmer is not None:
        try:
            seen = confirmer.snapshot(target.device_id)
        except RemoteError as exc:
            seen = {}
            row["error"] = str(exc)
        state = seen.get("state") or {}
        row["online"] = seen.get("availability", "unknown")
        row["running"] = state.get("model_version", "-")
        row["camera"] = state.get("camera", "-")  # "lost" is the usual trouble
        if state.get("paused_by"):  # why, as Home Assistant's "Camera closed by" says it
            row["camera"] = f"{row['camera']} ({'+'.join(state['paused_by'])})"
        if state.get("suggested_rotation") is not None:  # faces look turned (edge.orientation)
            row["camera"] = f"{row['camera']} (turned: set rotation {state['suggested_rotation']})"
        row["emotion"] = state.get("emotion", "-")
        row["since"] = state.get("since", "-")
    return row
