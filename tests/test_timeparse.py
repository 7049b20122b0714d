"""Stamps as the ingest groups and stores them: the hour found without
``timestamp()`` and the UTC text made once per hour must name the same moment as
a full, independent conversion, in every zone Suricata can print."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import orjson
from hypothesis import given
from hypothesis import strategies as st

from vtguardian.sources.batch import Batch
from vtguardian.sources.suricata import SuricataParser
from vtguardian.sources.timeparse import (
    day_text,
    hour_text,
    stamp_hour,
    stamp_text,
    unix_hour,
    utc_hour_text,
)


def _db_text(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


# Whole hours and the half- and quarter-hour zones (+0530, -0330, +0545, ...).
zones = st.integers(min_value=-12 * 4, max_value=14 * 4).map(lambda q: timedelta(minutes=15 * q))
moments = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 12, 31))


@given(moments, zones)
def test_suricata_stamps_keep_their_utc_moment_and_hour(moment, offset):
    suricata = moment.replace(tzinfo=timezone(offset)).strftime("%Y-%m-%dT%H:%M:%S.%f%z")
    expected = _db_text(datetime.strptime(suricata, "%Y-%m-%dT%H:%M:%S.%f%z"))
    # as the parser gets it: decoded by msgspec, not by Python's datetime
    decoded = msgspec.json.decode(f'"{suricata}"', type=datetime)
    hour = unix_hour(decoded)
    prefix = utc_hour_text(hour)
    assert stamp_text(decoded, prefix) == expected
    assert hour_text(prefix) == expected[:13] + ":00:00.000000"
    assert day_text(prefix) == expected[:10] + " 00:00:00.000000"
    epoch, fallback_hour = stamp_hour(suricata)  # the path for stamps msgspec refuses
    assert fallback_hour == hour
    assert stamp_text(epoch, prefix) == expected


@given(st.floats(min_value=0, max_value=4e9))
def test_unix_times_keep_their_utc_moment(epoch):
    expected = _db_text(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=epoch))
    assert stamp_text(epoch, utc_hour_text(int(epoch // 3600))) == expected


def test_a_leap_second_is_the_first_moment_of_the_next_minute():
    epoch, hour = stamp_hour("2016-12-31T23:59:60.500000+0000")
    assert stamp_text(epoch, utc_hour_text(hour)) == "2017-01-01 00:00:00.500000"


def test_a_naive_datetime_is_utc_like_a_zone_less_iso_stamp():
    naive = datetime(2024, 5, 1, 10, 15, 0, 250000)
    epoch, hour = stamp_hour("2024-05-01T10:15:00.250000")
    assert unix_hour(naive) == hour
    assert stamp_text(naive, utc_hour_text(hour)) == stamp_text(epoch, utc_hour_text(hour))
    assert stamp_text(epoch, utc_hour_text(hour)) == "2024-05-01 10:15:00.250000"


# Lines near one another, as in a log: on and around hour edges, in several zones.
nearby = st.lists(
    st.tuples(
        st.integers(-4, 4).map(lambda h: h * 3600)
        | st.integers(-7200, 7200)
        | st.sampled_from([-1, 0, 1, 3599, 3600]),
        zones | st.none(),  # None: a stamp without a zone, read as UTC by the fallback
    ),
    min_size=1,
    max_size=80,
)


@given(moments, nearby)
def test_the_parser_files_each_line_in_its_utc_hour(base, steps):
    """Lines in and out of time order and zone, fed as the ingest feeds them: the
    parser's cached hour must be each line's own UTC hour."""
    base = base.replace(minute=0, second=0, microsecond=0, tzinfo=UTC)
    stamps = [(base + timedelta(seconds=step), offset) for step, offset in steps]
    lines, expected = [], Counter()
    for moment, offset in stamps:
        zone = timezone(offset) if offset is not None else UTC
        text = moment.astimezone(zone).strftime("%Y-%m-%dT%H:%M:%S.%f%z")
        text = text if offset is not None else text[:-5]
        event = {"timestamp": text, "event_type": "dns", "src_ip": "192.168.1.2"}
        lines.append(orjson.dumps({**event, "dns": {"type": "query", "rrname": "a.example"}}))
        utc = moment.timestamp()
        expected[int(utc // 3600)] += 1
    batch = Batch("suricata")
    SuricataParser().feed_block(lines, batch, bad=lambda index, reason: None)
    assert Counter({hour: entry.hits for (*_, hour), entry in batch.counts.items()}) == expected
