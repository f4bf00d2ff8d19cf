"""A thin wrapper over the user's own ``ssh``: the same config, keys and host aliases.

Commands run as argument lists locally; on the device they are one shell line built with
``shlex.quote`` for every value, with a timeout on every call.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import YuzugError


class RemoteError(YuzugError):
    """An SSH or remote-command failure, with the host and what failed."""


@dataclass
class Remote:
    """One device reached as ``ssh [options] host``.

    Attributes:
        host: an ssh destination (``pi``, ``user@10.0.0.5``, an alias from ~/.ssh/config).
        ssh_config: an ssh config file to use instead of ~/.ssh/config (tests use one).
        timeout: seconds for each command.
    """

    host: str
    ssh_config: Path | None = None
    timeout: float = 60.0
    options: list[str] = field(default_factory=list)

    def ssh_command(self) -> list[str]:
        command = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        if self.ssh_config:
            command += ["-F", str(self.ssh_config)]
        return command + self.options + [self.host]

    def run(
        self,
        script: str,
        input_bytes: bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Runs a shell line on the device; raises :class:`RemoteError` on failure if ``check``."""
        try:
            result = subprocess.run(
                [*self.ssh_command(), script],
                input=input_bytes,
                capture_output=True,
                timeout=timeout or self.timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise RemoteError(f"{self.host}: timed out after {exc.timeout:.0f} s") from exc
        except FileNotFoundError as exc:
            raise RemoteError("ssh is not installed on this machine") from exc
        if check and result.returncode != 0:
            detail = result.stderr.decode(errors="replace").strip().splitlines()
            reason = detail[-1] if detail else f"exit status {result.returncode}"
            if result.returncode == 255:
                raise RemoteError(f"{self.host}: ssh failed: {reason}")
            raise RemoteError(f"{self.host}: remote command failed: {reason}")
        return result

    def text(self, script: str, check: bool = True) -> str:
        return self.run(script, check=check).stdout.decode(errors="replace")


def q(value: str | Path) -> str:
    return shlex.quote(str(value))
