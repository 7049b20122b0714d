"""``vtguardian run``: followers, lookup worker, actions and the web app in one process.

One asyncio loop owns the lifecycle. The followers are blocking readers, so each
runs in a thread and is stopped through a ``threading.Event``; on the way out
they take in what was written since their last poll and commit it with its
offset, so a restart resumes exactly. The worker stops between two requests,
never halfway through one. SIGTERM and SIGINT both mean "finish and go".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from vtguardian import wake
from vtguardian.config import Settings
from vtguardian.errors import UserError
from vtguardian.ingest.run import IngestOptions, ingest
from vtguardian.ingest.totals import Totals
from vtguardian.iocs import Classifier
from vtguardian.store.engine import is_disconnect, wait_for_database

if TYPE_CHECKING:
    from vtguardian.intel.lookup import LookupService

log = logging.getLogger("vtguardian.run")
# Alerts are delivered as soon as a verdict makes one; this timer retries failed ones.
ALERTS_EVERY_SECONDS = 30.0
# How often run asks whether a prune is due ([retention] every_hours says when it is).
RETENTION_CHECK_SECONDS = 3600.0


@dataclass
class DaemonReport:
    ingested: Totals = field(default_factory=Totals)
    lookups: int = 0
    action_rounds: int = 0
    problems: list[str] = field(default_factory=list)


class Daemon:
    def __init__(self, settings: Settings, engine: Engine, say: Callable[[str], None]) -> None:
        self.settings = settings
        self.engine = engine
        self.say = say
        self.stop = asyncio.Event()
        self.follow_stop = threading.Event()
        self.report = DaemonReport()
        self._lookup_service: LookupService | None = None

    def request_stop(self) -> None:
        self.follow_stop.set()
        self.stop.set()

    async def run(self) -> DaemonReport:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, self.request_stop)
        tasks = [asyncio.create_task(self._guard(name, job)) for name, job in self._jobs()]
        if not tasks:
            raise UserError(
                "nothing to run: list [[ingest.sources]], or enable run.web or run.lookups"
            )
        await self.stop.wait()
        self.follow_stop.set()
        await asyncio.gather(*tasks)
        return self.report

    def _jobs(self) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        run = self.settings.run
        jobs: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        if self.settings.ingest.sources:
            jobs.append(("followers", self._follow))
            jobs.append(("dns-bypass", self._bypass))
        if run.lookups:
            if self.settings.virustotal.api_key is None:
                self.say("no VirusTotal key (VT_API_KEY): lookups are off, IoCs stay queued")
            else:
                jobs.append(("lookups", self._lookups))
        if run.pihole_blocking or run.nftables:
            jobs.append(("actions", self._actions))
        if run.web:
            jobs.append(("web", self._web))
        if self.settings.jobs or self._stored_jobs():
            jobs.append(("jobs", self._run_jobs))
        if self.settings.alerts.webhook_url:
            jobs.append(("alerts", self._alerts))
        if jobs and self.settings.retention.enabled:
            jobs.append(("retention", self._retention))
        return jobs

    async def _guard(self, name: str, job: Callable[[], Awaitable[None]]) -> None:
        """A part that fails stops the whole daemon with its reason: systemd restarts
        it, and a half-working daemon that looks healthy is worse than a restart."""
        try:
            await job()
        except Exception as exc:  # reported, then everything stops cleanly
            reason = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
            self.report.problems.append(f"{name}: {reason}")
            log.debug("%s failed", name, exc_info=True)
            self.request_stop()

    async def _follow(self) -> None:
        totals = await asyncio.to_thread(
            ingest,
            self.engine,
            Classifier.from_settings(self.settings),
            list(self.settings.ingest.sources),
            IngestOptions.from_settings(self.settings),
            follow=True,
            stop=self.follow_stop,
        )
        self.report.ingested = totals

    def _service(self) -> LookupService:
        """The one lookup service of this process: the worker and the alert job share
        it, so an alert is posted once even when both deliver at the same moment."""
        from vtguardian.intel.lookup import LookupService

        if self._lookup_service is None:
            self._lookup_service = LookupService(self.settings, self.engine)
        return self._lookup_service

    async def _lookups(self) -> None:
        service = self._service()
        result = await service.run_worker(stop=self.stop)
        self.report.lookups = result.requests

    async def _actions(self) -> None:
        """A round at once when a verdict turns malicious or clears; the timer is the
        safety net (verdicts made by another process, blocks that lapse)."""
        verdicts = wake.VERDICTS.listen()
        while not self.stop.is_set():
            await self._round(lambda: asyncio.to_thread(self._apply_actions))
            self.report.action_rounds += 1
            await verdicts.wait(self.settings.run.actions_every_seconds, self.stop)

    async def _alerts(self) -> None:
        """Send alerts to the webhook as soon as they are made, and retry due ones."""
        service = self._service()
        alerts = wake.ALERTS.listen()
        while not self.stop.is_set():
            await self._round(service.deliver_alerts)
            await alerts.wait(ALERTS_EVERY_SECONDS, self.stop)

    async def _round(self, work: Callable[[], Awaitable[object]]) -> None:
        """One round of a job that a wake-up or its timer repeats: a database restart
        meanwhile is waited out, not a reason to stop; the next round redoes the work
        from what was committed."""
        try:
            await work()
        except DBAPIError as exc:
            if not is_disconnect(exc):
                raise
            patience = self.settings.database.reconnect_seconds
            await asyncio.to_thread(wait_for_database, self.engine, patience)

    def _apply_actions(self) -> None:
        if self.settings.run.pihole_blocking:
            from vtguardian.actions.pihole import sync_gravity

            result = sync_gravity(self.engine, self.settings)
            self._said("Pi-hole", result.added, result.removed, result.held)
        if self.settings.run.nftables:
            from vtguardian.actions.nftables import apply_nftables

            fw = apply_nftables(self.engine, self.settings)
            self._said("nftables", fw.added, fw.removed, fw.held)

    async def _bypass(self) -> None:
        """DNS-bypass alerts and DoH devices, each round of actions (see intel/bypass.py)."""
        while not self.stop.is_set():
            await asyncio.to_thread(self._find_bypasses)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.settings.run.actions_every_seconds)

    def _find_bypasses(self) -> None:
        from vtguardian.clock import utcnow
        from vtguardian.intel.bypass import DohResolvers, detect_bypasses
        from vtguardian.iocs import Classifier
        from vtguardian.verdict import Policy

        found = detect_bypasses(
            self.engine,
            Classifier.from_settings(self.settings),
            Policy.from_settings(self.settings),
            utcnow(),
            self.settings.alerts.bypass_window_minutes,
            DohResolvers.read(self.settings.alerts.doh_resolvers_file),
        )
        if found.alerts:
            self.say(f"dns-bypass: {found.alerts} new alerts")

    def _said(self, target: str, added: list[str], removed: list[str], held: list[str]) -> None:
        if added or removed:
            self.say(f"{target}: blocked {len(added)}, unblocked {len(removed)}")
        if held:
            self.say(f"{target}: circuit breaker held {len(held)} new blocks for review")
            wake.ALERTS.notify()  # the held blocks' alerts are committed

    async def _retention(self) -> None:
        """Prune once a day (checked hourly, and at start), in small transactions that
        an ingest or a lookup never waits long for (store/retention.py)."""
        from vtguardian.store.retention import prune_if_due

        while not self.stop.is_set():
            result = await asyncio.to_thread(
                prune_if_due, self.engine, self.settings.retention, self.follow_stop
            )
            if result is not None:
                removed = sum(result.removed.values())
                self.say(f"retention: removed {removed:,} rows in {result.seconds:.1f} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), RETENTION_CHECK_SECONDS)

    async def _web(self) -> None:
        import uvicorn

        from vtguardian.web.app import create_app
        from vtguardian.web.security import base_url, is_loopback

        web = self.settings.web
        public = not is_loopback(web.host)
        if public and web.token is None:
            raise UserError(f"refusing to serve on {web.host} without web.token")
        app = create_app(self.settings, self.engine, public=public)
        server = uvicorn.Server(
            uvicorn.Config(app, host=web.host, port=web.port, log_level="warning")
        )
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        # Bound here, not by uvicorn: its bind error is a sys.exit that would leave the
        # followers running; ours is a plain error that stops everything cleanly.
        family = socket.AF_INET6 if ":" in web.host else socket.AF_INET
        try:
            listener = socket.create_server((web.host, web.port), family=family, reuse_port=False)
        except OSError as exc:
            raise UserError(f"cannot serve on {web.host}:{web.port}: {exc.strerror}") from None
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        self.say(f"page and API on {base_url(web.host, web.port)}")
        await self.stop.wait()
        server.should_exit = True
        await serving
        listener.close()

    def _stored_jobs(self) -> bool:
        """Jobs defined through the API run too, without a [[jobs]] entry."""
        from vtguardian.store.jobs import load_jobs

        with self.engine.connect() as connection:
            return bool(load_jobs(connection))

    async def _run_jobs(self) -> None:
        """The enabled jobs (vtguardian job start|stop), in a thread: reading, enriching
        again, outputs, retention. A job's fault is its own state, not the daemon's."""
        from vtguardian.jobs.runner import JobRunner

        runner = JobRunner(self.settings, self.engine)
        await asyncio.to_thread(runner.run, self.follow_stop, self.settings.ingest.poll_seconds)


class _OneLinePoolErrors(logging.Filter):
    """SQLAlchemy's pool logs a whole traceback when it cannot reset a connection it is
    giving up, which is what every connection open during a database restart does; run
    waits such a restart out, so one line says it (the connection is discarded anyway)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            first = str(error).splitlines()[0] if str(error) else ""
            record.msg = f"database connection dropped: {type(error).__name__} {first}".strip()
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def run_daemon(settings: Settings, engine: Engine, say: Callable[[str], None]) -> DaemonReport:
    async def main() -> DaemonReport:
        return await Daemon(settings, engine, say).run()

    # On a handler: a logger's own filters never see its children's records (the pool
    # logs as sqlalchemy.pool.impl.QueuePool).
    pool_log = logging.getLogger("sqlalchemy.pool")
    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)
    handler.addFilter(_OneLinePoolErrors())
    pool_log.addHandler(handler)
    propagate, pool_log.propagate = pool_log.propagate, False
    try:
        return asyncio.run(main())
    finally:
        pool_log.removeHandler(handler)
        pool_log.propagate = propagate
