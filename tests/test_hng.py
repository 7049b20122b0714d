"""Home Network Guardian's own SQL, unchanged, on the demo's data in MariaDB.

Its tables (``TABLE/``), views (``VIEWS/``) and the three panels of its
``grafana/virus_total.json`` are copied into ``tests/data/hng`` (see
``tests/data/SOURCES.md``). Its SQL names the database ``virus_total``, so the
demo's household is ingested and looked up (through vt-py against the emulator)
into a MariaDB database of that name, and every statement runs as it is. What
the views should return is worked out from the emulator's own answers, fetched
again over HTTP, not from what vtguardian stored.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from vtguardian.config import FollowedSource, settings_from_values
from vtguardian.dashboards.macros import TimeRange, expand
from vtguardian.demo import write_household
from vtguardian.ingest.run import ingest
from vtguardian.intel.lookup import LookupService
from vtguardian.intel.virustotal import api_path
from vtguardian.iocs import Classifier, IocType
from vtguardian.store import migrate
from vtguardian.store.engine import make_engine
from vtguardian.testing.vt_emulator import DEFAULT_KEY

HNG = Path(__file__).parent / "data" / "hng"
DATABASE = "virus_total"
# The views over vtguardian's url_scans, file_scans and yara_detections. Its
# v_dns_queries and v_non_ipv4_response_ips read its own DNS log table instead.
VIEWS = (
    "v_malicious_url_scans",
    "v_malicious_url_detailed_scans",
    "v_malicious_url_aggregated_scans",
    "v_yara_matches_summary",
)

pytestmark = pytest.mark.mariadb


@pytest.fixture
def hng_url(mariadb_url) -> Iterator[str]:
    """An empty MariaDB database named ``virus_total``, held under a server lock so
    two test processes never share it; dropped afterwards."""
    server = create_engine(make_url(mariadb_url).set(database=None), isolation_level="AUTOCOMMIT")
    with server.connect() as lock:
        assert lock.execute(text("SELECT GET_LOCK('vtguardian_test_virus_total', 600)")).scalar()
        try:
            lock.execute(text(f"DROP DATABASE IF EXISTS {DATABASE}"))
            lock.execute(text(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4"))
            yield make_url(mariadb_url).set(database=DATABASE).render_as_string(hide_password=False)
        finally:
            lock.execute(text(f"DROP DATABASE IF EXISTS {DATABASE}"))
            lock.execute(text("SELECT RELEASE_LOCK('vtguardian_test_virus_total')"))
    server.dispose()


def _demo_into(url: str, folder: Path, emulator_url: str) -> None:
    """The demo's steps (a week of a household, ingested and looked up), into ``url``."""
    engine = make_engine(url)
    migrate.upgrade(engine)
    pihole, eve = write_household(folder, datetime.now(UTC))
    classifier = Classifier()
    ingest(
        engine,
        classifier,
        [
            FollowedSource(source="pihole-log", path=str(pihole)),
            FollowedSource(source="suricata", path=str(eve)),
        ],
    )
    settings = settings_from_values(
        database={"url": url},
        virustotal={
            "api_key": DEFAULT_KEY,
            "host": emulator_url,
            "per_minute": 10_000,
            "per_day": 100_000,
            "per_month": 1_000_000,
            "poll_seconds": 0.2,  # the stale report's re-analysis: polled at once
        },
    )
    asyncio.run(LookupService(settings, engine, classifier).run_worker(once=True))
    engine.dispose()


def _object(emulator_url: str, kind: str, value: str) -> dict | None:
    """The emulator's answer for one IoC, asked again over plain HTTP."""
    request = urllib.request.Request(
        emulator_url + "/api/v3" + api_path(IocType(kind), value),
        headers={"x-apikey": DEFAULT_KEY},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def _statement(path: Path) -> str:
    """The file's one statement, without its closing semicolon (a driver sends one)."""
    return path.read_text().strip().removesuffix(";")


def _columns(table_sql: str) -> list[str]:
    """The column names of one of its CREATE TABLE statements."""
    body = table_sql[table_sql.index("(") + 1 : table_sql.rindex(")")]
    names = []
    for line in body.splitlines():
        match = re.match(r"\s*`?(\w+)`?\s+(INT|VARCHAR|DATETIME|JSON|TEXT)", line)
        if match:
            names.append(match.group(1))
    return names


def test_home_network_guardian_sql_runs_unchanged_on_the_demo(hng_url, vt_emulator, tmp_path):
    _demo_into(hng_url, tmp_path, vt_emulator.url)
    # What VirusTotal (the emulator) answered for every IoC the demo looked up.
    answers = {
        (kind, value): _object(vt_emulator.url, kind, value)
        for kind, value in set(vt_emulator.emulator.looked_up())
    }
    found = {key: doc for key, doc in answers.items() if doc is not None}

    def malicious_engines(doc: dict) -> dict[str, str | None]:
        results = doc["data"]["attributes"]["last_analysis_results"]
        return {n: r.get("result") for n, r in results.items() if r["category"] == "malicious"}

    engine = create_engine(hng_url)
    with engine.connect() as connection:
        # Its tables' columns are all there, in the views that stand in for them.
        for table in ("url_scans", "file_scans", "yara_detections"):
            wanted = _columns((HNG / "TABLE" / f"{table}.sql").read_text())
            got = list(connection.execute(text(f"SELECT * FROM {table} LIMIT 0")).keys())
            assert got == wanted, table
        for view in VIEWS:
            connection.exec_driver_sql(_statement(HNG / "VIEWS" / f"{view}.sql"))

        url_rows = connection.execute(text("SELECT url, positives FROM url_scans")).all()
        # Every VirusTotal answer is a scan; one with no record (404) has no counts.
        expected_urls = {
            value: None if doc is None else len(malicious_engines(doc))
            for (kind, value), doc in answers.items()
            if kind != "file"
        }
        assert dict(url_rows) == expected_urls

        flagged = {url: n for url, n in expected_urls.items() if n}
        assert flagged, "the demo has malicious domains"
        rows = connection.execute(text("SELECT url, positives FROM v_malicious_url_scans")).all()
        assert dict(rows) == flagged

        detailed = connection.execute(
            text("SELECT url, engine_name, category, result FROM v_malicious_url_detailed_scans")
        ).all()
        expected_detailed = {
            (value, name, "malicious", result)
            for (kind, value), doc in found.items()
            if kind != "file"
            for name, result in malicious_engines(doc).items()
        }
        assert set(map(tuple, detailed)) == expected_detailed
        assert len(detailed) == sum(flagged.values())

        # Its aggregated view reads '$.engine_name' of the whole results object (it
        # is keyed by engine, in its data as in ours): it runs, and finds nothing.
        assert (
            connection.execute(text("SELECT * FROM v_malicious_url_aggregated_scans")).all() == []
        )

        yara = connection.execute(
            text("SELECT rule_name, ruleset_name, match_count FROM v_yara_matches_summary")
        ).all()
        expected_yara: dict[tuple[str, str], int] = {}
        for (kind, _), doc in found.items():
            if kind == "file":
                for rule in doc["data"]["attributes"].get("crowdsourced_yara_results", []):
                    key = (rule["rule_name"], rule["ruleset_name"])
                    expected_yara[key] = expected_yara.get(key, 0) + 1
        assert expected_yara, "the demo's file has YARA matches"
        assert {(r, s): n for r, s, n in yara} == expected_yara
        file_rows = connection.execute(text("SELECT sha256, yara_rules FROM file_scans")).all()
        assert {sha for sha, _ in file_rows} == {
            doc["data"]["attributes"]["sha256"]
            for (kind, _), doc in found.items()
            if kind == "file"
        }

        # Its dashboard's three panels over its default range, the last 30 days: every
        # scan is in (they were fetched just now), whatever VirusTotal's analysis date.
        dashboard = json.loads((HNG / "virus_total.json").read_text())
        now = datetime.now(UTC)
        window = TimeRange(int((now - timedelta(days=30)).timestamp()), int(now.timestamp()) + 60)
        connection.execute(text("SET time_zone = '+00:00'"))
        results = {}
        for panel in dashboard["panels"]:
            (target,) = panel["targets"]
            sql = expand(target["rawSql"], window, {}).rstrip().rstrip(";")
            results[panel["title"]] = connection.execute(text(sql)).mappings().all()
    engine.dispose()

    total = results["Total malicious scans"][0]
    assert total["total_scans"] == len(expected_urls)
    assert total["total_malicious_scans"] == len(flagged)
    per_day = results["Total scans per day"]
    assert sum(row["total_scans_per_day"] for row in per_day) == len(expected_urls)
    assert sum(row["total_positives_per_day"] for row in per_day) == sum(flagged.values())
    assert sum(row["total_positive"] for row in results["Total positive flags per day"]) == sum(
        flagged.values()
    )
