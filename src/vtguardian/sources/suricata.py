"""Suricata EVE JSON: dns (v1, v2 with ``grouped``, v3), alert, http, tls, quic, fileinfo, flow.

The client is the device that asked: the source of a query or request; for a
DNS answer the side that is not port 53 (else by the format's direction:
Suricata up to 7 logs an answer in the flow's direction, 8 names the responder
as its source); the local side of an alert or a download. An IoC that an alert
names (the DNS name, HTTP host or TLS/QUIC SNI inside the alert, else its
remote address) is queued for lookup before anything else, and the alert
itself is kept for the dashboard's correlation panels.

Every DNS answer is also a resolution of its client (``Batch.resolve``): each
record's owner to its address or CNAME target (v1, v3, v2's detailed
``answers``), or for v2's ``grouped`` form the queried name through its CNAMEs
in order to the addresses. A ``flow``, ``tls``, ``http`` or ``quic`` event is a
connection of its client to the server's address (``Batch.connect``), ``flow``
whatever ``--flows`` says: with the resolutions it shows a DNS bypass.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Annotated, Any, TypeVar

import msgspec

from vtguardian.sources.base import BadLine, ParseError, Stateless, text_field
from vtguardian.sources.batch import Batch, IdsAlert
from vtguardian.sources.timeparse import (
    BadTimestamp,
    HourKey,
    Stamp,
    stamp_hour,
    unix_hour,
)
from vtguardian.tally import Tally

_ADDRESS_TYPES = ("A", "AAAA")


# What vtguardian reads of an EVE event. Decoding into these typed structs skips
# every other field without building it, which makes the decode faster than a
# plain ``orjson.loads`` of the whole event; a field of the wrong JSON type is a
# bad line. Fields whose shape varies between Suricata versions stay ``Any`` and
# are checked where they are used.
class _Grouped(msgspec.Struct, gc=False):
    """DNS v2 grouped answers: the address records and the CNAME chain are read."""

    A: list[str] | None = None
    AAAA: list[str] | None = None
    CNAME: Any = None


class _Answer(msgspec.Struct, gc=False):
    rrname: Any = None
    rrtype: Any = None
    rdata: Any = None


class _Dns(msgspec.Struct, gc=False):
    type: str | None = None
    rrname: Any = None
    rrtype: Any = None
    rdata: Any = None
    grouped: _Grouped | None = None
    answers: list[_Answer] | None = None
    queries: Any = None
    query: Any = None  # alerts on requests, up to Suricata 7: [{"rrname": ...}]
    answer: Any = None  # alerts on responses, Suricata 6 and 7: {"rrname": ...}


class _Tls(msgspec.Struct, gc=False):
    sni: Any = None


class _Quic(msgspec.Struct, gc=False):
    sni: Any = None


class _Http(msgspec.Struct, gc=False):
    hostname: Any = None
    url: Any = None


class _Alert(msgspec.Struct, gc=False):
    signature_id: Any = None
    signature: Any = None
    category: Any = None
    severity: Any = None


class _FileInfo(msgspec.Struct, gc=False):
    sha256: Any = None
    md5: Any = None


class _Fields(msgspec.Struct, gc=False):
    event_type: str | None = None
    src_ip: str | None = None
    dest_ip: str | None = None
    src_port: Any = None
    dest_port: Any = None
    proto: Any = None
    dns: _Dns | None = None
    tls: _Tls | None = None
    quic: _Quic | None = None
    http: _Http | None = None
    alert: _Alert | None = None
    fileinfo: _FileInfo | None = None


class _Event(_Fields, kw_only=True, gc=False):
    """An event whose stamp msgspec decodes in C, Suricata's own form included."""

    timestamp: Annotated[datetime, msgspec.Meta(tz=True)]


class _LenientEvent(_Fields, kw_only=True, gc=False):
    """The same event when its stamp is not one msgspec reads (a leap second, no
    zone, none at all): the stamp is then checked by :func:`stamp_hour`."""

    timestamp: Any = None


_decode = msgspec.json.Decoder(_Event).decode
_decode_lenient = msgspec.json.Decoder(_LenientEvent).decode
_Section = TypeVar("_Section", _Dns, _Tls, _Quic, _Http, _Alert, _FileInfo)
Handler = Callable[[_Fields, Stamp, HourKey, Batch], None]


def _is_local(address: str | None, cache: dict[str, bool] = {}) -> bool:  # noqa: B006
    if not address:
        return False
    known = cache.get(address)
    if known is None:
        try:
            known = not ipaddress.ip_address(address).is_global
        except ValueError:
            known = False
        if len(cache) < 100_000:
            cache[address] = known
    return known


class SuricataParser(Stateless):
    source = "suricata"

    def __init__(self, flows: bool = False) -> None:
        self.flows = flows
        self._handlers: dict[str | None, Handler] = {
            "dns": self._dns,
            "alert": self._alert,
            "http": self._http,
            "tls": self._tls,
            "quic": self._quic,
            "fileinfo": self._fileinfo,
            "flow": self._flow,
        }

    def feed(self, line: bytes, batch: Batch) -> None:
        self.feed_block([line], batch, _raise)

    def feed_block(self, lines: list[bytes], batch: Batch, bad: BadLine) -> None:
        """:meth:`feed` for many lines in one call, the ingest's hot path.

        Each line is decoded and counted before the next is read: a decoded event
        never outlives its line, which keeps the loop in the CPU's caches. Bad
        lines are reported by their index in ``lines``.
        """
        decode = _decode
        handlers = self._handlers
        counts = batch.counts
        start = end = _NO_HOUR
        hour = 0
        events = 0
        try:
            for index, line in enumerate(lines):
                try:
                    event: _Fields = decode(line)
                except msgspec.ValidationError:
                    try:
                        event = _lenient(line)
                    except ParseError as error:
                        bad(index, str(error))
                        continue
                except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                    if line and line != b"\r":  # blank lines are skipped
                        bad(index, f"invalid JSON: {exc}")
                    continue
                kind = event.event_type
                handler = handlers.get(kind)
                if handler is None:
                    continue
                ts = event.timestamp
                if ts.__class__ is datetime:
                    # Logs are in time order: most stamps fall in the hour of the one
                    # before, which two comparisons tell (in the stamp's own zone, the
                    # fast case of comparing aware datetimes).
                    if not start <= ts < end:
                        hour = unix_hour(ts)
                        start, end = _hour_window(hour, ts.tzinfo)
                else:  # a stamp msgspec did not read
                    try:
                        ts, hour = _checked_stamp(ts)
                    except BadTimestamp as exc:
                        bad(index, f"missing or bad timestamp: {exc}")
                        continue
                    start = end = _NO_HOUR  # ``hour`` is this line's, not the window's
                events += 1
                # The commonest events name one IoC: a DNS query or a TLS handshake a
                # domain the source asked for, a DNS answer with one address the
                # address its client was given. Counted here at once; anything else
                # goes to the event type's handler.
                name, ioc_kind, client = None, "domain", event.src_ip
                if kind == "dns":
                    dns = event.dns
                    if dns is not None:
                        dns_type = dns.type
                        if dns_type == "query":
                            name = dns.rrname
                        elif dns_type == "answer" and dns.answers is None and dns.rdata is None:
                            grouped = dns.grouped  # v2: decoded as lists of text
                            if (
                                grouped is not None
                                and grouped.AAAA is None
                                and grouped.CNAME is None
                                and dns.rrname.__class__ is str
                            ):
                                a = grouped.A
                                if a is not None and len(a) == 1:
                                    # Logged in the flow's direction (up to 7), except
                                    # by versions that put the resolver first (3.x).
                                    name, ioc_kind = a[0], "ip"
                                    if event.src_port == 53 and event.dest_port != 53:
                                        client = event.dest_ip
                                    # The answer itself: the name that has the address.
                                    rkey = (dns.rrname, "ip", name, client or "", hour)
                                    resolved = batch.resolutions.get(rkey)
                                    if resolved is None:
                                        batch.resolutions[rkey] = Tally(1, 0, ts, ts)
                                    else:
                                        resolved.see(ts)
                elif kind == "tls":
                    tls = event.tls
                    if tls is not None:
                        name = tls.sni
                        server = event.dest_ip
                        if server and name.__class__ is str and name:  # the handler's else
                            ckey = (server, client or "", hour)
                            joined = batch.connections.get(ckey)
                            if joined is None:
                                batch.connections[ckey] = Tally(1, 0, ts, ts)
                            else:
                                joined.see(ts)
                if name.__class__ is str and name:
                    key = (ioc_kind, name, client or "", hour)
                    entry = counts.get(key)
                    if entry is None:
                        counts[key] = Tally(1, 0, ts, ts)
                    else:
                        entry.see(ts)
                    continue
                try:
                    handler(event, ts, hour, batch)
                except ParseError as exc:
                    bad(index, str(exc))
                except (TypeError, AttributeError, KeyError, ValueError) as exc:
                    bad(index, f"unexpected field type in {kind}: {exc}")
        finally:
            batch.events += events

    # --- event types ------------------------------------------------------------------

    def _dns(self, event: _Fields, ts: Stamp, hour: HourKey, batch: Batch) -> None:
        dns = _section(event.dns, "dns")
        kind = dns.type
        if kind == "query" or kind == "request":
            client = event.src_ip or ""
            name = dns.rrname
            if name.__class__ is str:  # v1/v2: the common case, checked first
                batch.see_at("domain", name, client, hour, ts)
                return
            queries = dns.queries
            if isinstance(queries, list):  # v3 (Suricata 8+)
                for query in queries:
                    name = text_field(query.get("rrname"))
                    if name:
                        batch.see_at("domain", name, client, hour, ts)
            elif name is not None:
                raise ParseError("dns.rrname is not text")
            return
        if kind not in ("answer", "response"):
            return
        addresses: list[Any] = []
        grouped = dns.grouped
        if grouped is not None:  # v2 and v3; the decoded lists are only read, never changed
            a, aaaa = grouped.A, grouped.AAAA
            addresses = a + aaaa if a and aaaa else a or aaaa or []
        answers = dns.answers
        if answers is not None:
            addresses = addresses + [x.rdata for x in answers if x.rrtype in _ADDRESS_TYPES]
        elif dns.rdata is not None and dns.rrtype in _ADDRESS_TYPES:  # v1: one record an event
            addresses = [*addresses, dns.rdata]
        # Up to Suricata 7 an answer is logged in the flow's direction; Suricata 8's
        # responses name the responder as the source.
        client = _dns_client(event, responder_is_src=kind == "response")
        _resolutions(dns, client, hour, ts, batch)
        for address in set(addresses) if len(addresses) > 1 else addresses:
            if address.__class__ is not str:  # v1 and answers: any JSON value
                text_field(address)  # a wrong type is a bad line, null is skipped
            elif address:
                batch.see_at("ip", address, client, hour, ts)

    def _alert(self, event: _Fields, ts: Stamp, hour: HourKey, batch: Batch) -> None:
        alert = _section(event.alert, "alert")
        src, dest = event.src_ip, event.dest_ip
        if event.dns is not None and 53 in (event.src_port, event.dest_port):
            # Pi-hole is local too: the asking side is the one that is not port 53.
            client, remote = (dest, src) if event.src_port == 53 else (src, dest)
        elif _is_local(src) or not _is_local(dest):
            client, remote = src, dest
        else:
            client, remote = dest, src
        name = _alert_name(event)
        # The name the alert is about beats the address: it is what Pi-hole can block.
        kind, raw = ("domain", name) if name else ("ip", remote)
        if raw:
            batch.see_at(kind, raw, client or "", hour, ts)
        batch.alert(
            IdsAlert(
                ts=ts,
                signature_id=_int(alert.signature_id),
                signature=text_field(alert.signature),
                category=text_field(alert.category),
                severity=_int(alert.severity),
                src_ip=src or None,
                src_port=_int(event.src_port),
                dest_ip=dest or None,
                dest_port=_int(event.dest_port),
                proto=text_field(event.proto),
                client=client or "",
                ioc_kind=kind,
                ioc_raw=raw,
            )
        )

    def _http(self, event: _Fields, ts: Stamp, hour: HourKey, batch: Batch) -> None:
        http = _section(event.http, "http")
        host = text_field(http.hostname)
        if not host:
            return
        client = event.src_ip or ""
        batch.see_at("", host, client, hour, ts)
        if event.dest_ip:
            batch.connect_at(event.dest_ip, client, hour, ts)
        path = text_field(http.url) or "/"
        if path.startswith("/"):  # EVE's http.url is the request target
            port = event.dest_port
            netloc = host if port in (80, None) else f"{host}:{port}"
            batch.see_at("url", f"http://{netloc}{path}", client, hour, ts)

    def _tls(self, event: _Fields, ts: Stamp, hour: HourKey, batch: Batch) -> None:
        sni = text_field(_section(event.tls, "tls").sni)
        if event.dest_ip:
            batch.connect_at(event.dest_ip, event.src_ip or "", hour, ts)
        if sni:
            batch.see_at("domain", sni, event.src_ip or "", hour, ts)

    def _quic(self, event: _Fields, ts: Stamp, hour: HourKey, batch: Batch) -> None:
        sni = text_field(_section(event.quic, "quic").sni)
        client, server = (
            (event.dest_ip, event.src_ip)
            if event.src_port == 443
            else (event.src_ip, event.dest_ip)
        )
        if server:
            batch.connect_at(server, client or "", hour, ts)
        if sni:
            batch.see_at("domain", sni, client or "", hour, ts)

    def _fileinfo(self, event: _Fields, ts: Stamp, hour: HourKey, batch: Batch) -> None:
        info = _section(event.fileinfo, "fileinfo")
        src, dest = event.src_ip, event.dest_ip
        client = src if _is_local(src) and not _is_local(dest) else dest
        digest = text_field(info.sha256) or text_field(info.md5)
        if digest:
            batch.see_at("file", digest, client or "", hour, ts)

    def _flow(self, event: _Fields, ts: Stamp, hour: HourKey, batch: Batch) -> None:
        if event.dest_ip:
            # A connection whatever ``flows`` says: it is how a DNS bypass shows.
            batch.connect_at(event.dest_ip, event.src_ip or "", hour, ts)
        if self.flows and event.dest_ip:
            batch.see_at("ip", event.dest_ip, event.src_ip or "", hour, ts)


_NO_HOUR = datetime.min.replace(tzinfo=UTC)  # an empty window: no stamp is in it


def _hour_window(hour: HourKey, zone: tzinfo | None) -> tuple[datetime, datetime]:
    """The Unix hour ``hour`` as ``[start, end)`` in ``zone``; empty at the ends of
    the calendar, where each stamp then has its hour worked out on its own."""
    try:
        start = datetime.fromtimestamp(hour * 3600, zone)
        return start, start + _ONE_HOUR
    except (OverflowError, ValueError, OSError):
        return _NO_HOUR, _NO_HOUR


_ONE_HOUR = timedelta(hours=1)


def _lenient(line: bytes) -> _Fields:
    """The event of a line whose only fault may be its stamp, or ParseError."""
    try:
        return _decode_lenient(line)
    except msgspec.ValidationError as exc:
        raise ParseError(f"unexpected field type: {exc}") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # found past the bad field
        raise ParseError(f"invalid JSON: {exc}") from None


def _checked_stamp(value: object) -> tuple[datetime, HourKey]:
    """A stamp in any ISO form, as the aware datetime the rest of a batch holds."""
    epoch, hour = stamp_hour(value)
    return datetime.fromtimestamp(epoch, UTC), hour


def _raise(_index: int, reason: str) -> None:
    raise ParseError(reason)


def _section(part: _Section | None, name: str) -> _Section:
    """The object an event type is about; an event without it is a bad line."""
    if part is None:
        raise ParseError(f"{name} event without its {name} object")
    return part


def _dns_client(event: _Fields, responder_is_src: bool) -> str:
    """The asking side of a DNS event: the one that is not port 53, else by direction."""
    if event.dest_port == 53:
        return event.src_ip or ""
    if event.src_port == 53:
        return event.dest_ip or ""
    return (event.dest_ip if responder_is_src else event.src_ip) or ""


def _resolutions(dns: _Dns, client: str, hour: HourKey, ts: Stamp, batch: Batch) -> None:
    """The links of a DNS answer: each record's owner to its address or CNAME target.

    v1 logs one record an event with its owner; v3's ``answers`` (and v2's
    detailed form) name each record's owner; v2's ``grouped`` form does not, so
    its CNAMEs are taken as the chain in order from the queried name, and its
    addresses as the last target's.
    """
    resolve = batch.resolve_at
    if dns.answers is not None:
        for record in dns.answers:
            _link(record.rrname, record.rrtype, record.rdata, client, hour, ts, resolve)
    elif dns.rdata is not None:  # v1
        _link(dns.rrname, dns.rrtype, dns.rdata, client, hour, ts, resolve)
    grouped = dns.grouped
    if grouped is None or dns.answers is not None:
        return
    owner = dns.rrname
    if owner.__class__ is not str or not owner:
        return
    cnames = grouped.CNAME
    if isinstance(cnames, list):
        for target in cnames:
            if target.__class__ is str and target and target != owner:
                resolve(owner, "domain", target, client, hour, ts)
                owner = target
    for records in (grouped.A, grouped.AAAA):
        for address in records or ():
            if address.__class__ is str and address:
                resolve(owner, "ip", address, client, hour, ts)


def _link(
    owner: Any,
    rrtype: Any,
    rdata: Any,
    client: str,
    hour: HourKey,
    ts: Stamp,
    resolve: Callable[[str, str, str, str, HourKey, Stamp], None],
) -> None:
    """One answer record as a resolution, when it is an address or a CNAME of text."""
    if owner.__class__ is not str or rdata.__class__ is not str or not owner or not rdata:
        return
    if rrtype in _ADDRESS_TYPES:
        resolve(owner, "ip", rdata, client, hour, ts)
    elif rrtype == "CNAME":
        resolve(owner, "domain", rdata, client, hour, ts)


def _alert_name(event: _Fields) -> str | None:
    """The DNS name, HTTP host or TLS/QUIC SNI an alert event carries, if any.

    DNS metadata has three layouts: ``dns.query[]`` (requests, up to 7),
    ``dns.answer`` (responses, 6 and 7) and ``dns.queries[]`` (both, 8 on).
    """
    dns = event.dns
    if dns is not None:
        for entries in (dns.query, dns.queries):
            if isinstance(entries, list) and entries and isinstance(entries[0], dict):
                return text_field(entries[0].get("rrname"))
        if isinstance(dns.answer, dict) and dns.answer.get("rrname"):
            return text_field(dns.answer.get("rrname"))
        if dns.rrname:
            return text_field(dns.rrname)
    for section, field in ((event.http, "hostname"), (event.tls, "sni"), (event.quic, "sni")):
        value = getattr(section, field, None) if section is not None else None
        if value:
            return text_field(value)
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
