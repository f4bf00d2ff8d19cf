"""Changing keys of devices' ``edge.toml`` over SSH: ``yuzug-deploy config --set KEY=VALUE``.

Each device keeps its own file (its ``device_id``, camera, comments); only the named keys
change. For each device:

1. read ``<root>/etc/yuzug/edge.toml`` and change the keys line by line (a key's line is
   replaced, a commented-out default is followed by the new line, a missing section is added),
   then read the result back: it must hold exactly the old values with the edits, and pass the
   daemon's own check of keys and values, or the device is refused untouched;
2. write it beside the old one, flush it, keep the old one as ``edge.toml.previous`` and swap
   the new one in with ``rename(2)`` (with ``sudo -n`` unless the login is root: the file is
   root's), refusing if the file changed on the device since it was read;
3. restart the daemon and wait until its retained MQTT state comes back from a fresh process;
   otherwise put ``edge.toml.previous`` back, restart again and say why.

Secrets (``--set-secret mqtt.password``) never go in the file: each is the systemd credential
the unit loads (``<root>/etc/yuzug/mqtt_password``, root's, mode 0600), swapped in the same way
beside its ``.previous`` and put back with the file; its value crosses SSH on standard input
only, never on a command line, and is never printed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from deploy.push import (
    BrokerError,
    Confirmer,
    Outcome,
    Target,
    current_version,
    restart_undone,
)
from deploy.remote import RemoteError, q
from edge.config import validate_schema
from edge.errors import ConfigError

CONFIG_SUBPATH = "etc/yuzug/edge.toml"
CREDENTIALS_SUBPATH = "etc/yuzug"  # LoadCredential= in systemd/yuzug-edge.service
UNIT_SUBPATH = "etc/systemd/system/yuzug-edge.service"  # where install.sh puts the unit

# Secrets never go in the file: systemd credentials hold them (--set-secret); nothing shows them.
SECRET_KEYS = {
    "mqtt.password": "mqtt_password",
    "http.token": "http_token",
    "http.password": "http_password",
}
# Keys a fleet edit must not touch, and why: they name the device on the broker (the
# confirmation would look for it under the old name), or they are secrets.
REFUSED_KEYS = {
    "device_id": "it names the device on the broker: edit it on that device",
    "mqtt.topic_prefix": "it names the device on the broker: edit it on that device",
    **{
        key: f"secrets never go in edge.toml: --set-secret {key} keeps it as the {credential} "
        "credential"
        for key, credential in SECRET_KEYS.items()
    },
}
_KEY = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)?$")
_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_UNSET = object()


@dataclass(frozen=True)
class Edit:
    """One change: ``key`` (``section.key`` or a top-level key) set to ``value`` written as the
    TOML ``literal``, or removed (``literal`` None) so that its default applies."""

    key: str
    value: Any = None
    literal: str | None = None

    @property
    def section(self) -> str | None:
        return self.key.split(".")[0] if "." in self.key else None

    @property
    def name(self) -> str:
        return self.key.split(".")[-1]


@dataclass(frozen=True)
class Secret:
    """A new value for one of ``SECRET_KEYS``, bound for its systemd credential file."""

    key: str
    value: str = field(repr=False)  # never in a repr, a log line or an outcome

    @property
    def credential(self) -> str:
        return SECRET_KEYS[self.key]


@dataclass(frozen=True)
class _NewSecret:
    """A secret whose credential on the device holds another value, or does not exist yet."""

    secret: Secret
    existed: bool


def parse_secret_key(text: str) -> str:
    key = text.strip()
    if key not in SECRET_KEYS:
        raise ConfigError(f"{key!r}: --set-secret takes {', '.join(SECRET_KEYS)}")
    return key


def _key(key: str) -> str:
    if not _KEY.match(key):
        raise ConfigError(f"{key!r}: give SECTION.KEY (classifier.max_fps) or a top-level KEY")
    return key


def _load_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None


def _checked_key(key: str) -> str:
    if _key(key) in REFUSED_KEYS:
        raise ConfigError(f"{key} cannot be changed with yuzug-deploy config: {REFUSED_KEYS[key]}")
    return key


def parse_set(text: str) -> Edit:
    """``KEY=VALUE``; VALUE as TOML (``0.6``, ``true``, ``"x"``, ``[1, 2]``), else a string."""
    key, equals, raw = text.partition("=")
    if not equals:
        raise ConfigError(f"{text!r}: give KEY=VALUE")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
        literal = raw
    except tomllib.TOMLDecodeError:
        value, literal = raw, json.dumps(raw, ensure_ascii=False)  # a bare word: a string
    if isinstance(value, dict):
        raise ConfigError(f"{text!r}: set the table's keys one by one")
    return Edit(_checked_key(key.strip()), value, literal)


def parse_unset(text: str) -> Edit:
    return Edit(_checked_key(text.strip()))


def parse_get(text: str) -> str:
    """A key to read: any SECTION.KEY or top-level KEY; for a secret only whether it is set."""
    return _key(text.strip())


def _in_file(data: dict[str, Any], key: str) -> Any:
    """What a parsed file sets ``key`` (``section.key`` or top-level) to, or ``_UNSET``."""
    section, _, name = key.rpartition(".")
    table = data.get(section, {}) if section else data
    return table.get(name, _UNSET) if isinstance(table, dict) else _UNSET


def read_settings(text: str, keys: list[str], source: str) -> dict[str, str]:
    """``{"emotion.min_confidence": "emotion.min_confidence = 0.65", "classifier.max_fps":
    "classifier.max_fps = 0.0 (default)"}``: each key's value as the daemon would use it,
    marked where the file leaves it to the default.

    Raises:
        ConfigError: the file is no valid config, or a key is not one (for this camera type).
    """
    data = _load_toml(text, source)
    config = validate_schema(data, source)
    shown = {}
    for key in keys:
        section, _, name = key.rpartition(".")
        holder = getattr(config, section, None) if section else config
        if not isinstance(holder, BaseModel) or name not in type(holder).model_fields:
            raise ConfigError(f"{source}: {key} is no setting here")
        value = json.dumps(getattr(holder, name), default=str, ensure_ascii=False)
        default = " (default)" if _in_file(data, key) is _UNSET else ""
        shown[key] = f"{key} = {value}{default}"
    return shown


def _section_range(lines: list[str], section: str | None) -> tuple[int, int] | None:
    """[start, end) of the lines under ``[section]`` (None: before the first header)."""
    headers = [(i, m.group(1)) for i, line in enumerate(lines) if (m := _HEADER.match(line))]
    if section is None:
        return 0, headers[0][0] if headers else len(lines)
    for index, (at, name) in enumerate(headers):
        if name.strip('"') == section and not lines[at].lstrip().startswith("[["):
            end = headers[index + 1][0] if index + 1 < len(headers) else len(lines)
            return at + 1, end
    return None


def _apply_to_lines(lines: list[str], edit: Edit) -> list[str]:
    found = _section_range(lines, edit.section)
    if found is None:
        if edit.literal is None:
            return lines  # nothing to remove
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        return [*lines, "\n", f"[{edit.section}]\n", f"{edit.name} = {edit.literal}\n"]
    start, end = found
    name = re.escape(edit.name)
    active = re.compile(rf'^\s*(?:{name}|"{name}")\s*=')
    commented = re.compile(rf"^\s*#\s*{name}\s*=")
    at = next((i for i in range(start, end) if active.match(lines[i])), None)
    if edit.literal is None:
        return lines if at is None else lines[:at] + lines[at + 1 :]
    new_line = f"{edit.name} = {edit.literal}\n"
    if at is not None:
        return [*lines[:at], _keep_comment(lines[at], new_line), *lines[at + 1 :]]
    hint = next((i for i in range(start, end) if commented.match(lines[i])), None)
    if hint is None:  # after the section's last non-blank line
        hint = max((i for i in range(start, end) if lines[i].strip()), default=start - 1)
    if hint >= 0 and not lines[hint].endswith("\n"):
        lines[hint] += "\n"
    return [*lines[: hint + 1], new_line, *lines[hint + 1 :]]


def _keep_comment(old_line: str, new_line: str) -> str:
    """``new_line`` with ``old_line``'s trailing comment, in the same column: the first ``#``
    before which the line is a whole TOML key/value (a ``#`` inside a string is not one)."""
    for at in (i for i, char in enumerate(old_line) if char == "#"):
        try:
            tomllib.loads(old_line[:at])
        except tomllib.TOMLDecodeError:
            continue
        comment = old_line[at:].rstrip("\n")
        code = new_line.rstrip("\n")
        return f"{code.ljust(at - 1)} {comment}\n"
    return new_line


def _expected(data: dict[str, Any], edits: list[Edit]) -> dict[str, Any]:
    expected = copy.deepcopy(data)
    for edit in edits:
        table = expected.setdefault(edit.section, {}) if edit.section else expected
        if not isinstance(table, dict):
            raise ConfigError(f"{edit.key}: {edit.section} is not a table in this file")
        if edit.literal is None:
            table.pop(edit.name, None)
            if edit.section and not table and edit.section not in data:
                expected.pop(edit.section)
        else:
            table[edit.name] = edit.value
    return expected


def edit_config(text: str, edits: list[Edit], source: str) -> str:
    """``text`` with ``edits`` made, comments and the other keys as they were.

    Raises:
        ConfigError: the file is no TOML, an edit could not be made in place (a value that
            spans lines, say) or the result is not a valid daemon config (naming the key).
    """
    before = _load_toml(text, source)
    lines = text.splitlines(keepends=True)
    for edit in edits:
        lines = _apply_to_lines(lines, edit)
    result = "".join(lines)
    try:
        after = tomllib.loads(result)
    except tomllib.TOMLDecodeError:
        after = None
    if after != _expected(before, edits):
        keys = ", ".join(edit.key for edit in edits)
        raise ConfigError(
            f"{source}: {keys} cannot be changed line by line here (a value over several "
            "lines, or a dotted or inline table?); edit the file on the device"
        )
    validate_schema(after, source)  # the daemon's own check of keys and values
    return result


def describe_changes(text: str, edits: list[Edit]) -> str:
    """``classifier.max_fps 0.0 -> 5.0; emotion.min_confidence 0.65 -> (default)``."""
    data = tomllib.loads(text)
    parts = []
    for edit in edits:
        old = _in_file(data, edit.key)
        shown = [
            "(default)" if value is _UNSET else json.dumps(value, ensure_ascii=False)
            for value in (old, _UNSET if edit.literal is None else edit.value)
        ]
        if shown[0] != shown[1]:
            parts.append(f"{edit.key} {shown[0]} -> {shown[1]}")
    return "; ".join(parts)


# On the device: root's file, so sudo unless the login is root; `-n`, so a sudo that wants a
# password fails at once instead of hanging the ssh session.
AS_ROOT = 'as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }'


def _swap_in(target: Target, path: str, fill: str, before: str = "", text: bytes = b"") -> None:
    """Runs ``before`` in ``path``'s folder, then ``fill`` (shell that writes "$tmp", a new
    file beside ``path``), flushes it and renames it over ``path``: atomic, and whole after a
    power cut. ``text`` is the standard input."""
    folder, name = q(str(Path(path).parent)), q(Path(path).name)
    target.remote.run(
        f"set -e; {AS_ROOT}; cd {folder}; {before}"
        f"tmp=$(as_root mktemp .{Path(path).name}.XXXXXX); {fill}; "
        f'as_root sync "$tmp"; as_root mv -f "$tmp" {name}; as_root sync .',
        input_bytes=text,
    )


def replace_file(target: Target, path: str, text: str, expected_sha: str) -> None:
    """Swaps ``text`` in for ``path``, the old file kept as ``.previous``; refused when the
    file no longer has ``expected_sha`` (someone edited it meanwhile)."""
    name = q(Path(path).name)
    unchanged = (
        f'[ "$(sha256sum < {name} | cut -d" " -f1)" = {expected_sha} ] '
        f'|| {{ echo "{path} changed on the device while this ran; try again" >&2; exit 3; }}; '
        f"as_root cp -p {name} {name}.previous; "
    )
    fill = 'as_root tee "$tmp" >/dev/null; as_root chmod 0644 "$tmp"'
    _swap_in(target, path, fill, before=unchanged, text=text.encode())


def _restore(target: Target, path: str) -> None:
    """Puts ``path.previous`` back, the same way."""
    _swap_in(target, path, f'as_root cp -p {q(Path(path).name)}.previous "$tmp"')


def read_config(target: Target) -> tuple[str, bytes, str]:
    """The device's config file: its path, bytes and text."""
    host = target.remote.host
    path = str(Path(target.root) / CONFIG_SUBPATH)
    read = target.remote.run(f"cat {q(path)}", check=False)
    if read.returncode != 0:
        error = read.stderr.decode(errors="replace").strip() or f"exit {read.returncode}"
        raise RemoteError(f"{host}: cannot read {path} ({error}); is yuzug installed there?")
    try:
        return path, read.stdout, read.stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{host}:{path} is not UTF-8 text") from None


def timed_outcome(
    host: str, work: Callable[[], Outcome], config_status: str, note: str = ""
) -> Outcome:
    """``work``'s outcome, or one for the ConfigError (``config_status``, the message plus
    ``note``) or RemoteError it raised; with the seconds it took."""
    started = time.monotonic()
    try:
        outcome = work()
    except ConfigError as exc:
        outcome = Outcome(host, config_status, None, f"{exc}{note}")
    except RemoteError as exc:
        outcome = Outcome(host, "failed", None, str(exc))
    outcome.seconds = round(time.monotonic() - started, 2)
    return outcome


def show_settings(target: Target, keys: list[str]) -> Outcome:
    """What ``keys`` are set to on one device (read only)."""
    host = target.remote.host

    def read() -> Outcome:
        path, _, text = read_config(target)
        secrets = [key for key in keys if key in SECRET_KEYS]
        shown = read_settings(text, [k for k in keys if k not in secrets], f"{host}:{path}")
        shown.update(_secret_states(target, secrets))
        return Outcome(host, "ok", None, "; ".join(shown[key] for key in keys))

    return timed_outcome(host, read, "failed")


def configure(
    target: Target,
    edits: list[Edit],
    confirmer: Confirmer | None,
    confirm_timeout: float = 60.0,
    dry_run: bool = False,
    secrets: Sequence[Secret] = (),
) -> Outcome:
    return timed_outcome(
        target.remote.host,
        lambda: _configure(target, edits, secrets, confirmer, confirm_timeout, dry_run),
        "refused",
        "; nothing changed",
    )


def _configure(
    target: Target,
    edits: list[Edit],
    secrets: Sequence[Secret],
    confirmer: Confirmer | None,
    confirm_timeout: float,
    dry_run: bool,
) -> Outcome:
    host = target.remote.host
    path, raw, old = read_config(target)
    new = edit_config(old, edits, f"{host}:{path}") if edits else old
    new_secrets = _changed_secrets(target, secrets)
    replaced = [f"{n.secret.key} replaced (credential {n.secret.credential})" for n in new_secrets]
    changes = "; ".join(filter(None, [describe_changes(old, edits), *replaced]))
    if new == old and not new_secrets:
        return Outcome(host, "unchanged", None, "already set")
    if dry_run:
        return Outcome(host, "would change", None, changes)
    version = current_version(target)
    if confirmer is not None and version is None:  # it runs the bundle inside the package
        reported = (confirmer.snapshot(target.device_id).get("state") or {}).get("model_version")
        version = str(reported) if reported else None
    undo = _write_all(target, path, new if new != old else None, raw, new_secrets)
    try:
        target.restart()
    except RemoteError as exc:
        return _put_back(target, undo, confirmer, version, confirm_timeout, f"restart: {exc}")
    if confirmer is None:
        return Outcome(host, "updated", None, f"{changes}; not confirmed (no broker given)")
    if version is None:
        return Outcome(host, "unconfirmed", None, f"{changes}; the device reports no model")
    try:
        why = confirmer.unconfirmed(target.device_id, version, confirm_timeout)
    except BrokerError as exc:
        return Outcome(host, "unconfirmed", None, f"{changes}; not confirmed ({exc})")
    if why is not None:
        reason = f"the daemon did not come back within {confirm_timeout:.0f} s ({why})"
        return _put_back(target, undo, confirmer, version, confirm_timeout, reason)
    return Outcome(host, "updated", None, changes)


def _credential_path(target: Target, credential: str) -> str:
    """Where the unit's ``LoadCredential=`` reads ``credential`` from on the device."""
    return str(Path(target.root) / CREDENTIALS_SUBPATH / credential)


def _secret_states(target: Target, keys: list[str]) -> dict[str, str]:
    """Whether each secret is set on the device, never its value: ``mqtt.password = (set)``,
    ``(none)`` for an empty credential (install.sh's "no password"), or no file at all. Only
    the files' sizes are looked at, which needs no root."""
    if not keys:
        return {}
    paths = " ".join(q(_credential_path(target, SECRET_KEYS[key])) for key in keys)
    found = target.remote.text(
        f'for f in {paths}; do if [ -s "$f" ]; then echo set; '
        'elif [ -e "$f" ]; then echo none; else echo missing; fi; done'
    ).split()
    words = {"set": "(set)", "none": "(none)", "missing": "(no credential file)"}
    return {key: f"{key} = {words[state]}" for key, state in zip(keys, found, strict=True)}


def _changed_secrets(target: Target, secrets: Sequence[Secret]) -> list[_NewSecret]:
    """The secrets whose credential on the device holds another value, compared by sha256 there
    (the device's value never comes back), with whether the file exists yet.

    Raises:
        ConfigError: the device's unit does not load one of them (it was installed before the
            unit did), so the daemon would never see it: a live-view token that silently
            protects nothing.
    """
    if not secrets:
        return []
    unit = q(str(Path(target.root) / UNIT_SUBPATH))
    checks = " ".join(
        f"{q(_credential_path(target, s.credential))}:{s.credential}" for s in secrets
    )
    found = target.remote.text(
        f"set -e; {AS_ROOT}; for check in {checks}; do "
        'f="${check%:*}"; name="${check##*:}"; '
        f'grep -q "^LoadCredential=$name:" {unit} 2>/dev/null && loads=yes || loads=no; '
        # No pipe after sudo: under set -e a sudo that wants a password must end the script.
        'if [ -e "$f" ]; then sha=$(as_root sha256sum "$f"); sha="${sha%% *}"; '
        'else sha=-; fi; echo "$sha $loads"; done'
    ).split()
    unloaded = [
        s.credential for s, loads in zip(secrets, found[1::2], strict=True) if loads != "yes"
    ]
    if unloaded:
        raise ConfigError(
            f"{target.remote.host}: its yuzug-edge service does not load the "
            f"{', '.join(unloaded)} credential (installed before it did), so the daemon would "
            "not see it: run yuzug-deploy install on it first"
        )
    changed = []
    for secret, sha in zip(secrets, found[0::2], strict=True):
        # install.sh copies a password file as it is, often with its line's newline, which
        # the daemon strips (edge.config.read_secret): the same password either way.
        same = {hashlib.sha256(secret.value.encode() + end).hexdigest() for end in (b"", b"\n")}
        if sha not in same:
            changed.append(_NewSecret(secret, existed=sha != "-"))
    return changed


def _write_all(
    target: Target, path: str, text: str | None, raw: bytes, secrets: list[_NewSecret]
) -> list[Callable[[], None]]:
    """Swaps in the new config ``text`` (None: unchanged) and each credential; returns how to
    undo each step done. A step that fails undoes the ones before it, then raises."""
    undo: list[Callable[[], None]] = []
    try:
        if text is not None:
            replace_file(target, path, text, hashlib.sha256(raw).hexdigest())
            undo.append(partial(_restore, target, path))
        for new in secrets:
            credential = _credential_path(target, new.secret.credential)
            _replace_credential(target, credential, new)
            undo.append(partial(_restore if new.existed else _remove, target, credential))
    except RemoteError:
        _undo(undo)
        raise
    return undo


def _replace_credential(target: Target, path: str, new: _NewSecret) -> None:
    """Swaps the secret in for the credential file (root's, 0600 as mktemp makes it), the old
    one kept as ``.previous``; the value goes over standard input, never on a command line."""
    name = q(Path(path).name)
    keep = f"as_root cp -p {name} {name}.previous; " if new.existed else ""
    _swap_in(
        target,
        path,
        'as_root tee "$tmp" >/dev/null',
        before=keep,
        text=new.secret.value.encode(),
    )


def _remove(target: Target, path: str) -> None:
    target.remote.run(f"{AS_ROOT}; as_root rm -f {q(path)}")


def _undo(steps: list[Callable[[], None]]) -> None:
    for step in reversed(steps):
        step()


def _put_back(
    target: Target,
    undo: list[Callable[[], None]],
    confirmer: Confirmer | None,
    version: str | None,
    confirm_timeout: float,
    reason: str,
) -> Outcome:
    _undo(undo)
    undone = f"{reason}; old config restored"
    return restart_undone(target, version, confirmer, confirm_timeout, undone)
