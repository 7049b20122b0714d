"""Jobs in the database: definitions and state, stored events and the IoCs of each.

A job's events are numbered per job (``seq``): a writer reserves a range by raising
``jobs.next_seq`` in its own transaction (the row lock orders writers on MariaDB;
SQLite has one writer), so the IoC rows can name their event without reading an
id back. Every query takes bound parameters; event contents are never SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, delete, func, or_, select, update

from vtguardian.store.schema import iocs, job_event_iocs, job_events, jobs, verdicts
from vtguardian.store.upsert import upsert

#: Bits of ``job_events.emitted``: which output has the event.
OUT_FILE = 1
OUT_WEBHOOK = 2
OUT_ALL = OUT_FILE | OUT_WEBHOOK
PENDING = "pending"


def save_job(
    connection: Connection,
    job_id: str,
    title: str,
    origin: str,
    definition: dict[str, Any],
    now: datetime,
    enabled: bool | None = None,
) -> None:
    """Create the job or replace its definition; its state, counters, offsets and a flow
    changed on the Flows page are kept."""
    row = {
        "id": job_id,
        "title": title,
        "origin": origin,
        "definition": definition,
        "enabled": True if enabled is None else enabled,
        "state": "stopped",
        "next_seq": 1,
        "events_in": 0,
        "skipped": 0,
        "position": 0,
        "lag_bytes": 0,
        "output_position": 0,
        "updated_at": now,
    }
    replace = ["title", "origin", "definition", "updated_at"]
    if enabled is not None:
        replace.append("enabled")
    upsert(connection, jobs, [row], keys=["id"], replace=replace)


def load_jobs(connection: Connection, job_id: str | None = None) -> list[Any]:
    query = select(jobs).order_by(jobs.c.id)
    if job_id is not None:
        query = query.where(jobs.c.id == job_id)
    return list(connection.execute(query))


def update_job(connection: Connection, job_id: str, **values: Any) -> bool:
    """Set columns of one job; False when there is no such job."""
    result = connection.execute(update(jobs).where(jobs.c.id == job_id).values(**values))
    return bool(result.rowcount)


def reserve_seq(connection: Connection, job_id: str, count: int) -> int:
    """The first of ``count`` new event numbers of the job, taken in this transaction."""
    connection.execute(
        update(jobs).where(jobs.c.id == job_id).values(next_seq=jobs.c.next_seq + count)
    )
    after = connection.execute(select(jobs.c.next_seq).where(jobs.c.id == job_id)).scalar_one()
    return int(after) - count


def add_counts(
    connection: Connection,
    job_id: str,
    events_in: int,
    skipped: int,
    flow_counts: dict[str, list[int]],
    **values: Any,
) -> None:
    """Counters of one batch, added in the batch's transaction (with its offset)."""
    if flow_counts:
        current = connection.execute(
            select(jobs.c.flow_counts).where(jobs.c.id == job_id)
        ).scalar_one_or_none()
        merged = {k: list(v) for k, v in (current or {}).items()}
        for provider, (answers, decisions) in flow_counts.items():
            old = merged.get(provider, [0, 0])
            merged[provider] = [old[0] + answers, old[1] + decisions]
        values["flow_counts"] = merged
    connection.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(
            events_in=jobs.c.events_in + events_in,
            skipped=jobs.c.skipped + skipped,
            **values,
        )
    )


EVENT_COLUMNS = (
    "job_id",
    "seq",
    "received_at",
    "result",
    "is_malicious",
    "pending",
    "emitted",
    "raw",
)
EVENT_IOC_COLUMNS = ("job_id", "seq", "ioc_id", "field", "state", "provider")


def stamp(moment: datetime) -> str:
    """A time as both engines read a DATETIME from text (SQLAlchemy's SQLite format)."""
    return moment.isoformat(" ", "microseconds")


def insert_events(
    connection: Connection,
    events: Sequence[tuple[Any, ...]],
    event_iocs: Sequence[tuple[Any, ...]],
) -> None:
    """Rows as tuples in ``EVENT_COLUMNS`` / ``EVENT_IOC_COLUMNS`` order (times as
    :func:`stamp` text), straight to the driver's ``executemany``: building SQLAlchemy
    parameters per row cost more than SQLite's work on it. Values stay bound
    parameters; the statement holds only these fixed names."""
    _insert(connection, job_events.name, EVENT_COLUMNS, events)
    _insert(connection, job_event_iocs.name, EVENT_IOC_COLUMNS, event_iocs)


def _insert(
    connection: Connection, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    if not rows:
        return
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    statement = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"
    )
    connection.exec_driver_sql(statement, list(rows))


def pending_iocs(connection: Connection, job_id: str, limit: int = 5000) -> list[Any]:
    """The distinct IoCs (id, type, value) still pending in the job's events that have a
    verdict now: the others have nothing new to say, and are not read each round."""
    pending = (
        select(job_event_iocs.c.ioc_id)
        .join(verdicts, verdicts.c.ioc_id == job_event_iocs.c.ioc_id)
        .where(
            job_event_iocs.c.job_id == job_id,
            job_event_iocs.c.state == PENDING,
            verdicts.c.verdict != PENDING,
        )
        .distinct()
        .limit(limit)
        .subquery()
    )
    query = select(iocs.c.id, iocs.c.type, iocs.c.value).join(
        pending, pending.c.ioc_id == iocs.c.id
    )
    return list(connection.execute(query))


def decide_iocs(
    connection: Connection, job_id: str, decided: dict[int, tuple[str, str | None]]
) -> list[int]:
    """Pending IoCs of the job now decided (ioc id -> (verdict, provider)): their rows
    take the verdict; returns the events that carried them."""
    if not decided:
        return []
    seqs = set(
        connection.execute(
            select(job_event_iocs.c.seq).where(
                job_event_iocs.c.job_id == job_id,
                job_event_iocs.c.state == PENDING,
                job_event_iocs.c.ioc_id.in_(list(decided)),
            )
        ).scalars()
    )
    statement = (
        update(job_event_iocs)
        .where(
            job_event_iocs.c.job_id == job_id,
            job_event_iocs.c.ioc_id == bindparam("b_ioc"),
            job_event_iocs.c.state == PENDING,
        )
        .values(state=bindparam("b_state"), provider=bindparam("b_provider"))
    )
    connection.execute(
        statement,
        [
            {"b_ioc": ioc_id, "b_state": state, "b_provider": provider}
            for ioc_id, (state, provider) in decided.items()
        ],
    )
    return sorted(seqs)


def event_iocs(connection: Connection, job_id: str, seqs: Iterable[int]) -> list[Any]:
    """The IoC rows of these events, with each IoC's type and value."""
    wanted = list(seqs)
    if not wanted:
        return []
    query = (
        select(
            job_event_iocs.c.seq,
            job_event_iocs.c.ioc_id,
            job_event_iocs.c.field,
            job_event_iocs.c.state,
            job_event_iocs.c.provider,
            iocs.c.type,
            iocs.c.value,
        )
        .join(iocs, iocs.c.id == job_event_iocs.c.ioc_id)
        .where(job_event_iocs.c.job_id == job_id, job_event_iocs.c.seq.in_(wanted))
        .order_by(job_event_iocs.c.seq, job_event_iocs.c.field)
    )
    return list(connection.execute(query))


def set_results(connection: Connection, job_id: str, results: Sequence[dict[str, Any]]) -> None:
    """New result, malicious flag, pending count and emitted bits of events."""
    if not results:
        return
    statement = (
        update(job_events)
        .where(job_events.c.job_id == job_id, job_events.c.seq == bindparam("b_seq"))
        .values(
            result=bindparam("b_result"),
            is_malicious=bindparam("b_malicious"),
            pending=bindparam("b_pending"),
            emitted=bindparam("b_emitted"),
        )
    )
    connection.execute(statement, list(results))


def emitted_of(connection: Connection, job_id: str, seqs: Iterable[int]) -> dict[int, int]:
    wanted = list(seqs)
    if not wanted:
        return {}
    rows = connection.execute(
        select(job_events.c.seq, job_events.c.emitted).where(
            job_events.c.job_id == job_id, job_events.c.seq.in_(wanted)
        )
    )
    return {seq: emitted for seq, emitted in rows}


def ready_events(
    connection: Connection, job_id: str, bit: int, cutoff: datetime, limit: int
) -> list[Any]:
    """Events an output has not had yet that are decided, or waited past ``cutoff``."""
    missing = job_events.c.emitted.op("&")(bit) == 0
    query = (
        select(job_events.c.seq, job_events.c.raw, job_events.c.received_at, job_events.c.pending)
        .where(
            job_events.c.job_id == job_id,
            job_events.c.emitted < OUT_ALL,
            missing,
            or_(job_events.c.pending == 0, job_events.c.received_at <= cutoff),
        )
        .order_by(job_events.c.seq)
        .limit(limit)
    )
    return list(connection.execute(query))


def mark_emitted(connection: Connection, job_id: str, seqs: Sequence[int], bit: int) -> None:
    if seqs:
        connection.execute(
            update(job_events)
            .where(job_events.c.job_id == job_id, job_events.c.seq.in_(list(seqs)))
            .values(emitted=job_events.c.emitted.op("|")(bit))
        )


def prune(connection: Connection, job_id: str, before: datetime, keep: int) -> int:
    """Events older than ``before`` or beyond the newest ``keep``, with their IoC rows."""
    newest = connection.execute(
        select(func.max(job_events.c.seq)).where(job_events.c.job_id == job_id)
    ).scalar()
    if newest is None:
        return 0
    by_age = connection.execute(
        select(func.max(job_events.c.seq)).where(
            job_events.c.job_id == job_id, job_events.c.received_at < before
        )
    ).scalar()
    cut = max(int(by_age or 0), int(newest) - keep)
    if cut <= 0:
        return 0
    connection.execute(
        delete(job_event_iocs).where(job_event_iocs.c.job_id == job_id, job_event_iocs.c.seq <= cut)
    )
    return int(
        connection.execute(
            delete(job_events).where(job_events.c.job_id == job_id, job_events.c.seq <= cut)
        ).rowcount
    )


def counts(connection: Connection, job_id: str) -> dict[str, int]:
    """Stored events: in all, enriched (some IoC answered), malicious, pending."""
    row = connection.execute(
        select(
            func.count(),
            func.sum(case((job_events.c.is_malicious.is_(True), 1), else_=0)),
            func.sum(case((job_events.c.pending > 0, 1), else_=0)),
        ).where(job_events.c.job_id == job_id)
    ).one()
    enriched = connection.execute(
        select(func.count(func.distinct(job_event_iocs.c.seq))).where(
            job_event_iocs.c.job_id == job_id, job_event_iocs.c.state != PENDING
        )
    ).scalar_one()
    return {
        "stored": int(row[0] or 0),
        "enriched": int(enriched or 0),
        "malicious": int(row[1] or 0),
        "pending": int(row[2] or 0),
    }


def find_events(
    connection: Connection,
    job_id: str,
    *,
    is_malicious: bool | None = None,
    result: str | None = None,
    ioc_ids: Sequence[int] | None = None,
    field: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_seq: int | None = None,
    limit: int = 50,
) -> list[Any]:
    """The job's events newest first, filtered; every filter is a bound parameter."""
    query = select(job_events).where(job_events.c.job_id == job_id)
    if is_malicious is not None:
        query = query.where(job_events.c.is_malicious.is_(is_malicious))
    if result is not None:
        query = query.where(job_events.c.result == result)
    if since is not None:
        query = query.where(job_events.c.received_at >= since)
    if until is not None:
        query = query.where(job_events.c.received_at <= until)
    if before_seq is not None:
        query = query.where(job_events.c.seq < before_seq)
    if ioc_ids is not None or field is not None:
        match = [job_event_iocs.c.job_id == job_id, job_event_iocs.c.seq == job_events.c.seq]
        if ioc_ids is not None:
            match.append(job_event_iocs.c.ioc_id.in_(list(ioc_ids)))
        if field is not None:
            match.append(job_event_iocs.c.field == field)
        query = query.where(select(job_event_iocs.c.seq).where(and_(*match)).exists())
    return list(connection.execute(query.order_by(job_events.c.seq.desc()).limit(limit)))


def one_event(connection: Connection, job_id: str, seq: int) -> Any:
    return connection.execute(
        select(job_events).where(job_events.c.job_id == job_id, job_events.c.seq == seq)
    ).first()
