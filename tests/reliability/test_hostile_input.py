"""Hostile input: SQL metacharacters and very long values through the collectors
and the API, path traversal in feed names. Everything is stored as data or
refused with a 4xx; nothing is executed, nothing reads a file it should not."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from helpers import settings_for
from sources_helpers import ingest, stored_hits
from test_api import AUTH, TOKEN, _seed
from vtguardian.web.app import create_app

NASTY = [
    "evil.com'; DROP TABLE iocs; --",
    'x" OR "1"="1.example.com',
    "a.example.com/**/UNION/**/SELECT/**/1",
    "http://example.com/?q=' OR 1=1 --&x=\"><script>alert(1)</script>",
    "http://example.com/" + "A" * 20_000,
    "b" * 63 + "." + ".".join(["c" * 63] * 3) + ".com",
    "%00.example.com",
    "\\x27.example.com",
]


@pytest.fixture
def client(engine, db_url):
    _seed(engine)
    app = create_app(settings_for(db_url, "http://127.0.0.1:9", web={"token": TOKEN}), engine)
    # The app answers only its own Host names: 127.0.0.1, not TestClient's default.
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


def _tables(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT COUNT(*) FROM iocs")).scalar()


def test_metacharacters_and_long_values_are_data_through_every_door(engine, client, tmp_path):
    before = _tables(engine)
    listing = tmp_path / "pasted.txt"
    listing.write_text("\n".join(NASTY) + "\nmalware-c2.example.net\n")
    totals = ingest(engine, "plain", listing)
    assert totals.lines == len(NASTY) + 1 and totals.errors == 0
    assert ("domain", "malware-c2.example.net") in stored_hits(engine)
    assert _tables(engine) >= before + 1  # the table is still there, and grew
    for value in NASTY:
        detail = client.get(f"/api/v1/iocs/{quote(value, safe='')}")
        assert detail.status_code in (200, 400, 404, 422), (value, detail.status_code)
        found = client.get("/api/v1/iocs", params={"q": value[:255]})
        assert found.status_code == 200
        looked_up = client.post("/api/v1/lookup", json={"values": [value]}, headers=AUTH)
        assert looked_up.status_code in (200, 413, 422), (value, looked_up.status_code)
    assert client.get("/api/v1/iocs", params={"q": "x" * 256}).status_code == 422
    page = client.get("/api/v1/panels", params={"client": NASTY})
    assert page.status_code == 200
    assert _tables(engine) >= before + 1


@pytest.mark.parametrize(
    "name",
    ["../../../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
     "domains.txt/../../pyproject.toml", "....//....//etc/passwd", "/etc/passwd"],
)  # fmt: skip
def test_feed_names_cannot_reach_the_filesystem(client, name):
    response = client.get(f"/feeds/{name}")
    assert response.status_code == 404
    assert "root:" not in response.text and "[project]" not in response.text
