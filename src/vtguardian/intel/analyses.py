"""Fresh analyses: re-analyse stale reports, submit unknown URLs, fetch relationships.

After an answer is stored, :func:`schedule_after_answer` decides what more it
deserves, within the daily caps (README, "Fresh analyses"):

- a report whose analysis is older than ``virustotal.max_analysis_age_days``, of an
  IoC the network contacted within that age, is re-analysed
  (``POST /{collection}/{id}/analyse``, ``GET /analyses/{id}`` until completed, then
  the object again), at most ``virustotal.reanalyses_per_day`` a day;
- with ``virustotal.submit_unknown_urls``, a URL VirusTotal has no record of is
  submitted (``POST /urls``; with a query string only with
  ``submit_urls_with_query``), counted in the same cap; files are never uploaded;
- an IoC that is malicious has its relationships fetched (resolutions, a URL's
  serving address, a file's contacted domains and addresses), within
  ``virustotal.relationship_requests_per_day``; a related IoC the network also
  contacted is queued at alert priority.

Every step is one request, taken from the queue at the background tier
(:mod:`vtguardian.store.analyses`), so each POST and poll passes the shared quota,
alerts and new IoCs always go first, and a poll that must wait (it backs off,
doubling) leaves the worker free for other work.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from sqlalchemy import Connection, select

from vtguardian.clock import as_naive_utc, utcnow
from vtguardian.intel import virustotal as vt_calls
from vtguardian.intel.virustotal import (
    KeyRejected,
    QuotaRefused,
    TryLater,
    Unanswerable,
    VirusTotalClient,
)
from vtguardian.iocs import IocType
from vtguardian.quota import Budget, QuotaScheduler
from vtguardian.store import analyses as rows
from vtguardian.store import queue
from vtguardian.store.answers import ReportRow, count_outcome
from vtguardian.store.engine import run_in_transaction
from vtguardian.store.entities import find_ioc_ids, find_or_create_iocs
from vtguardian.store.schema import sightings
from vtguardian.store.threats import record_related
from vtguardian.verdict import Level

if TYPE_CHECKING:
    from vtguardian.intel.lookup import LookupService, WorkerReport

PROVIDER = "virustotal"
STEPS = frozenset({"reanalyse", "submit", "poll", "refetch", "relate"})
Step = Literal["asked", "idle"]


def daily_cap(service: LookupService, name: str, per_day: int) -> QuotaScheduler:
    """A daily cap counted in the database like the quota itself (one serialised
    reservation each), so several workers together never exceed it either."""
    unlimited = 10**9
    budget = Budget(per_minute=unlimited, per_day=max(per_day, 0), per_month=unlimited)
    return QuotaScheduler(service.engine, budget, provider=f"{PROVIDER}-{name}")


def reanalysis_cap(service: LookupService) -> QuotaScheduler:
    return daily_cap(service, "reanalyses", service.settings.virustotal.reanalyses_per_day)


def relationship_cap(service: LookupService) -> QuotaScheduler:
    per_day = service.settings.virustotal.relationship_requests_per_day
    return daily_cap(service, "relationships", per_day)


def schedule_after_answer(
    service: LookupService, ioc_id: int, kind: IocType, value: str, report: ReportRow
) -> str | None:
    """Open a re-analysis, a submission or a relationship fetch when one is due and
    its daily cap allows; the kind opened, or None. After the answer's transaction."""
    settings = service.settings.virustotal
    now = utcnow()
    with service.engine.connect() as connection:
        wanted = _due(connection, service, ioc_id, kind, value, report, now)
    if wanted is None:
        return None
    if wanted in (rows.REANALYSE, rows.SUBMIT):
        if settings.reanalyses_per_day == 0 or reanalysis_cap(service).try_reserve(now) > 0:
            return None  # today's re-analyses are spent
    elif relationship_cap(service).usage(now).remaining()["day"] <= 0:
        return None  # counted per request when sent; none left today

    def work(connection: Connection) -> str | None:
        if rows.has_open(connection, ioc_id, (rows.REANALYSE, rows.SUBMIT, rows.RELATE)):
            return None  # another worker opened one meanwhile
        rows.open_request(
            connection, ioc_id, wanted, now,
            old_analysis_date=report.analysis_date if wanted == rows.REANALYSE else None,
            old_verdict=report.verdict,
        )  # fmt: skip
        return wanted

    return run_in_transaction(service.engine, work)


def _due(
    connection: Connection,
    service: LookupService,
    ioc_id: int,
    kind: IocType,
    value: str,
    report: ReportRow,
    now: datetime,
) -> str | None:
    """What the answer deserves beyond itself, caps aside."""
    settings = service.settings.virustotal
    if report.provider != PROVIDER:
        return None
    if rows.has_open(connection, ioc_id, (rows.REANALYSE, rows.SUBMIT, rows.RELATE)):
        return None
    if report.outcome == "found" and _stale(report.analysis_date, now, settings):
        seen = as_naive_utc(rows.last_seen(connection, ioc_id))
        max_age = timedelta(days=settings.max_analysis_age_days)
        if seen is None or seen < now - max_age:
            return None  # nobody talks to it any more: not worth the quota
        if rows.requested_since(connection, ioc_id, rows.REANALYSE, now - max_age):
            return None  # re-analysed lately, and VirusTotal kept the old date
        return rows.REANALYSE
    if report.outcome == "not_found" and _submittable(kind, value, settings):
        return rows.SUBMIT
    if report.verdict == Level.MALICIOUS and settings.relationship_requests_per_day > 0:
        return None if rows.ever_related(connection, ioc_id) else rows.RELATE
    return None


def _stale(analysis_date: datetime | None, now: datetime, settings: object) -> bool:
    if analysis_date is None:
        return False
    days = settings.max_analysis_age_days  # type: ignore[attr-defined]
    return as_naive_utc(analysis_date) < now - timedelta(days=days)  # type: ignore[operator]


def _submittable(kind: IocType, value: str, settings: object) -> bool:
    if kind is not IocType.URL or not settings.submit_unknown_urls:  # type: ignore[attr-defined]
        return False
    with_query = settings.submit_urls_with_query  # type: ignore[attr-defined]
    return with_query or not urlsplit(value).query


async def background_step(
    service: LookupService, client: VirusTotalClient, item: queue.Claim, report: WorkerReport
) -> Step:
    """One request of a re-analysis, submission or relationship fetch (quota first)."""
    with service.engine.connect() as connection:
        request = rows.current(connection, item.ioc_id)
    if request is None:  # nothing open any more (a restart mid-way): drop the step
        run_in_transaction(service.engine, lambda c: queue.complete(c, item.ioc_id))
        return "idle"
    relating = item.reason == rows.RELATE
    if relating and relationship_cap(service).usage().remaining()["day"] <= 0:
        _finish(service, item, request, "failed", error="relationship budget spent today")
        return "idle"
    wait = service.quota.try_reserve()
    if wait > 0:
        queue.release(service.engine, item.ioc_id, service.worker, min(wait, 60.0))
        return "idle"
    # Counted once the request is sure to go: a wait above spends none of it. Another
    # worker may have taken the last one meanwhile; then the quota slot goes unused.
    if relating and relationship_cap(service).try_reserve() > 0:
        _finish(service, item, request, "failed", error="relationship budget spent today")
        return "idle"
    report.requests += 1
    try:
        if item.reason in (rows.REANALYSE, rows.SUBMIT):
            await _post(service, client, item, request)
        elif item.reason == "poll":
            await _poll(service, client, item, request)
        elif item.reason == "refetch":
            await _refetch(service, client, item, request)
        else:
            await _relate(service, client, item, request)
    except (KeyRejected, QuotaRefused, TryLater) as exc:
        service.give_back(item, report, exc)
    except Unanswerable as exc:
        report.errors += 1
        _finish(service, item, request, "failed", error=str(exc))
    else:
        service.quota.clear_pause()
    return "asked"


async def _post(
    service: LookupService, client: VirusTotalClient, item: queue.Claim, request: rows.OpenRequest
) -> None:
    if item.reason == rows.SUBMIT:
        analysis_id = await vt_calls.submit_url(client, item.value)
        outcome = "submission"
    else:
        analysis_id = await vt_calls.request_analysis(client, item.kind, item.value)
        outcome = "reanalysis"
    now = utcnow()
    delay = service.settings.virustotal.poll_seconds

    def work(connection: Connection) -> None:
        rows.update_request(
            connection, request.id, status="requested", analysis_id=analysis_id[:255],
            requested_at=now, polls=0,
        )  # fmt: skip
        count_outcome(connection, PROVIDER, outcome, now)
        rows.next_step(connection, item.ioc_id, service.worker, "poll", now, delay)

    run_in_transaction(service.engine, work)


async def _poll(
    service: LookupService, client: VirusTotalClient, item: queue.Claim, request: rows.OpenRequest
) -> None:
    if not request.analysis_id:
        raise Unanswerable("no analysis to poll")
    state = await vt_calls.get_analysis(client, request.analysis_id)
    now = utcnow()
    settings = service.settings.virustotal
    polls = request.polls + 1

    def work(connection: Connection) -> None:
        count_outcome(connection, PROVIDER, "poll", now)
        if state.completed:
            rows.update_request(
                connection, request.id, status="completed", polls=polls, completed_at=now
            )
            rows.next_step(connection, item.ioc_id, service.worker, "refetch", now)
        elif polls >= settings.max_polls:
            rows.update_request(
                connection, request.id, status="failed", polls=polls,
                last_error=f"not completed after {polls} polls",
            )  # fmt: skip
            queue.complete(connection, item.ioc_id)
        else:
            rows.update_request(connection, request.id, polls=polls)
            delay = settings.poll_seconds * 2 ** min(polls, 10)
            rows.next_step(connection, item.ioc_id, service.worker, "poll", now, delay)

    run_in_transaction(service.engine, work)


async def _refetch(
    service: LookupService, client: VirusTotalClient, item: queue.Claim, request: rows.OpenRequest
) -> None:
    """The object again: its report (with the new analysis) becomes the verdict."""
    answer = await client.fetch(item.kind, item.value)
    vt_report = service.report_for(answer, item.kind, item.value)
    service._store(item.ioc_id, vt_report)  # completes the queue row
    run_in_transaction(
        service.engine,
        lambda c: rows.update_request(c, request.id, status="done", new_verdict=vt_report.verdict),
    )
    schedule_after_answer(service, item.ioc_id, item.kind, item.value, vt_report)


async def _relate(
    service: LookupService, client: VirusTotalClient, item: queue.Claim, request: rows.OpenRequest
) -> None:
    """Every relationship of the IoC's kind; each one past the first is a request more."""
    found: list[tuple[IocType, str, str]] = []
    names = vt_calls.RELATIONSHIPS[item.kind]
    for n, name in enumerate(names):
        if n and relationship_cap(service).try_reserve() > 0:
            break  # the day's relationship budget is spent
        if n and service.quota.try_reserve() > 0:
            break  # the rest of the quota stays unspent rather than waited for
        for kind, value in await vt_calls.related(client, item.kind, item.value, name):
            found.append((kind, value, name))
        run_in_transaction(
            service.engine, lambda c: count_outcome(c, PROVIDER, "relationship", utcnow())
        )
    classified = [
        (service.classifier.classify_as(value, kind), name) for kind, value, name in found
    ]
    wanted = {
        (str(c.type), c.value): (c.registered_domain, None, None)
        for c, _name in classified
        if c.eligible and c.value and c.type
    }
    relations = {(str(c.type), c.value): name for c, name in classified if c.eligible and c.value}
    now = utcnow()

    def work(connection: Connection) -> None:
        known = find_ioc_ids(connection, wanted)
        ids = find_or_create_iocs(connection, _spans(wanted, now)) if wanted else {}
        record_related(connection, item.ioc_id, {ids[k]: relations[k] for k in ids}, now)
        contacted = _contacted(connection, [known[k] for k in known])
        if contacted:
            queue.enqueue(
                connection,
                [
                    queue.QueueRequest(i, queue.TIER_ALERT, reason="related")
                    for i in sorted(contacted)
                ],
                now,
            )
        rows.update_request(connection, request.id, status="done", completed_at=now)
        queue.complete(connection, item.ioc_id)

    run_in_transaction(service.engine, work)


def _spans(
    wanted: dict[tuple[str, str], tuple[str | None, None, None]], now: datetime
) -> dict[tuple[str, str], tuple[str | None, datetime, datetime]]:
    return {key: (domain, now, now) for key, (domain, _a, _b) in wanted.items()}


def _contacted(connection: Connection, ioc_ids: list[int]) -> set[int]:
    """Of ``ioc_ids``, those a device of the network was seen talking to."""
    if not ioc_ids:
        return set()
    query = select(sightings.c.ioc_id).where(sightings.c.ioc_id.in_(ioc_ids)).distinct()
    return set(connection.execute(query).scalars())


def _finish(
    service: LookupService,
    item: queue.Claim,
    request: rows.OpenRequest,
    status: str,
    error: str | None = None,
) -> None:
    def work(connection: Connection) -> None:
        rows.update_request(
            connection, request.id, status=status, last_error=(error or "")[:255] or None
        )
        queue.complete(connection, item.ioc_id)

    run_in_transaction(service.engine, work)
