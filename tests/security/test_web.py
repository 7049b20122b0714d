"""The web points of security issue #24, against a real uvicorn over HTTP and, where a
browser is the attacker's tool, a real headless Chromium.

Every value the page shows came from network traffic, so the hostile strings here
stand for what an attacker can get into the database: a domain name, a threat label.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, insert
from starlette.routing import Route

from helpers import VTGUARDIAN, chromium, run_cli, served, settings_for, wait_for
from vtguardian.actions.feeds import FEEDS
from vtguardian.clock import utcnow
from vtguardian.config import Settings
from vtguardian.intel.lookup import LookupService
from vtguardian.iocs import Classifier
from vtguardian.jobs.service import Receiver
from vtguardian.jobs.service import save as save_job
from vtguardian.store import migrate
from vtguardian.store.answers import ReportRow, record_answer
from vtguardian.store.engine import make_engine, write_transaction
from vtguardian.store.entities import ensure_clients, ensure_iocs, ioc_digest
from vtguardian.store.schema import iocs
from vtguardian.store.sightings import add_sightings, hour_bucket
from vtguardian.web.app import create_app
from vtguardian.web.security import is_loopback

TOKEN = "s3cret-web-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
KNOWN = "known-bad.example.com"
#: A file a device downloaded (its SHA-256): VirusTotal names its family and threat label.
SAMPLE = "5e" * 32
DEVICE = "kids-tablet"
LINK = '<a href="https://evil.example/">clickme</a>'
#: A domain-shaped value and VirusTotal's text carrying Plotly's pseudo-HTML: a vendor's
#: category of the domain, and the file's family, from which VirusTotal's suggested
#: threat label is made ("trojan.<family>").
HOSTILE_DOMAIN = f"{LINK}.example"
HOSTILE_LABEL = f"trojan.{LINK}"
#: How VirusTotal (the emulator) sees the two IoCs the page looks up.
VT_SEEDS = [
    {"type": "domain", "value": KNOWN, "malicious": 20, "harmless": 40, "undetected": 20,
     "labels": [HOSTILE_LABEL]},
    {"type": "file", "value": SAMPLE, "malicious": 50, "undetected": 10, "family": LINK},
]  # fmt: skip
#: Path parameters of the route table, filled with values the database holds.
PATH_SAMPLES = {"name": next(iter(FEEDS)), "value": KNOWN, "asset": "page.js",
                "job_id": "web-job", "seq": "1"}  # fmt: skip
#: Bodies for the write routes, so that "works with the token" means a real answer.
BODIES = {
    "/api/v1/lookup": {"values": [KNOWN]},
    "/api/v1/enrich": {"dns": {"question": {"name": KNOWN}}},
    "/api/v1/jobs": {"id": "web-job", "input": {"type": "http"}},
    "/api/v1/jobs/web-job/events": {"dns": {"question": {"name": KNOWN}}},
    "/api/v1/jobs/web-job/flow": {"flow": [{"provider": "virustotal"}]},
}
#: Routes that answer without the token, and why: a health check (Docker, systemd,
#: a load balancer) carries no secret, and "ok" tells nothing about the network.
OPEN_ROUTES = {"/healthz"}
SECURITY_HEADERS = ("x-content-type-options", "x-frame-options", "content-security-policy")


def _seed(engine: Engine, vt_url: str) -> None:
    """A malicious domain and file, and a hostile domain-shaped value, contacted by one
    named device. The domain and the file are looked up as the product does (vt-py over
    HTTP to the emulator), so their threat categories, family and label are VirusTotal's."""
    now = utcnow()
    t0 = hour_bucket(now - timedelta(hours=2))
    with write_transaction(engine) as c:
        found = ensure_iocs(
            c, {("domain", KNOWN): (None, t0, t0), ("file", SAMPLE): (None, t0, t0)}
        )
        # Not a valid name: it reached the database some other way and must stay text.
        hostile = c.execute(
            insert(iocs).values(digest=ioc_digest("domain", HOSTILE_DOMAIN), type="domain",
                                value=HOSTILE_DOMAIN, first_seen=t0, last_seen=t0)
        ).inserted_primary_key[0]  # fmt: skip
        device = ensure_clients(c, {"192.168.1.77": (DEVICE, t0, t0)})["192.168.1.77"]
        seen = (*found.values(), hostile)
        add_sightings(c, {(i, device, "pihole", t0): (3, 0, t0) for i in seen})
        # The lookup refuses a value that is no name: its answer is stored as it came.
        report = ReportRow("virustotal", "found", "malicious", ratio=0.25, total=80,
                           stats={"malicious": 20}, analysis_date=now)  # fmt: skip
        record_answer(c, hostile, report, timedelta(days=1), now)
    lookup = LookupService(settings_for(str(engine.url), vt_url), engine)
    answers = asyncio.run(lookup.lookup_values([KNOWN, SAMPLE]))
    assert [(a.value, a.verdict) for a in answers] == [
        (KNOWN, "malicious"), (SAMPLE, "malicious")
    ], answers  # fmt: skip
    # A job with one event, so that its routes answer with data.
    job_settings = _settings(str(engine.url))
    save_job(engine, BODIES["/api/v1/jobs"])
    Receiver(job_settings, engine, Classifier()).receive(
        "web-job", orjson.dumps(BODIES["/api/v1/jobs/web-job/events"]), False
    )


@pytest.fixture
def seeded(tmp_path, vt_emulator) -> Iterator[tuple[str, Engine]]:
    """A seeded SQLite database: nothing checked here depends on the engine."""
    url = f"sqlite:///{tmp_path / 'web.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    vt_emulator.emulator.configure({"seeds": VT_SEEDS})
    _seed(engine, vt_emulator.url)
    yield url, engine
    engine.dispose()


def _settings(url: str) -> Settings:
    return settings_for(url, "http://127.0.0.1:9", web={"token": TOKEN})


def _route_calls(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) for every route in the app's table, path parameters filled in:
    a route added later is walked too, so it cannot forget the token."""
    calls = []
    for route in app.routes:
        # An included router or a mount would hide its routes from this walk.
        assert isinstance(route, Route), f"{route!r}: add routes to the app itself"
        path = route.path_format
        for param in route.param_convertors:
            path = path.replace("{" + param + "}", PATH_SAMPLES[param])
        calls += [(method, path) for method in sorted(route.methods or {"GET"}) if method != "HEAD"]
    return calls


def _call(client: httpx.Client, method: str, path: str) -> httpx.Response:
    return client.request(method, path, json=BODIES.get(path) if method == "POST" else None)


def _answers(client: httpx.Client, calls: list[tuple[str, str]]) -> dict[str, int]:
    return {f"{method} {path}": _call(client, method, path).status_code for method, path in calls}


def _browser(url: str, profile: Path, *args: str) -> str:
    """The DOM of ``url`` once its scripts ran, in a fresh Chromium profile."""
    result = chromium(url, profile, "--dump-dom", *args)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _csp_violations(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "Content Security Policy" in line]


# --- 1. off loopback, every route needs the token -------------------------------------


def test_every_route_needs_the_token_off_loopback(seeded):
    """Every route of the table, not a list kept by hand: 401 without the token, 200
    with the bearer header, reads with the page's cookie."""
    url, engine = seeded
    app = create_app(_settings(url), engine, public=True)
    calls = _route_calls(app)
    assert {("GET", "/"), ("GET", "/api/v1/panels"), ("POST", "/api/v1/lookup")} <= set(calls)
    closed = [(method, path) for method, path in calls if path not in OPEN_ROUTES]
    with served(app) as base, httpx.Client(base_url=base) as anonymous:
        refused = _answers(anonymous, closed)
        assert set(refused.values()) == {401}, refused
        assert all(anonymous.get(path).status_code == 200 for path in OPEN_ROUTES)
        with httpx.Client(base_url=base, headers=AUTH) as api_client:
            answered = _answers(api_client, calls)
        assert set(answered.values()) == {200}, answered
        # The page opened as /?token=...: a cookie, and back to / without the token.
        assert anonymous.get("/", params={"token": "wrong"}).status_code == 401
        login = anonymous.get("/", params={"token": TOKEN})
        assert login.status_code == 303 and login.headers["location"] == "/"
        cookie = login.headers["set-cookie"].lower()
        assert TOKEN.lower() not in cookie
        assert {"httponly", "samesite=strict", "path=/"} <= {p.strip() for p in cookie.split(";")}
        assert "secure" not in {p.strip() for p in cookie.split(";")}  # plain http here
        with httpx.Client(base_url=base, cookies=login.cookies) as page:
            reads = _answers(page, [(m, p) for m, p in calls if m == "GET"])
            writes = _answers(page, [(m, p) for m, p in calls if m != "GET"])
        assert set(reads.values()) == {200}, reads
        assert set(writes.values()) == {401}, writes  # the page's cookie opens reads only


def test_the_page_opened_with_the_token_shows_the_data_and_without_it_nothing(seeded, tmp_path):
    """The page opened as /?token=... keeps working through its cookie; a stranger
    opening the address sees none of the network's devices or indicators."""
    url, engine = seeded
    with served(create_app(_settings(url), engine, public=True)) as base:
        without = _browser(f"{base}/", tmp_path / "anonymous")
        opened = _browser(f"{base}/?token={TOKEN}", tmp_path / "user")
    assert DEVICE not in without and KNOWN not in without and 'data-loaded="yes"' not in without
    assert 'data-loaded="yes"' in opened and DEVICE in opened and KNOWN in opened


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("0:0:0:0:0:0:0:1", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LocalHost", True),
        ("127.0.0.1.nip.io", False),
        ("127.attacker.test", False),
        ("localhost.attacker.test", False),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("::ffff:192.168.1.5", False),
    ],
)
def test_loopback_is_decided_from_the_parsed_address(host, loopback):
    """A public name that starts with 127. is not loopback; long spellings of ::1 are."""
    assert is_loopback(host) is loopback


def test_serve_decides_loopback_from_the_address_not_its_spelling(tmp_path):
    """The real command: a look-alike name needs the token, ::1 spelled out does not
    (and the app answers its own bracketed Host)."""
    env = {"VTGUARDIAN_DATABASE__URL": f"sqlite:///{tmp_path / 'serve.db'}"}
    refused = run_cli("serve", "--host", "127.0.0.1.nip.io", env=env, timeout=60)
    assert refused.returncode == 2 and "web.token" in refused.stderr, refused.stderr
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VTGUARDIAN_")}
    process = subprocess.Popen(
        [*VTGUARDIAN, "serve", "--host", "0:0:0:0:0:0:0:1", "--port", str(port)],
        env={**clean, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:

        def answered() -> httpx.Response | None:
            assert process.poll() is None, process.stderr.read()  # type: ignore[union-attr]
            try:
                return httpx.get(f"http://[::1]:{port}/api/v1/filters", timeout=5)
            except httpx.TransportError:
                return None

        response = wait_for(answered, 60, "serve on [::1]")
        assert response.status_code == 200  # loopback: reads open, no token needed
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)


# --- 2. DNS rebinding, and the headers every answer carries -----------------------------


def test_a_rebound_name_gets_nothing_and_every_answer_carries_security_headers(seeded, tmp_path):
    """A page on attacker.test, whose name resolves to 127.0.0.1 (Chromium's resolver
    rule stands in for the attacker's DNS), is the same origin as anything it loads
    from there: it must get no data. The real page still works under its CSP."""
    url, engine = seeded
    app = create_app(_settings(url), engine)  # loopback: the Host check is all there is
    calls = _route_calls(app)
    with served(app) as base:
        port = base.rsplit(":", 1)[1]
        rebinding = "--host-resolver-rules=MAP attacker.test 127.0.0.1"
        rebound = _browser(f"http://attacker.test:{port}/", tmp_path / "attacker", rebinding)
        result = chromium(f"{base}/", tmp_path / "user", "--dump-dom")
        with httpx.Client(base_url=base, headers=AUTH) as client:
            answers = {f"{m} {p}": _call(client, m, p) for m, p in calls}
            foreign = client.get("/api/v1/filters", headers={"Host": f"attacker.test:{port}"})
            ipv6 = client.get("/api/v1/filters", headers={"Host": f"[::1]:{port}"})
            named = client.get("/api/v1/filters", headers={"Host": "localhost"})
    assert DEVICE not in rebound and KNOWN not in rebound and 'data-loaded="yes"' not in rebound
    assert foreign.status_code == 400 and DEVICE not in foreign.text
    assert ipv6.status_code == 200 and named.status_code == 200
    # The page itself works under its Content-Security-Policy, charts included.
    assert 'data-loaded="yes"' in result.stdout and DEVICE in result.stdout, result.stderr[-2000:]
    assert 'class="main-svg"' in result.stdout
    assert _csp_violations(result.stderr) == []
    for response in [*answers.values(), foreign]:
        missing = [h for h in SECURITY_HEADERS if h not in response.headers]
        assert missing == [], (response.request.url, missing)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy
        assert "'unsafe-inline'" not in _directive(policy, "script-src")


def _directive(policy: str, name: str) -> str:
    """One directive of a Content-Security-Policy, or ``default-src`` standing in for it."""
    directives = {d.split()[0]: d for d in (p.strip() for p in policy.split(";")) if d}
    return directives.get(name, directives.get("default-src", ""))


# --- 9. chart labels are text, not Plotly's pseudo-HTML ---------------------------------


def _panel(dom: str, key: str) -> str:
    """The page's panel ``key`` in the DOM, from its section to the section's end."""
    found = re.search(rf'<section [^>]*data-key="{key}".*?</section>', dom, re.S)
    assert found, f"no panel {key}"
    return found.group(0)


def test_chart_labels_are_plain_text_not_plotly_markup(seeded, tmp_path):
    """Plotly reads <a href> in labels as a link: a domain-shaped value carrying one must
    show as text and link nowhere, and so must VirusTotal's threat label and family."""
    url, engine = seeded
    with served(create_app(_settings(url), engine)) as base:
        result = chromium(f"{base}/", tmp_path / "user", "--dump-dom")
    dom = result.stdout
    assert 'data-loaded="yes"' in dom, result.stderr[-2000:]
    charts = re.findall(r'<div class="plot-container.*?</svg></div></div>', dom, re.S)
    assert charts, "no chart was drawn"
    # Plotly turns <a href> in a label into a link: there must be none, anywhere.
    assert re.search(r"<a\b[^>]*evil\.example", dom) is None
    shown = LINK.replace("<", "&lt;").replace(">", "&gt;")
    in_charts = "".join(charts)
    assert f"{shown}.example" in in_charts  # the domain-shaped value, literally, in a bar chart
    # The threat categories chart draws what the lookups found, named by the threat
    # vocabulary: the vendor's hostile category and the file's family count as malware.
    categories = _panel(dom, "vectors_by_label")
    assert 'class="plot-container' in categories and ">malware</text>" in categories
    assert "evil.example" not in categories
    # VirusTotal's threat label and family, as the lookup stored them, literally.
    families = _panel(dom, "threat_families")
    assert f"<td>trojan.{shown}</td>" in families and f"<td>{shown}</td>" in families


# --- 12. /api/docs works offline ------------------------------------------------------


class _Assets(HTMLParser):
    """The URLs a page loads: scripts, stylesheets, icons."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        url = found.get("src") if tag in ("script", "img") else None
        url = found.get("href") if tag == "link" else url
        if url:
            self.urls.append(url)


def test_api_docs_come_from_the_app_itself(seeded, tmp_path):
    """/api/docs, its scripts and styles all from the app: it works offline."""
    url, engine = seeded
    with served(create_app(_settings(url), engine)) as base:
        with httpx.Client(base_url=base) as client:
            docs = client.get("/api/docs")
            assert docs.status_code == 200
            assert re.search(r"https?://", docs.text) is None, "the docs page names another host"
            assets = _Assets()
            assets.feed(docs.text)
            fetched = {asset: client.get(asset).status_code for asset in assets.urls}
        result = chromium(f"{base}/api/docs", tmp_path / "user", "--dump-dom")
    assert any(a.endswith(".js") for a in assets.urls), assets.urls
    assert any(a.endswith(".css") for a in assets.urls), assets.urls
    assert fetched == dict.fromkeys(assets.urls, 200)
    # Swagger UI, in a browser, lists the operations from the app's own OpenAPI document.
    dom = result.stdout
    for path in ("/api/v1/lookup", "/api/v1/panels", "/feeds/{name}"):
        assert f'data-path="{path}"' in dom, result.stderr[-2000:]
    assert _csp_violations(result.stderr) == []
