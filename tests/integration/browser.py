"""Headless Chromium (Debian's `chromium`) driven over the Chrome DevTools Protocol, for the dashboard.

One browser process per `Chromium`, with a new empty profile; it listens for DevTools on a port it
picks itself (`--remote-debugging-port=0`) and names it in `<profile>/DevToolsActivePort`. Commands
go over the page target's websocket (the `websockets` package); events are skipped.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

CHROMIUM = "/usr/bin/chromium"  # installed by scripts/test (Debian package `chromium`)
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-port=0", "--window-size=1280,1800", "--hide-scrollbars",
]  # fmt: skip


class BrowserError(AssertionError):
    pass


class Chromium:
    def __init__(self, profile: Path) -> None:
        if shutil.which(CHROMIUM) is None:
            raise BrowserError(f"{CHROMIUM} is missing: scripts/test installs Debian's chromium package")
        profile.mkdir(parents=True)
        self._log = (profile.parent / "chromium.log").open("wb")
        self.process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._stack = contextlib.ExitStack()
        self._stack.callback(self._stop)
        try:
            page = self._page_target(self._devtools_port(profile / "DevToolsActivePort"))
            self._ws: ClientConnection = self._stack.enter_context(
                connect(page, max_size=None, open_timeout=20)
            )
            self._ids = itertools.count(1)
            self.send("Page.enable")
            self.send("Runtime.enable")
        except BaseException:
            self._stack.close()
            raise

    def _devtools_port(self, path: Path) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrowserError(f"chromium exited with {self.process.returncode}")
            if path.exists():
                first = path.read_text().splitlines()[:1]
                if first and first[0].isdigit():
                    return int(first[0])
            time.sleep(0.05)
        raise BrowserError("chromium did not open its DevTools port within 30s")

    def _page_target(self, port: int) -> str:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return str(pages[0]["webSocketDebuggerUrl"])
            time.sleep(0.05)
        raise BrowserError("chromium has no page target")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=30))
            if message.get("id") == ident:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(
                f"(() => {{ try {{ return ({expression}); }} catch (e) {{ return false; }} }})()"
            )
            if value:  # an exception (the page still loading) counts as not yet
                return value
            time.sleep(0.05)
        raise BrowserError(f"not true within {timeout}s: {expression}")

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def type_into(self, selector: str, text: str) -> None:
        """Focus the element and type, as a keyboard would (Input.insertText fires input events)."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", text=text)

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element."""
        box = self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        self._stack.close()  # the websocket, then the process

    def _stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()
