"""An IoC's intelligence for its detail view (page and API): threat context, related
IoCs and the last-analysis status with both ages (README, "Last analysis status")."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from vtguardian.clock import as_naive_utc, utcnow
from vtguardian.config import Settings
from vtguardian.intel.threat_context import shown_context
from vtguardian.store.schema import analysis_requests, verdicts
from vtguardian.store.threats import contexts, related_of

OPEN = ("wanted", "requested", "completed")


def analysis_status(
    analysis_date: datetime | None, last_request: str | None, now: datetime, max_age_days: float
) -> str:
    """VirusTotal's analysis as the "Time since last analysis" panel names it."""
    if last_request in OPEN:
        return "re-analysis requested"
    if analysis_date is not None and analysis_date < now - timedelta(days=max_age_days):
        return "stale"
    if last_request == "done":
        return "re-analysed"
    return "fresh" if analysis_date is not None else "no analysis"


def ioc_intel(connection: Connection, ioc_id: int, settings: Settings) -> dict[str, Any]:
    now = utcnow()
    verdict = connection.execute(
        select(verdicts.c.analysis_date, verdicts.c.checked_at, verdicts.c.expires_at).where(
            verdicts.c.ioc_id == ioc_id
        )
    ).first()
    last_request = connection.execute(
        select(analysis_requests.c.status)
        .where(
            analysis_requests.c.ioc_id == ioc_id,
            analysis_requests.c.kind.in_(("reanalyse", "submit")),
        )
        .order_by(analysis_requests.c.id.desc())
        .limit(1)
    ).scalar()
    analysis: dict[str, Any] | None = None
    if verdict is not None:
        analysed = as_naive_utc(verdict.analysis_date)
        checked = as_naive_utc(verdict.checked_at)
        expires = as_naive_utc(verdict.expires_at)
        analysis = {
            "status": analysis_status(
                analysed, last_request, now, settings.virustotal.max_analysis_age_days
            ),
            "analysis_age_hours": _hours(now, analysed),
            "cache_age_hours": _hours(now, checked),
            "cache": "fresh" if expires is not None and expires > now else "expired",
        }
    context = contexts(connection, [ioc_id]).get(ioc_id)
    return {
        "threat": shown_context(context, now, settings.verdict.young_domain_days),
        "related": related_of(connection, ioc_id),
        "analysis": analysis,
    }


def _hours(now: datetime, then: datetime | None) -> int | None:
    return None if then is None else int((now - then).total_seconds() // 3600)
