"""The REST API over ASGI: auth, validation, lookups that never wait, enrichment, metrics."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from helpers import lookup_outcomes, settings_for, wait_for
from vtguardian.clock import as_naive_utc, utcnow
from vtguardian.intel.cache_use import CacheUse
from vtguardian.store import migrate
from vtguardian.store.answers import ReportRow, record_answer
from vtguardian.store.engine import make_engine, write_transaction
from vtguardian.store.entities import ensure_iocs
from vtguardian.web.app import create_app

TOKEN = "t0ken-for-tests"
# The app answers only its own Host names (DNS rebinding): TestClient's default,
# "testserver", is not one of them.
LOCAL = "http://127.0.0.1"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _seed(engine):
    now = utcnow()
    with write_transaction(engine) as connection:
        ids = ensure_iocs(
            connection,
            {
                ("domain", "known-bad.example.com"): (None, now, now),
                ("domain", "known-good.example.com"): (None, now, now),
            },
        )
        for (_kind, value), ioc_id in ids.items():
            level = "malicious" if "bad" in value else "harmless"
            report = ReportRow(
                "virustotal",
                "found",
                level,
                ratio=0.2,
                total=80,
                stats={"malicious": 16},
                engines=["E1", "E2", "E3"],
            )
            record_answer(connection, ioc_id, report, timedelta(days=1), now)


@pytest.fixture
def client(engine, db_url):
    _seed(engine)
    settings = settings_for(
        db_url, "http://127.0.0.1:9", web={"token": TOKEN, "max_body_bytes": 4096}
    )
    with TestClient(create_app(settings, engine), base_url=LOCAL) as test_client:
        yield test_client


def test_writes_need_the_token(client):
    body = {"values": ["known-bad.example.com"]}
    assert client.post("/api/v1/lookup", json=body).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/api/v1/lookup", json=body, headers=wrong).status_code == 401
    assert client.post("/api/v1/lookup", json=body, headers=AUTH).status_code == 200
    assert client.get("/api/v1/iocs").status_code == 200  # reads are open on loopback


def test_everything_needs_the_token_when_public(engine, db_url):
    settings = settings_for(db_url, "http://127.0.0.1:9", web={"token": TOKEN})
    with TestClient(create_app(settings, engine, public=True), base_url=LOCAL) as public:
        assert public.get("/api/v1/iocs").status_code == 401
        assert public.get("/metrics").status_code == 401
        assert public.get("/api/v1/iocs", headers=AUTH).status_code == 200


def test_lookup_answers_from_cache_or_queues_never_waits(client):
    values = ["known-bad.example.com", "never-seen.example.org", "192.168.1.5"]
    response = client.post("/api/v1/lookup", json={"values": values}, headers=AUTH)
    bad, new, private = response.json()["results"]
    assert (bad["status"], bad["verdict"], bad["engines"]) == (
        "cache",
        "malicious",
        ["E1", "E2", "E3"],
    )
    assert (new["status"], new["verdict"]) == ("queued", "pending")
    assert private["status"] == "rejected" and "RFC 1918" in private["reason"]
    again = client.post("/api/v1/lookup", json={"values": ["never-seen.example.org"]}, headers=AUTH)
    assert again.json()["results"][0]["status"] == "queued"


def test_a_cached_answer_is_read_only(client, engine):
    """Asking is not seeing: a cached IoC keeps its last sighting and nothing is queued."""
    seen = (utcnow() - timedelta(days=3)).replace(microsecond=0)
    with write_transaction(engine) as connection:
        connection.execute(text("UPDATE iocs SET last_seen = :seen"), {"seen": seen})
    body = {"values": ["known-bad.example.com"]}
    response = client.post("/api/v1/lookup", json=body, headers=AUTH)
    assert response.json()["results"][0]["status"] == "cache"
    with engine.connect() as connection:
        stamps = connection.execute(text("SELECT last_seen FROM iocs")).scalars().all()
        queued = connection.execute(text("SELECT COUNT(*) FROM lookup_queue")).scalar()
    assert [as_naive_utc(stamp) for stamp in stamps] == [seen, seen]
    assert queued == 0


def test_a_cached_answer_does_not_wait_for_an_ingest_on_sqlite(sqlite_url, tmp_path):
    """SQLite has one writer: a large ingest holds the lock for a whole batch. A cached
    lookup must answer while it is held; only a new or stale IoC has to wait."""
    engine = make_engine(sqlite_url)
    migrate.upgrade(engine)
    _seed(engine)
    settings = settings_for(sqlite_url, "http://127.0.0.1:9", web={"token": TOKEN})
    order: list[str] = []
    locked, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        with write_transaction(engine) as connection:
            connection.execute(text("UPDATE clients SET name = name"))  # holds the lock
            locked.set()
            release.wait(timeout=20)
            order.append("lock released")

    holder = threading.Thread(target=hold_the_write_lock)
    with TestClient(create_app(settings, engine), base_url=LOCAL) as api:
        holder.start()
        assert locked.wait(timeout=10)
        body = {"values": ["known-bad.example.com", "known-good.example.com"]}
        response = api.post("/api/v1/lookup", json=body, headers=AUTH)
        order.append("answered")
        release.set()
        holder.join()
    assert order == ["answered", "lock released"]
    assert [r["status"] for r in response.json()["results"]] == ["cache", "cache"]
    assert lookup_outcomes(engine) == {"cache_hit": 2}  # noted, written once the lock was free
    engine.dispose()


def test_cached_answers_count_as_hits_and_uses_without_a_write_in_the_request(client, engine):
    """The hit rate panel and eviction see the API's answers too, written afterwards."""
    long_ago = (utcnow() - timedelta(days=5)).replace(microsecond=0)
    with write_transaction(engine) as connection:
        connection.execute(text("UPDATE verdicts SET last_used_at = :t"), {"t": long_ago})
    body = {"values": ["known-bad.example.com", "known-good.example.com"]}
    for _ in range(3):
        assert client.post("/api/v1/lookup", json=body, headers=AUTH).status_code == 200
    new = {"values": ["known-bad.example.com", "first-time.example.net"]}
    results = client.post("/api/v1/lookup", json=new, headers=AUTH).json()["results"]
    assert [r["status"] for r in results] == ["cache", "queued"]
    want = {"cache_hit": 7, "cache_miss": 1}
    wait_for(lambda: lookup_outcomes(engine) == want, 10, f"the statistics {want}", interval=0.05)
    with engine.connect() as connection:
        used = connection.execute(text("SELECT last_used_at FROM verdicts")).scalars().all()
    assert len(used) == 2 and all(as_naive_utc(u) > long_ago for u in used)


def test_enrichment_through_the_api_counts_its_cache_hits(client, engine):
    events = [{"dns": {"question": {"name": "known-bad.example.com"}}}] * 3 + [
        {"dns": {"question": {"name": "known-good.example.com"}}},
        {"dns": {"question": {"name": "first-time.example.net"}}},
    ]
    for _ in range(2):  # each request resolves its IoCs once: 2 hits a request
        response = client.post("/api/v1/enrich", json=events, headers=AUTH)
        assert response.status_code == 200
    results = [e["vtguardian"]["ioc"]["global"]["result"] for e in response.json()]
    assert results == ["malicious"] * 3 + ["harmless", "pending"]
    want = {"cache_hit": 4, "cache_miss": 2}  # the unknown one is queued by each request
    wait_for(lambda: lookup_outcomes(engine) == want, 10, f"the statistics {want}", interval=0.05)


def test_cache_hits_wait_in_memory_while_the_database_cannot_take_them(tmp_path):
    """A hit noted while the schema is missing (or the server away) is kept, not lost."""
    engine = make_engine(f"sqlite:///{tmp_path / 'later.db'}")
    uses = CacheUse(engine, "virustotal", background=False)
    uses.note([1, 1, 2])
    assert uses.flush() is False and uses.pending() == 3
    migrate.upgrade(engine)
    _seed(engine)
    assert uses.flush() is True and uses.pending() == 0
    assert lookup_outcomes(engine) == {"cache_hit": 3}
    engine.dispose()


def test_the_background_writer_tries_again_until_the_database_takes_the_hits(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'later.db'}")
    migrate.upgrade(engine)
    _seed(engine)
    with write_transaction(engine) as connection:  # the statistics table goes missing
        create = connection.execute(
            text("SELECT sql FROM sqlite_master WHERE name = 'lookup_stats'")
        ).scalar_one()
        connection.execute(text("DROP TABLE lookup_stats"))
    uses = CacheUse(engine, "virustotal", retry_seconds=0.05)
    uses.note([1, 2])  # the thread's writes fail, and are rolled back, until it is back
    time.sleep(0.3)
    with write_transaction(engine) as connection:
        connection.execute(text(create))
    want = {"cache_hit": 2}
    wait_for(lambda: lookup_outcomes(engine) == want, 10, f"the statistics {want}", interval=0.05)
    engine.dispose()


def test_invalid_input_is_a_clear_4xx(client):
    assert client.post("/api/v1/lookup", json={"values": []}, headers=AUTH).status_code == 422
    assert client.post("/api/v1/lookup", content=b"{", headers=AUTH).status_code == 422
    assert client.get("/api/v1/iocs?limit=0").status_code == 422
    assert client.get("/api/v1/iocs?type=evil").status_code == 422
    response = client.post("/api/v1/enrich", content=b"not json", headers=AUTH)
    assert response.status_code == 400 and "not JSON" in response.json()["detail"]


def test_oversized_bodies_are_413(client):
    big = {"values": ["x" * 100] * 100}
    assert client.post("/api/v1/lookup", json=big, headers=AUTH).status_code == 413


def test_sql_metacharacters_are_just_text(client):
    for q in ["' OR 1=1 --", "%", "_", "\\", "known-bad%' UNION SELECT 1 --"]:
        response = client.get("/api/v1/iocs", params={"q": q})
        assert response.status_code == 200 and response.json()["items"] == []
    assert [i["value"] for i in client.get("/api/v1/iocs?q=bad").json()["items"]] == [
        "known-bad.example.com"
    ]


def test_enrich_json_and_ndjson(client):
    event = {"dns": {"question": {"name": "known-bad.example.com"}}}
    one = client.post("/api/v1/enrich", json=event, headers=AUTH).json()
    assert one["vtguardian"]["is_malicious"] is True
    ndjson = b"".join(orjson.dumps(e) + b"\n" for e in [event, {"message": "x"}])
    response = client.post(
        "/api/v1/enrich",
        content=ndjson,
        headers={**AUTH, "Content-Type": "application/x-ndjson"},
    )
    lines = [orjson.loads(line) for line in response.content.splitlines()]
    assert [line["vtguardian"]["ioc"]["global"]["result"] for line in lines] == [
        "malicious",
        "unknown",
    ]


def test_iocs_filters_and_paging(client):
    bad = client.get("/api/v1/iocs", params={"verdict": "malicious"}).json()["items"]
    assert [i["value"] for i in bad] == ["known-bad.example.com"]
    page = client.get("/api/v1/iocs", params={"limit": 1, "offset": 1}).json()
    assert len(page["items"]) == 1 and page["offset"] == 1


def test_metrics(client):
    text = client.get("/metrics").text
    assert 'vtguardian_iocs{verdict="malicious"} 1.0' in text
    assert 'vtguardian_quota_remaining{window="day"}' in text
    assert "vtguardian_queue_length 0.0" in text
    assert TOKEN not in text


def test_metrics_say_the_database_size_and_what_retention_removes_next(client, engine):
    from vtguardian.store.footprint import file_bytes

    body = client.get("/metrics").text
    values = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith(("vtguardian_db_", "vtguardian_retention_"))
    }
    with engine.connect() as connection:
        assert values["vtguardian_db_bytes"] == file_bytes(connection)
        iocs = connection.execute(text("SELECT COUNT(*) FROM iocs")).scalar_one()
    if engine.dialect.name == "sqlite":  # exact there; InnoDB's estimate on MariaDB
        assert values['vtguardian_db_rows{table="iocs"}'] == iocs
    assert 'vtguardian_db_rows{table="sightings"}' in values
    assert values['vtguardian_retention_due_rows{kind="sightings"}'] == 0
    assert 'vtguardian_db_newest_seconds{table="iocs"}' in values


def test_alerts_and_actions_lists(client):
    assert client.get("/api/v1/alerts").json() == {"items": []}
    assert client.get("/api/v1/actions").json() == {"items": []}


def test_serve_refuses_a_public_address_without_a_token(tmp_path):
    from helpers import run_cli

    env = {"VTGUARDIAN_DATABASE__URL": f"sqlite:///{tmp_path / 'x.db'}"}
    result = run_cli("serve", "--host", "0.0.0.0", env=env, timeout=60)
    assert result.returncode == 2 and "web.token" in result.stderr


@pytest.mark.parametrize("value", ["\x00", "x' OR '1'='1", "a\\", "192.168.1.10' --"])
def test_unknown_client_filters_match_nothing_and_never_fail(client, value):
    """Found by schemathesis: a NUL in ?client= once reached SQLite's parser."""
    response = client.get("/api/v1/panels", params={"client": value})
    assert response.status_code == 200
    panel = next(p for p in response.json()["panels"] if p["key"] == "exposed_clients")
    assert panel["results"][0]["rows"] == []


def test_the_page_detail_and_the_list_give_times_in_one_utc_form(client):
    listed = client.get("/api/v1/iocs").json()["items"]
    bad = next(item for item in listed if item["value"] == "known-bad.example.com")
    detail = client.get("/api/v1/iocs/known-bad.example.com").json()
    assert bad["checked_at"].endswith("Z")
    assert detail["verdict"]["checked_at"] == bad["checked_at"]
    assert all(r["fetched_at"].endswith("Z") for r in detail["reports"])
