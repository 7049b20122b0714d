"""Zeek logs, TSV (``#fields``, ``#separator``, ``-``, ``(empty)``) and JSON.

The log's kind comes from ``#path`` (TSV), ``_path`` (JSON) or the file name.
dns: the query, and answers that are addresses; the answers are also kept as
resolutions (the query to its CNAME targets in order, the last to the
addresses); http: host (a port after it is
dropped) and URL (a proxy's absolute-form target as it is); ssl: the
server name; files: the hashes; conn: the responder address. conn, ssl and http
are also connections of the originator to the responder (``Batch.connect``). The client is
the originator (``id.orig_h``; ``rx_hosts`` in older files logs).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from vtguardian.sources.base import LineByLine, ParseError, decode, json_object, looks_like_ip
from vtguardian.sources.batch import Batch
from vtguardian.sources.timeparse import BadTimestamp, epoch_value

KINDS = ("dns", "http", "ssl", "files", "conn")
# Logs of a connection to the responder (what shows a DNS bypass).
_CONNECTIONS = ("conn", "ssl", "http")
# Queries whose answer is a CNAME chain ending in addresses (a PTR's names are not).
_ADDRESS_QUERIES = ("A", "AAAA", None)


_KIND_IN_NAME = re.compile(r"(?:^|[._-])(dns|http|ssl|files|conn)(?=[._-]|$)")


def kind_from_name(path: str) -> str | None:
    """``dns.log``, ``conn.00:00:00-01:00:00.log.gz``, ``site_http.log`` -> the log kind."""
    found = _KIND_IN_NAME.findall(Path(path).name)
    return found[-1] if found else None


class ZeekParser(LineByLine):
    independent_lines = False  # TSV lines need the header read before them

    source = "zeek"

    def __init__(self, path: str = "", now: float | None = None) -> None:
        self.kind = kind_from_name(path)
        self.fields: list[str] | None = None
        self.separator = "\t"
        self.set_separator = ","
        self.unset = "-"
        self.empty = "(empty)"
        # Baselines mask their timestamps; such a line is dated when it is read.
        self.now = now if now is not None else time.time()

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "fields": self.fields,
            "separator": self.separator,
            "set_separator": self.set_separator,
            "unset": self.unset,
            "empty": self.empty,
        }

    def restore(self, state: dict[str, Any] | None) -> None:
        if state:
            self.kind = state.get("kind") or self.kind
            self.fields = state.get("fields")
            self.separator = state.get("separator", "\t")
            self.set_separator = state.get("set_separator", ",")
            self.unset = state.get("unset", "-")
            self.empty = state.get("empty", "(empty)")

    def feed(self, line: bytes, batch: Batch) -> None:
        if line[:1] == b"{":
            record = json_object(line)
            kind = record.get("_path") or self.kind
            self._record(kind, record, batch)
            return
        text = decode(line)
        if text.startswith("#"):
            self._header(text)
            return
        if self.fields is None:
            raise ParseError("data line before the #fields header")
        values = text.split(self.separator)
        if len(values) != len(self.fields):
            raise ParseError(f"expected {len(self.fields)} fields, got {len(values)}")
        record = {
            name: None if value in (self.unset, self.empty) else value
            for name, value in zip(self.fields, values, strict=True)
        }
        self._record(self.kind, record, batch, tsv=True)

    def _header(self, text: str) -> None:
        if text.startswith("#separator "):
            try:
                separator = text.split(" ", 1)[1].encode().decode("unicode_escape")
            except UnicodeDecodeError:
                raise ParseError("bad #separator header") from None
            if not separator:
                raise ParseError("empty #separator header")
            self.separator = separator
            return
        name, _, value = text[1:].partition(self.separator)
        if name == "fields":
            self.fields = value.split(self.separator)
        elif name == "path":
            self.kind = value.strip() or self.kind
        elif name == "set_separator":
            self.set_separator = value
        elif name == "unset_field":
            self.unset = value
        elif name == "empty_field":
            self.empty = value

    def _record(self, kind: Any, record: dict[str, Any], batch: Batch, tsv: bool = False) -> None:
        if kind not in KINDS:
            return
        try:
            ts = epoch_value(record.get("ts"))
        except BadTimestamp:
            ts = self.now
        batch.events += 1
        orig = _text(record.get("id.orig_h")) or ""
        resp = _text(record.get("id.resp_h"))
        if resp and kind in _CONNECTIONS:
            batch.connect(resp, orig, ts)
        if kind == "dns":
            query = _text(record.get("query"))
            if query:
                batch.see("domain", query, orig, ts)
            # Zeek lists an answer's records in order without their owners: a name
            # among them (for an address query) is the next CNAME target of the chain
            # that starts at the query, and an address belongs to the last target.
            owner = query
            chains = record.get("qtype_name") in _ADDRESS_QUERIES
            for answer in self._list(record.get("answers"), tsv):
                if looks_like_ip(answer):
                    batch.see("ip", answer, orig, ts)
                    if owner:
                        batch.resolve(owner, "ip", answer, orig, ts)
                elif chains and owner and answer and " " not in answer:
                    batch.resolve(owner, "domain", answer, orig, ts)
                    owner = answer
        elif kind == "http":
            host = _text(record.get("host"))
            if host:
                batch.see("", host, orig, ts)
                uri = _text(record.get("uri")) or "/"
                if uri.startswith("/"):
                    batch.see("url", f"http://{host}{uri}", orig, ts)
                elif uri.startswith(("http://", "https://")):  # a proxy's absolute form
                    batch.see("url", uri, orig, ts)
        elif kind == "ssl":
            name = _text(record.get("server_name"))
            if name:
                batch.see("domain", name, orig, ts)
        elif kind == "files":
            receiver = orig or next(iter(self._list(record.get("rx_hosts"), tsv)), "")
            for key in ("sha256", "sha1", "md5"):
                digest = _text(record.get(key))
                if digest:
                    batch.see("file", digest, receiver, ts)
                    break
        elif kind == "conn" and resp:
            batch.see("ip", resp, orig, ts)

    def _list(self, value: Any, tsv: bool) -> list[str]:
        if value is None:
            return []
        if isinstance(value, list):
            return [str(v) for v in value if isinstance(v, str)]
        if isinstance(value, str):
            return value.split(self.set_separator) if tsv else [value]
        raise ParseError(f"expected a list, got {type(value).__name__}")


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    raise ParseError(f"expected text, got {type(value).__name__}")
