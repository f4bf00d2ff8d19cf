"""Deploy benchmark: time to push a model bundle to 1 and to 10 devices over real SSH.

    python bench/deploy_push.py [--json out.json]

Ten device roots behind one loopback OpenSSH server stand in for a fleet (needs root and
openssh-server, like the deploy tests). The restart command is a no-op and confirmation is off,
so the figure is the transfer, verification and atomic switch.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import emit  # noqa: E402
from tests.deploy.conftest import SSHServer  # noqa: E402
from tests.support import bundle_as_version  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as workdir_name:
        workdir = Path(workdir_name)
        server = SSHServer(workdir)
        server.start([f"dev{i}" for i in range(1, 11)])
        try:
            for count in (1, 10):
                bundle = bundle_as_version(args.model, workdir / f"bundle-{count}", f"bench{count}")
                inventory = workdir / f"devices-{count}.toml"
                inventory.write_text(
                    '[defaults]\nrestart_command = "true"\n'
                    + "".join(
                        f'[[devices]]\nhost = "dev{i}"\nroot = "{workdir / f"root{i}"}"\n'
                        for i in range(1, count + 1)
                    )
                )
                started = time.monotonic()
                result = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "deploy",
                        "push",
                        "--model",
                        str(bundle),
                        "--inventory",
                        str(inventory),
                        "--ssh-config",
                        str(server.config),
                        "--no-confirm",
                        "--concurrency",
                        "10",
                    ],
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                )
                elapsed = time.monotonic() - started
                if result.returncode != 0:
                    print(result.stdout, result.stderr)
                    return 1
                results[f"{count}_devices_s"] = round(elapsed, 2)
        finally:
            server.stop()
    results["bundle_kib"] = round(sum(p.stat().st_size for p in args.model.iterdir()) / 1024)
    emit(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
