"""Batches stored as one transaction store exactly what they store one by one.

A large ingest's writer merges the batches that wait for it (see
``prepare.merge``). The reference here is the plain path: the same prepared
batches stored one after the other, on the same engine; every table an ingest
writes is then compared by natural keys (database ids differ between the runs).
"""

from __future__ import annotations

from collections import defaultdict

import orjson
import pytest
from sqlalchemy import Engine, text

from helpers import TEST_DATA
from vtguardian.clock import as_naive_utc
from vtguardian.ingest.lines import parse_batches
from vtguardian.ingest.parallel import merge
from vtguardian.ingest.prepare import Prepared, prepare
from vtguardian.ingest.totals import Totals
from vtguardian.ingest.writer import store
from vtguardian.iocs import Classifier
from vtguardian.sources.suricata import SuricataParser
from vtguardian.store.schema import CLIENT_WORD_BITS, metadata

REAL_EVENTS = [
    line
    for name in ("tenzir-ctu13-eve-sample.json", "output-eve-fileinfo.expected.eve.json")
    for line in (TEST_DATA / "suricata" / name).read_bytes().splitlines()
    if line.strip()
]


def _event(n: int) -> bytes:
    """DNS queries, answers and TLS names over three hours, the same few names and
    clients throughout, so that consecutive batches share IoCs, hours and days."""
    stamp = f"2024-05-01T{22 + n // 120:02d}:{n % 60:02d}:{n % 53:02d}.{n:06d}+0200"
    client, name = f"192.168.1.{n % 5 + 10}", f"host{n % 13}.example.com"
    if n % 3 == 0:
        return orjson.dumps(
            {
                "timestamp": stamp,
                "event_type": "tls",
                "src_ip": client,
                "dest_ip": "93.184.216.34",
                "tls": {"sni": name},
            }
        )
    dns = {"type": "query", "rrname": name} if n % 3 == 1 else {"type": "answer", "rrname": name}
    if n % 3 == 2:
        dns |= {"rrtype": "A", "rdata": f"93.184.{n % 7}.{n % 11 + 1}"}
    return orjson.dumps({"timestamp": stamp, "event_type": "dns", "src_ip": client, "dns": dns})


def _alert(n: int) -> bytes:
    """An alert naming one of the names already seen: its IoC jumps the queue."""
    return orjson.dumps(
        {
            "timestamp": f"2024-05-01T23:{n % 60:02d}:00.000000+0200",
            "event_type": "alert",
            "src_ip": "192.168.1.12",
            "dest_ip": "93.184.216.34",
            "proto": "TCP",
            "alert": {"signature_id": 2000 + n, "signature": "ET TEST", "severity": 2},
            "tls": {"sni": f"host{n % 13}.example.com"},
        }
    )


def _batches(tmp_path) -> list[Prepared]:
    lines = []
    for n in range(360):
        if n % 97 == 5:
            lines.append(b'{"timestamp": "2024-05-01T10:15:00+0000", "event_type": "dns", "dns": {')
        elif n % 41 == 7:
            lines.append(_alert(n))
        elif n % 4 == 0:
            lines.append(REAL_EVENTS[n % len(REAL_EVENTS)])
        else:
            lines.append(_event(n))
    path = tmp_path / "eve.json"
    path.write_bytes(b"\n".join(lines) + b"\n")
    classifier, prepared = Classifier(), []
    with path.open("rb") as handle:
        parsed = parse_batches(handle, str(path), SuricataParser(), 0, True, 25)
        for index, (batch, _position, _state) in enumerate(parsed):
            # Pi-hole names its clients; a later name replaces an earlier one, and a
            # batch without one keeps it.
            if index % 3:
                batch.client_names["192.168.1.10"] = f"laptop-{index % 4}"
            prepared.append(prepare(batch, classifier))
    assert len(prepared) > 10
    return prepared


def _stored(engine: Engine) -> dict[str, list]:
    """Every table an ingest writes, by natural keys; dates as naive UTC."""
    with engine.connect() as connection:

        def rows(sql: str, *dates: int) -> list[tuple]:
            """SQLite returns dates from a text() query as text: these columns are read
            as naive UTC datetimes on both engines."""
            return [
                tuple(as_naive_utc(v) if i in dates else v for i, v in enumerate(row))
                for row in connection.execute(text(sql))
            ]

        ip_of = dict(rows("SELECT id, ip FROM clients"))
        days: dict[tuple, list] = defaultdict(lambda: [set(), 0, 0, None])
        for kind, value, source, day, word, mask, hits, blocked, last in rows(
            "SELECT i.type, i.value, d.source, d.day, d.client_word, d.clients_mask, d.hits,"
            " d.blocked, d.last_seen FROM ioc_days d JOIN iocs i ON i.id = d.ioc_id",
            3,
            8,
        ):
            entry = days[(kind, value, source, day)]
            entry[0] |= {
                ip_of[word * CLIENT_WORD_BITS + bit]
                for bit in range(CLIENT_WORD_BITS)
                if mask >> bit & 1
            }
            entry[1] += hits
            entry[2] += blocked
            entry[3] = last if entry[3] is None else max(entry[3], last)
        return {
            "iocs": rows(
                "SELECT type, value, registered_domain, first_seen, last_seen FROM iocs", 3, 4
            ),
            "clients": rows("SELECT ip, name, first_seen, last_seen FROM clients", 2, 3),
            "sightings": rows(
                "SELECT i.type, i.value, c.ip, s.source, s.hour, s.hits, s.blocked, s.last_seen"
                " FROM sightings s JOIN iocs i ON i.id = s.ioc_id"
                " JOIN clients c ON c.id = s.client_id",
                4,
                7,
            ),
            "ioc_days": [(*key, sorted(v[0]), *v[1:]) for key, v in days.items()],
            "source_hours": rows("SELECT hour, source, hits, blocked FROM source_hours", 0),
            # The reason is the one an IoC was first queued for: when the batch in
            # which Suricata alerted on it is merged with the one that first saw it,
            # that is the alert. The tier, what the queue is ordered by, is the same.
            "queue": rows(
                "SELECT i.type, i.value, q.tier, q.clients, q.hits, q.attempts"
                " FROM lookup_queue q JOIN iocs i ON i.id = q.ioc_id"
            ),
            "alerts": rows(
                "SELECT a.ts, a.source, a.signature_id, a.signature, a.category, a.severity,"
                " a.src_ip, a.src_port, a.dest_ip, a.dest_port, a.proto, c.ip, i.value"
                " FROM ids_alerts a LEFT JOIN clients c ON c.id = a.client_id"
                " LEFT JOIN iocs i ON i.id = a.ioc_id",
                0,
            ),
            "errors": rows("SELECT source, path, position, reason, sample FROM ingest_errors"),
        }


def _sorted(tables: dict[str, list]) -> dict[str, list]:
    return {name: sorted(rows, key=repr) for name, rows in tables.items()}


def _clear(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.mark.parametrize("group_sizes", [(2,), (3, 1, 4), (100,)])
def test_merged_batches_store_what_the_batches_store_one_by_one(
    engine: Engine, tmp_path, group_sizes
) -> None:
    prepared = _batches(tmp_path)
    one_by_one = Totals()
    for part in prepared:
        store(engine, part, one_by_one)
    expected = _sorted(_stored(engine))
    assert expected["sightings"] and expected["alerts"] and expected["errors"]
    names = [row[1] for row in expected["clients"]]
    assert None in names and any(names)

    _clear(engine)
    merged, start, groups = Totals(), 0, 0
    while start < len(prepared):
        size = group_sizes[groups % len(group_sizes)]
        store(engine, merge(prepared[start : start + size]), merged)
        start, groups = start + size, groups + 1

    assert _sorted(_stored(engine)) == expected
    assert merged.as_dict() == one_by_one.as_dict()
