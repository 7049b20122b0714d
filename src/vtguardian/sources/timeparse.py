"""Timestamps on the ingest's hot path, and their form in the database.

A busy log has millions of lines but few distinct hours, so anything costly
about a time is done once per hour (or per zone) and cached. Parsers hand a
batch either Unix time (a float) or, for Suricata, the aware datetime msgspec
decoded in C; a batch groups them by Unix hour. Stored dates are naive UTC
text (see :func:`stamp_text`), made once per sighting, not once per line.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache

#: A moment as parsers hand it to a batch: Unix time, or an aware datetime.
Stamp = float | datetime
#: The hour a batch groups a stamp by: Unix time // 3600.
HourKey = int

_HOUR = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1)
_EPOCH_ORDINAL_HOURS = _EPOCH.toordinal() * 24
#: zone -> what to subtract from a local "ordinal hour" (date ordinal * 24 + hour)
#: to get its Unix hour. Only zones a whole number of hours from UTC are here: a
#: local hour of +0530 spans two UTC hours. Parsers inline its lookup, read only.
WHOLE_HOUR_ZONES: dict[tzinfo | None, int] = {}


class BadTimestamp(ValueError):
    pass


def unix_hour(moment: datetime) -> HourKey:
    """The Unix hour of an aware datetime, without the slow ``timestamp()`` for
    the zones that matter; parsers inline the cached case."""
    zone = moment.tzinfo
    shift = WHOLE_HOUR_ZONES.get(zone)
    if shift is None:
        offset = moment.utcoffset() or timedelta(0)  # naive means UTC, as in iso_epoch
        if offset % _HOUR:
            return int(moment.timestamp() // 3600)
        shift = WHOLE_HOUR_ZONES[zone] = _EPOCH_ORDINAL_HOURS + offset // _HOUR
    return moment.toordinal() * 24 + moment.hour - shift


@lru_cache(maxsize=4096)
def _iso_hour(prefix: str, zone: str) -> float:
    """Unix time of ``YYYY-MM-DDTHH`` in ``zone`` ('' means UTC)."""
    try:
        moment = datetime.fromisoformat(f"{prefix}:00:00{zone}")
    except ValueError:
        raise BadTimestamp(f"bad timestamp {prefix!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def iso_epoch(text: str) -> float:
    """``2018-07-05T15:01:09.820360-0400``, ``...Z``, ``...+02:00`` -> Unix time."""
    if not isinstance(text, str) or len(text) < 19 or text[10] not in "T ":
        raise BadTimestamp(f"bad timestamp {str(text)[:40]!r}")
    if text.endswith("Z"):
        zone, body = "+00:00", text[:-1]
    elif text[-5] in "+-" and text[-4:].isdigit():
        zone, body = text[-5:], text[:-5]
    elif text[-6] in "+-" and text[-3] == ":":
        zone, body = text[-6:], text[:-6]
    else:
        zone, body = "", text
    try:
        minutes, seconds = int(body[14:16]), float(body[17:])
        if body[13] != ":" or body[16:17] != ":" or not (0 <= minutes < 60 and 0 <= seconds < 61):
            raise ValueError
        return _iso_hour(body[:13].replace(" ", "T"), zone) + minutes * 60 + seconds
    except ValueError:
        raise BadTimestamp(f"bad timestamp {text[:40]!r}") from None


def stamp_hour(value: object) -> tuple[float, HourKey]:
    """Unix time and hour of an ISO timestamp in any form :func:`iso_epoch` reads:
    the fallback for stamps msgspec does not decode (a leap second, no zone)."""
    epoch = iso_epoch(value)  # type: ignore[arg-type]
    return epoch, int(epoch // 3600)


def stamp_datetime(stamp: Stamp) -> datetime:
    """Naive UTC, as stored; a naive datetime is already UTC (as in iso_epoch)."""
    if isinstance(stamp, datetime):
        return (stamp.astimezone(UTC) if stamp.tzinfo else stamp).replace(tzinfo=None)
    return to_datetime(stamp)


# Dates as both databases take them from the ingest: naive UTC text, the form SQLite
# stores DATETIME in and MySQL parses. Two such texts compare as their moments do.
_FRACTION = ".000000"


@lru_cache(maxsize=4096)
def utc_hour_text(hour: HourKey) -> str:
    """``YYYY-MM-DD HH`` (UTC) of a batch's hour key."""
    return to_datetime(hour * 3600).isoformat(" ")[:13]


def hour_text(prefix: str) -> str:
    """The start of the hour that :func:`utc_hour_text` names."""
    return f"{prefix}:00:00{_FRACTION}"


def day_text(prefix: str) -> str:
    """The start of the UTC day of the hour that :func:`utc_hour_text` names."""
    return f"{prefix[:10]} 00:00:00{_FRACTION}"


def stamp_text(stamp: Stamp, prefix: str) -> str:
    """A stamp as UTC text, ``prefix`` being the :func:`utc_hour_text` of its hour.

    A datetime in a whole-hour zone keeps its own minutes and seconds, so only the
    hour, already converted once for the batch, is needed; other stamps take
    the full conversion.
    """
    if stamp.__class__ is datetime and stamp.tzinfo in WHOLE_HOUR_ZONES:  # type: ignore[union-attr]
        # %-formatting: less than half the time of isoformat on an aware datetime
        return "%s:%02d:%02d.%06d" % (prefix, stamp.minute, stamp.second, stamp.microsecond)  # type: ignore[union-attr]  # noqa: UP031
    return stamp_datetime(stamp).isoformat(" ", "microseconds")


def epoch_value(value: object) -> float:
    """A numeric Unix time (Zeek TSV, Pi-hole FTL) or an ISO string (Zeek JSON)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return iso_epoch(value)
    raise BadTimestamp(f"bad timestamp {str(value)[:40]!r}")


def to_datetime(epoch: float) -> datetime:
    """Naive UTC, as stored; about twice as fast as fromtimestamp + replace."""
    return _EPOCH + timedelta(seconds=epoch)
