"""Which parser reads which source: a new one for each file."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime

from vtguardian.config import SOURCES
from vtguardian.errors import InvalidInput
from vtguardian.sources.base import LineParser
from vtguardian.sources.dnsmasq import DnsmasqParser
from vtguardian.sources.ecs import DEFAULT_FIELDS, EcsParser
from vtguardian.sources.plain import PlainParser
from vtguardian.sources.suricata import SuricataParser
from vtguardian.sources.zeek import ZeekParser

ParserFactory = Callable[[str], LineParser]


def parser_factory(source: str, fields: Sequence[str] = (), flows: bool = False) -> ParserFactory:
    """A maker of parsers for a line-based source: the file's path decides the Zeek log
    kind (from its name) and a syslog year (from its modification time)."""
    if source in ("pihole-log", "dnsmasq"):
        label = "pihole" if source == "pihole-log" else "dnsmasq"
        return lambda path: DnsmasqParser(label, _modified(path))
    if source == "suricata":
        return lambda _path: SuricataParser(flows=flows)
    if source == "zeek":
        return lambda path: ZeekParser(path)
    if source == "ecs":
        chosen = tuple(fields) or DEFAULT_FIELDS
        return lambda _path: EcsParser(chosen)
    if source == "plain":
        return lambda _path: PlainParser()
    raise InvalidInput(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")


def _modified(path: str) -> datetime:
    try:
        return datetime.fromtimestamp(os.stat(path).st_mtime)
    except OSError:
        return datetime.now()
