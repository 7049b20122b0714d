"""A job's own flow: which provider's answer decides an IoC for this job.

The lookup worker asks providers with the global flow and keeps every answer as a
report. A job reads those answers in its own order, enabled providers only: the
allowlist and local feeds answer on the spot; OTX and VirusTotal answer from their
latest stored report. The first confident one decides (VirusTotal's "no record"
lets a later provider decide, as in the global flow). When none of the job's
providers has answered but the IoC has a verdict, that verdict stands, with the
provider that decided it; with no verdict at all the IoC is pending.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from vtguardian.config import FlowStep, Settings
from vtguardian.intel.flow import VIRUSTOTAL, Flow
from vtguardian.iocs import Classifier, IocType
from vtguardian.store.answers import ReportRow
from vtguardian.store.schema import reports, verdicts

LOCAL = ("allowlist", "feeds")
REMOTE = ("otx", VIRUSTOTAL)
_RANK = {"malicious": 3, "suspicious": 2, "harmless": 1}
_CHUNK = 500


@dataclass(frozen=True)
class Answer:
    """What the job's flow made of one IoC."""

    verdict: str
    provider: str
    ratio: float | None = None
    malicious: int | None = None
    total: int | None = None
    engines: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    analysis_date: datetime | None = None
    answered: tuple[str, ...] = ()  # every provider of the flow that answered, in order


def _from_report(report: ReportRow | Any, answered: tuple[str, ...]) -> Answer:
    return Answer(
        verdict=report.verdict,
        provider=report.provider,
        ratio=getattr(report, "ratio", None),
        malicious=getattr(report, "malicious", None),
        total=getattr(report, "total", None),
        engines=tuple(getattr(report, "engines", None) or ()),
        labels=tuple(getattr(report, "labels", None) or ()),
        analysis_date=getattr(report, "analysis_date", None),
        answered=answered,
    )


class JobFlow:
    """The job's enabled providers in order, asked for many IoCs at once."""

    def __init__(self, settings: Settings, classifier: Classifier, steps: list[FlowStep]) -> None:
        self.steps = [step.provider for step in steps if step.enabled]
        # The allowlist and the feeds are checked here, in the job's order; OTX and
        # VirusTotal are only read from their stored reports, never asked from a job.
        local_flow = [step for step in steps if step.provider in LOCAL]
        self._local = Flow(settings.model_copy(update={"flow": local_flow}), classifier)

    @property
    def waits_for_lookups(self) -> bool:
        return any(step in REMOTE for step in self.steps)

    def resolve(
        self, connection: Connection, wanted: Mapping[tuple[str, str], int]
    ) -> dict[tuple[str, str], Answer | None]:
        """An answer for each IoC (``(type, value) -> ioc id``), None while pending."""
        remote = [step for step in self.steps if step in REMOTE]
        stored = _latest_reports(connection, wanted.values(), remote) if remote else {}
        decided = _verdicts(connection, wanted.values())
        return {
            key: self._one(key, stored.get(ioc_id, {}), decided.get(ioc_id))
            for key, ioc_id in wanted.items()
        }

    def _one(self, key: tuple[str, str], stored: dict[str, Any], verdict: Any) -> Answer | None:
        kind, value = IocType(key[0]), key[1]
        local = self._local.ask_local(kind, value) if any(s in LOCAL for s in self.steps) else None
        local_by = {a.provider: a for a in local.answers} if local is not None else {}
        answered: list[str] = []
        candidates: list[tuple[str, Any]] = []
        for step in self.steps:
            report = local_by.get(step) if step in LOCAL else stored.get(step)
            if report is None:
                continue
            answered.append(step)
            if step in LOCAL:
                return _from_report(report, tuple(answered))
            if step == VIRUSTOTAL and report.verdict != "unknown":
                return _from_report(report, tuple(answered))
            if step == "otx" and report.verdict == "malicious":
                return _from_report(report, tuple(answered))
            candidates.append((step, report))
        if candidates:
            vt = [r for s, r in candidates if s == VIRUSTOTAL]
            best = max(candidates, key=lambda c: _RANK.get(c[1].verdict, 0))[1]
            chosen = best if _RANK.get(best.verdict, 0) > 0 or not vt else vt[0]
            return _from_report(chosen, tuple(answered))
        if verdict is not None:
            return Answer(
                verdict=verdict.verdict,
                provider=verdict.decided_by or "flow",
                ratio=verdict.ratio,
                malicious=verdict.malicious,
                total=verdict.total,
                engines=tuple(verdict.engines or ()),
                analysis_date=verdict.analysis_date,
            )
        if self.waits_for_lookups:
            return None
        return Answer(verdict="unknown", provider="flow")


def _chunks(ids: Iterable[int]) -> Iterable[list[int]]:
    items = list(ids)
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _latest_reports(
    connection: Connection, ioc_ids: Iterable[int], providers: list[str]
) -> dict[int, dict[str, Any]]:
    """The newest report of each provider about each IoC."""
    latest: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(ioc_ids):
        rows = connection.execute(
            select(
                reports.c.ioc_id,
                reports.c.provider,
                reports.c.verdict,
                reports.c.ratio,
                reports.c.malicious,
                reports.c.total,
                reports.c.engines,
                reports.c.labels,
                reports.c.analysis_date,
            )
            .where(reports.c.ioc_id.in_(chunk), reports.c.provider.in_(providers))
            .order_by(reports.c.id)
        )
        for row in rows:
            latest.setdefault(row.ioc_id, {})[row.provider] = row
    return latest


def _verdicts(connection: Connection, ioc_ids: Iterable[int]) -> dict[int, Any]:
    found: dict[int, Any] = {}
    for chunk in _chunks(ioc_ids):
        rows = connection.execute(
            select(verdicts).where(verdicts.c.ioc_id.in_(chunk), verdicts.c.verdict != "pending")
        )
        found.update((row.ioc_id, row) for row in rows)
    return found
