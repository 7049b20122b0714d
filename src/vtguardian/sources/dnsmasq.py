"""pihole.log and plain dnsmasq logs (``log-queries``, also ``log-queries=extra``).

A ``query[A] example.com from 192.168.1.10`` line is one DNS query by a client.
Replies (``reply``/``cached ... is 1.2.3.4``) add the resolved addresses as IP
sightings of the same client, joined by the dnsmasq query id where the log
has one (``extra``), else by the most recent query for that name. Block lines
(``gravity blocked``, ``regex blocked``, ``exactly denied``, ``special domain``
...) mark the query as blocked. Syslog lines carry no year: it is inferred
from the file's modification time, so a log spanning New Year stays in order.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from datetime import datetime
from typing import Any

from vtguardian.sources.base import ParseError, decode, looks_like_ip
from vtguardian.sources.batch import Batch

_LINE = re.compile(
    r"(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<h>\d\d):(?P<m>\d\d):(?P<s>\d\d)"
    r" (?:\S+ )?(?P<prog>[\w.-]+)(?:\[\d+\])?: (?P<msg>.*)"
)
_EXTRA = re.compile(r"(?P<id>\d+) (?P<client>[0-9A-Fa-f.:]+)/\d+ (?P<rest>.*)")
_MONTHS = {
    m: n
    for n, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}
_BLOCK_WORDS = (
    "gravity blocked",
    "regex blocked",
    "regex denied",
    "exactly blocked",
    "exactly denied",
    "blacklisted",
    "special domain",
    "blocked",
    "denied",
)
_MAX_PENDING = 4096


class DnsmasqParser:
    def __init__(self, source: str = "pihole", reference: datetime | None = None) -> None:
        self.source = source
        self.reference = (reference or datetime.now()).timestamp()
        self._hours: dict[tuple[str, str, str], float] = {}
        self._by_id: OrderedDict[str, str] = OrderedDict()
        self._by_name: OrderedDict[str, str] = OrderedDict()

    def state(self) -> dict[str, Any]:
        return {"by_id": list(self._by_id.items()), "by_name": list(self._by_name.items())}

    def restore(self, state: dict[str, Any] | None) -> None:
        if state:
            self._by_id = OrderedDict((str(k), str(v)) for k, v in state.get("by_id", []))
            self._by_name = OrderedDict((str(k), str(v)) for k, v in state.get("by_name", []))

    def _epoch(self, mon: str, day: str, hour: str, minute: str, second: str) -> float:
        key = (mon, day, hour)
        base = self._hours.get(key)
        if base is None:
            month = _MONTHS.get(mon)
            if month is None:
                raise ParseError(f"unknown month {mon!r}")
            year = datetime.fromtimestamp(self.reference).year
            try:
                # Local time, as syslog writes it; a date ahead of the file is last year's.
                base = datetime(year, month, int(day), int(hour)).timestamp()
                if base > self.reference + 86400:
                    base = datetime(year - 1, month, int(day), int(hour)).timestamp()
            except ValueError:
                raise ParseError("invalid date") from None
            self._hours[key] = base
        return base + int(minute) * 60 + int(second)

    def feed(self, line: bytes, batch: Batch) -> None:
        text = decode(line)
        match = _LINE.match(text)
        if match is None:
            raise ParseError("not a dnsmasq log line")
        ts = self._epoch(match["mon"], match["day"], match["h"], match["m"], match["s"])
        message = match["msg"]
        query_id = None
        extra = _EXTRA.match(message)
        if extra is not None:
            query_id, message = extra["id"], extra["rest"]
        if message.startswith("query["):
            self._query(message, query_id, ts, batch)
            return
        action, _, rest = message.partition(" ")
        if action in ("reply", "cached", "cached-stale"):
            name, _, value = rest.partition(" is ")
            if value and looks_like_ip(value):
                batch.events += 1
                batch.see("ip", value, self._client(query_id, name), ts)
            return
        for words in _BLOCK_WORDS:
            if message.startswith(words + " "):
                name = message[len(words) + 1 :].split(" ", 1)[0]
                batch.events += 1
                batch.see("domain", name, self._client(query_id, name), ts, blocked=1, hits=0)
                return

    def _query(self, message: str, query_id: str | None, ts: float, batch: Batch) -> None:
        _, _, rest = message.partition("] ")
        name, sep, client = rest.partition(" from ")
        if not sep or not name:
            raise ParseError("query line without 'from'")
        client = client.strip()
        batch.events += 1
        batch.see("domain", name, client, ts)
        if query_id is not None:
            _remember(self._by_id, query_id, client)
        _remember(self._by_name, name, client)

    def _client(self, query_id: str | None, name: str) -> str:
        if query_id is not None and query_id in self._by_id:
            return self._by_id[query_id]
        return self._by_name.get(name, "")


def _remember(table: OrderedDict[str, str], key: str, value: str) -> None:
    table[key] = value
    table.move_to_end(key)
    if len(table) > _MAX_PENDING:
        table.popitem(last=False)
