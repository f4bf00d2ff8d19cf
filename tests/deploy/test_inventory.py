"""The fleet inventory (devices.toml) is validated once, every wrong key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.inventory import load_inventory
from edge.errors import ConfigError

EXAMPLE = Path(__file__).parents[2] / "deploy" / "devices.example.toml"


def test_the_example_inventory_loads_with_defaults_and_overrides():
    devices, defaults = load_inventory(EXAMPLE, {"keep": 5, "root": None})
    assert [d.host for d in devices] == ["pi@kitchen.local", "livingroom-pi"]
    assert [d.device_id for d in devices] == ["kitchen", "livingroom-pi"]
    assert {d.keep for d in devices} == {5}  # the command line wins over [defaults]
    assert defaults["broker"] == "homeassistant.local:1883" and defaults["confirm_timeout"] == 60


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("devices = 3", ["devices: Input should be a valid list"]),
        ("[defaults]\nkeep = 2", ["devices: Field required"]),
        ('[[devices]]\ndevice_id = "k"', ["devices.0.host: Field required"]),
        (
            '[defaults]\nrestart_comand = "true"\n[[devices]]\nhost = "a"\n'
            '[[devices]]\nhost = "b"\nkeep = 0',
            ["defaults.restart_comand: Extra inputs", "devices.1.keep: Input should be greater"],
        ),
        ('[[devices]]\nhost = "a"\nkeep = "many"', ["devices.0.keep: Input should be a valid int"]),
        (
            '[defaults]\nbroker = "ha.local:188300"\n[[devices]]\nhost = "a"',
            ["defaults.broker: Value error, port '188300' of 'ha.local:188300' is not a number"],
        ),
        (  # the daemon would publish under yuzug//..., and Kitchen is never a device's id
            '[defaults]\ntopic_prefix = "yuzug/"\n[[devices]]\nhost = "a"\ndevice_id = "Kitchen"',
            [
                "defaults.topic_prefix: Value error, must be topic levels joined by '/'",
                "devices.0.device_id: String should match pattern",
            ],
        ),
        (
            '[[devices]]\nhost = "-oProxyCommand=touch x"',
            ["devices.0.host: Value error, an ssh destination cannot start with '-'"],
        ),
    ],
)
def test_a_wrong_inventory_names_every_bad_key(tmp_path: Path, text: str, named: list[str]):
    inventory = tmp_path / "devices.toml"
    inventory.write_text(text + "\n")
    with pytest.raises(ConfigError) as refused:
        load_inventory(inventory, {})
    message = str(refused.value)
    assert message.startswith(f"{inventory}: invalid inventory")
    for line in named:
        assert f"\n  {line}" in message, message


def test_an_inventory_that_is_not_utf8_is_named_not_a_traceback(tmp_path: Path):
    inventory = tmp_path / "devices.toml"
    inventory.write_bytes(b'[[devices]]\nhost = "k\xfcche"\n')
    with pytest.raises(ConfigError, match=f"{inventory}: cannot read inventory"):
        load_inventory(inventory, {})


@pytest.mark.parametrize("command", ["push", "rollback", "status", "confirm"])
def test_deploy_refuses_a_bad_broker_address_before_anything_is_sent(command: str, capsys):
    from deploy.__main__ import main

    with pytest.raises(SystemExit) as stopped:
        main([command, "pi@kitchen.local", "--broker", "ha.local:mqtt"])
    assert stopped.value.code == 2
    assert "argument --broker: port 'mqtt'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--concurrency", "0"], "--concurrency must be at least 1"),
        (["--timeout", "-5"], "--timeout must be above 0"),
        (["--keep", "0"], "--keep must be at least 1"),
    ],
)
def test_deploy_numeric_options_are_range_checked(options: list[str], named: str, capsys):
    from deploy.__main__ import main

    with pytest.raises(SystemExit) as stopped:
        main(["push", "--model", "models/default", "pi@kitchen.local", *options])
    assert stopped.value.code == 2
    assert named in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "inventory", "named"),
    [
        (["--mqtt-username", "deploy"], "", "mqtt_username is set but no broker is"),
        ([], "mqtt_tls = true\n", "mqtt_tls is set but no broker is"),
    ],
)
def test_a_broker_login_without_a_broker_is_refused_before_anything_is_sent(
    tmp_path: Path, options: list[str], inventory: str, named: str, capsys
):
    # The user meant the push to be confirmed; without a broker it would not be, in silence.
    from deploy.__main__ import main

    path = tmp_path / "devices.toml"
    path.write_text(f'[defaults]\n{inventory}[[devices]]\nhost = "pi@yuzug-test.invalid"\n')
    code = main(["push", "--model", "models/default", "--inventory", str(path), *options])
    err = capsys.readouterr().err
    assert code == 2 and named in err and "ssh" not in err


def test_a_host_that_fails_gets_a_clean_table_row_and_exit_1(capsys):
    from deploy.__main__ import main

    assert main(["push", "--model", "models/default", "pi@yuzug-test.invalid"]) == 1
    header, row = capsys.readouterr().out.splitlines()[-2:]
    assert header.split() == ["HOST", "STATUS", "VERSION", "SECONDS", "DETAIL"]
    assert row.split()[:3] == ["pi@yuzug-test.invalid", "failed", "-"], row  # not "None"
    assert "ssh" in row and not row.endswith(" ")


@pytest.mark.parametrize(
    ("inventory", "hosts", "refusal"),
    [
        (
            '[[devices]]\nhost = "pi@a"\n[[devices]]\nhost = "pi@a"',
            [],
            "host 'pi@a' is listed twice",
        ),
        ('[[devices]]\nhost = "pi@kitchen.local"', ["pi@kitchen.local"], "host 'pi@kitchen.local'"),
        (
            '[[devices]]\nhost = "pi@a"\ndevice_id = "cam"\n[[devices]]\nhost = "pi@b"\n'
            'device_id = "cam"',
            [],
            "device_id 'cam' is listed twice (pi@a and pi@b)",
        ),
    ],
)
def test_a_device_listed_twice_is_refused_before_anything_is_sent(
    tmp_path: Path, inventory: str, hosts: list[str], refusal: str, capsys
):
    from deploy.__main__ import main

    path = tmp_path / "devices.toml"
    path.write_text(inventory + "\n")
    assert main(["status", "--inventory", str(path), *hosts]) == 2
    err = capsys.readouterr().err
    assert refusal in err and "ssh" not in err


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--topic-prefix", "yuzug/"], "argument --topic-prefix: must be topic levels"),
        (["--device-id", "Kitchen"], "argument --device-id: device id 'Kitchen'"),
    ],
)
def test_deploy_checks_prefix_and_device_id_as_the_daemon_would(options, named, capsys):
    from deploy.__main__ import main

    for command in (["status", "pi@kitchen.local"], ["confirm", "--broker", "h", "--version", "v"]):
        extra = (
            ["--device-id", "kitchen"]
            if command[0] == "confirm" and "--device-id" not in options
            else []
        )
        with pytest.raises(SystemExit) as stopped:
            main([*command, *extra, *options])
        assert stopped.value.code == 2
        assert named in capsys.readouterr().err


def test_install_checks_the_wheel_first_and_builds_one_for_all_devices(
    tmp_path: Path, monkeypatch, capsys
):
    import zipfile

    import deploy.install
    from deploy.__main__ import main

    hosts = ["pi@yuzug-a.invalid", "pi@yuzug-b.invalid", "pi@yuzug-c.invalid"]
    # Was a FileNotFoundError traceback; a file that is no wheel went to every device.
    not_zip = tmp_path / "yuzug-1.0-py3-none-any.whl"
    not_zip.write_text("not a zip")
    for wheel, why in (
        (tmp_path / "gone.whl", "no such file"),
        (tmp_path / "README.md", "not a yuzug wheel"),
        (not_zip, "not a wheel (a wheel is a zip archive)"),
    ):
        if wheel.name == "README.md":
            wheel.write_text("")
        assert main(["install", "--wheel", str(wheel), *hosts]) == 2
        err = capsys.readouterr().err
        assert f"--wheel {wheel}: {why}" in err and "ssh" not in err
    # Without --wheel one is built, once for every device (it was built once per device).
    built = []

    def fake_build(out: Path) -> Path:
        built.append(out)
        wheel = out / "yuzug-0.0.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr("yuzug/__init__.py", "")
        return wheel

    monkeypatch.setattr(deploy.install, "build_wheel", fake_build)
    assert main(["install", *hosts]) == 1  # the hosts do not exist
    assert len(built) == 1
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [row.split()[:2] for row in rows] == [[host, "failed"] for host in hosts]


def test_a_relative_ca_file_is_read_beside_the_inventory(tmp_path: Path, monkeypatch):
    # The example says mqtt_ca_file = "ca.crt": the CA kept with the inventory, wherever the
    # command runs from.
    fleet = tmp_path / "fleet"
    fleet.mkdir()
    (fleet / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    inventory = fleet / "devices.toml"
    inventory.write_text('[defaults]\nmqtt_ca_file = "ca.crt"\n[[devices]]\nhost = "a"\n')
    monkeypatch.chdir(tmp_path)
    _, defaults = load_inventory(inventory, {})
    assert defaults["mqtt_ca_file"] == fleet / "ca.crt"
    # The command line's --mqtt-ca-file (already checked by argparse) wins and is kept as given.
    _, defaults = load_inventory(inventory, {"mqtt_ca_file": Path("/etc/ssl/other.crt")})
    assert defaults["mqtt_ca_file"] == Path("/etc/ssl/other.crt")


def test_an_unreadable_ca_file_is_named_by_its_inventory_key(tmp_path: Path):
    inventory = tmp_path / "devices.toml"
    inventory.write_text('[defaults]\nmqtt_ca_file = "missing.crt"\n[[devices]]\nhost = "a"\n')
    with pytest.raises(ConfigError) as refused:
        load_inventory(inventory, {})
    assert str(refused.value) == (
        f"{inventory}: defaults.mqtt_ca_file: cannot read {tmp_path / 'missing.crt'}"
        " (No such file or directory)"
    )
