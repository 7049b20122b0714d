"""ECS-shaped or any NDJSON events, with the IoC fields chosen by the user.

Field paths are dotted (``dns.question.name``) and match nested objects or flat
dotted keys alike; a field may hold one value or a list. The client is
``source.ip`` (else ``client.ip``), the time ``@timestamp`` (else ``timestamp``).
A DNS event's answers (``dns.answers``, else ``dns.resolved_ip``) are kept as
resolutions whatever the fields chosen.
"""

from __future__ import annotations

import time

from vtguardian.events import lookup
from vtguardian.sources.base import ParseError, Stateless, json_object
from vtguardian.sources.batch import Batch
from vtguardian.sources.timeparse import BadTimestamp, epoch_value

DEFAULT_FIELDS = (
    "destination.ip",
    "destination.domain",
    "dns.question.name",
    "url.full",
    "url.domain",
    "tls.client.server_name",
    "file.hash.sha256",
    "file.hash.sha1",
    "file.hash.md5",
)
_KIND_BY_SUFFIX = {
    ".ip": "ip",
    ".domain": "domain",
    "question.name": "domain",
    "server_name": "domain",
    "url.full": "url",
    "url.original": "url",
    ".sha256": "file",
    ".sha1": "file",
    ".md5": "file",
}


def kind_for(path: str) -> str:
    """The IoC type a field holds by ECS convention; '' lets the IoC model decide."""
    for suffix, kind in _KIND_BY_SUFFIX.items():
        if path.endswith(suffix):
            return kind
    return ""


class EcsParser(Stateless):
    source = "ecs"

    def __init__(self, fields: tuple[str, ...] | list[str] = DEFAULT_FIELDS) -> None:
        self.fields = [(field, kind_for(field)) for field in fields]

    def feed(self, line: bytes, batch: Batch) -> None:
        event = json_object(line)
        stamp = lookup(event, "@timestamp") or lookup(event, "timestamp")
        try:
            ts = epoch_value(stamp) if stamp is not None else time.time()
        except BadTimestamp as exc:
            raise ParseError(str(exc)) from None
        client = lookup(event, "source.ip") or lookup(event, "client.ip") or ""
        if not isinstance(client, str):
            raise ParseError("source.ip is not text")
        batch.events += 1
        # One event is one sighting of each value, however many of its fields name it
        # (destination.domain and url.domain usually do).
        seen: dict[str, str] = {}
        for field, kind in self.fields:
            value = lookup(event, field)
            for item in value if isinstance(value, list) else [value]:
                if item is None:
                    continue
                if not isinstance(item, str):
                    raise ParseError(f"{field}: expected text, got {type(item).__name__}")
                seen.setdefault(item, kind)
        for item, kind in seen.items():
            batch.see(kind, item, client, ts)
        _resolutions(event, client, ts, batch)


def _resolutions(event: dict, client: str, ts: float, batch: Batch) -> None:
    """A DNS event's answers as resolutions: ``dns.answers`` name each record's owner;
    ``dns.resolved_ip`` are the queried name's addresses, the chain left out."""
    answers = lookup(event, "dns.answers")
    linked = False
    if isinstance(answers, list):
        for record in answers:
            if not isinstance(record, dict):
                continue
            owner, kind, data = record.get("name"), record.get("type"), record.get("data")
            if not isinstance(owner, str) or not isinstance(data, str) or not owner or not data:
                continue
            if kind in ("A", "AAAA"):
                batch.resolve(owner, "ip", data, client, ts)
                linked = True
            elif kind == "CNAME":
                batch.resolve(owner, "domain", data, client, ts)
    if linked:
        return
    name = lookup(event, "dns.question.name")
    resolved = lookup(event, "dns.resolved_ip")
    if isinstance(name, str) and name:
        for address in resolved if isinstance(resolved, list) else [resolved]:
            if isinstance(address, str) and address:
                batch.resolve(name, "ip", address, client, ts)
