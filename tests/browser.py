"""A small headless-Chromium driver over the DevTools protocol, for tests of web pages.

Chromium is started with ``--remote-debugging-port=0``; its page target is driven through a
websocket (tornado's client, which Jupyter installs). Only what page tests need is here: navigate,
evaluate JavaScript, wait for a condition, set the files of an ``<input type=file>``, take
screenshots, and record every network request and JavaScript exception.

Example::

    with launch_chromium() as browser:
        page = browser.page
        page.navigate("http://127.0.0.1:8000/")
        page.wait_for("document.querySelector('h1') !== null")
        page.screenshot("home.png")
        assert all(url.startswith("http://127.0.0.1") for url in page.requests)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path


def find_chromium() -> str | None:
    """The Chromium executable: ``$CHROMIUM``, else the first of the usual names on the PATH."""
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class CDP:
    """A minimal asynchronous DevTools-protocol client over tornado's websocket."""

    def __init__(self, conn):
        self.conn, self.next_id, self.events = conn, 0, []

    @classmethod
    async def connect(cls, url: str) -> CDP:
        from tornado.websocket import websocket_connect

        return cls(await websocket_connect(url, max_message_size=512 * 1024 * 1024))

    async def _read(self, timeout: float):
        msg = await asyncio.wait_for(self.conn.read_message(), timeout=max(0.05, timeout))
        if msg is None:
            raise RuntimeError("DevTools connection closed")
        return json.loads(msg)

    async def call(self, method: str, timeout: float = 120, **params) -> dict:
        self.next_id += 1
        my_id = self.next_id
        await self.conn.write_message(json.dumps({"id": my_id, "method": method, "params": params}))
        end = time.time() + timeout
        while time.time() < end:
            data = await self._read(end - time.time())
            if data.get("id") == my_id:
                if "error" in data:
                    raise RuntimeError(f"{method}: {data['error']}")
                return data.get("result", {})
            self.events.append(data)
        raise TimeoutError(method)

    async def wait_event(self, name: str, timeout: float = 120) -> dict:
        for i, ev in enumerate(self.events):
            if ev.get("method") == name:
                return self.events.pop(i)
        end = time.time() + timeout
        while time.time() < end:
            data = await self._read(end - time.time())
            if data.get("method") == name:
                return data
            self.events.append(data)
        raise TimeoutError(name)

    async def pump(self, seconds: float) -> None:
        """Collect the events that arrive within ``seconds``."""
        end = time.time() + seconds
        with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
            while time.time() < end:
                self.events.append(await self._read(end - time.time()))

    async def evaluate(self, expression: str):
        res = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"JavaScript error: {res['exceptionDetails'].get('text')} "
                               f"{res['exceptionDetails'].get('exception', {}).get('description', '')[:300]}")
        return res.get("result", {}).get("value")


class Page:
    """A synchronous view of one page target: every method runs the protocol on the page's own loop."""

    def __init__(self, ws_url: str, width: int = 1280, height: int = 900):
        self.loop = asyncio.new_event_loop()
        self.requests: list[str] = []  # every URL the page requested (websockets included), in order
        self.exceptions: list[str] = []  # JavaScript exceptions thrown by the page
        self.cdp = self.loop.run_until_complete(CDP.connect(ws_url))
        self.width, self.height = width, height
        for method in ("Page.enable", "Runtime.enable", "Network.enable", "DOM.enable"):
            self._run(self.cdp.call(method))
        self._run(self.cdp.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                                deviceScaleFactor=1, mobile=False))

    def _run(self, coro):
        result = self.loop.run_until_complete(coro)
        self._collect()
        return result

    def _collect(self) -> None:
        keep = []
        for ev in self.cdp.events:
            method = ev.get("method")
            if method == "Network.requestWillBeSent":
                self.requests.append(ev["params"]["request"]["url"])
            elif method == "Network.webSocketCreated":
                self.requests.append(ev["params"]["url"])
            elif method == "Runtime.exceptionThrown":
                d = ev["params"]["exceptionDetails"]
                self.exceptions.append(f"{d.get('text', '')} {str(d.get('exception', {}).get('description', ''))[:300]}")
            else:
                keep.append(ev)
        self.cdp.events = keep[-1000:]

    def navigate(self, url: str, timeout: float = 60) -> None:
        self.cdp.events.clear()
        self._run(self.cdp.call("Page.navigate", url=url))
        self._run(self.cdp.wait_event("Page.loadEventFired", timeout=timeout))

    def evaluate(self, expression: str):
        return self._run(self.cdp.evaluate(expression))

    def wait_for(self, condition: str, timeout: float = 60, poll: float = 0.25):
        """Poll a JavaScript expression until it is truthy; returns its value.

        Raises:
            TimeoutError: naming the condition.
        """
        end = time.time() + timeout
        while time.time() < end:
            value = self.evaluate(condition)
            if value:
                return value
            self._run(self.cdp.pump(poll))
        raise TimeoutError(f"waited {timeout:g} s for: {condition}")

    def click(self, selector: str, timeout: float = 30) -> None:
        """Click the centre of the first element matching ``selector`` with real mouse events (once it exists)."""
        box = self.wait_for(f"""(() => {{ const el = document.querySelector({json.dumps(selector)});
            if (!el) return null; el.scrollIntoView({{block: 'center'}}); const r = el.getBoundingClientRect();
            return r.width > 0 ? {{x: r.x + r.width / 2, y: r.y + r.height / 2}} : null; }})()""", timeout)
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self._run(self.cdp.call("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"], button="left",
                                    clickCount=0 if kind == "mouseMoved" else 1))

    def settle(self, seconds: float = 0.5) -> None:
        """Let the page work for a moment, recording its requests."""
        self._run(self.cdp.pump(seconds))

    def set_files(self, selector: str, paths, timeout: float = 30) -> None:
        """Give an ``<input type=file>`` (the first match of ``selector``, once it exists) files, as a user's
        choice would."""
        self.wait_for(f"document.querySelector({json.dumps(selector)}) !== null", timeout)
        root = self._run(self.cdp.call("DOM.getDocument", depth=-1, pierce=True))["root"]["nodeId"]
        node = self._run(self.cdp.call("DOM.querySelector", nodeId=root, selector=selector))["nodeId"]
        if not node:
            raise RuntimeError(f"no element matches {selector!r}")
        self._run(self.cdp.call("DOM.setFileInputFiles", nodeId=node, files=[str(Path(p).resolve()) for p in paths]))

    def screenshot(self, path, full_page: bool = True, max_height: int = 4000) -> Path:
        """Save a PNG of the page (its full height up to ``max_height``, else the viewport)."""
        height = self.height
        if full_page:
            height = min(int(self.evaluate("Math.ceil(document.documentElement.scrollHeight)") or height), max_height)
        shot = self._run(self.cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                                       clip={"x": 0, "y": 0, "width": self.width, "height": height, "scale": 1}))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.cdp.conn.close()
        self.loop.close()


class Browser:
    """A running headless Chromium and its first page (see :func:`launch_chromium`)."""

    def __init__(self, proc: subprocess.Popen, profile: str, page: Page):
        self.proc, self.profile, self.page = proc, profile, page

    def close(self) -> None:
        self.page.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


@contextlib.contextmanager
def launch_chromium(executable: str | None = None, width: int = 1280, height: int = 900, timeout: float = 60):
    """Start headless Chromium with a throw-away profile; yields a :class:`Browser`.

    Raises:
        FileNotFoundError: no Chromium found.
        RuntimeError: Chromium did not open its DevTools endpoint within ``timeout`` seconds.
    """
    exe = executable or find_chromium()
    if exe is None:
        raise FileNotFoundError("no Chromium found: install it (Debian: apt-get install chromium) or set CHROMIUM")
    profile = tempfile.mkdtemp(prefix="visiondl-chromium-")
    args = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ws_url, deadline = None, time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        m = re.search(r"DevTools listening on (ws://\S+)", proc.stderr.readline())
        if m:
            ws_url = m.group(1)
            break
    if ws_url is None:
        proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
        raise RuntimeError(f"Chromium did not start its DevTools endpoint ({exe})")
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # drain stderr
    port = urllib.parse.urlsplit(ws_url).port
    targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30).read())
    page_ws = next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")
    browser = Browser(proc, profile, Page(page_ws, width, height))
    try:
        yield browser
    finally:
        browser.close()
