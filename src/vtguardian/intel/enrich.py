"""Event enrichment: add what vtguardian knows to each event, without waiting on anyone.

For every IoC in the chosen fields, the cached verdict (or the allowlist and
local feeds) becomes an ECS ``threat.enrichments[]`` entry, and the event gets
``vtguardian.is_malicious`` and ``vtguardian.ioc.global.result`` (the worst
level among its IoCs). IoCs nobody has answered yet are queued for lookup once
and reported as ``pending``; enrichment never spends quota or waits for it.
An answer from the cache counts as a cache hit, as a lookup's does: the hit rate
panel then sees it, and eviction keeps the entries enrichment is using.

Events are handled in chunks: each chunk's distinct IoCs are resolved with one
query, so a warm cache costs a dictionary lookup per field.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine

from vtguardian.clock import iso_z, utcnow
from vtguardian.events import lookup
from vtguardian.intel.cache_use import CacheUse
from vtguardian.intel.flow import VIRUSTOTAL, Flow
from vtguardian.intel.threat_context import YOUNG_DAYS, ecs_indicator, shown_context
from vtguardian.iocs import Classifier, IocType
from vtguardian.store import queue
from vtguardian.store.answers import CachedVerdict, cached_verdicts, count_outcome
from vtguardian.store.engine import run_in_transaction
from vtguardian.store.entities import ensure_iocs, find_ioc_ids
from vtguardian.store.threats import contexts
from vtguardian.verdict import Level

DEFAULT_FIELDS = (
    "source.ip",
    "destination.ip",
    "dns.question.name",
    "url.full",
    "url.domain",
    "tls.client.server_name",
    "file.hash.sha256",
    "file.hash.md5",
)
SEVERITY = {"malicious": 4, "suspicious": 3, "pending": 2, "harmless": 1, "unknown": 0}
_STIX = {"domain": "domain-name", "url": "url", "file": "file"}
CHUNK = 5000


@dataclass
class EnrichStats:
    events: int = 0
    enriched: int = 0
    queued: int = 0
    skipped: int = 0  # input lines that were not JSON objects


Atom = tuple[str, str, tuple[str, str]]  # field, raw value, (type, value)
_RESULT_JSON = {
    level: b'"vtguardian":'
    + orjson.dumps({"is_malicious": level == "malicious", "ioc": {"global": {"result": level}}})
    for level in SEVERITY
}


def _indicator(kind: str, value: str) -> dict[str, Any]:
    if kind == "ip":
        return {"type": "ipv6-addr" if ":" in value else "ipv4-addr", "ip": value}
    if kind == "domain":
        return {"type": "domain-name", "url": {"domain": value}}
    if kind == "url":
        return {"type": "url", "url": {"full": value}}
    return {"type": "file", "file": {"hash": {_hash_name(value): value}}}


def _hash_name(value: str) -> str:
    return {32: "md5", 40: "sha1"}.get(len(value), "sha256")


class Enricher:
    """Reusable across calls (the CLI, the REST API): caches what it learnt."""

    def __init__(
        self,
        engine: Engine,
        classifier: Classifier,
        flow: Flow | None = None,
        fields: Sequence[str] = DEFAULT_FIELDS,
        queue_unknown: bool = True,
        cache_use: CacheUse | None = None,
    ) -> None:
        """``cache_use`` records the cache hits (the API shares one across requests;
        the caller flushes it); without it they are not counted."""
        self.engine = engine
        self.cache_use = cache_use
        self.classifier = classifier
        self.flow = flow
        self.fields = list(fields)
        self._paths = [(field, field.split(".")) for field in self.fields]
        self._ioc_of: dict[str, tuple[str, str] | None] = {}  # raw value -> IoC, memoised
        self.queue_unknown = queue_unknown
        self.stats = EnrichStats()
        self._known: dict[tuple[str, str], dict[str, Any] | None] = {}
        self._queued: set[tuple[str, str]] = set()

    def enrich(self, events: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        chunk: list[dict[str, Any]] = []
        for event in events:
            chunk.append(event)
            if len(chunk) >= CHUNK:
                yield from self._chunk(chunk)
                chunk = []
        if chunk:
            yield from self._chunk(chunk)

    def _atoms(self, event: dict[str, Any]) -> list[Atom]:
        """(field, raw value, IoC) for every eligible IoC in the chosen fields."""
        found = []
        ioc_of = self._ioc_of
        for field, parts in self._paths:
            value: Any = event
            for part in parts:  # nested objects: the common ECS shape, walked directly
                value = value.get(part) if value.__class__ is dict else None
                if value is None:
                    break
            if value is None:
                value = lookup(event, field)  # dotted keys ("dns.question.name": ...)
            for item in value if isinstance(value, list) else (value,):
                if item.__class__ is not str or not item:
                    continue
                if item in ioc_of:
                    ioc = ioc_of[item]
                else:
                    ioc = ioc_of[item] = self._ioc(item)
                if ioc is not None:
                    found.append((field, item, ioc))
        return found

    def _ioc(self, raw: str) -> tuple[str, str] | None:
        if len(self._ioc_of) > 500_000:  # bounded: a long-running API process
            self._ioc_of.clear()
        result = self.classifier.classify(raw)
        if result.eligible and result.type is not None and result.value is not None:
            return (result.type.value, result.value)
        return None

    def _prepare(self, events: list[dict[str, Any]]) -> tuple[list[list[Atom]], str | None]:
        atoms = [self._atoms(event) for event in events]
        missing = {ioc for per_event in atoms for _f, _r, ioc in per_event} - self._known.keys()
        if missing:
            self._resolve(missing)
        return atoms, iso_z(utcnow())

    def _matches(self, per_event: list[Atom]) -> tuple[list[Atom], str]:
        """The atoms that have an answer, and the worst level among all of them."""
        matched = []
        worst = "harmless" if per_event else "unknown"
        for atom in per_event:
            template = self._known.get(atom[2])
            if template is None:
                level = "pending"
            else:
                level = template["vtguardian"]["verdict"]
                matched.append(atom)
            if SEVERITY[level] > SEVERITY[worst]:
                worst = level
        return matched, worst

    def _entry(self, atom: Atom, now: str | None) -> dict[str, Any]:
        field, raw, ioc = atom
        entry = dict(self._known[ioc] or {})
        entry["matched"] = {
            "atomic": raw,
            "field": field,
            "type": "indicator_match_rule",
            "occurred": now,
        }
        return entry

    def _chunk(self, events: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        atoms, now = self._prepare(events)
        for event, per_event in zip(events, atoms, strict=True):
            self.stats.events += 1
            matched, worst = self._matches(per_event)
            self._apply(event, [self._entry(atom, now) for atom in matched], worst)
            yield event

    def _apply(self, event: dict[str, Any], enrichments: list[dict[str, Any]], worst: str) -> None:
        if enrichments:
            self.stats.enriched += 1
            threat = event.setdefault("threat", {})
            if isinstance(threat, dict):
                threat.setdefault("enrichments", []).extend(enrichments)
        event["vtguardian"] = {
            "is_malicious": worst == "malicious",
            "ioc": {"global": {"result": worst}},
        }

    def enrich_lines(self, lines: Iterable[bytes]) -> Iterator[bytes]:
        """NDJSON in, NDJSON out (the CLI's path): the same result as :meth:`enrich`,
        written by splicing pre-serialised enrichments into each event's JSON."""
        chunk: list[dict[str, Any]] = []
        raw: list[bytes] = []
        for line in lines:
            line = line.strip()
            if not line:
                continue
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                self.stats.skipped += 1
                continue
            if event.__class__ is not dict:
                self.stats.skipped += 1
                continue
            chunk.append(event)
            raw.append(line)
            if len(chunk) >= CHUNK:
                yield from self._chunk_lines(chunk, raw)
                chunk, raw = [], []
        if chunk:
            yield from self._chunk_lines(chunk, raw)

    def _chunk_lines(self, events: list[dict[str, Any]], raw: list[bytes]) -> Iterator[bytes]:
        """Each input line is kept byte for byte; the enrichment is appended inside it."""
        atoms, now = self._prepare(events)
        # Events that carry the same IoCs in the same fields share one fragment.
        fragments: dict[tuple[Atom, ...], tuple[bytes, bool]] = {}
        for event, line, per_event in zip(events, raw, atoms, strict=True):
            self.stats.events += 1
            if "threat" in event or "vtguardian" in event:  # merge into what is there
                matched, worst = self._matches(per_event)
                self._apply(event, [self._entry(atom, now) for atom in matched], worst)
                yield orjson.dumps(event) + b"\n"
                continue
            key = tuple(per_event)
            cached = fragments.get(key)
            if cached is None:
                cached = fragments[key] = self._fragment(per_event, now)
            fragment, enriched = cached
            self.stats.enriched += enriched
            yield line[:-1] + (b"," if event else b"") + fragment

    def _fragment(self, per_event: list[Atom], now: str | None) -> tuple[bytes, bool]:
        """The JSON to append to an event with these atoms, and whether it enriches."""
        matched, worst = self._matches(per_event)
        parts = []
        if matched:
            entries = b",".join(orjson.dumps(self._entry(atom, now)) for atom in matched)
            parts.append(b'"threat":{"enrichments":[' + entries + b"]}")
        parts.append(_RESULT_JSON[worst])
        return b",".join(parts) + b"}\n", bool(matched)

    def _resolve(self, iocs: set[tuple[str, str]]) -> None:
        """Cached verdicts, else local providers, else queue for the worker."""
        now = utcnow()
        with self.engine.connect() as connection:
            ids = find_ioc_ids(connection, iocs)
            cached = cached_verdicts(connection, ids.values(), now)
            context = contexts(connection, cached)
        unresolved = []
        hits = []
        for ioc in iocs:
            ioc_id = ids.get(ioc, -1)
            answer = cached.get(ioc_id)
            if answer is not None:
                self._known[ioc] = _with_context(_template(ioc, answer), context.get(ioc_id))
                hits.append(ioc_id)
                continue
            local = self.flow.ask_local(IocType(ioc[0]), ioc[1]) if self.flow else None
            if local is not None and local.decider is not None:
                decider = local.decider
                self._known[ioc] = _template_from(
                    ioc, decider.verdict, decider.provider, None, None, decider.labels
                )
                continue
            self._known[ioc] = None
            unresolved.append(ioc)
        if hits and self.cache_use is not None:
            self.cache_use.note(hits)
        if self.queue_unknown and unresolved:
            fresh = [ioc for ioc in unresolved if ioc not in self._queued]
            self._queued.update(fresh)
            self.stats.queued += len(fresh)

            def work(connection: Any) -> None:
                stored = ensure_iocs(connection, {ioc: (None, now, now) for ioc in fresh})
                queue.enqueue(
                    connection,
                    [
                        queue.QueueRequest(i, queue.TIER_NEW, reason="enrich")
                        for i in stored.values()
                    ],
                    now,
                )
                count_outcome(connection, VIRUSTOTAL, "cache_miss", now, count=len(fresh))

            if fresh:
                run_in_transaction(self.engine, work)


def _with_context(entry: dict[str, Any], context: dict[str, Any] | None) -> dict[str, Any]:
    """The threat context in ECS ``indicator`` fields (AS, country, description) and, in
    full, under ``vtguardian.threat``."""
    if context:
        entry["indicator"].update(ecs_indicator(context))
        shown = shown_context(context, utcnow(), YOUNG_DAYS)
        if shown:
            entry["vtguardian"]["threat"] = shown
    return entry


def _template(ioc: tuple[str, str], answer: CachedVerdict) -> dict[str, Any]:
    return _template_from(
        ioc,
        answer.verdict,
        answer.decided_by or "virustotal",
        answer.ratio,
        answer.analysis_date,
        None,
        answer.malicious,
    )


def _template_from(
    ioc: tuple[str, str],
    verdict: str,
    provider: str,
    ratio: float | None,
    analysed: datetime | None,
    labels: list[str] | None,
    malicious: int | None = None,
) -> dict[str, Any]:
    indicator = _indicator(*ioc)
    indicator["provider"] = provider
    indicator["confidence"] = {"malicious": "High", "suspicious": "Medium"}.get(verdict, "Low")
    if malicious is not None:
        indicator["scanner_stats"] = malicious
    if analysed is not None:
        indicator["modified_at"] = iso_z(analysed)
    if labels:
        indicator["description"] = "; ".join(labels)[:200]
    return {
        "indicator": indicator,
        "vtguardian": {
            "verdict": verdict if verdict in SEVERITY else Level.UNKNOWN.value,
            "ratio": ratio,
            "last_analysis_date": iso_z(analysed),
        },
    }


def enrichment_template(
    ioc: tuple[str, str],
    verdict: str,
    provider: str,
    ratio: float | None,
    analysed: datetime | None,
    labels: list[str] | None,
    malicious: int | None = None,
) -> dict[str, Any]:
    """One ``threat.enrichments[]`` entry without its ``matched`` part, as :class:`Enricher`
    writes it: jobs add the same shape to the events they keep."""
    return _template_from(ioc, verdict, provider, ratio, analysed, labels, malicious)
