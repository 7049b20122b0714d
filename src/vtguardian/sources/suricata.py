"""Suricata EVE JSON: dns (v1, v2 with ``grouped``, v3), alert, http, tls, fileinfo, flow.

The client is the side of the conversation on the home network: the source of
a query or request, the destination of an answer or a download. An IoC that an
alert names (its remote address, or the DNS name, HTTP host or TLS SNI inside
the alert) is queued for lookup before anything else, and the alert itself is
kept for the dashboard's correlation panels.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from vtguardian.sources.base import ParseError, Stateless, json_object, text_field
from vtguardian.sources.batch import Batch, IdsAlert
from vtguardian.sources.timeparse import BadTimestamp, Stamp, fast_stamp

_ADDRESS_TYPES = ("A", "AAAA")


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
        self._handlers = {
            "dns": self._dns,
            "alert": self._alert,
            "http": self._http,
            "tls": self._tls,
            "fileinfo": self._fileinfo,
            "flow": self._flow,
        }

    def feed(self, line: bytes, batch: Batch) -> None:
        event = json_object(line)
        handler = self._handlers.get(event.get("event_type"))  # type: ignore[arg-type]
        if handler is None:
            return
        try:
            ts = fast_stamp(event["timestamp"])
        except (KeyError, BadTimestamp) as exc:
            raise ParseError(f"missing or bad timestamp: {exc}") from None
        batch.events += 1
        try:
            handler(event, ts, batch)
        except (TypeError, AttributeError, KeyError, ValueError) as exc:
            raise ParseError(f"unexpected field type in {event.get('event_type')}: {exc}") from None

    # --- event types ------------------------------------------------------------------

    def _dns(self, event: dict[str, Any], ts: Stamp, batch: Batch) -> None:
        dns = event["dns"]
        kind = dns.get("type")
        if kind == "query" or kind == "request":
            client = event.get("src_ip") or ""
            name = dns.get("rrname")
            if name.__class__ is str:  # v1/v2: the common case, checked first
                batch.see("domain", name, client, ts)
                return
            queries = dns.get("queries")
            if isinstance(queries, list):  # v3 (Suricata 8+)
                for query in queries:
                    name = text_field(query.get("rrname"))
                    if name:
                        batch.see("domain", name, client, ts)
            elif name is not None:
                raise ParseError("dns.rrname is not text")
            return
        if kind not in ("answer", "response"):
            return
        client = event.get("dest_ip") or ""
        seen: set[str] = set()
        grouped = dns.get("grouped")
        if isinstance(grouped, dict):
            for rrtype in _ADDRESS_TYPES:
                for value in grouped.get(rrtype) or ():
                    seen.add(text_field(value) or "")
        answers = dns.get("answers")
        if isinstance(answers, list):
            for answer in answers:
                if answer.get("rrtype") in _ADDRESS_TYPES:
                    seen.add(text_field(answer.get("rdata")) or "")
        elif dns.get("rrtype") in _ADDRESS_TYPES:  # v1: one answer record per event
            seen.add(text_field(dns.get("rdata")) or "")
        for address in seen:
            if address:
                batch.see("ip", address, client, ts)

    def _alert(self, event: dict[str, Any], ts: Stamp, batch: Batch) -> None:
        alert = event["alert"]
        src, dest = event.get("src_ip"), event.get("dest_ip")
        client, remote = (src, dest) if _is_local(src) or not _is_local(dest) else (dest, src)
        name = _alert_name(event)
        # The name the alert is about beats the address: it is what Pi-hole can block.
        kind, raw = ("domain", name) if name else ("ip", remote)
        if raw:
            batch.see(kind, raw, client or "", ts)
        batch.alert(
            IdsAlert(
                ts=ts,
                signature_id=_int(alert.get("signature_id")),
                signature=text_field(alert.get("signature")),
                category=text_field(alert.get("category")),
                severity=_int(alert.get("severity")),
                src_ip=text_field(src),
                src_port=_int(event.get("src_port")),
                dest_ip=text_field(dest),
                dest_port=_int(event.get("dest_port")),
                proto=text_field(event.get("proto")),
                client=client or "",
                ioc_kind=kind,
                ioc_raw=raw,
            )
        )

    def _http(self, event: dict[str, Any], ts: Stamp, batch: Batch) -> None:
        http = event["http"]
        host = text_field(http.get("hostname"))
        if not host:
            return
        client = event.get("src_ip") or ""
        batch.see("", host, client, ts)
        path = text_field(http.get("url")) or "/"
        if path.startswith("/"):  # EVE's http.url is the request target
            port = event.get("dest_port")
            netloc = host if port in (80, None) else f"{host}:{port}"
            batch.see("url", f"http://{netloc}{path}", client, ts)

    def _tls(self, event: dict[str, Any], ts: Stamp, batch: Batch) -> None:
        sni = text_field(event["tls"].get("sni"))
        if sni:
            batch.see("domain", sni, event.get("src_ip") or "", ts)

    def _fileinfo(self, event: dict[str, Any], ts: Stamp, batch: Batch) -> None:
        info = event["fileinfo"]
        src, dest = event.get("src_ip"), event.get("dest_ip")
        client = src if _is_local(src) and not _is_local(dest) else dest
        digest = text_field(info.get("sha256")) or text_field(info.get("md5"))
        if digest:
            batch.see("file", digest, client or "", ts)

    def _flow(self, event: dict[str, Any], ts: Stamp, batch: Batch) -> None:
        if self.flows:
            dest = text_field(event.get("dest_ip"))
            if dest:
                batch.see("ip", dest, event.get("src_ip") or "", ts)


def _alert_name(event: dict[str, Any]) -> str | None:
    """The DNS name, HTTP host or TLS SNI an alert event carries, if any."""
    dns = event.get("dns")
    if isinstance(dns, dict):
        for key in ("query", "queries"):
            entries = dns.get(key)
            if isinstance(entries, list) and entries and isinstance(entries[0], dict):
                return text_field(entries[0].get("rrname"))
        if dns.get("rrname"):
            return text_field(dns.get("rrname"))
    for section, key in (("http", "hostname"), ("tls", "sni")):
        part = event.get(section)
        if isinstance(part, dict) and part.get(key):
            return text_field(part.get(key))
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
