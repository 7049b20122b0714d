"""pihole.log and plain dnsmasq logs (``log-queries``, ``=extra``, ``=proto``).

A ``query[A] example.com from 192.168.1.10`` line is one DNS query by a client.
The addresses of an answer (``reply``/``cached ... is 1.2.3.4``) are IP
sightings of the client whose query the answer is for, and each line is also a
resolution by that client: ``NAME -> ADDR``, or ``NAME -> TARGET`` for a
``<CNAME>`` line, whose target is the name of the line after it. dnsmasq logs an answer
as consecutive lines, its CNAME chain first (``reply a.example is <CNAME>``,
``reply a.example.edgekey.net is <CNAME>``) and the target's records last, so a
target that nobody queried is followed back to the query that started the
chain. With ``log-queries=extra`` (Pi-hole's ``misc.extraLogging``) every line
names its requestor (``7 192.168.1.116/53421 reply ...``, after ``UDP``/``TCP``
with ``=proto``), which decides the client outright.

A query counts as blocked exactly when Pi-hole's query database gives it a
blocked status (https://docs.pi-hole.net/database/query-database/): the
reason lines FTL writes for its lists and special domains (status 1, 4, 5,
9-11, 15, 16), and an upstream block (6, 7): an answer of ``0.0.0.0``/``::`` or
of a Cisco Umbrella block page, which v6.4 logs as ``reply X is blocked due to
upstream response (answer)`` and later as ``blocked upstream with ...``. The
block belongs to the queried name, so ``reply tracker.example is blocked
during CNAME inspection`` (which names the chain's target) adds nothing: the
reason line for the queried name follows it.

dnsmasq answers a client from a stale cache entry at once and refreshes it
upstream afterwards (``cached-stale``, then ``forwarded`` and ``reply``): the
refresh reaches no client, so its addresses are nobody's sighting. Forked TCP
workers log in between the main process's lines; each process's answer is
followed on its own. Syslog lines carry no year: it is inferred from the
file's modification time, so a log spanning New Year stays in order.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from datetime import datetime
from typing import Any

from vtguardian.sources.base import LineByLine, ParseError, decode, looks_like_ip
from vtguardian.sources.batch import Batch

_LINE = re.compile(
    r"(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<h>\d\d):(?P<m>\d\d):(?P<s>\d\d)"
    r" (?:\S+ )?(?P<prog>[\w.-]+)(?:\[(?P<pid>\d+)\])?: (?P<msg>.*)"
)
# log-queries=extra: the query's serial, then (when dnsmasq knows it) the requestor
# and its port; log-queries=proto puts the transport in front.
_EXTRA = re.compile(r"(?:(?:UDP|TCP) )?(?P<id>\d+) (?:(?P<client>[^\s/]+)/\d+ )?(?P<rest>.*)")
_MONTHS = {
    m: n
    for n, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}
_ANSWERS = ("reply", "cached", "cached-stale")
# FTL's blocking reasons (src/dnsmasq_interface.c, v5 and v6), longest first so that
# "gravity blocked (CNAME)" is not read as "gravity blocked" of a name "(CNAME)".
_BLOCK_REASONS = tuple(
    sorted(
        (
            "gravity blocked",
            "gravity blocked (CNAME)",
            "regex blacklisted",
            "regex blocked",
            "regex denied",
            "regex denied (CNAME)",
            "exactly blacklisted",
            "exactly blocked",
            "exactly denied",
            "exactly denied (CNAME)",
            "special domain",
            "Mozilla canary domain",
            "Apple iCloud Private Relay domain",
            "blocked upstream with known address",
            "blocked upstream with NULL address",
            "blocked upstream with EDE15",
            "blocked upstream with NXRA address",
            "to be refused (gravity database is not available)",
            "to be dropped (gravity database is not available)",
            "to be blocked (gravity database is not available)",
        ),
        key=len,
        reverse=True,
    )
)
# Answers FTL records as blocked upstream: the null addresses (status 7) and Cisco
# Umbrella's block pages, 146.112.61.104-110 (status 6; FTL's detect_blocked_IP).
_UPSTREAM_BLOCKS = frozenset(
    ["0.0.0.0", "::"]
    + [f"{prefix}146.112.61.{n}" for prefix in ("", "::ffff:") for n in range(104, 111)]
)
#: the same, public: an answer of one of them is a block page, not where a name lives
UPSTREAM_BLOCK_ADDRESSES = _UPSTREAM_BLOCKS
_BLOCKED_UPSTREAM = "blocked due to upstream response"  # v6.4: "... (answer)"
_MAX_PENDING = 4096


class DnsmasqParser(LineByLine):
    independent_lines = False  # answers are joined to the queries before them

    def __init__(self, source: str = "pihole", reference: datetime | None = None) -> None:
        self.source = source
        self.reference = (reference or datetime.now()).timestamp()
        self._hours: dict[tuple[str, str, str], float] = {}
        self._by_id: OrderedDict[str, str] = OrderedDict()
        self._by_name: OrderedDict[str, str] = OrderedDict()
        # Per process, the answer being logged: its client (None for a refresh that
        # reaches no client), the name its next line may have (None after a CNAME: the
        # target, whatever it is), the queried name, whether a block of it was counted
        # already, its query serial (extra logging; a line of another is not its), and
        # the name of its last line (the owner of a CNAME whose target comes next).
        self._answers: dict[str, list[Any]] = {}
        # Names answered from a stale cache entry whose refresh is still to come.
        self._stale: OrderedDict[str, str] = OrderedDict()

    def state(self) -> dict[str, Any]:
        return {
            "by_id": list(self._by_id.items()),
            "by_name": list(self._by_name.items()),
            "answers": self._answers,
            "stale": list(self._stale),
        }

    def restore(self, state: dict[str, Any] | None) -> None:
        if state:
            self._by_id = OrderedDict((str(k), str(v)) for k, v in state.get("by_id", []))
            self._by_name = OrderedDict((str(k), str(v)) for k, v in state.get("by_name", []))
            answers = state.get("answers")
            if isinstance(answers, dict):
                self._answers = {
                    str(pid): list(answer)
                    for pid, answer in answers.items()
                    if isinstance(answer, list) and len(answer) in (5, 6)
                }
                for kept in self._answers.values():  # saved before resolutions were kept
                    if len(kept) == 5:
                        kept.append(None)
            self._stale = OrderedDict((str(name), "") for name in state.get("stale", []))

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
        query_id = requestor = None
        extra = _EXTRA.match(message)
        if extra is not None:
            query_id, requestor, message = extra["id"], extra["client"], extra["rest"]
        process = match["pid"] or ""
        action, _, rest = message.partition(" ")
        if action in _ANSWERS:
            self._answer_line(process, action, rest, query_id, requestor, ts, batch)
            return
        self._answers.pop(process, None)  # any other line ends the answer being logged
        if action.startswith("query["):
            self._query(rest, query_id, ts, batch)
            return
        for reason in _BLOCK_REASONS:
            if message.startswith(reason) and message[len(reason) : len(reason) + 1] == " ":
                name = message[len(reason) + 1 :].split(" ", 1)[0]
                client = requestor or self._client(query_id, name)
                batch.events += 1
                batch.see("domain", name, client, ts, blocked=1, hits=0)
                return

    def _query(self, rest: str, query_id: str | None, ts: float, batch: Batch) -> None:
        name, sep, client = rest.partition(" from ")
        if not sep or not name:
            raise ParseError("query line without 'from'")
        client = client.strip()
        batch.events += 1
        batch.see("domain", name, client, ts)
        if query_id is not None:
            _remember(self._by_id, query_id, client)
        _remember(self._by_name, name, client)
        self._stale.pop(name, None)  # a new question: the next answer is its own

    def _answer_line(
        self,
        process: str,
        action: str,
        rest: str,
        query_id: str | None,
        requestor: str | None,
        ts: float,
        batch: Batch,
    ) -> None:
        name, _, value = rest.partition(" is ")
        value = value.split(" ", 1)[0]  # " (DNSSEC signed)", " (EDE: ...)" follow the value
        answer = self._answers.get(process)
        client: str | None
        if (
            answer is not None
            and (answer[1] is None or answer[1] == name)
            and answer[4] == query_id
        ):
            client, queried, counted = answer[0], answer[2], answer[3]
        else:  # the first line of an answer: the queried name itself
            client, queried, counted = requestor or self._client(query_id, name), name, False
            if action == "reply" and self._stale.pop(name, None) is not None:
                client = None  # the refresh of a stale answer the client already has
        if client is not None:
            if action == "cached-stale":
                _remember(self._stale, queried, "")
            if answer is not None and answer[1] is None and name != queried:
                _remember(self._by_name, name, client)  # a CNAME target, the chain's client
                if answer[5]:  # the line before was the CNAME whose target this is
                    batch.resolve(answer[5], "domain", name, client, ts)
            if value and looks_like_ip(value):
                batch.events += 1
                batch.see("ip", value, client, ts)
                batch.resolve(name, "ip", value, client, ts)
            if not counted and (
                value in _UPSTREAM_BLOCKS or rest.startswith(_BLOCKED_UPSTREAM, len(name) + 4)
            ):  # Pi-hole's status 6 or 7: a block of the query
                batch.see("domain", queried, client, ts, blocked=1, hits=0)
                counted = True
        self._answers[process] = [
            client,
            None if value == "<CNAME>" else name,
            queried,
            counted,
            query_id,
            name,  # the owner of this line: a CNAME's, linked to the next line's name
        ]

    def _client(self, query_id: str | None, name: str) -> str:
        if query_id is not None and query_id in self._by_id:
            return self._by_id[query_id]
        return self._by_name.get(name, "")


def _remember(table: OrderedDict[str, str], key: str, value: str) -> None:
    table[key] = value
    table.move_to_end(key)
    if len(table) > _MAX_PENDING:
        table.popitem(last=False)
