"""Which fields of an event hold IoCs, and reading them (nested, dotted or in lists).

Suricata's eve.json and ECS name the same things differently, so each input has
its own defaults; a job's ``fields`` replaces them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from vtguardian.config import JobSettings
from vtguardian.events import lookup
from vtguardian.intel.enrich import DEFAULT_FIELDS

SURICATA_FIELDS = (
    "tls.sni",
    "http.hostname",
    "dns.rrname",
    "dns.queries.rrname",
    "dest_ip",
    "src_ip",
    "fileinfo.sha256",
    "fileinfo.md5",
)

Atom = tuple[str, tuple[str, str]]  # field, IoC (type, value)


def job_fields(job: JobSettings) -> list[str]:
    if job.fields:
        return list(job.fields)
    return list(SURICATA_FIELDS if job.input.type == "suricata" else DEFAULT_FIELDS)


def values_at(event: dict[str, Any], parts: Sequence[str], path: str) -> list[Any]:
    """The values at ``path``: nested objects walked directly (the common shape), lists
    of objects followed (Suricata's ``dns.queries``), then flat dotted keys."""
    current: list[Any] = [event]
    for part in parts:
        following: list[Any] = []
        for value in current:
            if value.__class__ is dict:
                found = value.get(part)
                if found is None:
                    continue
                if found.__class__ is list:
                    following.extend(found)
                else:
                    following.append(found)
        current = following
        if not current:
            break
    if current:
        return current
    found = lookup(event, path)
    if found is None:
        return []
    return found if isinstance(found, list) else [found]


class FieldReader:
    """The IoCs of an event, each with its field; raw values are classified once."""

    def __init__(
        self, fields: Sequence[str], classify: Callable[[str], tuple[str, str] | None]
    ) -> None:
        self.paths = [(field, field.split(".")) for field in fields]
        self._classify = classify
        self._memo: dict[str, tuple[str, str] | None] = {}

    def atoms(self, event: dict[str, Any]) -> list[Atom]:
        found: list[Atom] = []
        memo = self._memo
        for field, parts in self.paths:
            value: Any = event
            for part in parts:  # nested objects, the common shape: walked directly
                value = value.get(part) if value.__class__ is dict else None
                if value is None:
                    break
            if value.__class__ is str:
                items: list[Any] = [value]
            else:  # lists (dns.queries[].rrname), dotted keys, or nothing there
                items = values_at(event, parts, field)
            for item in items:
                if item.__class__ is not str or not item:
                    continue
                ioc = memo.get(item, False)
                if ioc is False:
                    if len(memo) > 200_000:  # bounded: a job runs for months
                        memo.clear()
                    ioc = memo[item] = self._classify(item)
                if ioc is not None and (field, ioc) not in found:
                    found.append((field, ioc))
        return found
