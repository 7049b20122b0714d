"""The page's look-up box in a real headless Chromium, typed into as a user does: a known
IoC opens its detail, an unknown one says so, a hostile value stays text, and the box
only reads (it never queues a VirusTotal request).

Chromium is driven over the DevTools protocol (aiohttp's websocket client): text typed
with ``Input.insertText`` and a real Enter key event, against a real uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import aiohttp
import orjson
import pytest
from sqlalchemy import Engine, func, select

from helpers import served, settings_for
from vtguardian.clock import utcnow
from vtguardian.store import migrate
from vtguardian.store.answers import ReportRow, record_answer
from vtguardian.store.engine import make_engine, write_transaction
from vtguardian.store.entities import ensure_clients, ensure_iocs
from vtguardian.store.schema import iocs, lookup_queue, lookup_stats
from vtguardian.store.sightings import add_sightings, hour_bucket
from vtguardian.web.app import create_app

TOKEN = "page-lookup-token-for-tests"
BAD = "malware-c2.example.net"
#: Stored as the classifier normalises it; typed below with a fragment, which it drops.
BAD_URL = "http://malware-c2.example.net/gate.php?id=1&x=%2F"
DEVICE = ("192.168.1.23", "kids-tablet")
HOSTILE = "<img src=x onerror=alert(1)>"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def database(tmp_path) -> Iterator[tuple[str, Engine]]:
    """A malicious domain and URL, both contacted by one named device."""
    url = f"sqlite:///{tmp_path / 'lookup.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    now = utcnow()
    t0 = hour_bucket(now - timedelta(hours=2))
    with write_transaction(engine) as c:
        ids = ensure_iocs(c, {("domain", BAD): ("example.net", t0, t0),
                              ("url", BAD_URL): ("example.net", t0, t0)})  # fmt: skip
        device = ensure_clients(c, {DEVICE[0]: (DEVICE[1], t0, t0)})[DEVICE[0]]
        add_sightings(c, {(i, device, "pihole", t0): (4, 0, t0) for i in ids.values()})
        for ioc_id in ids.values():
            report = ReportRow(
                "virustotal", "found", "malicious", ratio=0.16, total=86,
                stats={"malicious": 14}, engines=["EngineA", "EngineB"], analysis_date=now,
            )  # fmt: skip
            record_answer(c, ioc_id, report, timedelta(days=1), now)
    yield url, engine
    engine.dispose()


class Page:
    """One Chromium tab over the DevTools protocol."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self._ids = itertools.count(1)
        self.console: list[str] = []

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        await self._socket.send_str(orjson.dumps({"id": message_id, "method": method,
                                                  "params": params}).decode())  # fmt: skip
        async for message in self._socket:
            data = orjson.loads(message.data)
            if data.get("id") == message_id:
                assert "error" not in data, data
                return data["result"]
            if data.get("method") == "Runtime.consoleAPICalled":
                self.console += [str(a.get("value")) for a in data["params"]["args"]]
            elif data.get("method") == "Runtime.exceptionThrown":
                self.console.append(str(data["params"]["exceptionDetails"]))
            elif data.get("method") == "Log.entryAdded":
                self.console.append(data["params"]["entry"]["text"])
        raise AssertionError(f"the browser closed while waiting for {method}")

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, awaitPromise=True,
                                 returnByValue=True)  # fmt: skip
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str, timeout: float = 20.0) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            result = await self.send("Runtime.evaluate", expression=expression,
                                     returnByValue=True)  # fmt: skip
            value = result["result"].get("value")  # an error (still loading) is no answer
            if value and "exceptionDetails" not in result:
                return value
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; console: {self.console}")

    async def type_and_enter(self, selector: str, text: str) -> None:
        """Clear the box, type ``text`` into it and press Enter, as a user does."""
        box = f"document.querySelector({orjson.dumps(selector).decode()})"
        assert await self.evaluate(f"{box} !== null"), f"the page has no {selector}"
        await self.evaluate(f"(e => {{ e.value = ''; e.focus(); }})({box})")
        await self.send("Input.insertText", text=text)
        enter = {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13}
        await self.send("Input.dispatchKeyEvent", type="keyDown", text="\r", **enter)
        await self.send("Input.dispatchKeyEvent", type="keyUp", **enter)


@contextlib.asynccontextmanager
async def browser(url: str, profile: str) -> AsyncIterator[Page]:
    assert CHROMIUM, "headless Chromium is required (Debian package 'chromium')"
    process = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--remote-debugging-port=0", "--window-size=1400,1000",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    drain = None
    try:
        endpoint = ""
        while not endpoint:
            line = (await asyncio.wait_for(process.stderr.readline(), 60)).decode()
            assert line, "Chromium exited before its DevTools endpoint was up"
            if line.startswith("DevTools listening on "):
                endpoint = line.split()[-1].split("/devtools/")[0].replace("ws://", "http://")
        drain = asyncio.create_task(process.stderr.read())  # keeps the pipe from filling
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{endpoint}/json/list") as response:
                targets = await response.json()
            tab = next(t for t in targets if t["type"] == "page")
            async with session.ws_connect(tab["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = Page(ws)
                for domain in ("Runtime", "Log", "Page"):
                    await page.send(f"{domain}.enable")
                await page.send("Page.navigate", url=url)
                yield page
    finally:
        process.kill()
        await process.wait()
        if drain is not None:
            drain.cancel()


DETAIL_TEXT = "document.getElementById('detail').innerText"


async def _look_up(page: Page, value: str, expect: str) -> str:
    """Type ``value`` in the box, press Enter, and wait for the pane to show ``expect``."""
    await page.evaluate("document.getElementById('detail').replaceChildren()")
    await page.type_and_enter("#lookup-value", value)
    check = f"{DETAIL_TEXT}.includes({orjson.dumps(expect).decode()}) && {DETAIL_TEXT}"
    return await page.wait_for(check, f"{expect!r} after looking up {value!r}")


def test_the_box_looks_up_known_unknown_and_hostile_values(database, tmp_path):
    """Off loopback, the page opened once with the token (its cookie opens reads)."""
    url, engine = database
    app = create_app(settings_for(url, "http://127.0.0.1:9", web={"token": TOKEN}), engine,
                     public=True)  # fmt: skip

    async def scenario(base: str) -> dict[str, Any]:
        async with browser(f"{base}/?token={TOKEN}", str(tmp_path / "profile")) as page:
            await page.wait_for("document.body.dataset.loaded === 'yes'", "the page to load")
            seen: dict[str, Any] = {}
            # Normalised as `vtguardian ioc` does: case, the root dot.
            seen["known"] = await _look_up(page, "Malware-C2.Example.NET.", "malicious")
            # A URL carries / ? # and %: one percent-encoded path segment; the fragment is
            # dropped by the normalisation, so the stored URL is found.
            seen["url"] = await _look_up(page, BAD_URL + "#top", "malicious")
            seen["unknown"] = await _look_up(page, "never-contacted.example.org", "not seen")
            seen["private"] = await _look_up(page, "192.168.1.99", "not eligible")
            seen["hostile"] = await _look_up(page, HOSTILE, "not eligible")
            seen["hostile_html"] = await page.evaluate(
                "document.getElementById('detail').innerHTML"
            )
            seen["images"] = await page.evaluate("document.querySelectorAll('img').length")
            # A path of dots alone must not be resolved away by the browser's URL parser.
            seen["dots"] = await _look_up(page, "..", "not eligible")
            # The button does what Enter does.
            await page.evaluate("document.getElementById('detail').replaceChildren();"
                                "document.getElementById('lookup-value').value = 'www.google.com';"
                                "document.getElementById('lookup-go').click()")  # fmt: skip
            seen["button"] = await page.wait_for(
                f"{DETAIL_TEXT}.includes('not seen') && {DETAIL_TEXT}", "the button's answer"
            )
            seen["console"] = page.console
            return seen

    with served(app) as base:
        seen = asyncio.run(scenario(base))
    known = seen["known"]
    assert BAD in known and "malicious" in known and "EngineA" in known, known
    assert DEVICE[0] in known and DEVICE[1] in known, known  # the device that contacted it
    assert BAD_URL in seen["url"] and DEVICE[1] in seen["url"], seen["url"]
    assert "never-contacted.example.org" in seen["unknown"]
    assert "not seen on your network" in seen["unknown"]
    assert "not eligible" not in seen["unknown"]  # eligible, just never seen
    assert "not eligible: private address" in seen["private"], seen["private"]
    assert HOSTILE in seen["hostile"], seen["hostile"]  # shown literally, as text
    assert "&lt;img src=x onerror=alert(1)&gt;" in seen["hostile_html"]
    assert "<img" not in seen["hostile_html"] and seen["images"] == 0
    assert "not eligible: invalid domain" in seen["dots"], seen["dots"]
    assert "www.google.com" in seen["button"]
    problems = [m for m in seen["console"] if "Content Security Policy" in m or "Uncaught" in m]
    assert problems == [], problems
    # The box only reads: nothing was stored, queued or counted as a lookup.
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(iocs)).scalar() == 2
        assert connection.execute(select(func.count()).select_from(lookup_queue)).scalar() == 0
        assert connection.execute(select(func.count()).select_from(lookup_stats)).scalar() == 0
