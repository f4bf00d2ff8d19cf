"""Headless Chromium for the live page's tests: a DOM dump or screenshot of a URL, and a page to
click in, driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON
messages ending in a NUL byte, the browser reading on fd 3 and writing on fd 4), so that no
WebSocket client or browser driver is needed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.support import terminate

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_flags(profile: Path) -> list[str]:
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1100,900",
    ]


def chromium(tmp_path: Path, *arguments: str) -> str:
    """Headless Chromium's stdout for ``arguments`` (``--dump-dom URL``, ``--screenshot``)."""
    assert CHROMIUM is not None
    flags = [*chromium_flags(tmp_path / "chromium"), "--virtual-time-budget=4000"]
    return subprocess.run(
        [CHROMIUM, *flags, *arguments], capture_output=True, text=True, timeout=60
    ).stdout


class Page:
    """One tab of a headless Chromium showing ``url``; ``evaluate`` runs JavaScript in it (a
    click, a read of the page) as a person's browser would."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        assert CHROMIUM is not None
        to_browser, self._to_browser = os.pipe()
        self._from_browser, from_browser = os.pipe()
        os.set_inheritable(to_browser, True)
        os.set_inheritable(from_browser, True)
        flags = [*chromium_flags(tmp_path / "chromium-cdp"), "--remote-debugging-pipe"]
        self.process = subprocess.Popen(
            ["bash", "-c", f'exec 3<&{to_browser} 4>&{from_browser}; exec "$@"', "-", CHROMIUM]
            + [*flags, "about:blank"],
            pass_fds=(to_browser, from_browser),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._last_id = 0
        self._session: str | None = None
        try:
            target = self._call("Target.createTarget", {"url": url})["targetId"]
            attached = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})
            self._session = attached["sessionId"]
            self.wait(f'location.href === {json.dumps(url)} && document.readyState === "complete"')
        except BaseException:
            self.close()
            raise

    def _call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._last_id += 1
        message: dict[str, Any] = {"id": self._last_id, "method": method, "params": params}
        if self._session is not None:
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:  # events arrive in between: skip them
            while b"\0" not in self._buffer:
                chunk = os.read(self._from_browser, 1 << 16)
                if not chunk:
                    raise EOFError("chromium closed the DevTools pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._last_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def emulate_phone(self, width: int = 390, height: int = 844) -> None:
        """Lays the page out again as a phone of ``width`` CSS pixels shows it (a headless
        window is never narrower than 500 px, whatever ``--window-size`` says)."""
        # mobile would also apply the page's <meta name="viewport">, but only after a reload,
        # which a page showing a live MJPEG stream never finishes.
        metrics = {"width": width, "height": height, "deviceScaleFactor": 2, "mobile": False}
        self._call("Emulation.setDeviceMetricsOverride", metrics)
        self.wait(f"innerWidth === {width}")

    def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` in the page (a promise is awaited)."""
        result = self._call(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, expression: str, timeout: float = 10, what: str = "") -> Any:
        """Waits until ``expression`` is truthy in the page; returns its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what or expression}")

    def close(self) -> None:
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
        terminate(self.process, 10)

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
