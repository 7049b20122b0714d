"""Fast timestamp parsing for the ingest hot path.

A busy log has millions of lines but few distinct hours: the expensive part of a
timestamp (date, hour, zone) is parsed once per hour and cached; only minutes
and seconds are computed per line. Everything becomes a float Unix time (UTC),
except Suricata's fixed-width stamps on the ingest path, which stay text until a
batch is prepared (see :func:`stamp_hour`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

# Suricata's own fixed-width form, 2018-07-05T15:01:09.820360-0400. Two stamps of this
# form with the same hour and zone compare as text exactly as they compare in time.
_SURICATA_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:[0-5]\d:(?:[0-5]\d|60)\.\d{6}[+-]\d{4}")
SURICATA_STAMP = _SURICATA_STAMP.fullmatch

#: A moment as parsers hand it to a batch: Unix time, or a checked Suricata stamp.
Stamp = float | str
#: The hour of a stamp as a batch groups it: Unix time // 3600, or for a Suricata
#: stamp its text up to the hour followed by its zone.
HourKey = int | str


class BadTimestamp(ValueError):
    pass


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


#: ``YYYY-MM-DDTHH`` + zone of checked Suricata stamps -> Unix time of that hour. Only
#: whole-hour zones are kept: a local hour of a half-hour zone such as +0530 spans
#: two UTC hours, so it cannot be a batch's hour key.
CHECKED_HOURS: dict[str, float] = {}


def iso_epoch(text: str) -> float:
    """``2018-07-05T15:01:09.820360-0400``, ``...Z``, ``...+02:00`` -> Unix time."""
    hour = _suricata_hour(text)
    if hour is not None:
        return hour + int(text[14:16]) * 60 + int(text[17:19]) + int(text[20:26]) * 1e-6
    return _iso_epoch_any(text)


def _suricata_hour(text: str) -> float | None:
    """Unix time of the hour of a checked Suricata stamp (cached per hour and zone), or
    None for any other form; raises BadTimestamp for a well-formed but impossible date."""
    if not (text.__class__ is str and len(text) == 31 and _SURICATA_STAMP.fullmatch(text)):
        return None
    key = text[:13] + text[26:]
    hour = CHECKED_HOURS.get(key)
    if hour is None:
        hour = _iso_hour(text[:13], text[26:])
        if text[29:] == "00":  # see CHECKED_HOURS
            if len(CHECKED_HOURS) > 100_000:  # only a fuzzer or a decade of logs gets here
                CHECKED_HOURS.clear()
            CHECKED_HOURS[key] = hour
    return hour


def stamp_hour(value: object) -> tuple[Stamp, HourKey]:
    """A timestamp and its hour key: a checked Suricata stamp kept as text, any other
    ISO timestamp as Unix time.

    Keeping the text saves the float conversion on the ingest hot path: a batch
    groups by hour and keeps the largest text per group, and only that one is
    converted, when the batch is prepared. The stamp is fully checked here, so a
    bad one is still an error of its own line. A stamp in a zone that is not a
    whole number of hours becomes Unix time, grouped by its UTC hour.
    """
    if (
        value.__class__ is str
        and len(value) == 31  # type: ignore[arg-type]
        and SURICATA_STAMP(value)  # type: ignore[arg-type]
        and value[29:] == "00"  # type: ignore[index]
    ):
        hour = value[:13] + value[26:]  # type: ignore[index]
        if hour not in CHECKED_HOURS:
            _suricata_hour(value)  # type: ignore[arg-type]
        return value, hour  # type: ignore[return-value]
    epoch = _iso_epoch_any(value)  # type: ignore[arg-type]
    return epoch, int(epoch // 3600)


def stamp_epoch(stamp: Stamp) -> float:
    return iso_epoch(stamp) if isinstance(stamp, str) else stamp


def hour_epoch(hour: int | str) -> int:
    """The Unix hour (time // 3600) of a batch's hour key: a number, or the text
    ``YYYY-MM-DDTHH`` followed by the zone of a Suricata stamp."""
    if isinstance(hour, str):
        return int(_iso_hour(hour[:13], hour[13:]) // 3600)
    return hour


# Dates as both databases take them from the ingest: naive UTC text, the form SQLite
# stores DATETIME in and MySQL parses. Two such texts compare as their moments do.
_FRACTION = ".000000"


@lru_cache(maxsize=4096)
def utc_hour_text(hour: HourKey) -> str:
    """``YYYY-MM-DD HH`` (UTC) of a batch's hour key."""
    return to_datetime(hour_epoch(hour) * 3600).isoformat(" ")[:13]


def hour_text(prefix: str) -> str:
    """The start of the hour that :func:`utc_hour_text` names."""
    return f"{prefix}:00:00{_FRACTION}"


def day_text(prefix: str) -> str:
    """The start of the UTC day of the hour that :func:`utc_hour_text` names."""
    return f"{prefix[:10]} 00:00:00{_FRACTION}"


def stamp_text(stamp: Stamp, prefix: str) -> str:
    """A stamp as UTC text, ``prefix`` being the :func:`utc_hour_text` of its hour.

    A stamp kept as text (a Suricata stamp in a whole-hour zone, see
    :func:`stamp_hour`) keeps its minutes and seconds as they are, so only the
    hour needs converting, and that once per hour; a leap second and Unix times
    take the full conversion.
    """
    if stamp.__class__ is str and stamp[17:19] != "60":  # type: ignore[index]
        return prefix + stamp[13:26]  # type: ignore[index]
    return to_datetime(stamp_epoch(stamp)).isoformat(" ", "microseconds")


def _iso_epoch_any(text: str) -> float:
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


_EPOCH = datetime(1970, 1, 1)


def to_datetime(epoch: float) -> datetime:
    """Naive UTC, as stored; about twice as fast as fromtimestamp + replace."""
    return _EPOCH + timedelta(seconds=epoch)
