"""prepare: a batch's counts laid out as rows, checked against sums done here by hand.

Events are generated with several spellings of each name, clients, and stamps in
whole-hour and half-hour zones across a UTC midnight; the expected rows are worked
out from the events themselves, without the batch's own merging.
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from vtguardian.ingest.prepare import prepare, prepared_batches
from vtguardian.iocs import Classifier
from vtguardian.sources.batch import Batch

NAMES = ["example.com", "Example.COM.", "www.example.org", "WWW.example.org", "printer.local"]
CLIENTS = ["192.168.1.10", "192.168.1.11", "10.0.0.7"]
ZONES = [timezone(timedelta(hours=2)), timezone(timedelta(hours=5, minutes=30)), UTC]
START = datetime(2024, 5, 1, 21, 0, tzinfo=UTC)  # three hours before a UTC midnight

events = st.lists(
    st.tuples(
        st.sampled_from(NAMES),
        st.sampled_from(CLIENTS),
        st.integers(0, 6 * 3600 * 1_000_000 - 1),  # microseconds after START
        st.sampled_from(ZONES),
    ),
    min_size=1,
    max_size=60,
)


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


@settings(max_examples=60, deadline=None)
@given(events)
def test_prepared_rows_match_sums_worked_out_from_the_events(generated):
    batch = Batch("suricata")
    seen = []  # (ioc value, client, stamp) of every eligible event
    private = 0
    for name, client, offset, zone in generated:
        ts = (START + timedelta(microseconds=offset)).astimezone(zone)
        batch.see_at("domain", name, client, int(ts.timestamp() // 3600), ts)
        batch.events += 1
        if name.endswith(".local"):
            private += 1
        else:
            seen.append((name.lower().rstrip("."), client, ts))

    prepared = prepare(batch, Classifier())

    assert (prepared.hits, prepared.skipped) == (len(seen), private)
    hourly: dict = defaultdict(lambda: [0, "", "~"])
    daily: dict = defaultdict(lambda: [0, "", "~"])
    askers: dict = defaultdict(set)
    hits: dict = defaultdict(int)
    latest: dict = {}
    earliest: dict = {}
    spans: dict = {}
    for value, client, ts in seen:
        utc = ts.astimezone(UTC)
        ioc = ("domain", value)
        for table, key in (
            (hourly, (ioc, client, utc.strftime("%Y-%m-%d %H:00:00.000000"))),
            (daily, (ioc, client, utc.strftime("%Y-%m-%d 00:00:00.000000"))),
        ):
            table[key][0] += 1
            table[key][1] = max(table[key][1], _text(ts))
            table[key][2] = min(table[key][2], _text(ts))
        askers[ioc].add(client)
        hits[ioc] += 1
        latest[client] = max(latest.get(client, utc), utc)
        earliest[client] = min(earliest.get(client, utc), utc)
        first, last = spans.get(ioc, (ts, ts))
        spans[ioc] = (min(first, ts), max(last, ts))

    assert sorted(prepared.sightings) == sorted(
        (*key, count, 0, last, first) for key, (count, last, first) in hourly.items()
    )
    assert sorted(prepared.client_days) == sorted(
        (*key, count, 0, last, first) for key, (count, last, first) in daily.items()
    )
    assert prepared.queue == {ioc: (len(askers[ioc]), hits[ioc]) for ioc in hits}
    assert prepared.clients == {
        client: (None, earliest[client].replace(tzinfo=None), last.replace(tzinfo=None))
        for client, last in latest.items()
    }
    assert prepared.iocs == {
        ioc: ("example.com" if ioc[1] == "example.com" else "example.org", _text(a), _text(b))
        for ioc, (a, b) in spans.items()
    }


def test_each_batch_is_gone_before_the_next_is_parsed():
    """A read holds one batch at a time: holding the last one while the next fills
    up raised the peak memory of a parse by a tenth."""
    made: list[weakref.ref] = []
    asked_while_alive = []

    def parsed():  # what parse_batches hands over, dropping its own reference
        for n in range(3):
            asked_while_alive.append(sum(ref() is not None for ref in made))
            batch = Batch("suricata")
            batch.see("domain", f"site{n}.example.com", CLIENTS[0], START.timestamp())
            made.append(weakref.ref(batch))
            yield batch, n, None
            del batch

    stored = []
    for prepared, position, _state in prepared_batches(parsed(), Classifier()):
        stored.append((position, sorted(value for _kind, value in prepared.iocs)))
        del prepared
    assert asked_while_alive == [0, 0, 0]
    assert stored == [(n, [f"site{n}.example.com"]) for n in range(3)]
