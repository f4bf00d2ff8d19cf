"""``yuzug-deploy doctor``: each device's own ``yuzug-edge doctor``, run over SSH beside its
running daemon (``--while-running``: the camera and the live-view port stay the daemon's) with
the credentials and state folder the service gets, so that "it does nothing" can be asked of a
whole fleet from a workstation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from deploy.configure import AS_ROOT, CONFIG_SUBPATH, CREDENTIALS_SUBPATH
from deploy.push import Target
from deploy.remote import RemoteError, q

EDGE_COMMAND = "/opt/yuzug/venv/bin/yuzug-edge"  # where install.sh puts it
STATE_SUBPATH = "var/lib/yuzug-edge"  # the unit's StateDirectory=
HEADER = "yuzug-edge doctor"  # the first line the doctor prints


@dataclass
class Report:
    host: str
    status: str  # "ok", "problems" (a check failed), "failed" (no doctor ran)
    lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def remote_doctor(target: Target, edge_command: str = EDGE_COMMAND, timeout: float = 10) -> Report:
    """The device's doctor lines, as root (the credentials are root's, the state folder the
    daemon's); ``timeout`` for each check that waits (the broker)."""
    host = target.remote.host
    root = Path(target.root)
    command = (
        f"{AS_ROOT}; as_root env CREDENTIALS_DIRECTORY={q(str(root / CREDENTIALS_SUBPATH))} "
        f"STATE_DIRECTORY={q(str(root / STATE_SUBPATH))} {q(edge_command)} doctor "
        f"--while-running --config {q(str(root / CONFIG_SUBPATH))} --timeout {timeout:g}"
    )
    try:
        result = target.remote.run(command, check=False, timeout=3 * timeout + 120)
    except RemoteError as exc:
        return Report(host, "failed", [str(exc)])
    lines = [line for line in result.stdout.decode(errors="replace").splitlines() if line]
    if result.returncode in (0, 1) and lines[:1] == [HEADER]:
        return Report(host, "ok" if result.returncode == 0 else "problems", lines[1:])
    # No doctor ran: ssh failed (255), sudo wants a password, yuzug is not installed there.
    errors = result.stderr.decode(errors="replace").strip().splitlines()
    why = errors[-1] if errors else f"exit status {result.returncode}"
    return Report(host, "failed", [f"{host}: {why}"])
