"""Fast timestamp parsing for the ingest hot path.

A busy log has millions of lines but few distinct hours: the expensive part of a
timestamp (date, hour, zone) is parsed once per hour and cached; only minutes
and seconds are computed per line. Everything becomes a float Unix time (UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache


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


_FAST_HOURS: dict[str, float] = {}


def iso_epoch(text: str) -> float:
    """``2018-07-05T15:01:09.820360-0400``, ``...Z``, ``...+02:00`` -> Unix time."""
    # Fast path for Suricata's own format, 2018-07-05T15:01:09.820360-0400.
    if text.__class__ is str and len(text) == 31 and text[19] == "." and text[26] in "+-":
        hour = _FAST_HOURS.get(key := text[:13] + text[26:])
        if hour is None and text[14:16].isdigit() and text[17:19].isdigit():
            hour = _FAST_HOURS[key] = _iso_hour(text[:13], text[26:])
        if hour is not None:
            return hour + int(text[14:16]) * 60 + int(text[17:19]) + int(text[20:26]) * 1e-6
    return _iso_epoch_any(text)


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
        return (
            _iso_hour(body[:13].replace(" ", "T"), zone) + int(body[14:16]) * 60 + float(body[17:])
        )
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
