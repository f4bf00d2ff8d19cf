"""``yuzug-deploy``: models, config, checks and backups for devices, over the user's own SSH.

Commands: push | rollback | status | confirm | install | config | doctor | backup | restore.

Many hosts are handled in parallel (``--concurrency``), each reported on stderr as it finishes;
a per-host table is printed at the end, and the exit status is 1 if any host failed.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, TextIO

from deploy.backup import backup, read_backup, restore
from deploy.configure import (
    SECRET_KEYS,
    Edit,
    Secret,
    configure,
    parse_get,
    parse_secret_key,
    parse_set,
    parse_unset,
    show_settings,
)
from deploy.doctor import EDGE_COMMAND, Report, remote_doctor
from deploy.inventory import Device, from_hosts, load_inventory
from deploy.push import Confirmer, Outcome, Target, push, rollback, status
from deploy.remote import Remote
from edge.bundle import load_bundle
from edge.cli import (
    add_mqtt_login_arguments,
    broker_argument,
    device_id_argument,
    log_level_argument,
    mqtt_login,
    number_argument,
    topic_prefix_argument,
)
from edge.config import parse_broker
from edge.errors import ConfigError, YuzugError
from edge.log import setup_logging

logger = logging.getLogger("deploy")


def _add_targets(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hosts", nargs="*", metavar="HOST", help="ssh destinations")
    parser.add_argument("--inventory", type=Path, help="devices TOML (see devices.example.toml)")
    parser.add_argument(
        "--broker",
        type=broker_argument,
        help="MQTT host[:port] to confirm versions and read status",
    )
    add_mqtt_login_arguments(parser)
    parser.add_argument("--topic-prefix", type=topic_prefix_argument, default=None)
    parser.add_argument(
        "--device-id",
        type=device_id_argument,
        help="device_id of a single HOST (default: host name)",
    )
    parser.add_argument("--root", help="device root (default /; tests use a directory)")
    parser.add_argument("--restart-command", help="run on the device after switching")
    parser.add_argument("--ssh-config", type=Path, help="ssh config file instead of ~/.ssh/config")
    parser.add_argument(
        "--concurrency",
        type=number_argument("--concurrency", int, at_least=1),
        default=4,
        help="devices worked on at once (default 4)",
    )
    parser.add_argument(
        "--timeout",
        type=number_argument("--timeout", above=0),
        default=None,
        help="seconds to wait for a device to confirm (default 60)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yuzug-deploy", description=__doc__.split("\n")[0])
    parser.add_argument("--log-level", type=log_level_argument, default="WARNING")
    commands = parser.add_subparsers(dest="command", required=True)
    push_parser = commands.add_parser("push", help="put a model bundle on devices")
    push_parser.add_argument("--model", type=Path, required=True, help="bundle directory")
    push_parser.add_argument(
        "--keep",
        type=number_argument("--keep", int, at_least=1),
        help="versions kept per device (default 3)",
    )
    push_parser.add_argument(
        "--no-confirm",
        action="store_true",
        help="do not wait for the device to report the new version",
    )
    _add_targets(push_parser)
    _add_targets(commands.add_parser("rollback", help="switch devices back to their previous"))
    _add_targets(commands.add_parser("status", help="version, online state, last emotion"))
    confirm = commands.add_parser("confirm", help="wait until a device reports a version")
    confirm.add_argument("--broker", type=broker_argument, required=True, help="MQTT host[:port]")
    add_mqtt_login_arguments(confirm)
    confirm.add_argument("--device-id", type=device_id_argument, required=True)
    confirm.add_argument("--version", required=True, help="<name>-<version> of the bundle")
    confirm.add_argument("--topic-prefix", type=topic_prefix_argument, default="yuzug")
    confirm.add_argument("--timeout", type=number_argument("--timeout", above=0), default=60)
    config = commands.add_parser(
        "config",
        help="change keys of devices' edge.toml; restart, confirm or put the old one back",
    )
    config.set_defaults(edits=[])
    edit_flags = (
        ("--set", parse_set, "KEY=VALUE", 'section.key=value, the value as TOML (0.6, true, "en")'),
        ("--unset", parse_unset, "KEY", "remove section.key from the file: its default applies"),
    )
    for flag, parse, metavar, text in edit_flags:  # in the order given, into one list
        config.add_argument(
            flag, action="append", dest="edits", type=cli_type(parse), metavar=metavar, help=text
        )
    config.add_argument(
        "--set-secret",
        dest="secret_keys",
        action="append",
        default=[],
        type=cli_type(parse_secret_key),
        metavar="KEY",
        help=f"{', '.join(SECRET_KEYS)}: the device's systemd credential, its value read from "
        "standard input (a line per --set-secret, in order) or asked for on a terminal",
    )
    config.add_argument(
        "--get",
        dest="gets",
        action="append",
        default=[],
        type=cli_type(parse_get),
        metavar="KEY",
        help="print section.key as each device uses it (read only; repeat for more)",
    )
    config.add_argument(
        "--dry-run",
        action="store_true",
        help="say what would change on each device; change nothing",
    )
    config.add_argument(
        "--no-confirm",
        action="store_true",
        help="do not wait for the restarted daemon (and do not put the old config back)",
    )
    _add_targets(config)
    doctor = commands.add_parser(
        "doctor", help="each device's yuzug-edge doctor, beside its running daemon"
    )
    doctor.add_argument(
        "--edge-command",
        default=EDGE_COMMAND,
        help=f"yuzug-edge on the devices (default {EDGE_COMMAND}, where install.sh puts it)",
    )
    _add_targets(doctor)
    backup = commands.add_parser(
        "backup", help="keep devices' config, state (fit, diary, ...) and model here"
    )
    backup.add_argument(
        "--out", type=Path, default=Path("backups"), help="folder for the files (default backups)"
    )
    _add_targets(backup)
    restore = commands.add_parser(
        "restore", help="put a backup on a device (re-imaged, or a new one); restart, confirm"
    )
    restore.add_argument(
        "--from", dest="backup", type=Path, required=True, help="a file yuzug-deploy backup made"
    )
    _add_targets(restore)
    install = commands.add_parser("install", help="first-time set-up of a Pi")
    install.add_argument("--wheel", type=Path, help="yuzug wheel to install (default: build one)")
    _add_targets(install)
    return parser


def cli_type(parse: Any) -> Any:
    """An argparse type from a parser that raises ConfigError: argparse names the flag."""

    def parse_argument(text: str) -> Any:
        try:
            return parse(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse_argument


def resolve(args: argparse.Namespace) -> tuple[list[Device], dict[str, Any]]:
    overrides = {
        "root": args.root,
        "restart_command": args.restart_command,
        "keep": getattr(args, "keep", None),
        "device_id": args.device_id,
    }
    if args.inventory:
        devices, defaults = load_inventory(args.inventory, overrides)
        devices += from_hosts(args.hosts, {**defaults, **overrides}) if args.hosts else []
    else:
        if not args.hosts:
            raise YuzugError("name at least one HOST or an --inventory file")
        if args.device_id and len(args.hosts) > 1:
            raise YuzugError("--device-id applies to a single HOST; use an inventory for many")
        defaults = {}
        devices = from_hosts(args.hosts, overrides)
    refuse_duplicates(devices)
    settings = {
        "broker": args.broker or defaults.get("broker"),
        **{key: getattr(args, key) or defaults.get(key) for key in MQTT_LOGIN_KEYS},
        "topic_prefix": args.topic_prefix or defaults.get("topic_prefix", "yuzug"),
        "timeout": args.timeout or float(defaults.get("confirm_timeout", 60)),
    }
    return devices, settings


def refuse_duplicates(devices: list[Device]) -> None:
    """Two entries for one host would push to it twice at once; two devices with one id would
    confirm each other's versions (their reports share a topic)."""
    for what, key in (("host", lambda d: d.host), ("device_id", lambda d: d.device_id)):
        seen: dict[str, str] = {}
        for device in devices:
            value = key(device)
            if value in seen:
                also = "" if what == "host" else f" ({seen[value]} and {device.host})"
                raise YuzugError(f"{what} {value!r} is listed twice{also}")
            seen[value] = device.host


# The broker-login settings, as flags (add_mqtt_login_arguments) and inventory defaults.
MQTT_LOGIN_KEYS = ("mqtt_username", "mqtt_tls", "mqtt_ca_file")


def make_confirmer(settings: dict[str, Any], check: bool = True) -> Confirmer | None:
    """The broker connection that confirms versions; with ``check``, logged into once first,
    so a broker that is down or refuses the login stops the command before any device is
    touched."""
    if not settings["broker"]:
        login = [key for key in MQTT_LOGIN_KEYS if settings[key]]
        if login:  # a login for no broker: the user meant to confirm, and nothing would be
            raise YuzugError(f"{login[0]} is set but no broker is: add --broker HOST[:PORT]")
        return None
    host, port = parse_broker(str(settings["broker"]))
    broker = mqtt_login(
        host, port, settings["mqtt_username"], settings["mqtt_tls"], settings["mqtt_ca_file"]
    )
    confirmer = Confirmer(broker, settings["topic_prefix"])
    if check:
        confirmer.check()
    return confirmer


def target_for(device: Device, args: argparse.Namespace) -> Target:
    return Target(
        Remote(device.host, ssh_config=args.ssh_config),
        device.device_id,
        device.root,
        device.restart_command,
        device.keep,
    )


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    def cell(row: dict[str, Any], column: str) -> str:
        value = row.get(column)
        return "-" if value is None or value == "" else str(value)  # not "None"

    widths = {c: max(len(c), *(len(cell(r, c)) for r in rows)) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        print("  ".join(cell(row, c).ljust(widths[c]) for c in columns).rstrip())


def run_parallel(devices: list[Device], concurrency: int, work: Any) -> list[Any]:
    """``work`` for every device, ``concurrency`` at a time; results in the devices' order.

    With more than one device each result gets a line on stderr as it comes in ("[3/40]
    kitchen: updated ..."): a fleet push that waits on every device's confirmation takes
    minutes, and the table comes only at the end.
    """
    results: list[Any] = [None] * len(devices)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = {pool.submit(work, device): index for index, device in enumerate(devices)}
        for done, future in enumerate(as_completed(futures), start=1):
            index = futures[future]
            results[index] = future.result()
            if len(devices) > 1:
                print(
                    f"[{done}/{len(devices)}] {progress_line(devices[index], results[index])}",
                    file=sys.stderr,
                    flush=True,
                )
    return results


def progress_line(device: Device, result: Any) -> str:
    """``host: status version (seconds)`` of an outcome, or what a status row found."""
    if isinstance(result, Outcome):
        version = f" {result.version}" if result.version else ""
        detail = f": {result.detail}" if result.detail and not result.ok else ""
        return f"{result.host}: {result.status}{version} ({result.seconds:.1f} s){detail}"
    if isinstance(result, Report):
        return f"{result.host}: {result.status}"
    found = result.get("error") or result.get("version") or "-"
    return f"{device.host}: {found}"


def cmd_push(args: argparse.Namespace) -> int:
    bundle = load_bundle(args.model)  # refuses a broken bundle before touching any device
    devices, settings = resolve(args)
    confirmer = None if args.no_confirm else make_confirmer(settings)
    if confirmer is None and not args.no_confirm:
        print(
            "note: no --broker given, so new versions are not confirmed (and not rolled "
            "back automatically)",
            file=sys.stderr,
        )
    outcomes: list[Outcome] = run_parallel(
        devices,
        args.concurrency,
        lambda d: push(target_for(d, args), bundle, confirmer, settings["timeout"]),
    )
    print(f"model {bundle.manifest.full_name} -> {len(devices)} device(s)")
    print_table([vars(o) for o in outcomes], ["host", "status", "version", "seconds", "detail"])
    return 0 if all(o.ok for o in outcomes) else 1


def cmd_rollback(args: argparse.Namespace) -> int:
    devices, settings = resolve(args)
    confirmer = make_confirmer(settings)
    outcomes = run_parallel(
        devices,
        args.concurrency,
        lambda d: rollback(target_for(d, args), confirmer, settings["timeout"]),
    )
    print_table([vars(o) for o in outcomes], ["host", "status", "version", "seconds", "detail"])
    return 0 if all(o.ok for o in outcomes) else 1


def cmd_status(args: argparse.Namespace) -> int:
    devices, settings = resolve(args)
    confirmer = make_confirmer(settings, check=False)  # what ssh sees is worth showing anyway
    rows = run_parallel(devices, args.concurrency, lambda d: status(target_for(d, args), confirmer))
    columns = ["host", "device", "version", "versions"]
    if confirmer is not None:
        columns += ["online", "running", "camera", "emotion", "since"]
    print_table(rows, columns + ["error"])
    return 0 if all("error" not in r for r in rows) else 1


def cmd_confirm(args: argparse.Namespace) -> int:
    """The Ansible playbook's confirmation step: 0 once the device reports the version."""
    settings = {key: getattr(args, key) for key in ("broker", "topic_prefix", *MQTT_LOGIN_KEYS)}
    confirmer = make_confirmer(settings)
    assert confirmer is not None  # --broker is required
    why = confirmer.unconfirmed(args.device_id, args.version, args.timeout)
    if why is not None:
        print(
            f"{args.device_id} did not report {args.version} within {args.timeout:g} s: {why}",
            file=sys.stderr,
        )
        return 1
    print(f"{args.device_id} runs {args.version}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    edits: list[Edit] = args.edits
    if args.gets:
        if edits or args.secret_keys:
            raise YuzugError("--get only reads: give it without --set, --unset or --set-secret")
        devices, _ = resolve(args)
        found = run_parallel(
            devices, args.concurrency, lambda d: show_settings(target_for(d, args), args.gets)
        )
        print_table([vars(o) for o in found], ["host", "status", "detail"])
        return 0 if all(o.ok for o in found) else 1
    if not edits and not args.secret_keys:
        raise YuzugError(
            "nothing to change: give --set KEY=VALUE, --unset KEY or --set-secret KEY "
            "(or --get KEY)"
        )
    keys = [edit.key for edit in edits] + args.secret_keys
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise YuzugError(f"{', '.join(twice)} given more than once")
    devices, settings = resolve(args)
    secrets = read_secrets(args.secret_keys, sys.stdin)
    confirm = not (args.dry_run or args.no_confirm)
    confirmer = make_confirmer(settings) if confirm else None
    if confirmer is None and confirm:
        print(
            "note: no --broker given, so restarted daemons are not confirmed (and a config "
            "they cannot start with is not put back automatically)",
            file=sys.stderr,
        )
    outcomes = run_parallel(
        devices,
        args.concurrency,
        lambda d: configure(
            target_for(d, args),
            edits,
            confirmer,
            settings["timeout"],
            dry_run=args.dry_run,
            secrets=secrets,
        ),
    )
    print_table([vars(o) for o in outcomes], ["host", "status", "seconds", "detail"])
    return 0 if all(o.ok for o in outcomes) else 1


def read_secrets(keys: list[str], stream: TextIO) -> list[Secret]:
    """The values for ``--set-secret`` keys: asked for on a terminal (not echoed), else a line
    each from ``stream``, so that no secret stands on a command line or in shell history."""
    if not keys:
        return []
    if stream.isatty():
        values = [getpass.getpass(f"{key} for the devices: ") for key in keys]
    else:
        values = stream.read().splitlines()
        if len(values) < len(keys):
            raise YuzugError(
                f"--set-secret {', '.join(keys)}: expected {len(keys)} line(s) on standard "
                f"input, got {len(values)}"
            )
    secrets = [Secret(key, value) for key, value in zip(keys, values, strict=False)]
    empty = [secret.key for secret in secrets if not secret.value]
    if empty:
        raise YuzugError(f"--set-secret {', '.join(empty)}: the value is empty")
    return secrets


def cmd_doctor(args: argparse.Namespace) -> int:
    """A block per device: its doctor's lines under a heading that says how it went."""
    devices, _ = resolve(args)
    reports = run_parallel(
        devices, args.concurrency, lambda d: remote_doctor(target_for(d, args), args.edge_command)
    )
    for report in reports:
        print(f"== {report.host}: {report.status}")
        for line in report.lines:
            print(line if line.startswith(" ") else f"  {line}")
    return 0 if all(report.ok for report in reports) else 1


def cmd_backup(args: argparse.Namespace) -> int:
    devices, _ = resolve(args)
    outcomes = run_parallel(
        devices, args.concurrency, lambda d: backup(target_for(d, args), args.out)
    )
    print_table([vars(o) for o in outcomes], ["host", "status", "seconds", "detail"])
    return 0 if all(o.ok for o in outcomes) else 1


def cmd_restore(args: argparse.Namespace) -> int:
    found = read_backup(args.backup)  # refuses a broken backup before touching the device
    devices, settings = resolve(args)
    if len(devices) != 1:
        raise YuzugError(f"a backup is one device's: name one HOST, not {len(devices)}")
    confirmer = make_confirmer(settings)
    if confirmer is None:
        print(
            "note: no --broker given, so the restored daemon is not confirmed (and its "
            "model not rolled back automatically)",
            file=sys.stderr,
        )
    outcome = restore(target_for(devices[0], args), found, confirmer, settings["timeout"])
    print(f"backup of {found.device_id} ({found.meta.get('taken', '?')}) -> {outcome.host}")
    print_table([vars(outcome)], ["host", "status", "version", "seconds", "detail"])
    return 0 if outcome.ok else 1


def cmd_install(args: argparse.Namespace) -> int:
    from deploy.install import install, wheel_for_install

    devices, _ = resolve(args)
    with wheel_for_install(args.wheel) as wheel:  # built once, not once per device
        outcomes = run_parallel(
            devices, args.concurrency, lambda d: install(target_for(d, args), wheel)
        )
    print_table([vars(o) for o in outcomes], ["host", "status", "seconds", "detail"])
    return 0 if all(o.ok for o in outcomes) else 1


COMMANDS = {
    "push": cmd_push,
    "rollback": cmd_rollback,
    "status": cmd_status,
    "confirm": cmd_confirm,
    "install": cmd_install,
    "doctor": cmd_doctor,
    "config": cmd_config,
    "backup": cmd_backup,
    "restore": cmd_restore,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        return COMMANDS[args.command](args)
    except YuzugError as exc:
        print(f"yuzug-deploy: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
