"""VirusTotal misbehaving in every way the emulator can, against the real worker:
every IoC ends with exactly one stored answer, every request that reached the
service was counted against the quota (no silent re-sends), the quota is never
exceeded, and a revoked key stops the worker with one clear error."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlalchemy import func, select

from helpers import settings_for
from test_lookup import FAST_MINUTE, _no_sleep, _queue_domains
from vtguardian.intel.lookup import LookupService
from vtguardian.intel.virustotal import KeyRejected, parse_object
from vtguardian.iocs import IocType
from vtguardian.store.schema import lookup_queue, verdicts
from vtguardian.testing.vt_emulator import DEFAULT_KEY

CAMPAIGN = {
    "503 storm": {"error_rate": 0.6},
    "dropped connections": {"drop_rate": 0.4},
    "truncated JSON": {"truncate_rate": 0.4},
    "wrong shapes": {"wrong_shape_rate": 0.5},
    "timeouts": {"slow_rate": 0.3, "slow_seconds": 1.0},
    "429 storm": {"burst_429": 3},
    "everything at once": {"error_rate": 0.2, "drop_rate": 0.1, "truncate_rate": 0.1,
                           "slow_rate": 0.1, "slow_seconds": 1.0, "burst_429": 2},
}  # fmt: skip


@pytest.mark.parametrize("name", list(CAMPAIGN))
def test_every_ioc_answered_once_under_faults_within_the_quota(name, engine, db_url, vt_emulator):
    names = [f"{name.split()[0].lower()}-{n}.example.com" for n in range(10)]
    _queue_domains(engine, names)
    emulator = vt_emulator.emulator
    # Both sides count the same budget over the same (shortened) minute.
    emulator.configure(
        {"faults": {**CAMPAIGN[name], "seed": 3}, "quota": {"per_minute": 10, "minute_seconds": 1}}
    )
    settings = settings_for(
        db_url,
        vt_emulator.url,
        virustotal={"minute_seconds": 1, "safety_seconds": 0.3, "per_minute": 10,
                    "timeout_seconds": 0.3},
        queue={"retry_base_seconds": 0.05},
    )  # fmt: skip
    service = LookupService(settings, engine, sleep=_no_sleep)
    report = asyncio.run(asyncio.wait_for(service.run_worker(once=True), timeout=240))
    answered = Counter(emulator.answered())
    assert set(answered) == {("domain", n) for n in names}, name
    if "slow_rate" not in CAMPAIGN[name]:  # a reply that came after we gave up is a resend
        assert set(answered.values()) == {1}, name
    assert len(emulator.calls()) == report.requests, name  # every send was counted
    assert emulator.over_budget() == 0
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(verdicts)).scalar() == 10
        assert connection.execute(select(func.count()).select_from(lookup_queue)).scalar() == 0
    assert report.found + report.not_found == 10


def test_a_key_revoked_mid_run_stops_cleanly_and_keeps_the_rest_queued(engine, db_url, vt_emulator):
    names = [f"revoked-{n}.example.com" for n in range(10)]
    _queue_domains(engine, names)
    emulator = vt_emulator.emulator
    settings = settings_for(db_url, vt_emulator.url, virustotal=FAST_MINUTE)
    service = LookupService(settings, engine, sleep=_no_sleep)
    asyncio.run(service.run_worker(max_requests=4))
    emulator.configure({"keys": ["a-new-key"]})  # DEFAULT_KEY revoked
    with pytest.raises(KeyRejected) as raised:
        asyncio.run(service.run_worker(once=True))
    assert DEFAULT_KEY not in str(raised.value)
    with engine.connect() as connection:
        done = connection.execute(select(func.count()).select_from(verdicts)).scalar()
        queued = connection.execute(
            select(func.count())
            .select_from(lookup_queue)
            .where(lookup_queue.c.claimed_by.is_(None))
        ).scalar()
    assert (done, queued) == (4, 6)  # nothing lost, nothing half-done, nothing held by a lease
    emulator.configure({"keys": [DEFAULT_KEY]})  # the user fixes the key: the rest completes
    asyncio.run(service.run_worker(once=True))
    assert Counter(emulator.answered()) == Counter(("domain", n) for n in names)


def test_an_absurd_analysis_date_is_dropped_not_fatal():
    document = {
        "data": {
            "id": "example.com",
            "attributes": {"last_analysis_stats": {"malicious": 2}, "last_analysis_date": 2**62},
        }
    }
    answer = parse_object(IocType.DOMAIN, document)
    assert answer.stats == {"malicious": 2} and answer.analysis_date is None
