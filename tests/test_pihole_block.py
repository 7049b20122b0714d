"""Blocking in a real Pi-hole gravity.db (Pi-hole's own schema and test rows)."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from sqlalchemy import text

from helpers import gravity_db, settings_for
from vtguardian.actions.pihole import record_manual, sync_gravity
from vtguardian.clock import utcnow
from vtguardian.errors import InvalidInput, UserError
from vtguardian.store.answers import ReportRow, record_answer
from vtguardian.store.engine import write_transaction
from vtguardian.store.entities import ensure_iocs
from vtguardian.testing.pihole_api_emulator import (
    PIHOLE_PASSWORD,
    PiholeApiEmulator,
    PiholeApiServer,
)


def _verdict(engine, domain, level, when):
    with write_transaction(engine) as connection:
        ioc_id = ensure_iocs(connection, {("domain", domain): (None, when, when)})[
            ("domain", domain)
        ]
        report = ReportRow(
            "virustotal",
            "found",
            level,
            ratio=14 / 86,
            total=86,
            stats={"malicious": 14 if level == "malicious" else 0},
        )
        record_answer(connection, ioc_id, report, timedelta(days=1), when)


@pytest.fixture
def gravity(tmp_path):
    path = tmp_path / "gravity.db"
    gravity_db(path)
    return path


def _deny(path):
    with sqlite3.connect(path) as connection:
        return {
            domain: (enabled, comment, groups)
            for domain, enabled, comment, groups in connection.execute(
                "SELECT d.domain, d.enabled, d.comment, GROUP_CONCAT(g.group_id) FROM domainlist d "
                "LEFT JOIN domainlist_by_group g ON g.domainlist_id = d.id WHERE d.type = 1 "
                "GROUP BY d.id"
            )
        }


def _settings(db_url, gravity, tmp_path, **pihole):
    marker = tmp_path / "reloaded"
    return settings_for(
        db_url,
        "http://127.0.0.1:9",
        pihole={"gravity_db": str(gravity), "reload_command": f"touch {marker}", **pihole},
        allowlist={"domains": ["mybank.com"]},
    ), marker


def test_sync_adds_exact_deny_entries_and_removes_them_when_cleared(
    engine, db_url, gravity, tmp_path
):
    now = utcnow()
    before = _deny(gravity)
    for domain, level in [
        ("c2.example.net", "malicious"),
        ("phish.example.org", "malicious"),
        ("login.mybank.com", "malicious"),
        ("gray.example.com", "suspicious"),
        ("fine.example.com", "harmless"),
        ("denied.ftl", "malicious"),
    ]:
        _verdict(engine, domain, level, now)
    settings, marker = _settings(db_url, gravity, tmp_path)
    result = sync_gravity(engine, settings, now)
    assert result.added == ["c2.example.net", "phish.example.org"] and result.removed == []
    assert marker.exists()  # Pi-hole was told to reload
    deny = _deny(gravity)
    assert set(deny) - set(before) == {"c2.example.net", "phish.example.org"}
    enabled, comment, groups = deny["c2.example.net"]
    assert enabled == 1 and groups == "0"
    assert comment.startswith("vtguardian: malicious 14/86 (16.3%), added ")
    assert deny["denied.ftl"] == before["denied.ftl"]  # the user's own entry, untouched
    marker.unlink()
    assert sync_gravity(engine, settings, now).added == [] and not marker.exists()
    _verdict(engine, "c2.example.net", "harmless", now + timedelta(hours=1))
    cleared = sync_gravity(engine, settings, now + timedelta(hours=1))
    assert cleared.removed == ["c2.example.net"] and "c2.example.net" not in _deny(gravity)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT i.value, a.action, a.active FROM actions a JOIN iocs i ON i.id = a.ioc_id "
                "ORDER BY a.id"
            )
        ).all()
    assert [(v, a, bool(x)) for v, a, x in rows] == [
        ("c2.example.net", "block", False),
        ("phish.example.org", "block", True),
        ("c2.example.net", "unblock", False),
    ]


def test_blocks_expire_unless_the_verdict_is_confirmed_again(engine, db_url, gravity, tmp_path):
    now = utcnow()
    _verdict(engine, "phish.example.org", "malicious", now)
    settings, _ = _settings(db_url, gravity, tmp_path, block_days=30)
    sync_gravity(engine, settings, now)
    later = now + timedelta(days=31)
    assert sync_gravity(engine, settings, later).removed == ["phish.example.org"]
    assert "phish.example.org" not in _deny(gravity)
    assert sync_gravity(engine, settings, later).added == []  # not re-added unconfirmed
    _verdict(engine, "phish.example.org", "malicious", later + timedelta(hours=1))
    assert sync_gravity(engine, settings, later + timedelta(hours=2)).added == ["phish.example.org"]


def test_circuit_breaker_holds_back_a_flood(engine, db_url, gravity, tmp_path):
    now = utcnow()
    for n in range(5):
        _verdict(engine, f"bad{n}.example.com", "malicious", now)
    settings, _ = _settings(db_url, gravity, tmp_path, max_new_blocks_per_hour=2)
    result = sync_gravity(engine, settings, now)
    assert len(result.added) == 2 and len(result.held) == 3
    assert len(sync_gravity(engine, settings, now + timedelta(minutes=10)).added) == 0
    with engine.connect() as connection:  # held, and said so: one alert each, not one per sync
        held = (
            connection.execute(
                text(
                    "SELECT i.value FROM alerts a JOIN iocs i ON i.id = a.ioc_id "
                    "WHERE a.verdict = 'held' ORDER BY i.value"
                )
            )
            .scalars()
            .all()
        )
    assert held == sorted(result.held)
    assert len(sync_gravity(engine, settings, now + timedelta(hours=2)).added) == 2


def test_dry_run_touches_nothing_but_records(engine, db_url, gravity, tmp_path):
    now = utcnow()
    _verdict(engine, "c2.example.net", "malicious", now)
    before = _deny(gravity)
    settings, marker = _settings(db_url, gravity, tmp_path, dry_run=True)
    assert sync_gravity(engine, settings, now).added == ["c2.example.net"]
    assert _deny(gravity) == before and not marker.exists()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT dry_run FROM actions")).scalar() in (1, True)


@pytest.fixture
def pihole_api():
    emulator = PiholeApiEmulator()
    with PiholeApiServer(emulator) as server:
        yield server


def test_pihole_v6_rest_api_target(engine, db_url, tmp_path, pihole_api):
    """The same sync through /api/auth and /api/domains/deny/exact, seat freed after."""
    emulator = pihole_api.emulator
    emulator.denied["mine.example.net"] = {"domain": "mine.example.net", "comment": "kids"}
    now = utcnow()
    for domain, level in [
        ("c2.example.net", "malicious"),
        ("mine.example.net", "malicious"),
        ("gray.example.com", "suspicious"),
    ]:
        _verdict(engine, domain, level, now)
    settings, marker = _settings(
        db_url,
        tmp_path / "absent-gravity.db",
        tmp_path,
        api_url=pihole_api.url,
        api_password=PIHOLE_PASSWORD,
    )
    result = sync_gravity(engine, settings, now)
    assert result.added == ["c2.example.net"]
    entry = emulator.denied["c2.example.net"]
    assert entry["groups"] == [0] and entry["enabled"] is True
    assert entry["comment"].startswith("vtguardian: malicious 14/86 (16.3%), added ")
    assert emulator.denied["mine.example.net"]["comment"] == "kids"
    assert emulator.sessions == set()  # logged out again
    assert not marker.exists()  # the API applies changes itself: no reload command
    _verdict(engine, "c2.example.net", "harmless", now + timedelta(hours=1))
    assert sync_gravity(engine, settings, now + timedelta(hours=1)).removed == ["c2.example.net"]
    assert set(emulator.denied) == {"mine.example.net"}


def test_pihole_api_wrong_password_is_one_clear_error(engine, db_url, tmp_path, pihole_api):
    settings, _marker = _settings(
        db_url, tmp_path / "x.db", tmp_path, api_url=pihole_api.url, api_password="wrong"
    )
    with pytest.raises(UserError, match="refused the login: password incorrect"):
        sync_gravity(engine, settings)
    dead, _marker = _settings(
        db_url, tmp_path / "x.db", tmp_path, api_url="http://127.0.0.1:9", api_password="x"
    )
    with pytest.raises(UserError, match="cannot reach the Pi-hole API"):
        sync_gravity(engine, dead)


def test_the_users_own_block_add_and_remove_beat_the_verdicts(engine, db_url, gravity, tmp_path):
    now = utcnow()
    _verdict(engine, "c2.example.net", "malicious", now)
    _verdict(engine, "fine.example.com", "harmless", now)
    settings, _marker = _settings(db_url, gravity, tmp_path, max_new_blocks_per_hour=1)
    for n in range(3):  # fill the circuit breaker's hour with automatic blocks
        _verdict(engine, f"auto{n}.example.org", "malicious", now)
    sync_gravity(engine, settings, now)
    assert record_manual(engine, settings, ["Fine.Example.COM."], block=True, now=now) == [
        "fine.example.com"
    ]
    assert record_manual(engine, settings, ["c2.example.net"], block=False, now=now)
    first = sync_gravity(engine, settings, now)
    assert "fine.example.com" in first.added  # a harmless verdict, and the breaker is full
    deny = _deny(gravity)
    assert deny["fine.example.com"][1].startswith("vtguardian: blocked by the user, added ")
    assert "c2.example.net" not in deny
    again = sync_gravity(engine, settings, now + timedelta(minutes=5))
    assert "c2.example.net" not in again.added and "fine.example.com" not in again.removed
    # Changing one's mind: add it back, and it is blocked again at once.
    record_manual(engine, settings, ["c2.example.net"], block=True, now=now)
    assert "c2.example.net" in sync_gravity(engine, settings, now).added
    with engine.connect() as connection:
        manual = connection.execute(
            text(
                "SELECT i.value, a.action FROM actions a JOIN iocs i ON i.id = a.ioc_id "
                "WHERE a.reason = 'manual' ORDER BY a.id"
            )
        ).all()
    assert [tuple(r) for r in manual] == [
        ("fine.example.com", "block"),
        ("c2.example.net", "unblock"),
        ("c2.example.net", "block"),
    ]


def test_block_add_refuses_allowlisted_private_and_invalid_names(engine, db_url, gravity, tmp_path):
    settings, _marker = _settings(db_url, gravity, tmp_path)
    for name, reason in [
        ("login.mybank.com", "allowlist"),
        ("printer.local", "local"),
        ("not a domain", "not a domain"),
    ]:
        with pytest.raises(InvalidInput, match=reason):
            record_manual(engine, settings, [name], block=True)
