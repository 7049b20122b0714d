"""Time as the database stores it: naive datetimes in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def day_start(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def from_unix(seconds: float | int | None) -> datetime | None:
    """VirusTotal's integer ``*_date`` attributes as stored datetimes."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def provider_date(value: Any) -> datetime | None:
    """A Unix time a provider wrote (VirusTotal's ``*_date`` attributes) as a stored
    datetime, or None when it is missing, not an integer, or absurd."""
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    try:
        return from_unix(value)
    except (OverflowError, OSError, ValueError):
        return None


def iso_z(value: datetime | str | None) -> str | None:
    """A stored UTC time as ISO 8601 with its ``Z``, as the CLI and API print times."""
    moment = as_naive_utc(value)
    return moment.isoformat() + "Z" if moment is not None else None


def as_naive_utc(value: datetime | str | None) -> datetime | None:
    """Rows come back naive from MariaDB and sometimes as text from SQLite views."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value
