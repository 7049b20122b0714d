"""Getting VirusTotal answers: the worker that drains the queue, and direct lookups.

Cache first (a fresh answer costs nothing), then the shared quota, then one
request through :class:`VirusTotalClient`. The answer, the verdict and the
removal from the queue are one transaction, so an answered IoC is never asked
again and an unanswered one is never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from vtguardian import wake
from vtguardian.clock import iso_z, utcnow
from vtguardian.config import Settings
from vtguardian.intel.alerts import ALERT_LEVELS, create_alert, deliver_pending
from vtguardian.intel.analyses import STEPS, background_step, schedule_after_answer
from vtguardian.intel.cache_use import CacheUse
from vtguardian.intel.flow import VIRUSTOTAL, Flow, FlowOutcome, host_of
from vtguardian.intel.threat_context import context_of, shown_context, young_domain
from vtguardian.intel.virustotal import (
    KeyRejected,
    QuotaRefused,
    TryLater,
    Unanswerable,
    VirusTotalClient,
    VtAnswer,
)
from vtguardian.iocs import Classified, Classifier, IocType
from vtguardian.quota import Budget, QuotaScheduler
from vtguardian.retry import retrying_async
from vtguardian.store import queue
from vtguardian.store.answers import (
    CachedVerdict,
    ReportRow,
    cached_verdicts,
    count_claimed_miss,
    count_outcome,
    evict_beyond,
    record_answer,
)
from vtguardian.store.engine import is_disconnect, run_in_transaction, wait_for_database
from vtguardian.store.entities import find_ioc_ids, find_or_create_iocs
from vtguardian.store.threats import contexts, record_context
from vtguardian.verdict import Level, Policy, decide

PROVIDER = VIRUSTOTAL
DIRECT_RETRIES = 3


@dataclass
class WorkerReport:
    requests: int = 0
    found: int = 0
    not_found: int = 0
    errors: int = 0
    quota_refusals: int = 0
    decided_locally: int = 0  # settled by the allowlist, a feed or OTX: no quota spent


@dataclass
class LookupResult:
    """One line of ``vtguardian lookup``."""

    input: str
    type: str | None
    value: str | None
    eligible: bool
    reason: str | None = None
    verdict: str | None = None
    malicious: int | None = None
    total: int | None = None
    ratio: float | None = None
    last_analysis_date: datetime | None = None
    source: str | None = None
    engines: list[str] = field(default_factory=list)
    error: str | None = None
    # Threat context (README, "Threat context"): categories, family, domain age, ASN ...
    context: dict[str, object] | None = None

    def as_dict(self) -> dict[str, object]:
        data = dict(self.__dict__)
        data["last_analysis_date"] = iso_z(self.last_analysis_date)
        return data


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def budget_from(settings: Settings) -> Budget:
    vt = settings.virustotal
    return Budget(
        per_minute=vt.per_minute,
        per_day=vt.per_day,
        per_month=vt.per_month,
        minute_seconds=vt.minute_seconds,
        safety_seconds=vt.safety_seconds,
    )


class LookupService:
    """VirusTotal lookups for one process, sharing queue and quota with the others."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        classifier: Classifier | None = None,
        worker: str | None = None,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.classifier = classifier or Classifier.from_settings(settings)
        self.worker = worker or worker_name()
        self.quota = QuotaScheduler(engine, budget_from(settings))
        self.policy = Policy.from_settings(settings)
        self.flow = Flow(settings, self.classifier)
        self._sleep = sleep
        # One delivery at a time: the worker and `run`'s alert job share this service.
        self._delivering = asyncio.Lock()

    # --- shared pieces -----------------------------------------------------------

    def client(self) -> VirusTotalClient:
        key = self.settings.virustotal.api_key
        return VirusTotalClient(
            key.get_secret_value() if key else "",
            self.settings.virustotal.host,
            self.settings.virustotal.timeout_seconds,
        )

    def ttl(self, level: str) -> timedelta:
        """How long an answer stands: bad and unknown ones are asked again sooner."""
        cache = self.settings.cache
        days = {
            Level.UNKNOWN: cache.unknown_ttl_days,
            Level.MALICIOUS: cache.malicious_ttl_days,
            Level.SUSPICIOUS: cache.suspicious_ttl_days,
        }.get(Level(level), cache.ttl_days)
        return timedelta(days=days)

    def report_for(self, answer: VtAnswer, kind: IocType, value: str) -> ReportRow:
        verdict = decide(
            answer.stats if answer.found else None,
            answer.malicious_engines,
            self.policy,
            popularity_rank=answer.popularity_rank,
            domain=host_of(kind, value),
            young=young_domain(answer.raw, self.settings.verdict.young_domain_days),
        )
        return ReportRow(
            provider=PROVIDER,
            outcome="found" if answer.found else "not_found",
            verdict=verdict.level.value,
            stats=answer.stats,
            ratio=verdict.ratio,
            score=verdict.score,
            total=verdict.total if answer.found else None,
            analysis_date=answer.analysis_date,
            engines=answer.malicious_engines,
            labels=answer.labels,
            reputation=answer.reputation,
            popularity_rank=answer.popularity_rank,
            permalink=answer.permalink,
            raw=answer.raw,
        )

    def _store(self, ioc_id: int, report: ReportRow, also: Sequence[ReportRow] = ()) -> None:
        """The decision, the flow's other answers and the queue removal, atomically."""
        now = utcnow()
        woken: list[wake.Signal] = []
        context = context_of(report)

        def work(connection: Connection) -> None:
            woken.clear()
            recorded = record_answer(
                connection, ioc_id, report, self.ttl(report.verdict), now, also
            )
            if context is not None:
                record_context(connection, ioc_id, recorded.report_id, context, now)
            flipped = recorded.history_id is not None
            if (
                flipped
                and report.verdict in ALERT_LEVELS
                and create_alert(connection, ioc_id, recorded.previous, recorded.history_id, now)
            ):
                woken.append(wake.ALERTS)
            if flipped and Level.MALICIOUS in (report.verdict, recorded.previous):
                woken.append(wake.VERDICTS)
            count_claimed_miss(connection, PROVIDER, ioc_id, self.worker, (*also, report), now)
            queue.complete(connection, ioc_id)
            count_outcome(connection, report.provider, report.outcome, now)
            for answer in (*also, report):
                count_outcome(connection, answer.provider, "answer", now)
            count_outcome(connection, report.provider, "decision", now)
            evict_beyond(connection, self.settings.cache.max_entries)

        run_in_transaction(self.engine, work)
        for signal in woken:  # committed: blocking and alerts in this process act now
            signal.notify()

    def _count(self, outcome: str, provider: str = PROVIDER) -> None:
        now = utcnow()
        run_in_transaction(self.engine, lambda c: count_outcome(c, provider, outcome, now))

    async def _before_virustotal(
        self, ioc_id: int, kind: IocType, value: str
    ) -> FlowOutcome | None:
        """Ask the providers ahead of VirusTotal; None when one of them settled it."""
        outcome = await self.flow.ask(kind, value)
        for error in outcome.errors:
            self._count("error", error.split(":", 1)[0])
        if outcome.decider is None and self.flow.uses_virustotal:
            return outcome
        decider = outcome.decider or _strongest(outcome.answers)
        self._store(ioc_id, decider, [a for a in outcome.answers if a is not decider])
        return None

    async def _after_virustotal(
        self, before: FlowOutcome, vt_report: ReportRow, kind: IocType, value: str
    ) -> tuple[ReportRow, list[ReportRow]]:
        """VirusTotal decides, unless it has no record and a later provider does."""
        answers = [*before.answers]
        if vt_report.verdict == Level.UNKNOWN:
            after = await self.flow.ask(kind, value, after_virustotal=True)
            if after.decider is not None:
                others = [
                    *answers,
                    vt_report,
                    *(a for a in after.answers if a is not after.decider),
                ]
                return after.decider, others
        return vt_report, answers

    async def _reserve(self, on_wait: Callable[[float], None] | None = None) -> None:
        """Wait until the shared budget allows one more request, then count it."""
        while True:
            wait = self.quota.try_reserve()
            if wait <= 0:
                return
            if on_wait is not None:
                on_wait(wait)
            await self._sleep(min(wait, 5.0))

    async def deliver_alerts(self) -> None:
        """Send due alerts to the webhook, if one is configured (never raises)."""
        config = self.settings.alerts
        if config.webhook_url:
            async with self._delivering:
                await deliver_pending(
                    self.engine, config.webhook_url, config.max_attempts, config.timeout_seconds
                )

    # --- the worker --------------------------------------------------------------

    async def run_worker(
        self,
        once: bool = False,
        max_requests: int | None = None,
        on_progress: Callable[[WorkerReport, int], None] | None = None,
        idle_seconds: float = 2.0,
        stop: asyncio.Event | None = None,
    ) -> WorkerReport:
        """Drain the queue; with ``once``, stop when it is empty, and in any case soon
        after ``stop`` is set (between requests, never halfway). Raises KeyRejected."""
        report = WorkerReport()
        lease = self.settings.queue.lease_seconds
        stop = stop or asyncio.Event()
        queued = wake.QUEUED.listen()  # IoCs a follower in this process just stored

        async def pause(seconds: float, idle: bool = False) -> None:
            if self._sleep is not asyncio.sleep:  # a test's clock
                await self._sleep(seconds)
                return
            if idle:  # nothing to claim: new work in the queue ends the wait
                await queued.wait(seconds, stop)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds)

        async with self.client() as client:
            while not stop.is_set() and (max_requests is None or report.requests < max_requests):
                try:
                    step = await self._step(client, report, once, lease, idle_seconds, pause)
                except DBAPIError as exc:
                    if not is_disconnect(exc):
                        raise
                    # The database went away (a restart, a network blip): wait for it and
                    # go on. A claim in flight simply expires and is looked up again.
                    patience = self.settings.database.reconnect_seconds
                    await asyncio.to_thread(wait_for_database, self.engine, patience)
                    continue
                if step == "done":
                    break
                if step == "asked" and on_progress is not None:
                    with self.engine.connect() as connection:
                        on_progress(report, queue.queue_length(connection))
        return report

    async def _step(
        self,
        client: VirusTotalClient,
        report: WorkerReport,
        once: bool,
        lease: int,
        idle_seconds: float,
        pause: Callable[..., Awaitable[None]],
    ) -> Literal["done", "asked", "idle"]:
        """One claim and its answer: "asked" VirusTotal, or stayed "idle" (nothing ready,
        decided locally, quota), or "done" when ``once`` and the queue is empty."""
        claims = queue.claim(self.engine, self.worker, 1, lease)
        if not claims and run_in_transaction(self.engine, queue.requeue_stale):
            return "idle"
        if not claims:
            await self.deliver_alerts()
            with self.engine.connect() as connection:
                ready_in = queue.seconds_until_ready(connection)
            if ready_in is None and once:
                return "done"
            await pause(min(idle_seconds, ready_in or idle_seconds) or 0.05, idle=True)
            return "idle"
        item = claims[0]
        if item.reason in STEPS:  # a step of a re-analysis, submission or relationship fetch
            return await background_step(self, client, item, report)
        before = await self._before_virustotal(item.ioc_id, item.kind, item.value)
        if before is None:
            report.decided_locally += 1
            return "idle"
        wait = self.quota.try_reserve()
        if wait > 0:
            queue.release(self.engine, item.ioc_id, self.worker)
            await pause(min(wait, 5.0))
            return "idle"
        report.requests += 1
        await self._process(client, item, report, before)
        return "asked"

    async def _process(
        self,
        client: VirusTotalClient,
        item: queue.Claim,
        report: WorkerReport,
        before: FlowOutcome,
    ) -> None:
        try:
            answer = await client.fetch(item.kind, item.value)
        except (KeyRejected, QuotaRefused, TryLater) as exc:
            self.give_back(item, report, exc)
            return
        except Unanswerable as exc:
            report.errors += 1
            self._store(item.ioc_id, _unanswerable(str(exc)))
            return
        if answer.found:
            report.found += 1
        else:
            report.not_found += 1
        vt_report = self.report_for(answer, item.kind, item.value)
        decider, others = await self._after_virustotal(before, vt_report, item.kind, item.value)
        self._store(item.ioc_id, decider, others)
        schedule_after_answer(self, item.ioc_id, item.kind, item.value, vt_report)
        self.quota.clear_pause()

    def give_back(
        self, item: queue.Claim, report: WorkerReport, exc: KeyRejected | QuotaRefused | TryLater
    ) -> None:
        """Return a claimed IoC to the queue after a request that got no answer, for any
        request the worker sends (a lookup or a step of a re-analysis): a 429 pauses the
        quota, a fault is tried again after a backoff, a rejected key stops the worker
        (raised again here)."""
        if isinstance(exc, KeyRejected):
            queue.release(self.engine, item.ioc_id, self.worker)
            raise exc
        if isinstance(exc, QuotaRefused):
            report.quota_refusals += 1
            self._count("quota")
            self.quota.pause_after_429()
            queue.release(self.engine, item.ioc_id, self.worker)
            return
        report.errors += 1
        self._count("error")
        delay = queue.backoff_seconds(item.attempts, self.settings.queue.retry_base_seconds)
        queue.release(self.engine, item.ioc_id, self.worker, delay, str(exc), count_attempt=True)

    # --- direct lookups (the CLI) ------------------------------------------------

    async def lookup_values(
        self,
        values: list[str],
        refresh: bool = False,
        on_wait: Callable[[float], None] | None = None,
    ) -> list[LookupResult]:
        """Answer each value from the cache, or ask VirusTotal now (within the quota)."""
        classified = [self.classifier.classify(v) for v in values]
        now = utcnow()
        wanted = {
            (str(c.type), c.value): (c.registered_domain, now, now)
            for c in classified
            if c.eligible and c.value
        }
        # Read first: on SQLite every write waits for an ingest's transaction to end.
        with self.engine.connect() as connection:
            ids = find_ioc_ids(connection, wanted)
        if len(ids) < len(wanted):
            ids = run_in_transaction(self.engine, lambda conn: find_or_create_iocs(conn, wanted))
        with self.engine.connect() as connection:
            cache = {} if refresh else cached_verdicts(connection, ids.values(), now)
        results: list[LookupResult] = []
        hits: list[int] = []
        client: VirusTotalClient | None = None
        try:
            for item in classified:
                if not item.eligible or item.value is None or item.type is None:
                    results.append(_ineligible(item))
                    continue
                ioc_id = ids[(str(item.type), item.value)]
                if ioc_id in cache:
                    hits.append(ioc_id)
                    results.append(self._result_from_cache(item, cache[ioc_id], source="cache"))
                    continue
                if client is None:
                    client = await self.client().__aenter__()
                results.append(await self._ask_now(client, item, ioc_id, on_wait))
        finally:
            if client is not None:
                await client.__aexit__(None, None, None)
            if hits:  # one write for the call; if it fails, the answers still stand
                uses = CacheUse(self.engine, PROVIDER, background=False)
                uses.note(hits)
                uses.flush()
        self._add_context(results, ids)
        return results

    def _add_context(self, results: list[LookupResult], ids: dict[tuple[str, str], int]) -> None:
        """Each answered result's threat context, read once for the call."""
        with self.engine.connect() as connection:
            stored = contexts(connection, ids.values())
        now = utcnow()
        young_days = self.settings.verdict.young_domain_days
        for result in results:
            ioc_id = ids.get((result.type or "", result.value or ""))
            if ioc_id is not None:
                result.context = shown_context(stored.get(ioc_id), now, young_days)

    def _result_from_cache(
        self, item: Classified, cached: CachedVerdict, source: str
    ) -> LookupResult:
        return LookupResult(
            input=item.input,
            type=str(item.type),
            value=item.value,
            eligible=True,
            verdict=cached.verdict,
            malicious=cached.malicious,
            total=cached.total,
            ratio=cached.ratio,
            last_analysis_date=cached.analysis_date,
            source=source,
            engines=cached.engines,
        )

    async def _ask_now(
        self,
        client: VirusTotalClient,
        item: Classified,
        ioc_id: int,
        on_wait: Callable[[float], None] | None,
    ) -> LookupResult:
        assert item.type is not None and item.value is not None
        self._count("cache_miss")
        kind = IocType(item.type)
        before = await self._before_virustotal(ioc_id, kind, item.value)
        if before is None:
            with self.engine.connect() as connection:
                settled = cached_verdicts(connection, [ioc_id], utcnow())[ioc_id]
            return self._result_from_cache(item, settled, source=settled.decided_by or "flow")
        last_error = "no answer"

        async def ask() -> VtAnswer:
            nonlocal last_error
            await self._reserve(on_wait)  # waits out a pause after a 429 too
            try:
                return await client.fetch(kind, item.value)
            except QuotaRefused:
                self._count("quota")
                self.quota.pause_after_429()
                last_error = "VirusTotal quota exceeded"
                raise
            except TryLater as exc:
                self._count("error")
                last_error = str(exc)
                raise

        try:
            async for attempt in retrying_async(
                lambda exc: isinstance(exc, QuotaRefused | TryLater),
                base=2.0,
                cap=30.0,
                attempts=DIRECT_RETRIES,
                sleep=self._sleep,
            ):
                with attempt:
                    answer = await ask()
        except Unanswerable as exc:
            self._store(ioc_id, _unanswerable(str(exc)))
            return _result(item, _unanswerable(str(exc)), error=str(exc))
        except (QuotaRefused, TryLater):
            pass  # queued below
        else:
            vt_report = self.report_for(answer, kind, item.value)
            report, others = await self._after_virustotal(before, vt_report, kind, item.value)
            self._store(ioc_id, report, others)
            self.quota.clear_pause()
            return _result(item, report)
        # Not lost: queued at the top, a worker finishes it when VirusTotal recovers.
        run_in_transaction(
            self.engine,
            lambda c: queue.enqueue(
                c, [queue.QueueRequest(ioc_id, queue.TIER_ALERT, reason="cli")]
            ),
        )
        return LookupResult(
            input=item.input,
            type=str(item.type),
            value=item.value,
            eligible=True,
            verdict=Level.PENDING.value,
            error=f"{last_error}; queued for the worker",
        )


def _strongest(answers: Sequence[ReportRow]) -> ReportRow:
    """With VirusTotal left out of the flow: the most severe answer, or unknown."""
    rank = {Level.MALICIOUS: 3, Level.SUSPICIOUS: 2, Level.HARMLESS: 1}
    if not answers:
        return ReportRow(provider="flow", outcome="not_found", verdict=Level.UNKNOWN.value)
    return max(answers, key=lambda a: rank.get(Level(a.verdict), 0))


def _unanswerable(reason: str) -> ReportRow:
    return ReportRow(
        provider=PROVIDER, outcome="error", verdict=Level.UNKNOWN.value, labels=[reason[:200]]
    )


def _ineligible(item: Classified) -> LookupResult:
    return LookupResult(
        input=item.input,
        type=str(item.type) if item.type else None,
        value=item.value,
        eligible=False,
        reason=item.reason,
    )


def _result(item: Classified, report: ReportRow, error: str | None = None) -> LookupResult:
    stats = report.stats or {}
    return LookupResult(
        input=item.input,
        type=str(item.type),
        value=item.value,
        eligible=True,
        verdict=report.verdict,
        malicious=stats.get("malicious") if report.stats else None,
        total=report.total,
        ratio=report.ratio,
        last_analysis_date=report.analysis_date,
        source=PROVIDER,
        engines=list(report.engines or []),
        error=error,
    )
