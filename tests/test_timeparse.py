"""Stamps as the ingest stores them: UTC text made without a datetime per line
must name the same moment as a full, independent conversion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from vtguardian.sources.timeparse import (
    day_text,
    hour_text,
    stamp_hour,
    stamp_text,
    utc_hour_text,
)


def _db_text(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


# Every zone Suricata can print: whole hours and the half- and quarter-hour ones.
zones = st.integers(min_value=-12 * 4, max_value=14 * 4).map(lambda q: timedelta(minutes=15 * q))
moments = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 12, 31))


@given(moments, zones)
def test_suricata_stamps_become_the_same_utc_moment(moment, offset):
    local = moment.replace(tzinfo=timezone(offset))
    stamp_source = local.strftime("%Y-%m-%dT%H:%M:%S.%f%z")  # Suricata's own form
    stamp, hour = stamp_hour(stamp_source)
    prefix = utc_hour_text(hour)
    expected = _db_text(local)
    assert stamp_text(stamp, prefix) == expected
    assert hour_text(prefix) == expected[:13] + ":00:00.000000"
    assert day_text(prefix) == expected[:10] + " 00:00:00.000000"


@given(st.floats(min_value=0, max_value=4e9))
def test_unix_times_become_the_same_utc_moment(epoch):
    stamp, hour = epoch, int(epoch // 3600)
    expected = _db_text(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=epoch))
    assert stamp_text(stamp, utc_hour_text(hour)) == expected


def test_a_leap_second_is_the_first_moment_of_the_next_minute():
    stamp, hour = stamp_hour("2016-12-31T23:59:60.500000+0000")
    assert stamp_text(stamp, utc_hour_text(hour)) == "2017-01-01 00:00:00.500000"
